/**
 * Every shell example in README.md and docs/*.md, checked without running it (issue 17, point 1):
 * it parses as bash, and each `mirrorguard COMMAND [SUBCOMMAND] --flag ...` line names a command,
 * subcommand and flags the CLI has (the same tables --help is generated from). Examples that need AWS
 * are covered this way too; those that do not are run by the doc-test-marked tests (quickstart, runbook).
 */
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { commandFlags, type CommandSpec } from '../../src/cli/flags.js';
import { SPEC as alerts } from '../../src/cli/alerts.js';
import { SPEC as cloudtrail } from '../../src/cli/cloudtrail.js';
import { SPEC as config } from '../../src/cli/config.js';
import { SPEC as decap } from '../../src/cli/decap.js';
import { SPEC as inventory } from '../../src/cli/inventory.js';
import { SPEC as keys } from '../../src/cli/keys.js';
import { SPEC as manifest } from '../../src/cli/manifest.js';
import { SPEC as replay } from '../../src/cli/replay.js';
import { SPEC as serve } from '../../src/cli/serve.js';
import { SPEC as verify } from '../../src/cli/verify.js';
import { PROJECT_ROOT } from '../helpers/fixtures.js';
import { DOC_FILES, docBlocks } from './doc-blocks.js';

const SPECS: Record<string, CommandSpec> = { alerts, cloudtrail, config, decap, inventory, keys, manifest, replay, serve, verify };
const SHELL = new Set(['sh', 'bash', 'shell', 'console']);

