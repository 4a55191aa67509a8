import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { FindingEvent } from '../../src/detect/finding.js';
import { findingId } from '../../src/detect/store.js';
import { Findings } from '../../src/detect/findings.js';
import { storeFromDb } from '../../src/store/store.js';
import { openDb } from '../../src/store/db.js';
import { tmpDir } from '../helpers/tmp.js';
import { input, T0 } from './finding-input.js';

describe('FindingStore', () => {
  it('gives an incident a stable id and counts repeats', async () => {
    const events: FindingEvent[] = [];
    const store = new Findings(storeFromDb(openDb(':memory:')), (e) => void events.push(e));
    const a = (await store.record(input()));
    expect(a.created).toBe(true);
    expect(a.finding.id).toBe(findingId('unauthorized-vni', '10.0.0.1|42'));
    expect(a.finding.id).toMatch(/^f_[0-9a-f]{20}$/);
    expect(a.finding).toMatchObject({ kind: 'unauthorized-vni', severity: 'critical', status: 'open', count: 1, vni: 42, sourceIp: '10.0.0.1' });
    const b = (await store.record(input({ at: T0 + 5000 })));
    expect(b.created).toBe(false);
    expect(b.finding.id).toBe(a.finding.id);
    expect(b.finding.count).toBe(2);
    expect(b.finding.firstSeen).toBe(new Date(T0).toISOString());
    expect(b.finding.lastSeen).toBe(new Date(T0 + 5000).toISOString());
    // A late, out-of-order occurrence moves firstSeen back, not lastSeen.
    const c = (await store.record(input({ at: T0 - 1000 })));
    expect(c.finding.firstSeen).toBe(new Date(T0 - 1000).toISOString());
    expect(c.finding.lastSeen).toBe(new Date(T0 + 5000).toISOString());
    // Plain repeats do not page anyone: one created event only.
    expect(events.map((e) => e.type)).toEqual(['finding.created']);
    // Another kind with the same key is another incident.
    expect((await store.record(input({ kind: 'unexpected-source' }))).finding.id).not.toBe(a.finding.id);
  });

  it('merges correlation evidence and emits finding.updated only when something is new', async () => {
    const events: FindingEvent[] = [];
    const store = new Findings(storeFromDb(openDb(':memory:')), (e) => void events.push(e));
    const ctl = { eventId: 'e1', eventName: 'CreateTrafficMirrorSession', eventTime: '2025-01-01T11:59:00.000Z', actorArn: 'arn:aws:iam::1:user/eve' };
    await store.record(input());
    const r1 = (await store.record(input({ correlated: { control: [ctl] } })));
    expect(r1.event).toMatchObject({ type: 'finding.updated', reason: 'correlated' });
    const r2 = (await store.record(input({ correlated: { control: [ctl] } })));
    expect(r2.event).toBeNull();
    expect(r2.finding.correlated?.control).toEqual([ctl]);
    const f = (await store.attachCorrelation(r2.finding.id, { traffic: [{ sourceIp: '10.0.0.1', vni: 42, firstSeen: '2025-01-01T12:00:00.000Z' }] }, T0));
    expect(f?.correlated?.traffic).toHaveLength(1);
    expect(f?.count).toBe(3); // attaching evidence is not an occurrence
    expect(events.map((e) => `${e.type}:${e.reason ?? ''}`)).toEqual(['finding.created:', 'finding.updated:correlated', 'finding.updated:correlated']);
  });

  it('never lowers the severity of an open finding, and says when it rises', async () => {
    const store = new Findings(storeFromDb(openDb(':memory:')));
    await store.record(input({ kind: 'mirror-session-created', key: 'tms-1', severity: 'low' }));
    expect((await store.record(input({ kind: 'mirror-session-created', key: 'tms-1', severity: 'critical' }))).event).toMatchObject({ type: 'finding.updated', reason: 'escalated' });
    expect((await store.record(input({ kind: 'mirror-session-created', key: 'tms-1', severity: 'low' }))).finding.severity).toBe('critical');
  });

  it('resolves, and reopens the same id when the incident recurs', async () => {
    const events: FindingEvent[] = [];
    const store = new Findings(storeFromDb(openDb(':memory:')), (e) => void events.push(e));
    const { finding } = (await store.record(input()));
    const r = (await store.resolve(finding.id, T0 + 1000, 'manifest reloaded'));
    expect(r?.status).toBe('resolved');
    expect(r?.evidence.resolution).toEqual({ at: new Date(T0 + 1000).toISOString(), reason: 'manifest reloaded' });
    expect((await store.resolve(finding.id, T0 + 2000))?.status).toBe('resolved'); // no second event
    expect((await store.resolveIfOpen(finding.id, T0 + 2000))).toBeUndefined();
    const again = (await store.record(input({ at: T0 + 3000 })));
    expect(again.created).toBe(false);
    expect(again.finding).toMatchObject({ id: finding.id, status: 'open', count: 2 });
    expect(again.finding.evidence.resolution).toBeUndefined();
    expect(events.map((e) => `${e.type}:${e.reason ?? ''}`)).toEqual(['finding.created:', 'finding.resolved:', 'finding.created:reopened']);
    expect((await store.resolve('f_00000000000000000000', T0))).toBeUndefined();
  });

  it('resolves the open ones among several ids with one lookup, each once', async () => {
    const events: FindingEvent[] = [];
    const store = new Findings(storeFromDb(openDb(':memory:')), (e) => void events.push(e));
    const a = (await store.record(input())).finding;
    const b = (await store.record(input({ kind: 'unexpected-source' }))).finding;
    await store.resolve(b.id, T0 + 1);
    const none = findingId('expired-session', '10.0.0.1|42');
    const got = await store.resolveOpenAmong([a.id, b.id, none], T0 + 1000, 'authorized');
    expect(got.map((f) => [f.id, f.status])).toEqual([[a.id, 'resolved']]);
    expect(await store.resolveOpenAmong([a.id, b.id, none], T0 + 2000)).toEqual([]);
    expect(await store.resolveOpenAmong([], T0)).toEqual([]);
    expect(events.map((e) => `${e.type}:${e.finding.id === a.id ? 'a' : 'b'}`)).toEqual(['finding.created:a', 'finding.created:b', 'finding.resolved:b', 'finding.resolved:a']);
    // The id is SHA-256 of kind, NUL, key (the one-shot hash gives the same as the streaming one).
    expect(a.id).toBe(`f_${createHash('sha256').update('unauthorized-vni\0' + '10.0.0.1|42').digest('hex').slice(0, 20)}`);
  });

  it('calls onChange inside the transaction: a throwing onChange rolls the finding back', async () => {
    const db = openDb(':memory:');
    let inTx = false;
    const ok = new Findings(storeFromDb(db), () => void (inTx = db.inTransaction));
    await ok.record(input({ key: 'a' }));
    expect(inTx).toBe(true);

    const failing = new Findings(storeFromDb(db), (e) => {
        // The outbox writes here; prove the row is visible inside, then fail like a full disk would.
        db.prepare(`INSERT INTO outbox (msg_id, endpoint, event_type, finding_id, payload, created_at, next_attempt_at) VALUES ('m', 'hook', ?, ?, '{}', 0, 0)`).run(e.type, e.finding.id);
        throw new Error('outbox write failed');
    });
    await expect(failing.record(input({ key: 'b' }))).rejects.toThrow('outbox write failed');
    expect((await failing.get(findingId('unauthorized-vni', 'b')))).toBeUndefined();
    expect(db.prepare('SELECT COUNT(*) AS n FROM outbox').get()).toEqual({ n: 0 });
    // An update that fails is rolled back too: the count does not move.
    await expect(failing.record(input({ key: 'a', at: T0 + 1, correlated: { control: [{ eventId: 'x', eventName: 'CreateTrafficMirrorSession', eventTime: '2025-01-01T00:00:00.000Z' }] } }))).rejects.toThrow();
    expect((await ok.get(findingId('unauthorized-vni', 'a')))?.count).toBe(1);
    await expect(failing.resolve(findingId('unauthorized-vni', 'a'), T0)).rejects.toThrow();
    expect((await ok.get(findingId('unauthorized-vni', 'a')))?.status).toBe('open');
  });

  it('pages with a stable cursor and filters by kind, minimum severity, status and time', async () => {
    const store = new Findings(storeFromDb(openDb(':memory:')));
    // 25 findings, several sharing a last_seen so the id breaks ties.
    for (let i = 0; i < 25; i++) {
      await store.record(input({ key: `10.0.0.${i}|42`, at: T0 + Math.floor(i / 3) * 1000, kind: i % 5 === 0 ? 'silent-session' : 'unauthorized-vni' }));
    }
    const seen: string[] = [];
    let cursor: string | undefined;
    let pages = 0;
    do {
      const page = (await store.list({ limit: 7, cursor }));
      seen.push(...page.items.map((f) => f.id));
      cursor = page.nextCursor ?? undefined;
      pages++;
      // A finding inserted mid-way with an older last_seen lands on a later page, not a duplicate.
      if (pages === 1) (await store.record(input({ key: 'late', at: T0 - 60_000 })));
    } while (cursor);
    expect(pages).toBe(4);
    expect(new Set(seen).size).toBe(26);
    const all = (await store.list({ limit: 1000 })).items;
    expect(seen).toEqual(all.map((f) => f.id));
    for (let i = 1; i < all.length; i++) {
      const a = all[i - 1]!;
      const b = all[i]!;
      expect(a.lastSeen > b.lastSeen || (a.lastSeen === b.lastSeen && a.id > b.id)).toBe(true);
    }
    expect((await store.list({ kind: 'silent-session' })).items).toHaveLength(5);
    expect((await store.list({ severity: 'high' })).items.every((f) => f.kind === 'unauthorized-vni')).toBe(true);
    expect((await store.list({ severity: 'low' })).items).toHaveLength(26);
    expect((await store.list({ since: T0 + 7000 })).items).toHaveLength(4); // i = 21..24
    expect((await store.list({ until: T0 - 1 })).items.map((f) => f.id)).toEqual([findingId('unauthorized-vni', 'late')]);
    await store.resolve(findingId('unauthorized-vni', 'late'), T0);
    expect((await store.list({ status: 'resolved' })).items).toHaveLength(1);
    await expect(store.list({ cursor: 'garbage' })).rejects.toThrow(/cursor/);
  });

  it('counts findings and occurrences by kind, severity and status', async () => {
    const store = new Findings(storeFromDb(openDb(':memory:')));
    await store.record(input());
    await store.record(input());
    await store.record(input({ key: 'x' }));
    await store.record(input({ kind: 'silent-session', key: 'tms-1' }));
    await store.resolve(findingId('silent-session', 'tms-1'), T0);
    expect((await store.counts())).toEqual([
      { kind: 'silent-session', severity: 'low', status: 'resolved', findings: 1, occurrences: 1 },
      { kind: 'unauthorized-vni', severity: 'critical', status: 'open', findings: 2, occurrences: 3 },
    ]);
  });

  it('survives a restart (it is SQLite)', async () => {
    const file = join(tmpDir(), 'catalog.db');
    const db1 = openDb(file);
    const id = (await new Findings(storeFromDb(db1)).record(input())).finding.id;
    db1.close();
    const db2 = openDb(file);
    const store = new Findings(storeFromDb(db2));
    expect((await store.get(id))?.count).toBe(1);
    expect((await store.record(input())).finding.count).toBe(2);
    db2.close();
  });
});
