import { describe, expect, it } from 'vitest';
import { DataPlaneDetector, DEFAULT_SILENT_AFTER_MS } from '../../src/detect/data-plane.js';
import type { FindingEvent } from '../../src/detect/finding.js';
import { checkManifestText, type Manifest } from '../../src/detect/manifest.js';
import { findingId } from '../../src/detect/store.js';
import { Findings } from '../../src/detect/findings.js';
import { storeFromDb } from '../../src/store/store.js';
import { settledReads } from '../helpers/settled.js';
import { openDb } from '../../src/store/db.js';

const T0 = Date.UTC(2025, 5, 1, 12);
const MIN = 60_000;

function manifest(text: string): Manifest {
  const r = checkManifestText(`version: 1\nsessions:\n${text}`, 'm.yaml');
  if (!r.manifest) throw new Error(JSON.stringify(r.problems));
  return r.manifest;
}

const M = manifest(`  - id: tms-0123456789abcdef0
    vni: 5569041
    sourceIps: [172.31.0.238]
    owner: netops
  - id: tms-00000002
    vni: 7
    sourceIps: [10.0.0.7]
    expires: 2025-06-01T12:30:00Z
`);

function setup(m: Manifest | null, opts: { silentAfterMs?: number } = {}) {
  let now = T0;
  const events: FindingEvent[] = [];
  const db = openDb(':memory:');
  const findings = new Findings(storeFromDb(db), (e) => void events.push(e));
  const dp = new DataPlaneDetector({ findings, manifest: m, clock: () => now, ...opts });
  const store = settledReads(findings, () => dp.settled());
  return { db, store, dp, events, setNow: (t: number) => (now = t) };
}

describe('DataPlaneDetector.onNewPair', () => {
  it('with no manifest, every pair is unauthorized-vni', async () => {
    const { dp, store } = setup(null);
    expect(dp.onNewPair('172.31.0.238', 5569041, T0)).toEqual({ sessionId: null, status: 'unauthorized-vni' });
    const f = (await store.get(findingId('unauthorized-vni', '172.31.0.238|5569041')))!;
    expect(f.summary).toBe('Traffic from 172.31.0.238 on VNI 5569041; no manifest is loaded, so no session is authorized');
    expect(f.evidence).toMatchObject({ pair: { sourceIp: '172.31.0.238', vni: 5569041 }, firstPacketAt: new Date(T0).toISOString(), manifest: null, claims: [] });
  });

  it('authorizes a listed pair and records nothing', async () => {
    const { dp, store, db } = setup(M);
    expect(dp.onNewPair('172.31.0.238', 5569041, T0)).toEqual({ sessionId: 'tms-0123456789abcdef0', status: 'authorized' });
    expect((await store.list()).items).toEqual([]);
    // The pair is noted for correlation before the collector's next flush.
    await dp.settled();
    expect(db.prepare('SELECT source_ip, vni, session_id, first_seen FROM observed_sessions').all()).toEqual([
      { source_ip: '172.31.0.238', vni: 5569041, session_id: 'tms-0123456789abcdef0', first_seen: T0 },
    ]);
  });

  it('raises unauthorized-vni with the manifest that was in force', async () => {
    const { dp, store, events } = setup(M);
    expect(dp.onNewPair('172.31.0.238', 42, T0).status).toBe('unauthorized-vni');
    const f = (await store.get(findingId('unauthorized-vni', '172.31.0.238|42')))!;
    expect(f).toMatchObject({ kind: 'unauthorized-vni', severity: 'critical', vni: 42, sourceIp: '172.31.0.238', count: 1 });
    expect(f.evidence.manifest).toEqual({ file: 'm.yaml', sha256: M.sha256, sessions: 2 });
    expect(events).toHaveLength(1);
  });

  it('raises unexpected-source naming the session that claims the VNI and its sources', async () => {
    const { dp, store } = setup(M);
    expect(dp.onNewPair('172.31.9.9', 5569041, T0)).toEqual({ sessionId: null, status: 'unexpected-source' });
    const f = (await store.get(findingId('unexpected-source', '172.31.9.9|5569041')))!;
    expect(f.summary).toBe('Traffic on VNI 5569041 from 172.31.9.9, which is not a listed source of tms-0123456789abcdef0');
    expect(f.evidence.claims).toEqual([{ id: 'tms-0123456789abcdef0', vni: 5569041, sourceIps: ['172.31.0.238'], line: 3, owner: 'netops' }]);
    expect(f.severity).toBe('high');
  });

  it('raises expired-session for traffic first seen after expires', async () => {
    const { dp, store } = setup(M);
    const at = Date.UTC(2025, 5, 1, 13);
    expect(dp.onNewPair('10.0.0.7', 7, at)).toEqual({ sessionId: 'tms-00000002', status: 'expired' });
    const f = (await store.get(findingId('expired-session', '10.0.0.7|7')))!;
    expect(f).toMatchObject({ sessionId: 'tms-00000002', severity: 'high' });
    expect(f.summary).toContain('after the session expired at 2025-06-01T12:30:00.000Z');
    expect(f.evidence.session).toMatchObject({ id: 'tms-00000002', expires: '2025-06-01T12:30:00.000Z' });
  });

  it('counts a pair seen again (the collector evicted and re-created it) on the same finding', async () => {
    const { dp, store } = setup(null);
    dp.onNewPair('10.1.1.1', 1, T0);
    dp.onNewPair('10.1.1.1', 1, T0 + MIN);
    expect((await store.get(findingId('unauthorized-vni', '10.1.1.1|1')))?.count).toBe(2);
  });

  it('never waits and never throws: a failing store still returns the verdict; the rows follow once it works again', async () => {
    const db = openDb(':memory:');
    let full = true;
    const findings = new Findings(storeFromDb(db), () => {
      if (full) throw new Error('disk full');
    });
    const dp = new DataPlaneDetector({ findings, manifest: null });
    expect(dp.onNewPair('10.1.1.1', 1, T0)).toEqual({ sessionId: null, status: 'unauthorized-vni' });
    expect(dp.onNewPair('10.1.1.2', 1, T0)).toEqual({ sessionId: null, status: 'unauthorized-vni' });
    expect(dp.counters).toMatchObject({ 'detect.pairs.evaluated': 2, 'detect.pairs.unauthorized': 2 });
    expect(await dp.settled(300)).toBe(false); // the queue retries with backoff
    expect(dp.writes.queue.counters['store.errors']).toBeGreaterThan(0);
    // Nothing half-written: the observed rows rolled back with the findings.
    expect(db.prepare('SELECT COUNT(*) AS n FROM observed_sessions').get()).toEqual({ n: 0 });
    full = false;
    expect(await dp.settled(10_000)).toBe(true);
    expect(db.prepare('SELECT COUNT(*) AS n FROM findings').get()).toEqual({ n: 2 });
    expect(db.prepare('SELECT COUNT(*) AS n FROM observed_sessions').get()).toEqual({ n: 2 });
  });

  it('keys IPv6 pairs by canonical text, whatever form the collector passes', async () => {
    const { dp, store } = setup(null);
    dp.onNewPair('2001:DB8:0:0:0:0:0:1', 9, T0);
    dp.onNewPair('2001:db8::1', 9, T0 + 1);
    expect((await store.get(findingId('unauthorized-vni', '2001:db8::1|9')))?.count).toBe(2);
  });
});