/** `mirrorguard` invocations in a script: continuation lines joined, the words after the program name up to a pipe, redirect or `;`. */
export function invocations(code: string): string[][] {
  const joined = code.replace(/\\\n/g, ' ');
  const out: string[][] = [];
  for (const m of joined.matchAll(/(^|[\s;(&|])(?:\S*bin\/)?mirrorguard(?:\.js)? ([^\n;|&>)'"]*)/g)) {
    // `sudo -u mirrorguard ...`, `journalctl -u mirrorguard`: the user or unit, not the program.
    const before = joined.slice(0, m.index + m[1]!.length).trimEnd().split(/\s+/).pop() ?? '';
    if (before.startsWith('-')) continue;
    const words = m[2]!.replace(/#.*$/, '').trim().split(/\s+/).filter(Boolean);
    if (words.length) out.push(words);
  }
  return out;
}

function problems(words: string[]): string[] {
  const [cmd, ...rest] = words;
  if (cmd === '--help' || cmd === '--version' || cmd!.startsWith('<')) return [];
  const spec = SPECS[cmd!];
  if (!spec) return [`unknown command '${cmd}'`];
  const out: string[] = [];
  const sub = rest.find((w) => !w.startsWith('-'));
  if (spec.subcommands && sub !== undefined && !/^[A-Z$<]/.test(sub) && rest[0] === sub && !spec.subcommands.some((s) => s.name === sub)) out.push(`${cmd}: unknown subcommand '${sub}'`);
  const known = new Set(commandFlags(spec).flatMap((f) => [`--${f.name}`, ...(f.short ? [`-${f.short}`] : [])]).concat(['--help', '-h']));
  for (const w of rest) {
    if (!w.startsWith('--')) continue;
    const flag = w.split('=')[0]!;
    if (!known.has(flag) && !flag.startsWith('--$')) out.push(`${cmd}: unknown flag ${flag}`);
  }
  return out;
}

describe('shell examples in the documentation', () => {
  const blocks = DOC_FILES.flatMap((f) => docBlocks(f)).filter((b) => SHELL.has(b.lang) || (b.lang === '' && /^\s*mirrorguard /m.test(b.code)));

  it('finds the examples (the harness reads the pages)', () => {
    expect(blocks.length).toBeGreaterThan(30);
    expect(blocks.flatMap((b) => invocations(b.code)).length).toBeGreaterThan(20);
    expect(problems(['serve', '--listen', 'x', '--no-such-flag'])).toEqual(['serve: unknown flag --no-such-flag']);
    expect(problems(['manifest', 'chek', 'm.yaml'])).toEqual(["manifest: unknown subcommand 'chek'"]);
    expect(invocations('sudo -u mirrorguard sqlite3 x\n/usr/local/bin/mirrorguard alerts test --config c.yaml')).toEqual([['alerts', 'test', '--config', 'c.yaml']]);
  });

  it('every mirrorguard command line names a command, subcommand and flags that exist', () => {
    const bad: string[] = [];
    for (const b of blocks) for (const words of invocations(b.code)) for (const p of problems(words)) bad.push(`${b.file}:${b.line}: ${p} (in 'mirrorguard ${words.join(' ')}')`);
    expect(bad).toEqual([]);
  });

  it('every sh block parses as bash', () => {
    const bad: string[] = [];
    for (const b of blocks.filter((x) => x.lang !== '' && x.lang !== 'console')) {
      const r = spawnSync('bash', ['-n'], { input: b.code, encoding: 'utf8' });
      if (r.status !== 0) bad.push(`${b.file}:${b.line}: ${r.stderr.trim()}`);
    }
    expect(bad).toEqual([]);
  });
});

describe('doc-test markers', () => {
  it('every marker in the documentation is run by a test in test/docs', () => {
    const tests = readdirSync(join(PROJECT_ROOT, 'test', 'docs')).map((f) => readFileSync(join(PROJECT_ROOT, 'test', 'docs', f), 'utf8')).join('\n');
    const markers = new Set(DOC_FILES.flatMap((f) => docBlocks(f).filter((b) => b.marker !== null).map((b) => `${f} ${b.marker}`)));
    const unrun = [...markers].filter((m) => {
      const [file, name] = m.split(' ');
      return !tests.includes(`markedScript('${file}', '${name}')`);
    });
    expect(unrun).toEqual([]);
  });

  it('every sh block is run by a test, or needs AWS / a deployed host (checked above for syntax only), or is listed here with why not', () => {
    // Blocks that need AWS or the deployed collector: an AWS CLI call, --aws, the installed paths, systemd, the runbook's $API_URL.
    const AWS = /\baws |--aws\b|\/etc\/mirrorguard|systemctl|journalctl|\$API_URL|\bsudo\b|cloudformation|\bapi [/"']/;
    // Keyed by file and first line, so that an edit above a block does not move its key.
    const NOT_RUN: Record<string, string> = {
      'README.md npm test': 'npm test itself',
      'README.md npm ci && npm start': 'serve on 0.0.0.0:4789 with defaults: the quickstart test runs serve on loopback',
      'docs/alerts.md echo "whsec_$(openssl rand -base64 32)"': 'prints a random secret (its format is checked by alerts config tests)',
      'docs/alerts.md export MIRRORGUARD_WEBHOOK_SECRET=whsec_...': 'a placeholder secret to fill in',
      'docs/install.md export AWS_REGION=eu-central-1                 # the VPC\'s region': 'AWS region settings for the steps that follow',
      'docs/install.md cat <<EOF': 'a heredoc template of the manifest entry, filled from AWS output',
      "docs/install.md DATABASE_URL='postgres://mirrorguard:CHANGE-ME@mg-catalog.abcdefghij.eu-central-1.rds.amazonaws.com:5432/mirrorguard?sslmode=verify-full'":
        'a placeholder for your RDS instance URL (fleet mode), used by the aws cloudformation deploy that follows',
      'docs/install.md GWLBE_ID=$(out GatewayLoadBalancerEndpointId)': 'reads an output of the deployed CloudFormation stack (out, defined in the install steps)',
      'docs/operations.md mirrorguard serve [--config FILE] [flags]': 'the usage line, as --help prints it',
      'docs/operations.md sysctl -w net.core.rmem_max=134217728     # persist it: deploy/sysctl.d/60-mirrorguard.conf (128 MiB)': 'sysctl on the host (root, changes the machine)',
      'docs/quickstart.md npm ci && npm link        # builds dist/ and puts `mirrorguard` on PATH (or use ./bin/mirrorguard.js)': 'npm ci: the test runs the checkout it is in',
      'docs/quickstart.md tshark -r evidence.pcap -c 5': 'tshark on the evidence: the quickstart test checks the SHA-256 of the same file',
    };
    const RUN_WHOLE = ['docs/api.md'];
    const unclassified = DOC_FILES.flatMap((f) =>
      docBlocks(f)
        .filter((b) => b.lang === 'sh' && b.marker === null && !RUN_WHOLE.includes(f) && !AWS.test(b.code) && !(`${f} ${b.code.split('\n')[0]}` in NOT_RUN))
        .map((b) => `${f}:${b.line}: ${b.code.split('\n')[0]}`),
    );
    expect(unclassified).toEqual([]);
  });
});
