import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateSecret, parseAlertsConfig } from '../../src/alert/config.js';
import { AlertOutbox } from '../../src/alert/outbox.js';
import { MAX_VNI_SERIES } from '../../src/api/metrics.js';
import { VERSION } from '../../src/version.js';
import { PROJECT_ROOT } from '../helpers/fixtures.js';
import { makeTmpDir } from '../helpers/tmp.js';
import { bearer, buildHarness, craftFrames, manifestFrom, writeCapture, writeFile, type Harness } from './helpers.js';

const T = 1_764_000_000;

/** The value of one sample line of Prometheus text, or undefined. */
function sample(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

describe('health, metrics, status, alerts', () => {
  const { dir, remove } = makeTmpDir('mg-api-status-');
  let h: Harness;
  let endpoint = '';
  beforeAll(async () => {
    h = buildHarness({ dataDir: dir });
    const F = craftFrames();
    await writeCapture(h, { vni: 7, sourceIp: '10.0.0.1', frames: [{ data: F.dns!, sec: T, nsec: 0 }] });
    h.catalog.observe('10.0.0.1', 7, null, T * 1000, T * 1000, 5, 500);
    h.catalog.observe('10.0.0.2', 7, null, T * 1000, T * 1000, 2, 100);
    h.catalog.observe('10.0.0.3', 8, null, T * 1000, T * 1000, 1, 60);
    Object.assign(h.counters, { written: 12, 'decode.vxlan.no_i_flag': 3, 'session.table_full': 2, 'weird.vlan.depth': 1, 'alert.delivery.attempts': 4 });
    h.kernel = { sockets: 1, drops: 17, rxQueueBytes: 2048 };
    h.live.push({ sourceIp: '10.0.0.1', vni: 7, sessionId: null, packets: 1, bytes: 60, firstSeenMs: T * 1000, lastSeenMs: T * 1000 });
    const finding = h.detector.onNewPair('10.0.0.9', 99, T * 1000);
    expect(finding.status).toBe('unauthorized-vni');
    // A real alert row, written the way serve writes it (the outbox's finding hook).
    const cfg = parseAlertsConfig({ webhooks: [{ url: 'https://hooks.example.com/mirrorguard', secret: generateSecret() }] });
    endpoint = cfg.webhooks[0]!.name;
    const outbox = new AlertOutbox({ db: h.db, webhooks: cfg.webhooks });
    await outbox.onFindingEvent({ type: 'finding.created', finding: (await h.deps.findings.list()).items[0]!, at: T * 1000 });
  });
  afterAll(async () => {
    await h.close();
    remove();
  });

  it('GET /healthz needs no token: 200 while the catalog answers and the collector says so, else 503', async () => {
    const ok = await h.app.inject({ url: '/healthz' });
    expect([ok.statusCode, ok.json()]).toEqual([200, { status: 'ok', checks: { catalog: true }, store: 'ok' }]);
    h.deps.health = () => ({ receiver: false });
    const fail = await h.app.inject({ url: '/healthz' });
    expect([fail.statusCode, fail.json()]).toEqual([503, { status: 'fail', checks: { catalog: true, receiver: false }, store: 'ok' }]);
    h.deps.health = () => ({ receiver: true });
    expect((await h.app.inject({ url: '/healthz' })).statusCode).toBe(200);
    // Writes waiting for the store (PostgreSQL away): degraded, still healthy for the load balancer.
    h.deps.storeDegraded = () => true;
    const degraded = await h.app.inject({ url: '/healthz' });
    expect([degraded.statusCode, degraded.json().store]).toEqual([200, 'degraded']);
    delete h.deps.health;
    delete h.deps.storeDegraded;
  });

  it('GET /metrics reads every live source at scrape time', async () => {
    const r = await h.app.inject({ url: '/metrics', headers: bearer('auditor') });
    expect(r.statusCode).toBe(200);
    expect(r.headers['content-type']).toContain('text/plain; version=0.0.4');
    const m = r.body;
    const expected: Record<string, number> = {
      [`mirrorguard_build_info{version="${VERSION}"}`]: 1,
      mirrorguard_frames_written_total: 12,
      'mirrorguard_dropped_packets_total{reason="decode.vxlan.no_i_flag"}': 3,
      'mirrorguard_dropped_packets_total{reason="session.table_full"}': 2,
      'mirrorguard_weird_packets_total{reason="weird.vlan.depth"}': 1,
      'mirrorguard_events_total{counter="alert.delivery.attempts"}': 4,
      'mirrorguard_events_total{counter="detect.pairs.evaluated"}': 1,
      'mirrorguard_vni_packets_total{vni="7"}': 7,
      'mirrorguard_vni_bytes_total{vni="7"}': 600,
      'mirrorguard_vni_packets_total{vni="8"}': 1,
      mirrorguard_kernel_udp_drops_total: 17,
      mirrorguard_kernel_udp_rx_queue_bytes: 2048,
      mirrorguard_sessions_live: 1,
      'mirrorguard_capture_files{state="closed"}': 1,
      'mirrorguard_capture_files{state="open"}': 0,
      'mirrorguard_capture_bytes{state="closed"}': 24 + 16 + craftFrames().dns!.length,
      'mirrorguard_findings{kind="unauthorized-vni",severity="critical",status="open"}': 1,
      'mirrorguard_finding_occurrences{kind="unauthorized-vni",severity="critical",status="open"}': 1,
      [`mirrorguard_alert_deliveries{endpoint="${endpoint}",state="pending"}`]: 1,
      mirrorguard_api_extractions_active: 0,
      'mirrorguard_api_extractions_total{outcome="started"}': 0,
    };
    for (const [series, value] of Object.entries(expected)) expect([series, sample(m, series)]).toEqual([series, value]);
    expect(sample(m, 'mirrorguard_data_dir_free_bytes')).toBeGreaterThan(0);
    expect(m).toContain('# TYPE mirrorguard_dropped_packets_total counter');
    expect(m).toContain('# TYPE mirrorguard_findings gauge');
    expect(m).toContain('mirrorguard_process_cpu_user_seconds_total');
    // "written" is not a drop.
    expect(m).not.toContain('reason="written"');
    // The previous scrape is counted in the API's own request counter.
    const again = (await h.app.inject({ url: '/metrics', headers: bearer('admin') })).body;
    expect(sample(again, 'mirrorguard_api_requests_total{method="GET",route="/metrics",status="200"}')).toBe(1);
  });

  it('bounds the VNI series: beyond the largest ones, the rest add up under vni="other"', async () => {
    const { dir: d2, remove: rm2 } = makeTmpDir('mg-api-vni-');
    const h2 = buildHarness({ dataDir: d2 });
    h2.catalog.batch(() => {
      for (let v = 0; v < MAX_VNI_SERIES + 5; v++) h2.catalog.observe('10.0.0.1', v, null, 0, 0, 1, v + 1);
    });
    const m = (await h2.app.inject({ url: '/metrics', headers: bearer('auditor') })).body;
    const vniLines = m.split('\n').filter((l) => l.startsWith('mirrorguard_vni_packets_total{'));
    expect(vniLines).toHaveLength(MAX_VNI_SERIES + 1);
    // The five smallest by bytes (VNIs 0..4) are the "other" ones.
    expect(sample(m, 'mirrorguard_vni_packets_total{vni="other"}')).toBe(5);
    expect(sample(m, 'mirrorguard_vni_bytes_total{vni="other"}')).toBe(1 + 2 + 3 + 4 + 5);
    expect(sample(m, 'mirrorguard_vni_packets_total{vni="4"}')).toBeUndefined();
    expect(sample(m, `mirrorguard_vni_packets_total{vni="${MAX_VNI_SERIES + 4}"}`)).toBe(1);
    await h2.close();
    rm2();
  });

  it('api.publicMetrics serves /metrics without a token, and nothing else', async () => {
    const { dir: d2, remove: rm2 } = makeTmpDir('mg-api-pubmetrics-');
    const h2 = buildHarness({ dataDir: d2, api: { publicMetrics: true } });
    expect((await h2.app.inject({ url: '/metrics' })).statusCode).toBe(200);
    expect((await h2.app.inject({ url: '/v1/status' })).statusCode).toBe(401);
    await h2.close();
    rm2();
    expect((await h.app.inject({ url: '/metrics' })).statusCode).toBe(401);
  });

  it('GET /v1/status gives the counters by their docs/counters.md names', async () => {
    const r = await h.app.inject({ url: '/v1/status', headers: bearer('auditor') });
    expect(r.statusCode).toBe(200);
    const s = r.json() as Record<string, unknown>;
    expect(s).toMatchObject({
      version: VERSION,
      counters: { written: 12, 'decode.vxlan.no_i_flag': 3, 'detect.pairs.evaluated': 1 },
      kernel: { sockets: 1, drops: 17, rxQueueBytes: 2048 },
      sessionsLive: 1,
      captures: { open: 0, closed: 1 },
      extractions: { active: 0, max: 2, started: 0, refusedBusy: 0 },
      manifest: null,
      alerts: { pending: 1, delivered: 0, failed: 0 },
    });
    expect(s.findings).toEqual([{ kind: 'unauthorized-vni', severity: 'critical', status: 'open', findings: 1, occurrences: 1 }]);
  });

  it('GET /v1/alerts lists deliveries, filtered by state and finding', async () => {
    const r = (await h.app.inject({ url: '/v1/alerts', headers: bearer('auditor') })).json() as { items: { endpoint: string; state: string; type: string; findingId: string }[] };
    expect(r.items.map((i) => [i.endpoint, i.state, i.type])).toEqual([[endpoint, 'pending', 'finding.created']]);
    expect(((await h.app.inject({ url: '/v1/alerts?state=delivered', headers: bearer('auditor') })).json() as { items: unknown[] }).items).toEqual([]);
    expect(((await h.app.inject({ url: `/v1/alerts?finding=${r.items[0]!.findingId}`, headers: bearer('auditor') })).json() as { items: unknown[] }).items).toHaveLength(1);
  });
});

describe('POST /v1/manifest/reload and the audit log', () => {
  const { dir, remove } = makeTmpDir('mg-api-admin-');
  const S1 = 'tms-00000000000000001';
  let h: Harness;
  let manifestPath = '';
  beforeAll(() => {
    manifestPath = writeFile(join(dir, 'manifest.yaml'), `version: 1\nsessions:\n  - id: ${S1}\n    vni: 100\n`);
    h = buildHarness({ dataDir: dir, manifest: manifestFrom(readFileSync(manifestPath, 'utf8'), manifestPath), manifestPath });
    // Traffic the first manifest does not authorize.
    h.detector.onNewPair('10.0.0.9', 200, Date.now());
  });
  afterAll(async () => {
    await h.close();
    remove();
  });

  it('reloads, re-evaluates known pairs, and reports what changed', async () => {
    writeFile(manifestPath, `version: 1\nsessions:\n  - id: ${S1}\n    vni: 100\n  - id: tms-00000000000000002\n    vni: 200\n`);
    const r = await h.app.inject({ method: 'POST', url: '/v1/manifest/reload', headers: bearer('admin') });
    expect(r.statusCode, r.body).toBe(200);
    const body = r.json() as { manifest: { file: string; sessions: number; sha256: string }; raised: string[]; resolved: string[] };
    expect(body.manifest).toMatchObject({ file: manifestPath, sessions: 2 });
    expect(body.resolved).toHaveLength(1);
    expect((await h.deps.findings.get(body.resolved[0]!))!.status).toBe('resolved');
    expect(h.detector.manifest!.sha256).toBe(body.manifest.sha256);
  });

  it('refuses an invalid manifest with 422 and every problem, keeping the one in force', async () => {
    const before = h.detector.manifest!.sha256;
    writeFile(manifestPath, `version: 1\nsessions:\n  - id: tms-nothex\n    vni: 99999999\n`);
    const r = await h.app.inject({ method: 'POST', url: '/v1/manifest/reload', headers: bearer('admin') });
    expect([r.statusCode, r.json().code]).toEqual([422, 'MG_ERR_API_MANIFEST_REJECTED']);
    expect(r.json().message).toContain('MG_ERR_MANIFEST_INVALID');
    const problems = r.json().problems as string[];
    expect(problems.some((p) => p.startsWith(`${manifestPath}:4: sessions[0].vni:`))).toBe(true);
    expect(problems.some((p) => p.startsWith(`${manifestPath}:3: sessions[0].id:`))).toBe(true);
    expect(h.detector.manifest!.sha256).toBe(before);
  });

  it('answers 409 when serve runs without a manifest file', async () => {
    const { dir: d2, remove: rm2 } = makeTmpDir('mg-api-nomanifest-');
    const h2 = buildHarness({ dataDir: d2 });
    const r = await h2.app.inject({ method: 'POST', url: '/v1/manifest/reload', headers: bearer('admin') });
    expect([r.statusCode, r.json().code]).toEqual([409, 'MG_ERR_API_CONFLICT']);
    await h2.close();
    rm2();
  });

  it('records reloads in the audit log; admins read every row, other tokens their own', async () => {
    const F = craftFrames();
    const c = await writeCapture(h, { vni: 100, sourceIp: '10.0.0.1', frames: [{ data: F.dns!, sec: T, nsec: 0 }] });
    const dl = await h.app.inject({ url: `/v1/captures/${c.id}/pcap`, headers: bearer('auditor') });
    const auditId = Number(dl.headers['x-audit-id']);

    const admin = (await h.app.inject({ url: '/v1/audit', headers: bearer('admin') })).json() as { items: { action: string; actor: string; status: number }[] };
    expect(admin.items.map((i) => [i.action, i.actor, i.status])).toEqual([
      ['capture.download', 'auditor-user', 200],
      ['manifest.reload', 'admin-user', 422],
      ['manifest.reload', 'admin-user', 200],
    ]);
    const own = (await h.app.inject({ url: '/v1/audit', headers: bearer('auditor') })).json() as { items: { id: number }[] };
    expect(own.items.map((i) => i.id)).toEqual([auditId]);
    // An auditor cannot widen the query to someone else.
    const widened = (await h.app.inject({ url: '/v1/audit?actor=admin-user', headers: bearer('auditor') })).json() as { items: { id: number }[] };
    expect(widened.items.map((i) => i.id)).toEqual([auditId]);
    const filtered = (await h.app.inject({ url: '/v1/audit?action=manifest.reload&limit=1', headers: bearer('admin') })).json() as { items: { status: number }[]; nextCursor: string };
    expect(filtered.items.map((i) => i.status)).toEqual([422]);
    const next = (await h.app.inject({ url: `/v1/audit?action=manifest.reload&limit=1&cursor=${filtered.nextCursor}`, headers: bearer('admin') })).json() as { items: { status: number }[] };
    expect(next.items.map((i) => i.status)).toEqual([200]);

    const one = await h.app.inject({ url: `/v1/audit/${auditId}`, headers: bearer('auditor') });
    expect(one.json()).toMatchObject({ id: auditId, action: 'capture.download', target: `capture:${c.id}`, bytes: dl.rawPayload.length, sha256: dl.headers['x-content-sha256'] });
    const other = await h.app.inject({ url: `/v1/audit/${auditId}`, headers: bearer('ingest') });
    expect(other.statusCode).toBe(404);
  });
});

describe('OpenAPI', () => {
  const { dir, remove } = makeTmpDir('mg-api-openapi-');
  afterAll(remove);

  it('docs/openapi.json is the document the app serves (MG_UPDATE_OPENAPI=1 rewrites it)', async () => {
    const h = buildHarness({ dataDir: dir });
    const served = (await h.app.inject({ url: '/openapi.json' })).json() as { openapi: string; paths: Record<string, unknown> };
    await h.close();
    const file = join(PROJECT_ROOT, 'docs', 'openapi.json');
    const text = `${JSON.stringify(served, null, 2)}\n`;
    if (process.env.MG_UPDATE_OPENAPI === '1') writeFileSync(file, text);
    expect(readFileSync(file, 'utf8')).toBe(text);
    expect(served.openapi).toBe('3.1.0');
  });
});
