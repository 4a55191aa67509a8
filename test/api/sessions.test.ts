import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { findingId } from '../../src/detect/finding-id.js';
import { makeTmpDir } from '../helpers/tmp.js';
import { bearer, buildHarness, manifestFrom, type Harness } from './helpers.js';

const NOW = Date.UTC(2026, 0, 15, 12, 0, 0);
const S1 = 'tms-00000000000000001';
const S2 = 'tms-00000000000000002';
const S3 = 'tms-00000000000000003';
const S4 = 'tms-00000000000000004';
const MANIFEST = `version: 1
sessions:
  - id: ${S1}
    vni: 100
    sourceIps: [10.0.0.1]
    owner: netops
    description: web tier
  - id: ${S2}
    vni: 200
  - id: ${S3}
    vni: 300
    sourceIps: [10.0.0.3]
    expires: 2026-01-01T00:00:00Z
  - id: ${S4}
    vni: 400
    sourceIps: [10.0.0.4]
`;

interface Row {
  sessionId: string | null;
  inManifest: boolean;
  vni: number;
  sourceIp: string | null;
  status: string;
  reason: string | null;
  packets: number;
  bytes: number;
  lastSeen: string | null;
  live: boolean;
  findingId: string | null;
  owner: string | null;
  expires: string | null;
}

describe('GET /v1/sessions', () => {
  const { dir, remove } = makeTmpDir('mg-api-sessions-');
  let h: Harness;
  beforeAll(async () => {
    h = buildHarness({ dataDir: dir, manifest: manifestFrom(MANIFEST), now: () => NOW });
    const at = NOW - 60_000;
    // What the collector does on a first packet (the detector's edge) and on its timer (observe).
    for (const [ip, vni] of [['10.0.0.1', 100], ['10.0.0.3', 300], ['10.0.0.4', 400], ['10.9.9.9', 999], ['10.0.0.77', 100]] as const) {
      const v = h.detector.onNewPair(ip, vni, at);
      h.catalog.observe(ip, vni, v.sessionId, at, at + 1000, 10 * vni, 1000 * vni);
    }
    // S4 has been quiet long enough for the detector to say so.
    await h.deps.findings.record({ kind: 'silent-session', key: S4, at: NOW, vni: 400, sessionId: S4, summary: 'quiet', evidence: {} });
    // A pair the collector holds but has not synced yet, and a newer packet of a synced one.
    h.live.push({ sourceIp: '10.0.0.5', vni: 555, sessionId: null, packets: 3, bytes: 180, firstSeenMs: NOW - 500, lastSeenMs: NOW - 100 });
    h.live.push({ sourceIp: '10.0.0.1', vni: 100, sessionId: S1, packets: 50, bytes: 5000, firstSeenMs: at, lastSeenMs: NOW - 10 });
  });
  afterAll(async () => {
    await h.close();
    remove();
  });

  const get = async (q = '') => {
    const r = await h.app.inject({ url: `/v1/sessions${q}`, headers: bearer('auditor') });
    expect(r.statusCode, r.body).toBe(200);
    return r.json() as { generatedAt: string; manifest: { sessions: number; sha256: string }; items: Row[] };
  };

  it('shows manifest sessions and observed pairs side by side with their status', async () => {
    const body = await get();
    expect(body.generatedAt).toBe(new Date(NOW).toISOString());
    expect(body.manifest.sessions).toBe(4);
    const brief = body.items.map((r) => [r.sessionId, r.vni, r.sourceIp, r.status, r.reason]);
    expect(brief).toEqual([
      [S1, 100, '10.0.0.1', 'authorized', null],
      [S2, 200, null, 'silent', 'no traffic observed'],
      [S3, 300, '10.0.0.3', 'expired', 'expired at 2026-01-01T00:00:00.000Z'],
      [S4, 400, '10.0.0.4', 'silent', `no traffic since ${new Date(NOW - 59_000).toISOString()}`],
      // Unmatched pairs, most recent first, ties by VNI.
      [null, 555, '10.0.0.5', 'unauthorized', 'unauthorized-vni'],
      [null, 100, '10.0.0.77', 'unauthorized', 'unexpected-source'],
      [null, 999, '10.9.9.9', 'unauthorized', 'unauthorized-vni'],
    ]);
  });

  it('carries traffic numbers, liveness, the manifest fields and the open finding of each row', async () => {
    const rows = (await get()).items;
    const s1 = rows[0]!;
    expect(s1).toMatchObject({ inManifest: true, owner: 'netops', packets: 1000, bytes: 100_000, live: true, lastSeen: new Date(NOW - 10).toISOString(), findingId: null });
    // Traffic after S3's expiry raised expired-session on its first packet.
    expect(rows[2]).toMatchObject({ expires: '2026-01-01T00:00:00.000Z', findingId: findingId('expired-session', '10.0.0.3|300') });
    expect(rows[3]!.findingId).toBe(findingId('silent-session', S4));
    const unsynced = rows[4]!;
    expect(unsynced).toMatchObject({ inManifest: false, packets: 3, bytes: 180, live: true, findingId: null });
    expect(rows[6]).toMatchObject({ packets: 9990, live: false, findingId: findingId('unauthorized-vni', '10.9.9.9|999') });
    expect(rows[5]!.findingId).toBe(findingId('unexpected-source', '10.0.0.77|100'));
  });

  it('filters by status, VNI and session', async () => {
    expect((await get('?status=unauthorized')).items.map((r) => r.sourceIp)).toEqual(['10.0.0.5', '10.0.0.77', '10.9.9.9']);
    expect((await get('?vni=100')).items.map((r) => [r.sessionId, r.sourceIp])).toEqual([[S1, '10.0.0.1'], [null, '10.0.0.77']]);
    expect((await get(`?session=${S3}`)).items.map((r) => r.status)).toEqual(['expired']);
    const bad = await h.app.inject({ url: '/v1/sessions?status=rogue', headers: bearer('auditor') });
    expect(bad.statusCode).toBe(400);
  });

  it('without a manifest every pair is unauthorized', async () => {
    const { dir: d2, remove: rm2 } = makeTmpDir('mg-api-sessions-none-');
    const h2 = buildHarness({ dataDir: d2, now: () => NOW });
    h2.detector.onNewPair('10.0.0.1', 100, NOW);
    const body = (await h2.app.inject({ url: '/v1/sessions', headers: bearer('auditor') })).json() as { manifest: null; items: Row[] };
    expect(body.manifest).toBeNull();
    expect(body.items.map((r) => [r.sourceIp, r.status, r.reason])).toEqual([['10.0.0.1', 'unauthorized', 'unauthorized-vni']]);
    await h2.close();
    rm2();
  });
});
