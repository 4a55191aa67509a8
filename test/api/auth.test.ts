import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bearerToken, matchToken } from '../../src/api/auth.js';
import { sha256Digest, type ApiRole } from '../../src/api/config.js';
import { makeTmpDir } from '../helpers/tmp.js';
import { bearer, buildHarness, craftFrames, manifestFrom, TOKENS, writeCapture, writeFile, type Harness } from './helpers.js';

const MANIFEST = `version: 1
sessions:
  - id: tms-0123456789abcdef0
    vni: 5569041
    sourceIps: [172.31.0.238]
`;
const T = 1_764_000_000;

/**
 * Every route, the roles it admits, and a request that succeeds for them (200). The test below checks
 * this table lists exactly the routes the OpenAPI document has, so a new route cannot skip it.
 */
interface Case {
  method: 'GET' | 'POST';
  url: string;
  openapi: string;
  roles: readonly ApiRole[] | 'public';
  payload?: unknown;
}

let fid = '';
const CASES = (): Case[] => [
  { method: 'GET', url: '/v1/captures', openapi: 'get /v1/captures', roles: ['auditor', 'admin'] },
  { method: 'GET', url: '/v1/captures/1', openapi: 'get /v1/captures/{id}', roles: ['auditor', 'admin'] },
  { method: 'GET', url: '/v1/captures/1/pcap', openapi: 'get /v1/captures/{id}/pcap', roles: ['auditor', 'admin'] },
  { method: 'GET', url: '/v1/ledger', openapi: 'get /v1/ledger', roles: ['auditor', 'admin'] },
  { method: 'POST', url: '/v1/captures/1/legal-hold', openapi: 'post /v1/captures/{id}/legal-hold', roles: ['admin'], payload: { on: true } },
  { method: 'GET', url: `/v1/pcap?vni=5569041&from=${T - 10}&to=${T + 10}`, openapi: 'get /v1/pcap', roles: ['auditor', 'admin'] },
  { method: 'GET', url: '/v1/findings', openapi: 'get /v1/findings', roles: ['auditor', 'admin'] },
  { method: 'GET', url: `/v1/findings/${fid}`, openapi: 'get /v1/findings/{id}', roles: ['auditor', 'admin'] },
  { method: 'POST', url: `/v1/findings/${fid}/acknowledge`, openapi: 'post /v1/findings/{id}/acknowledge', roles: ['admin'], payload: { note: 'on it' } },
  { method: 'POST', url: `/v1/findings/${fid}/resolve`, openapi: 'post /v1/findings/{id}/resolve', roles: ['admin'], payload: {} },
  { method: 'GET', url: '/v1/pcap/filter?filter=tcp', openapi: 'get /v1/pcap/filter', roles: ['auditor', 'admin'] },
  { method: 'GET', url: '/v1/whoami', openapi: 'get /v1/whoami', roles: ['auditor', 'ingest', 'admin'] },
  { method: 'GET', url: '/v1/sessions', openapi: 'get /v1/sessions', roles: ['auditor', 'admin'] },
  { method: 'POST', url: '/v1/cloudtrail', openapi: 'post /v1/cloudtrail', roles: ['ingest', 'admin'], payload: { Records: [] } },
  { method: 'POST', url: '/v1/manifest/reload', openapi: 'post /v1/manifest/reload', roles: ['admin'] },
  { method: 'GET', url: '/v1/audit', openapi: 'get /v1/audit', roles: ['auditor', 'ingest', 'admin'] },
  { method: 'GET', url: '/v1/audit/1', openapi: 'get /v1/audit/{id}', roles: ['auditor', 'ingest', 'admin'] },
  { method: 'GET', url: '/v1/status', openapi: 'get /v1/status', roles: ['auditor', 'admin'] },
  { method: 'GET', url: '/v1/alerts', openapi: 'get /v1/alerts', roles: ['auditor', 'admin'] },
  { method: 'GET', url: '/metrics', openapi: 'get /metrics', roles: ['auditor', 'admin'] },
  { method: 'GET', url: '/healthz', openapi: 'get /healthz', roles: 'public' },
];

const ROLES: ApiRole[] = ['auditor', 'ingest', 'admin'];

