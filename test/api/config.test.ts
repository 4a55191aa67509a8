import { existsSync, readFileSync, statSync, writeFileSync, chmodSync } from 'node:fs';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { buildApi } from '../../src/api/app.js';
import { ADMIN_TOKEN_FILE, API_DEFAULTS, configuredTokens, parseApiConfig, resolveApiTokens, sha256Digest } from '../../src/api/config.js';
import { isMgError, MgError } from '../../src/errors.js';
import { useTmpDir } from '../helpers/tmp.js';
import { buildHarness } from './helpers.js';

function problemsOf(fn: () => unknown): string[] {
  try {
    fn();
  } catch (e) {
    if (!isMgError(e)) throw e;
    return e.describe().split('\n');
  }
  throw new Error('expected an MgError');
}

/** A pino logger whose lines the test can read. */
function capturingLogger(): { logger: pino.Logger; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const l of chunk.toString('utf8').split('\n')) if (l.trim()) lines.push(JSON.parse(l) as Record<string, unknown>);
      cb();
    },
  });
  return { logger: pino({ level: 'info' }, sink), lines };
}

describe('api config', () => {
  it('has secure defaults: loopback, no public metrics, bounded bodies, windows and extractions', () => {
    const c = parseApiConfig({});
    expect(c).toEqual({
      listen: '127.0.0.1:8080',
      tokens: [],
      maxBodyBytes: 4 * 1024 * 1024,
      maxConcurrentExtractions: 2,
      maxRangeHours: 24,
      maxExtractionFiles: 512,
      publicMetrics: false,
      trustProxy: false,
    });
    expect(c.listen).toBe(API_DEFAULTS.listen);
  });

  it('accepts sizes with units, off, IPv6 listen addresses and a TLS pair', () => {
    const c = parseApiConfig({ listen: '[::1]:8443', maxBodyBytes: '256KiB', tls: { certFile: '/c.pem', keyFile: '/k.pem' } });
    expect(c.maxBodyBytes).toBe(256 * 1024);
    expect(c.tls).toEqual({ certFile: '/c.pem', keyFile: '/k.pem' });
    expect(parseApiConfig({ listen: 'off' }).listen).toBe('off');
  });

  it('names every bad field, with the api. prefix', () => {
    const lines = problemsOf(() =>
      parseApiConfig({
        listen: 'example.com:80',
        maxConcurrentExtractions: 0,
        bogus: 1,
        tokens: [
          { name: 'a', role: 'auditor' },
          { name: 'b', role: 'root', token: 'x'.repeat(20) },
          { name: 'c', role: 'admin', token: 'short' },
          { name: 'e', role: 'admin', sha256: 'zz' },
          { name: 'd', role: 'admin', token: 'has spaces in it, sadly' },
        ],
      }),
    );
    expect(lines[0]).toBe('MG_ERR_CONFIG_INVALID: invalid configuration: api');
    const text = lines.join('\n');
    expect(text).toContain('api.listen: must be HOST:PORT with an IP address');
    expect(text).toContain('api.maxConcurrentExtractions:');
    expect(text).toContain('api.tokens[0]: give exactly one of token, sha256 or tokenEnv');
    expect(text).toContain('api.tokens[1].role:');
    expect(text).toContain('api.tokens[2].token: must be at least 16 characters');
    expect(text).toContain('api.tokens[3].sha256: must be 64 hex digits');
    expect(text).toContain('api.tokens[4].token: may hold only');
    expect(text).toContain('api: unknown key bogus');
  });

  it('refuses two tokens with one name: the name is the actor in the audit log', () => {
    const t = 'x'.repeat(20);
    const text = problemsOf(() => parseApiConfig({ tokens: [{ name: 'c', role: 'admin', token: t }, { name: 'c', role: 'auditor', token: `${t}y` }] })).join('\n');
    expect(text).toContain("api.tokens[1].name: duplicate token name 'c'");
  });

  it('keeps only digests: a literal token, its SHA-256 and an env variable give the same digest', () => {
    const token = 'a-token-for-the-test-123456';
    const hex = sha256Digest(token).toString('hex');
    const toks = configuredTokens(
      parseApiConfig({
        tokens: [
          { name: 'lit', role: 'auditor', token },
          { name: 'hash', role: 'ingest', sha256: hex.toUpperCase() },
          { name: 'env', role: 'admin', tokenEnv: 'MG_TEST_TOKEN' },
        ],
      }),
      { MG_TEST_TOKEN: token },
    );
    expect(toks.map((t) => [t.name, t.role, t.digest.toString('hex')])).toEqual([
      ['lit', 'auditor', hex],
      ['hash', 'ingest', hex],
      ['env', 'admin', hex],
    ]);
  });

  it('refuses a tokenEnv whose variable is unset or unusable', () => {
    const cfg = parseApiConfig({ tokens: [{ name: 'env', role: 'admin', tokenEnv: 'MG_TEST_UNSET' }] });
    expect(problemsOf(() => configuredTokens(cfg, {})).join('\n')).toContain('api.tokens[0].tokenEnv: environment variable MG_TEST_UNSET is not set');
    expect(problemsOf(() => configuredTokens(cfg, { MG_TEST_UNSET: 'short' })).join('\n')).toContain('fewer than 16 characters');
  });
});

