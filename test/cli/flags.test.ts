/**
 * One argument parser for every subcommand: each command's table drives parsing and --help, usage
 * errors are MG_ERR_CLI_USAGE (exit 64) naming the command, and output goes through CliIo.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { commandFlags, commandHelp, parseCommand, type CommandSpec } from '../../src/cli/flags.js';
import type { CliIo } from '../../src/cli/io.js';
import { main } from '../../src/cli/main.js';
import { MgError } from '../../src/errors.js';
import { tmpDir } from '../helpers/tmp.js';

const COMMANDS = ['serve', 'decap', 'replay', 'manifest', 'cloudtrail', 'inventory', 'alerts', 'config', 'keys', 'verify'] as const;

const MODULES: Record<(typeof COMMANDS)[number], () => Promise<{ SPEC: CommandSpec }>> = {
  serve: () => import('../../src/cli/serve.js'),
  decap: () => import('../../src/cli/decap.js'),
  replay: () => import('../../src/cli/replay.js'),
  manifest: () => import('../../src/cli/manifest.js'),
  cloudtrail: () => import('../../src/cli/cloudtrail.js'),
  inventory: () => import('../../src/cli/inventory.js'),
  alerts: () => import('../../src/cli/alerts.js'),
  config: () => import('../../src/cli/config.js'),
  keys: () => import('../../src/cli/keys.js'),
  verify: () => import('../../src/cli/verify.js'),
};

async function specOf(name: (typeof COMMANDS)[number]): Promise<CommandSpec> {
  return (await MODULES[name]()).SPEC;
}

function io(): CliIo & { out: () => string; err: () => string } {
  let out = '';
  let err = '';
  return { stdout: { write: (s: string) => (out += s) }, stderr: { write: (s: string) => (err += s) }, out: () => out, err: () => err };
}

describe('the command tables', () => {
  for (const name of COMMANDS) {
    it(`${name}: --help is generated from the table the parser reads, through CliIo`, async () => {
      const spec = await specOf(name);
      expect(spec.name).toBe(name);
      const c = io();
      expect(await main([name, '--help'], c)).toBe(0);
      expect(c.out()).toBe(commandHelp(spec));
      expect(c.out()).toMatch(new RegExp(`^usage: mirrorguard ${name}`));
      for (const f of commandFlags(spec)) expect(c.out()).toContain(`--${f.name}`);
      for (const sub of spec.subcommands ?? []) expect(c.out()).toContain(`  ${sub.name}`);
      expect(c.out()).toContain('-h, --help');
      expect(c.err()).toBe('');
    });

    it(`${name}: an unknown flag is a usage error (exit 64) naming the command and its --help`, async () => {
      const c = io();
      expect(await main([name, '--no-such-flag'], c)).toBe(64);
      expect(c.err()).toBe(`mirrorguard: MG_ERR_CLI_USAGE: invalid command line: ${name}: Unknown option '--no-such-flag'; see 'mirrorguard ${name} --help'\n`);
      expect(c.out()).toBe('');
    });
  }

  it('checks int flags against their bounds and hands them over as numbers', () => {
    const spec: CommandSpec = {
      name: 't',
      usage: ['t'],
      description: 'd',
      sections: [{ title: 'options', flags: [{ name: 'limit', kind: 'int', min: 1, max: 10, help: 'h' }, { name: 'x', kind: 'list', help: 'h' }] }],
    };
    expect(parseCommand(['--limit', '3', '--x', 'a', '--x', 'b'], spec).values).toEqual({ limit: 3, x: ['a', 'b'] });
    for (const bad of ['0', '11', 'many', '2.5']) {
      expect(() => parseCommand(['--limit', bad], spec)).toThrow(`t: --limit: expected an integer from 1 to 10, got '${bad}'`);
    }
    expect(parseCommand(['--limit', 'many', '--help'], spec).help).toBe(true); // help wins over bad values
  });

  it('refuses an unknown subcommand and a flag the subcommand does not take', async () => {
    const spec = await specOf('manifest');
    expect(() => parseCommand(['frobnicate'], spec)).toThrow("manifest: unknown command 'frobnicate'; the commands are 'check', 'init'");
    expect(() => parseCommand(['check', 'x', '--out', 'y'], spec)).toThrow(MgError);
    expect(() => parseCommand(['check', 'x', '--out', 'y'], spec)).toThrow('manifest: check takes no --out');
    expect(parseCommand(['init', '--aws', '--out', 'y'], spec).subcommand?.name).toBe('init');
  });

  it('runs a command end to end through the given CliIo (nothing on the process streams)', async () => {
    const dir = tmpDir();
    const m = join(dir, 'manifest.yaml');
    writeFileSync(m, 'version: 1\nsessions: []\n');
    const c = io();
    expect(await main(['manifest', 'check', m], c)).toBe(0);
    expect(c.out()).toMatch(new RegExp(`^${m}: valid, 0 sessions, sha256 [0-9a-f]{64}\\n$`));
    const top = io();
    expect(await main(['--help'], top)).toBe(0);
    expect(top.out()).toContain('usage: mirrorguard <command> [options]');
    const none = io();
    expect(await main(['frobnicate'], none)).toBe(64);
    expect(none.err()).toContain('MG_ERR_CLI_UNKNOWN_COMMAND');
  });
});

it("every flag's --help default that is a number or a byte size is the config default it sets", async () => {
  const { CONFIG_FLAGS } = await import('../../src/cli/flags.js');
  const { DEFAULTS } = await import('../../src/config/schema.js');
  const { parseBytes } = await import('../../src/util/units.js');
  let checked = 0;
  for (const f of Object.values(CONFIG_FLAGS)) {
    const m = /\(default ([0-9][0-9.]*[A-Za-z]*)/.exec(f.help);
    if (m === null || f.path === undefined) continue;
    let v: unknown = DEFAULTS;
    for (const k of f.path) v = (v as Record<string | number, unknown> | undefined)?.[k];
    if (typeof v !== 'number') continue; // an address or a word: not this check's
    expect(parseBytes(m[1]), `--${f.name} help says (default ${m[1]})`).toBe(v);
    checked++;
  }
  // The ring's, the socket buffer's, rotation's, retention's, ports and intervals at least.
  expect(checked).toBeGreaterThanOrEqual(12);
});
