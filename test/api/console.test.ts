/** The console's server side: static files with their security headers, whoami, filter check, finding actions. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CONSOLE_CSP } from '../../src/api/routes/console.js';
import { findingId } from '../../src/detect/finding-id.js';
import { makeTmpDir } from '../helpers/tmp.js';
import { bearer, buildHarness, type Harness } from './helpers.js';

const T0 = Date.UTC(2026, 0, 2);

describe('console routes', () => {
  const { dir, remove } = makeTmpDir('mg-api-console-');
  let h: Harness;
  const rogue = findingId('unauthorized-vni', '10.0.0.1|77');
  beforeAll(async () => {
    h = buildHarness({ dataDir: dir });
    await h.deps.findings.record({ kind: 'unauthorized-vni', key: '10.0.0.1|77', at: T0, vni: 77, sourceIp: '10.0.0.1', summary: 'rogue VNI 77', evidence: {} });
  });
  afterAll(async () => {
    await h.close();
    remove();
  });

  it('serves the page and its files without a token, with a strict CSP and framing denied', async () => {
    const page = await h.app.inject({ url: '/' });
    expect(page.statusCode).toBe(200);
    expect(page.headers['content-type']).toMatch(/^text\/html/);
    expect(page.headers['content-security-policy']).toBe(CONSOLE_CSP);
    expect(CONSOLE_CSP).not.toMatch(/unsafe-inline|unsafe-eval|\*/);
    expect(CONSOLE_CSP).toContain("frame-ancestors 'none'");
    expect(page.headers['x-frame-options']).toBe('DENY');
    expect(page.body).not.toMatch(/<script>|<style>|\sstyle=|\son[a-z]+=/i);
    const js = await h.app.inject({ url: '/console/app.js' });
    expect(js.statusCode).toBe(200);
    expect(js.headers['content-type']).toMatch(/javascript/);
    expect(js.headers['content-security-policy']).toBe(CONSOLE_CSP);
  });

  it('refuses paths out of the console folder and unknown files', async () => {
    for (const url of ['/console/', '/console/views', '/console/../package.json', '/console/%2e%2e/package.json', '/console/%2e%2e%2fpackage.json', '/console/.hidden', '/console/nope.js']) {
      const r = await h.app.inject({ url });
      expect(r.statusCode, url).toBeGreaterThanOrEqual(400);
      expect(r.body).not.toContain('"name": "mirrorguard"');
    }
  });

  it('GET /v1/whoami names the token and its role', async () => {
    expect((await h.app.inject({ url: '/v1/whoami', headers: bearer('auditor') })).json()).toEqual({ name: 'auditor-user', role: 'auditor' });
    expect((await h.app.inject({ url: '/v1/whoami', headers: bearer('ingest') })).json()).toEqual({ name: 'ingest-user', role: 'ingest' });
    expect((await h.app.inject({ url: '/v1/whoami', headers: { authorization: 'Bearer wrong-token' } })).statusCode).toBe(401);
  });

  it('GET /v1/pcap/filter gives the grouping or the error position /v1/pcap would give', async () => {
    const ok = await h.app.inject({ url: `/v1/pcap/filter?filter=${encodeURIComponent('host 10.0.0.5 or port 22 and tcp')}`, headers: bearer('auditor') });
    expect(ok.json()).toEqual({ valid: true, normalized: 'host 10.0.0.5 or (port 22 and tcp)' });
    const bad = await h.app.inject({ url: `/v1/pcap/filter?filter=${encodeURIComponent('host 10.0.0.5 and prot 6')}`, headers: bearer('auditor') });
    expect(bad.json()).toMatchObject({ valid: false, position: 19 });
    const pcap = await h.app.inject({ url: `/v1/pcap?vni=77&from=${T0 / 1000}&to=${T0 / 1000 + 60}&filter=${encodeURIComponent('host 10.0.0.5 and prot 6')}`, headers: bearer('auditor') });
    expect(pcap.statusCode).toBe(400);
    expect(pcap.json().message).toContain("at position 19");
    expect((await h.app.inject({ url: '/v1/pcap/filter?filter=', headers: bearer('auditor') })).json()).toEqual({ valid: true, normalized: '' });
    expect((await h.app.inject({ url: '/v1/pcap/filter?filter=tcp', headers: bearer('ingest') })).statusCode).toBe(403);
  });

  it('admins acknowledge and resolve a finding with a note; each is audited; auditors may not', async () => {
    const url = (a: string) => `/v1/findings/${rogue}/${a}`;
    expect((await h.app.inject({ method: 'POST', url: url('acknowledge'), headers: bearer('auditor'), payload: { note: 'x' } })).statusCode).toBe(403);
    const ack = await h.app.inject({ method: 'POST', url: url('acknowledge'), headers: bearer('admin'), payload: { note: 'looking <b>now</b>' } });
    expect(ack.statusCode, ack.body).toBe(200);
    expect(ack.json().status).toBe('open');
    expect(ack.json().evidence.acknowledgement).toMatchObject({ by: 'admin-user', note: 'looking <b>now</b>' });
    const res = await h.app.inject({ method: 'POST', url: url('resolve'), headers: bearer('admin') });
    expect(res.statusCode, res.body).toBe(200);
    expect(res.json().status).toBe('resolved');
    expect(res.json().evidence.resolution).toMatchObject({ by: 'admin-user' });
    const again = await h.app.inject({ method: 'POST', url: url('resolve'), headers: bearer('admin'), payload: {} });
    expect(again.statusCode).toBe(409);
    const missing = await h.app.inject({ method: 'POST', url: `/v1/findings/f_00000000000000000000/acknowledge`, headers: bearer('admin'), payload: {} });
    expect(missing.statusCode).toBe(404);
    const all = (await h.app.inject({ url: '/v1/audit', headers: bearer('admin') })).json() as { items: { action: string; target: string; status: number; detail: Record<string, unknown> }[] };
    const audit = { items: all.items.filter((i) => i.action.startsWith('finding.')) };
    expect(audit.items.map((i) => [i.action, i.status])).toEqual([
      ['finding.acknowledge', 404],
      ['finding.resolve', 409],
      ['finding.resolve', 200],
      ['finding.acknowledge', 200],
    ]);
    expect(audit.items[3]!.detail).toMatchObject({ note: 'looking <b>now</b>', kind: 'unauthorized-vni' });
    expect(audit.items[2]!.target).toBe(`finding:${rogue}`);
  });

  it('a finding seen again after resolution reopens without its old acknowledgement', async () => {
    const f = (await h.deps.findings.record({ kind: 'unauthorized-vni', key: '10.0.0.1|77', at: T0 + 1000, vni: 77, sourceIp: '10.0.0.1', summary: 'rogue VNI 77', evidence: {} })).finding;
    expect(f.status).toBe('open');
    expect(f.evidence.acknowledgement).toBeUndefined();
    expect(f.evidence.resolution).toBeUndefined();
  });
});