describe('resolveApiTokens: secure by default', () => {
  const tmp = useTmpDir('mg-api-tokens-');
  it('generates one admin token into <dataDir>/api-admin.token (0600), logs the file, and reuses it', () => {
    const dir = tmp.path;
    const { logger, lines } = capturingLogger();
    const first = resolveApiTokens({ tokens: [] }, dir, logger);
    const file = join(dir, ADMIN_TOKEN_FILE);
    expect(existsSync(file)).toBe(true);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    const token = readFileSync(file, 'utf8').trim();
    expect(token).toMatch(/^mg_[A-Za-z0-9_-]{43}$/);
    expect(first).toHaveLength(1);
    expect(first[0]!.role).toBe('admin');
    expect(first[0]!.digest.equals(sha256Digest(token))).toBe(true);
    expect(lines).toHaveLength(1);
    expect(lines[0]!.msg).toBe(`no api.tokens configured: generated an admin token in ${file}`);
    // The log names the file, never the token.
    expect(JSON.stringify(lines)).not.toContain(token);

    const again = resolveApiTokens({ tokens: [] }, dir, logger);
    expect(again[0]!.digest.equals(first[0]!.digest)).toBe(true);
    expect(readFileSync(file, 'utf8').trim()).toBe(token);
    expect(lines[1]!.msg).toBe(`no api.tokens configured: using the admin token in ${file}`);
  });

  it('tightens a token file restored with loose permissions, and refuses an empty one', () => {
    const dir = tmp.path;
    const file = join(dir, ADMIN_TOKEN_FILE);
    writeFileSync(file, 'restored-token-0123456789\n');
    chmodSync(file, 0o644);
    resolveApiTokens({ tokens: [] }, dir);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    writeFileSync(file, '\n');
    expect(problemsOf(() => resolveApiTokens({ tokens: [] }, dir)).join('\n')).toContain('delete the file to generate a new one');
  });

  it('does not generate anything when tokens are configured', () => {
    const dir = tmp.path;
    const t = resolveApiTokens(parseApiConfig({ tokens: [{ name: 'alice', role: 'auditor', token: 'alice-token-0123456789' }] }), dir);
    expect(t.map((x) => x.name)).toEqual(['alice']);
    expect(existsSync(join(dir, ADMIN_TOKEN_FILE))).toBe(false);
  });

  it('the generated token opens the API; nothing else does', async () => {
    const dir = tmp.path;
    const tokens = resolveApiTokens({ tokens: [] }, dir);
    const token = readFileSync(join(dir, ADMIN_TOKEN_FILE), 'utf8').trim();
    const h = buildHarness({ dataDir: dir, tokens });
    expect((await h.app.inject({ url: '/v1/captures', headers: { authorization: `Bearer ${token}` } })).statusCode).toBe(200);
    expect((await h.app.inject({ url: '/v1/captures', headers: { authorization: `Bearer ${token}x` } })).statusCode).toBe(401);
    await h.close();
  });
});

describe('TLS', () => {
  const tmp = useTmpDir('mg-api-tls-');
  it('fails fast with MG_ERR_API_TLS naming the file it cannot read', () => {
    const dir = tmp.path;
    const h = buildHarness({ dataDir: dir });
    let err: unknown;
    try {
      buildApi(h.deps, parseApiConfig({ tls: { certFile: join(dir, 'missing.crt'), keyFile: join(dir, 'missing.key') } }), []);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(MgError);
    expect((err as MgError).code).toBe('MG_ERR_API_TLS');
    expect((err as MgError).message).toContain(`api.tls.certFile ${join(dir, 'missing.crt')}: ENOENT`);
    void h.close();
  });
});