describe('authentication and roles', () => {
  const { dir, remove } = makeTmpDir('mg-api-auth-');
  let h: Harness;

  beforeAll(async () => {
    const manifestPath = writeFile(join(dir, 'manifest.yaml'), MANIFEST);
    h = buildHarness({ dataDir: dir, manifest: manifestFrom(MANIFEST, manifestPath), manifestPath });
    const f = craftFrames();
    await writeCapture(h, { vni: 5569041, sourceIp: '172.31.0.238', frames: [{ data: f.tcp443!, sec: T, nsec: 0 }] });
    h.detector.onNewPair('10.9.9.9', 42, T * 1000);
    fid = (await h.deps.findings.list()).items[0]!.id;
  });
  afterAll(async () => {
    await h.close();
    remove();
  });

  it('the table covers every route of the OpenAPI document', async () => {
    const doc = (await h.app.inject({ url: '/openapi.json' })).json() as { paths: Record<string, Record<string, unknown>> };
    const documented = Object.entries(doc.paths).flatMap(([p, ops]) => Object.keys(ops).filter((m) => m !== 'head').map((m) => `${m} ${p}`));
    expect(CASES().map((c) => c.openapi).sort()).toEqual(documented.sort());
  });

  it('answers 401 without a token, 403 for the wrong role and 200 for the right one, on every route', async () => {
    const seen: string[] = [];
    for (const c of CASES()) {
      const req = { method: c.method, url: c.url, ...(c.payload !== undefined ? { payload: c.payload as object } : {}) };
      const anon = await h.app.inject(req);
      if (c.roles === 'public') {
        expect([c.url, anon.statusCode]).toEqual([c.url, 200]);
        continue;
      }
      expect([c.url, anon.statusCode, anon.json().code]).toEqual([c.url, 401, 'MG_ERR_API_UNAUTHORIZED']);
      expect(anon.headers['www-authenticate']).toBe('Bearer realm="mirrorguard"');
      for (const role of ROLES) {
        // The audit route shows each token its own rows: give every role one first.
        const r = await h.app.inject({ ...req, headers: bearer(role) });
        const allowed = c.roles.includes(role);
        if (allowed) {
          if (c.url === '/v1/audit/1' && role !== 'admin') {
            // Row 1 is the auditor's download above; another token is told it does not exist.
            expect([c.url, role, r.statusCode]).toEqual([c.url, role, role === 'auditor' ? 200 : 404]);
          } else {
            expect([c.url, role, r.statusCode, r.statusCode === 200 ? '' : r.body]).toEqual([c.url, role, 200, '']);
          }
        } else {
          expect([c.url, role, r.statusCode, r.json().code]).toEqual([c.url, role, 403, 'MG_ERR_API_FORBIDDEN']);
          expect(r.headers['www-authenticate']).toContain('error="insufficient_scope"');
          expect(r.json().message).toContain(`has role ${role}`);
        }
        seen.push(`${c.url} ${role}`);
      }
    }
    expect(seen.length).toBe((CASES().length - 1) * 3);
  });

  it('the OpenAPI document states each route\'s roles and bearer security from the same declaration', async () => {
    const doc = (await h.app.inject({ url: '/openapi.json' })).json() as { paths: Record<string, Record<string, { security?: unknown; 'x-mirrorguard-roles': string[]; description: string }>> };
    for (const c of CASES()) {
      const [method, path] = c.openapi.split(' ') as [string, string];
      const op = doc.paths[path]![method]!;
      if (c.roles === 'public') {
        expect(op.security).toBeUndefined();
        expect(op['x-mirrorguard-roles']).toEqual(['public']);
      } else {
        expect(op.security).toEqual([{ bearer: [] }]);
        expect(op['x-mirrorguard-roles']).toEqual([...c.roles]);
        expect(op.description).toContain(`Roles: ${c.roles.join(', ')}.`);
      }
    }
  });

  it('refuses malformed and unknown tokens, accepts the scheme in any case', async () => {
    const basic = await h.app.inject({ url: '/v1/captures', headers: { authorization: 'Basic YWxpY2U6c2VjcmV0' } });
    expect(basic.statusCode).toBe(401);
    expect(basic.json().message).toContain('is not "Bearer <token>"');
    const unknown = await h.app.inject({ url: '/v1/captures', headers: { authorization: 'Bearer not-a-configured-token-at-all' } });
    expect(unknown.statusCode).toBe(401);
    expect(unknown.json()).toEqual({ statusCode: 401, code: 'MG_ERR_API_UNAUTHORIZED', error: 'Unauthorized', message: 'a valid bearer token is required: unknown token' });
    expect(unknown.headers['www-authenticate']).toBe('Bearer realm="mirrorguard", error="invalid_token"');
    // A token with a character cut off or one added is just as unknown.
    const cut = await h.app.inject({ url: '/v1/captures', headers: { authorization: `Bearer ${TOKENS.auditor.slice(0, -1)}` } });
    expect(cut.statusCode).toBe(401);
    const lower = await h.app.inject({ url: '/v1/captures', headers: { authorization: `bearer ${TOKENS.auditor}` } });
    expect(lower.statusCode).toBe(200);
    const empty = await h.app.inject({ url: '/v1/captures', headers: { authorization: 'Bearer ' } });
    expect(empty.statusCode).toBe(401);
  });

  it('an unknown route is 404 with the error body, token or not', async () => {
    const r = await h.app.inject({ url: '/v1/nope' });
    expect(r.statusCode).toBe(404);
    expect(r.json()).toEqual({ statusCode: 404, code: 'MG_ERR_API_NOT_FOUND', error: 'Not Found', message: 'not found: no route GET /v1/nope' });
  });
});

describe('token matching', () => {
  it('parses RFC 6750 bearer credentials', async () => {
    expect(bearerToken('Bearer abc.DEF-_~+/==')).toBe('abc.DEF-_~+/==');
    expect(bearerToken('BEARER   abc')).toBe('abc');
    expect(bearerToken('Bearer a b')).toBeNull();
    expect(bearerToken('Bearerabc')).toBeNull();
    expect(bearerToken(undefined)).toBeNull();
  });

  it('finds the token among many and returns the first entry with that digest', async () => {
    const toks = [
      { name: 'a', role: 'auditor' as const, digest: sha256Digest('token-a-0123456789') },
      { name: 'b', role: 'admin' as const, digest: sha256Digest('token-b-0123456789') },
      { name: 'b2', role: 'auditor' as const, digest: sha256Digest('token-b-0123456789') },
    ];
    expect(matchToken(toks, 'token-b-0123456789')?.name).toBe('b');
    expect(matchToken(toks, 'token-a-0123456789')?.name).toBe('a');
    expect(matchToken(toks, 'token-c-0123456789')).toBeNull();
    expect(matchToken([], 'token-a-0123456789')).toBeNull();
  });
});
