/**
 * Issue 17, point 2: every startup failure is coded and early. The real CLI (serve, config check) is run
 * against files that break one thing each; a refused start must leave nothing behind (no data directory).
 */
import { createServer, type Server } from 'node:net';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { runCli, startServe } from '../helpers/serve.js';
import { useTmpDir } from '../helpers/tmp.js';

const tmp = useTmpDir('mg-startup-');
const quiet = ['--log-level', 'silent'];

describe('startup failures are coded, early, and name file, line and key or the flag', () => {
  it('a corrupt catalog is MG_ERR_CATALOG_OPEN (exit 74), from serve and from config check', () => {
    const data = join(tmp.path, 'data');
    mkdirSync(data);
    writeFileSync(join(data, 'mirrorguard.db'), 'this is not a SQLite database, it is a text file '.repeat(200));
    for (const cmd of [['serve', '--listen', '127.0.0.1:0'], ['config', 'check']]) {
      const r = runCli([...cmd, '--data-dir', data, '--api', 'off', ...quiet]);
      expect([cmd[0], r.status]).toEqual([cmd[0], 74]);
      expect(r.stderr).toContain('MG_ERR_CATALOG_OPEN');
      expect(r.stderr).not.toContain('SqliteError');
      expect(r.stderr).not.toMatch(/\n\s+at /); // no stack
    }
  });

  it('a data directory that cannot be created is MG_ERR_DATA_DIR (exit 73) before anything else', () => {
    writeFileSync(join(tmp.path, 'file'), '');
    const r = runCli(['serve', '--listen', '127.0.0.1:0', '--data-dir', join(tmp.path, 'file', 'data'), '--api', 'off', ...quiet]);
    expect(r.status).toBe(73);
    expect(r.stderr).toContain('MG_ERR_DATA_DIR');
  });

  describe('the API port in use', () => {
    let server: Server | null = null;
    afterEach(() => server?.close());
    it('is MG_ERR_API_BIND (exit 71), not a raw EADDRINUSE stack', async () => {
      server = createServer();
      await new Promise<void>((r) => server!.listen(0, '127.0.0.1', r));
      const port = (server.address() as { port: number }).port;
      const r = runCli(['serve', '--listen', '127.0.0.1:0', '--data-dir', join(tmp.path, 'd'), '--api', `127.0.0.1:${port}`, ...quiet]);
      expect(r.status).toBe(71);
      expect(r.stderr).toContain(`MG_ERR_API_BIND: cannot listen on the API address: 127.0.0.1:${port}: EADDRINUSE`);
      expect(r.stderr).not.toMatch(/\n\s+at /);
    });
  });

  it('an unset tokenEnv names file, line and key, and nothing is created', () => {
    const cfg = join(tmp.path, 'c.yaml');
    writeFileSync(cfg, `dataDir: ${join(tmp.path, 'data')}\napi:\n  tokens:\n    - name: ops\n      role: admin\n      tokenEnv: MG_TEST_UNSET_TOKEN\n`);
    const r = runCli(['serve', '--config', cfg, '--listen', '127.0.0.1:0', ...quiet], { env: { MG_TEST_UNSET_TOKEN: undefined } });
    expect(r.status).toBe(78);
    expect(r.stderr).toContain(`${cfg}:6: api.tokens[0].tokenEnv: environment variable MG_TEST_UNSET_TOKEN is not set`);
    expect(existsSync(join(tmp.path, 'data'))).toBe(false);
  });

  it('--webhook without a secret is blamed on the flag, not on a line of the config file', () => {
    const cfg = join(tmp.path, 'c.yaml');
    writeFileSync(cfg, 'api:\n  listen: off\n');
    const r = runCli(['config', 'check', '--config', cfg, '--webhook', 'https://alerts.example.com/x'], { env: { MIRRORGUARD_WEBHOOK_SECRET: undefined } });
    expect(r.status).toBe(78);
    expect(r.stderr).toContain('MG_ERR_WEBHOOK_CONFIG');
    expect(r.stderr).toMatch(/^--webhook \(webhooks\[0\]\.secretEnv\): environment variable MIRRORGUARD_WEBHOOK_SECRET is not set/m);
    expect(r.stderr).not.toContain(`${cfg}:`);
  });

  it('--listen localhost:PORT is resolved to 127.0.0.1 (serve starts); another host name is refused up front as the flag', async () => {
    const s = await startServe(['--listen', 'localhost:0', '--data-dir', join(tmp.path, 'data'), '--api', 'off', '--log-format', 'json']);
    await s.waitForLog((l) => /listening|receiving/i.test(l.msg) && typeof l.port === 'number');
    expect(await s.stop()).toBe(0);
    const r = runCli(['serve', '--listen', 'collector.example.com:4789', '--data-dir', join(tmp.path, 'other'), ...quiet]);
    expect(r.status).toBe(78);
    expect(r.stderr).toContain('--listen: must be HOST:PORT with an IP address');
    expect(existsSync(join(tmp.path, 'other'))).toBe(false);
  });

  it('api.trustProxy takes one address or CIDR as a string, and refuses a non-address', () => {
    const cfg = join(tmp.path, 'c.yaml');
    writeFileSync(cfg, 'api:\n  listen: off\n  trustProxy: 10.0.0.0/8\n');
    const ok = runCli(['config', 'check', '--config', cfg]);
    expect(ok.status).toBe(0);
    expect(JSON.parse(ok.stdout).api.trustProxy).toEqual(['10.0.0.0/8']);
    writeFileSync(cfg, 'api:\n  listen: off\n  trustProxy: proxy.example.com\n');
    const bad = runCli(['config', 'check', '--config', cfg]);
    expect(bad.status).toBe(78);
    expect(bad.stderr).toContain(`${cfg}:3: api.trustProxy: must be`);
  });
});

describe('config check', () => {
  it('prints the effective configuration with secrets redacted, and creates nothing', () => {
    const cfg = join(tmp.path, 'c.yaml');
    writeFileSync(
      cfg,
      [
        `dataDir: ${join(tmp.path, 'data')}`,
        'pcap:',
        '  rotateBytes: 64MiB',
        'api:',
        '  tokens:',
        '    - { name: ops, role: admin, token: "a-literal-token-that-is-long-enough" }',
        'webhooks:',
        '  - url: https://alerts.example.com/secret-path',
        '    secret: whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw',
        '',
      ].join('\n'),
    );
    const r = runCli(['config', 'check', '--config', cfg, '--rotate-seconds', '60']);
    expect(r.status).toBe(0);
    const c = JSON.parse(r.stdout);
    expect(c.pcap).toMatchObject({ rotateBytes: 64 * 1024 * 1024, rotateSeconds: 60 });
    expect(c.api.tokens[0]).toEqual({ name: 'ops', role: 'admin', token: '<redacted>' });
    expect(c.webhooks[0]).toMatchObject({ url: 'https://alerts.example.com/…', secret: '<redacted>' });
    expect(r.stdout).not.toContain('a-literal-token');
    expect(r.stdout).not.toContain('MfKQ9r8');
    expect(r.stdout).not.toContain('secret-path');
    expect(r.stderr).toContain('config check: ok');
    expect(existsSync(join(tmp.path, 'data'))).toBe(false);
  });

  it('without the subcommand is a usage error', () => {
    expect(runCli(['config']).status).toBe(64);
  });
});