describe('DataPlaneDetector.setManifest (SIGHUP)', () => {
  it('resolves the finding of a pair that became authorized and raises one for a pair that lost authorization', async () => {
    const { dp, events } = setup(M);
    dp.onNewPair('172.31.0.238', 5569041, T0); // authorized
    dp.onNewPair('10.9.9.9', 42, T0); // unauthorized-vni
    const next = manifest(`  - id: tms-0123456789abcdef0
    vni: 5569041
    sourceIps: [172.31.0.239]
  - id: tms-00000003
    vni: 42
`);
    const r = (await dp.setManifest(next, T0 + MIN));
    expect(r.resolved.map((f) => f.id)).toEqual([findingId('unauthorized-vni', '10.9.9.9|42')]);
    expect(r.resolved[0]!.evidence.resolution).toMatchObject({ reason: expect.stringContaining('now authorized') });
    expect(r.raised.map((f) => f.kind)).toEqual(['unexpected-source']);
    expect(r.raised[0]!.evidence.trigger).toBe('manifest reload');
    expect(r.raised[0]!.evidence.manifest).toMatchObject({ sha256: next.sha256 });
    expect(dp.verdict('10.9.9.9', 42, T0 + MIN)).toEqual({ sessionId: 'tms-00000003', status: 'authorized' });
    expect(events.map((e) => e.type).sort()).toEqual(['finding.created', 'finding.created', 'finding.resolved']);
    // Reloading the same manifest again changes nothing.
    expect((await dp.setManifest(next, T0 + 2 * MIN))).toEqual({ raised: [], resolved: [] });
  });

  it('going back to no manifest makes every known pair unauthorized', async () => {
    const { dp } = setup(M);
    dp.onNewPair('172.31.0.238', 5569041, T0);
    expect((await dp.setManifest(null, T0 + 1)).raised.map((f) => f.kind)).toEqual(['unauthorized-vni']);
  });
});

