/**
 * session-flood and coalescing (src/detect/flood.ts), through the data-plane detector and the findings
 * store, with the webhook events counted at the store's onChange (where the outbox writes its rows).
 */
import { describe, expect, it } from 'vitest';
import { DataPlaneDetector } from '../../src/detect/data-plane.js';
import { EPISODE_INDIVIDUAL_FINDINGS, QUIET_INTERVALS, RECENT_PAIRS } from '../../src/detect/flood.js';
import type { FindingEvent } from '../../src/detect/finding.js';
import { checkManifestText } from '../../src/detect/manifest.js';
import { Findings } from '../../src/detect/findings.js';
import { storeFromDb } from '../../src/store/store.js';

import { openDb } from '../../src/store/db.js';

const T0 = Date.UTC(2026, 11, 3, 10);
const THRESHOLDS = { intervalMs: 10_000, perSource: 20, total: 200 };

function setup() {
  const r = checkManifestText('version: 1\nsessions:\n  - id: tms-0123456789abcdef0\n    vni: 5569041\n    sourceIps: [172.31.0.238]\n', 'm.yaml');
  const db = openDb(':memory:');
  const events: FindingEvent[] = [];
  const findings = new Findings(storeFromDb(db), (e) => void events.push(e));
  const dp = new DataPlaneDetector({ findings, manifest: r.manifest!, clock: () => T0, newPairFlood: THRESHOLDS });
  const rows = async () => (await dp.settled(), db.prepare('SELECT kind, source_ip AS sourceIp, vni, count, severity, evidence FROM findings').all() as { kind: string; sourceIp: string | null; vni: number | null; count: number; severity: string; evidence: string }[]);
  return { dp, events, rows, db };
}

describe('new-pair flood', () => {
  it('below the thresholds, every unauthorized pair is its own finding and no flood is raised', async () => {
    const { dp, rows } = setup();
    for (let i = 0; i < THRESHOLDS.perSource; i++) dp.onNewPair('10.0.0.1', 1000 + i, T0 + i);
    dp.flushFlood(T0 + 1000);
    expect((await rows())).toHaveLength(THRESHOLDS.perSource);
    expect((await rows()).every((r) => r.kind === 'unauthorized-vni' && r.sourceIp === '10.0.0.1')).toBe(true);
    expect(dp.flood.inEpisode).toBe(false);
  });

  it('one source past perSource: one session-flood at once, its pairs coalesced, a quiet source still stands out', async () => {
    const { dp, events, rows } = setup();
    for (let i = 0; i < 5000; i++) dp.onNewPair('10.0.0.1', 1000 + i, T0 + Math.floor(i / 10));
    // The flood finding was written when the threshold was passed, not on a later flush.
    await dp.settled();
    expect(events.filter((e) => e.finding.kind === 'session-flood').map((e) => e.type)).toEqual(['finding.created']);
    const rogue = dp.onNewPair('172.31.9.9', 4242, T0 + 600);
    expect(rogue.status).toBe('unauthorized-vni');
    expect((await rows()).filter((r) => r.sourceIp === '172.31.9.9')).toMatchObject([{ kind: 'unauthorized-vni', vni: 4242, count: 1 }]);
    dp.flushFlood(T0 + 2000);
    const all = (await rows());
    const flood = all.filter((r) => r.kind === 'session-flood');
    expect(flood).toMatchObject([{ severity: 'critical', count: 5001 }]);
    const ev = JSON.parse(flood[0]!.evidence) as Record<string, any>;
    expect(ev.trigger).toMatchObject({ threshold: 'perSource', sourceIp: '10.0.0.1', newPairs: THRESHOLDS.perSource + 1 });
    expect(ev.topSources[0]).toEqual({ sourceIp: '10.0.0.1', newPairs: 5000 });
    // 20 individual findings before the flood was seen, then one coalesced row for the other 4980.
    const coalesced = all.filter((r) => r.kind === 'unauthorized-vni' && r.sourceIp === null);
    expect(coalesced).toMatchObject([{ count: 5000 - THRESHOLDS.perSource, vni: null }]);
    const cev = JSON.parse(coalesced[0]!.evidence) as { recentPairs: { vni: number }[]; pairs: number };
    expect(cev.recentPairs).toHaveLength(RECENT_PAIRS);
    expect(cev.recentPairs.at(-1)!.vni).toBe(1000 + 4999);
    expect(all).toHaveLength(THRESHOLDS.perSource + 1 + 1 + 1);
    // Webhook-worthy events: one per row created; the coalesced counts and flood updates are quiet.
    await dp.settled();
    expect(events.filter((e) => e.type !== 'finding.resolved')).toHaveLength(all.length);
    expect(dp.counters['detect.pairs.coalesced']).toBe(5000 - THRESHOLDS.perSource);
    expect(dp.counters['detect.flood.episodes']).toBe(1);
  });

  it('many sources past total: coalesced once the episode budget of individual findings is spent', async () => {
    const { dp, rows } = setup();
    for (let i = 0; i < 3000; i++) dp.onNewPair(`10.1.${i >> 8}.${i & 255}`, 7, T0 + i);
    dp.flushFlood(T0 + 3000);
    const all = (await rows());
    const flood = all.filter((r) => r.kind === 'session-flood');
    expect(JSON.parse(flood[0]!.evidence).trigger).toMatchObject({ threshold: 'total' });
    const individual = all.filter((r) => r.kind === 'unauthorized-vni' && r.sourceIp !== null);
    expect(individual).toHaveLength(THRESHOLDS.total + EPISODE_INDIVIDUAL_FINDINGS);
    expect(all.filter((r) => r.sourceIp === null && r.kind === 'unauthorized-vni')).toMatchObject([{ count: 3000 - individual.length }]);
  });

  it('alerts once per episode: a quiet spell ends it, the next flood is a new finding', async () => {
    const { dp, events } = setup();
    const flood = (t: number) => {
      for (let i = 0; i < 100; i++) dp.onNewPair('10.0.0.1', t + i, t);
      dp.flushFlood(t + 1000);
    };
    flood(T0);
    flood(T0 + 5_000); // the same episode
    expect(dp.flood.inEpisode).toBe(true);
    dp.flushFlood(T0 + (QUIET_INTERVALS + 1) * THRESHOLDS.intervalMs);
    expect(dp.flood.inEpisode).toBe(false);
    flood(T0 + 100_000);
    await dp.settled();
    const created = events.filter((e) => e.finding.kind === 'session-flood' && e.type === 'finding.created');
    expect(created).toHaveLength(2);
    expect(new Set(created.map((e) => e.finding.id)).size).toBe(2);
    expect(dp.counters['detect.flood.episodes']).toBe(2);
  });

  it('authorized pairs neither count toward a flood nor are coalesced', async () => {
    const { dp, rows } = setup();
    for (let i = 0; i < 500; i++) expect(dp.onNewPair('172.31.0.238', 5569041, T0 + i).status).toBe('authorized');
    dp.flushFlood(T0 + 1000);
    expect(dp.flood.inEpisode).toBe(false);
    expect((await rows())).toEqual([]);
  });
});
