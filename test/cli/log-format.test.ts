/**
 * Logs a person can read: `--log-format pretty` (the default on a terminal) versus JSON lines (the
 * default otherwise, which services, journald and test/helpers/serve.ts parse). The CLI runs for real:
 * through pipes, and under a pseudo-terminal with script(1).
 */
import { spawn, spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/load.js';
import { MgError } from '../../src/errors.js';
import { prettyMessage, resolveLogFormat } from '../../src/util/log.js';
import { PROJECT_ROOT } from '../helpers/fixtures.js';
import { itNeeds } from '../helpers/needs.js';
import { tmpDir } from '../helpers/tmp.js';

const BIN = join(PROJECT_ROOT, 'bin', 'mirrorguard.js');
const SERVE = ['serve', '--listen', '127.0.0.1:0', '--api', '127.0.0.1:0', '--receiver', 'dgram'];

/** Run serve until its API listens, stop it with SIGTERM, and return everything it wrote. */
function serveOutput(cmd: string, args: string[], cwd: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const p = spawn(cmd, args, { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let stopping = false;
    const onData = (b: Buffer) => {
      out += b.toString();
      if (!stopping && out.includes('api listening')) {
        stopping = true;
        setTimeout(() => p.kill('SIGTERM'), 100);
      }
    };
    p.stdout.on('data', onData);
    p.stderr.on('data', onData);
    const timer = setTimeout(() => {
      p.kill('SIGKILL');
      reject(new Error(`serve did not start:\n${out}`));
    }, 20_000);
    p.on('close', () => {
      clearTimeout(timer);
      resolve(out);
    });
  });
}

function expectReadable(out: string, dataDir: string, stopped = true): void {
  // eslint-disable-next-line no-control-regex
  const text = out.replace(/\x1b\[[0-9;]*m/g, '').replace(/\r/g, '');
  expect(text).not.toMatch(/^\{"level"/m); // no JSON lines
  const lines = text.split('\n').filter((l) => l.length > 0);
  expect(lines.find((l) => l.includes('NO MANIFEST'))).toMatch(/^\[\d\d:\d\d:\d\d\.\d{3}\] WARN: NO MANIFEST: every mirror session is treated as unauthorized/);
  expect(lines.find((l) => l.includes('receiving VXLAN'))).toMatch(/^\[\d\d:\d\d:\d\d\.\d{3}\] INFO: receiving VXLAN {2}receiver=dgram address=127\.0\.0\.1 port=\d+/);
  expect(lines.find((l) => l.includes('admin token'))).toContain(`generated an admin token in ${join(dataDir, 'api-admin.token')}`);
  expect(lines.find((l) => l.includes('api listening'))).toMatch(/INFO: api listening {2}url=http:\/\/127\.0\.0\.1:\d+ port=\d+/);
  // script(1) kills its child outright on SIGTERM, so the last line is there only through pipes.
  if (stopped) expect(lines.find((l) => l.includes('final counters'))).toMatch(/stopped; final counters {2}counters=\(all 0\)/);
}

describe('log format', () => {
  it('is JSON when stderr is not a terminal, pretty when it is, unless told', () => {
    expect(resolveLogFormat('auto', { isTTY: false })).toBe('json');
    expect(resolveLogFormat('auto', {})).toBe('json');
    expect(resolveLogFormat('auto', { isTTY: true })).toBe('pretty');
    expect(resolveLogFormat('json', { isTTY: true })).toBe('json');
    expect(resolveLogFormat('pretty', { isTTY: false })).toBe('pretty');
  });

  it('is a config key (log.format) with the flag --log-format, checked by the schema', () => {
    expect(loadConfig({}).log.format).toBe('auto');
    expect(loadConfig({ overrides: [{ path: ['log', 'format'], value: 'pretty', flag: '--log-format' }] }).log.format).toBe('pretty');
    expect(() => loadConfig({ overrides: [{ path: ['log', 'format'], value: 'xml', flag: '--log-format' }] })).toThrow(MgError);
  });

  it('pretty lines put the message first, fields as key=value, counters as their non-zero entries, and an error with its stack', () => {
    expect(prettyMessage({ level: 30, time: 1, pid: 1, name: 'mirrorguard', msg: 'api listening', port: 8080, host: '127.0.0.1', tls: false })).toBe(
      'api listening  port=8080 host=127.0.0.1 tls=false',
    );
    expect(prettyMessage({ msg: 'm', path: 'a b', n: null, o: { a: 1 } })).toBe('m  path="a b" n=null o={"a":1}');
    const counters = Object.fromEntries(Array.from({ length: 10 }, (_, i) => [`c${i}`, i === 3 ? 7 : 0]));
    expect(prettyMessage({ msg: 'stopped', counters })).toBe('stopped  counters={c3: 7}');
    const err = { type: 'Error', message: 'disk on fire', code: 'EIO', stack: 'Error: disk on fire\n    at write (x.js:1:1)' };
    expect(prettyMessage({ msg: 'failed', err })).toBe('failed  err="disk on fire" code=EIO\n    at write (x.js:1:1)');
  });

  it('serve logs JSON lines through pipes (what services, journald and the tests parse)', async () => {
    const dir = tmpDir();
    const out = await serveOutput(process.execPath, [BIN, ...SERVE, '--data-dir', join(dir, 'data')], dir);
    const lines = out.trim().split('\n');
    const parsed = lines.map((l) => JSON.parse(l) as { msg: string });
    expect(parsed.map((l) => l.msg)).toContain('receiving VXLAN');
    expect(parsed.find((l) => l.msg === 'api listening')).toMatchObject({ url: expect.stringMatching(/^http:\/\/127\.0\.0\.1:\d+$/) });
  }, 30_000);

  it('serve --log-format pretty reads well through pipes', async () => {
    const dir = tmpDir();
    const data = join(dir, 'data');
    expectReadable(await serveOutput(process.execPath, [BIN, ...SERVE, '--data-dir', data, '--log-format', 'pretty'], dir), data);
  }, 30_000);

  itNeeds(['script'], 'serve on a terminal is pretty by default', async () => {
    const dir = tmpDir();
    const data = join(dir, 'data');
    const cmd = [process.execPath, BIN, ...SERVE, '--data-dir', data].map((a) => `'${a}'`).join(' ');
    expect(spawnSync('script', ['--version']).status).toBe(0);
    expectReadable(await serveOutput('script', ['-qfec', cmd, '/dev/null'], dir), data, false);
  }, 30_000);

  it('refuses an unknown format', () => {
    const r = spawnSync(process.execPath, [BIN, 'serve', '--log-format', 'xml', '--api', 'off'], { encoding: 'utf8' });
    expect(r.status).toBe(78);
    expect(r.stderr).toContain('--log-format: Invalid option: expected one of "auto"|"json"|"pretty"');
  });
});