describe('DataPlaneDetector.checkSilent', () => {
  const one = manifest(`  - id: tms-0123456789abcdef0
    vni: 5569041
    sourceIps: [172.31.0.238]
`);

  it('counts from start when no traffic was ever seen, raises once, and resolves when traffic returns', async () => {
    const { dp, store } = setup(one);
    expect(dp.silentAfterMs).toBe(DEFAULT_SILENT_AFTER_MS);
    expect((await dp.checkSilent(T0 + 14 * MIN, []))).toEqual({ raised: [], resolved: [] });
    const r = (await dp.checkSilent(T0 + 15 * MIN, []));
    expect(r.raised).toHaveLength(1);
    const f = r.raised[0]!;
    expect(f).toMatchObject({ kind: 'silent-session', severity: 'low', sessionId: 'tms-0123456789abcdef0', vni: 5569041 });
    expect(f.evidence).toMatchObject({ lastTrafficAt: null, countingFrom: new Date(T0).toISOString(), silentForMs: 15 * MIN });
    // Still silent: no new occurrence per tick.
    expect((await dp.checkSilent(T0 + 20 * MIN, [])).raised).toEqual([]);
    expect((await store.get(f.id))?.count).toBe(1);
    // Traffic again.
    const back = (await dp.checkSilent(T0 + 21 * MIN, [{ sourceIp: '172.31.0.238', vni: 5569041, lastSeenMs: T0 + 20.5 * MIN }]));
    expect(back.resolved.map((x) => x.id)).toEqual([f.id]);
    // Silent again 15 minutes after that traffic: the same finding reopens.
    const again = (await dp.checkSilent(T0 + 36 * MIN, [{ sourceIp: '172.31.0.238', vni: 5569041, lastSeenMs: T0 + 20.5 * MIN }]));
    expect(again.raised.map((x) => [x.id, x.count, x.status])).toEqual([[f.id, 2, 'open']]);
    expect(again.raised[0]!.evidence.lastTrafficAt).toBe(new Date(T0 + 20.5 * MIN).toISOString());
  });

  it('ignores traffic from a source the session does not list', async () => {
    const { dp } = setup(one);
    expect((await dp.checkSilent(T0 + 16 * MIN, [{ sourceIp: '10.6.6.6', vni: 5569041, lastSeenMs: T0 + 16 * MIN }])).raised).toHaveLength(1);
  });

  it('reads observed_sessions when not given traffic', async () => {
    const { dp, db } = setup(one);
    db.prepare('INSERT INTO observed_sessions (source_ip, vni, session_id, first_seen, last_seen) VALUES (?, ?, ?, ?, ?)').run('172.31.0.238', 5569041, null, T0, T0 + 10 * MIN);
    expect((await dp.checkSilent(T0 + 20 * MIN)).raised).toEqual([]);
    expect((await dp.checkSilent(T0 + 25 * MIN)).raised).toHaveLength(1);
  });

  it('counts a session added by a reload from the reload, and drops a removed one', async () => {
    const { dp } = setup(null);
    await dp.setManifest(one, T0 + 10 * MIN);
    expect((await dp.checkSilent(T0 + 20 * MIN, [])).raised).toEqual([]);
    expect((await dp.checkSilent(T0 + 25 * MIN, [])).raised).toHaveLength(1);
    const r = (await dp.setManifest(manifest('  - id: tms-00000009\n    vni: 1\n'), T0 + 26 * MIN));
    expect(r.resolved.map((f) => f.kind)).toEqual(['silent-session']);
  });

  it('does not expect traffic from an expired session, and 0 disables the check', async () => {
    const { dp } = setup(manifest('  - id: tms-00000002\n    vni: 7\n    expires: 2025-06-01T12:05:00Z\n'));
    expect((await dp.checkSilent(T0 + 60 * MIN, [])).raised).toEqual([]);
    const off = setup(one, { silentAfterMs: 0 });
    expect((await off.dp.checkSilent(T0 + 999 * MIN, [])).raised).toEqual([]);
  });
});

describe('DataPlaneDetector.checkExpired', () => {
  it('raises expired-session when an authorized pair keeps sending past expires', async () => {
    const { dp, store } = setup(M);
    expect(dp.onNewPair('10.0.0.7', 7, T0).status).toBe('authorized');
    expect((await dp.checkExpired(T0 + 20 * MIN, [{ sourceIp: '10.0.0.7', vni: 7, lastSeenMs: T0 + 20 * MIN }]))).toEqual([]);
    const raised = (await dp.checkExpired(T0 + 40 * MIN, [{ sourceIp: '10.0.0.7', vni: 7, lastSeenMs: T0 + 35 * MIN }]));
    expect(raised.map((f) => [f.kind, f.sessionId, f.evidence.trigger])).toEqual([['expired-session', 'tms-00000002', 'traffic after expiry']]);
    expect(raised[0]!.evidence.firstPacketAt).toBe(new Date(T0).toISOString());
    // Once per incident, not per tick.
    expect((await dp.checkExpired(T0 + 41 * MIN, [{ sourceIp: '10.0.0.7', vni: 7, lastSeenMs: T0 + 41 * MIN }]))).toEqual([]);
    expect((await store.get(raised[0]!.id))?.count).toBe(1);
    expect(dp.verdict('10.0.0.7', 7, T0 + 41 * MIN).status).toBe('expired');
  });
});
