import { storeFromDb } from '../../src/store/store.js';
import { afterEach, describe, expect, it } from 'vitest';
import { openDb, type Db } from '../../src/store/db.js';
import { parseAlertsConfig, type WebhookEntryInput } from '../../src/alert/config.js';
import { AlertOutbox, newMsgId, type OutboxRow } from '../../src/alert/outbox.js';
import { WebhookDispatcher } from '../../src/alert/dispatcher.js';
import { Findings } from '../../src/detect/findings.js';
import type { StandardPayload } from '../../src/alert/format-standard.js';
import { event, FAST_RETRY, finding, Receiver, SECRET, sleep, waitFor } from './helpers.js';

const dbs: Db[] = [];
afterEach(() => {
  for (const db of dbs.splice(0)) db.close();
});

function setup(entries: WebhookEntryInput[], clock?: { t: number }): { db: Db; outbox: AlertOutbox } {
  const db = openDb(':memory:');
  dbs.push(db);
  const { webhooks } = parseAlertsConfig({ webhooks: entries });
  const outbox = new AlertOutbox({ db, webhooks, ...(clock ? { now: () => clock.t } : {}) });
  return { db, outbox };
}

function rows(db: Db, endpoint?: string): OutboxRow[] {
  const all = db.prepare<[], OutboxRow>('SELECT * FROM outbox ORDER BY id').all();
  return endpoint === undefined ? all : all.filter((r) => r.endpoint === endpoint);
}

function body(r: OutboxRow): StandardPayload & { data: { count: number; severity: string } } {
  return JSON.parse(r.payload) as StandardPayload & { data: { count: number; severity: string } };
}

describe('msg ids', () => {
  it('are msg_ + 26 Crockford base32 characters, unique, sorted by time, without dots', async () => {
    const ids = new Set<string>();
    for (let i = 0; i < 2000; i++) ids.add(newMsgId(1_700_000_000_000 + i));
    expect(ids.size).toBe(2000);
    for (const id of ids) expect(id).toMatch(/^msg_[0-9A-HJKMNP-TV-Z]{26}$/);
    expect(newMsgId(1_700_000_000_000) < newMsgId(1_700_000_000_001)).toBe(true);
    // 48 bits of milliseconds: the first 10 characters encode the time.
    expect(newMsgId(0).slice(4, 14)).toBe('0000000000');
  });
});

describe('AlertOutbox filters', () => {
  it('writes one row per endpoint whose minimum severity and kinds match', async () => {
    const { db, outbox } = setup([
      { name: 'all', url: 'https://a.example/h', secret: SECRET },
      { name: 'high', url: 'https://b.example/h', secret: SECRET, minSeverity: 'high' },
      { name: 'ctl', url: 'https://c.example/h', secret: SECRET, kinds: ['mirror-session-created', 'mirror-target-created'] },
    ]);
    await outbox.onFindingEvent(event('finding.created', finding({ kind: 'silent-session', severity: 'low' })));
    await outbox.onFindingEvent(event('finding.created', finding({ kind: 'unauthorized-vni', severity: 'critical' })));
    await outbox.onFindingEvent(event('finding.created', finding({ kind: 'mirror-session-created', severity: 'critical' })));
    expect(rows(db, 'all')).toHaveLength(3);
    expect(rows(db, 'high').map((r) => body(r).data.severity)).toEqual(['critical', 'critical']);
    expect(rows(db, 'ctl').map((r) => JSON.parse(r.payload).data.kind)).toEqual(['mirror-session-created']);
    expect(outbox.counters['alert.outbox.filtered']).toBe(3);
    // The body is rendered now, in the endpoint's format, and is what will be signed and sent.
    const r = rows(db, 'all')[0]!;
    expect(r).toMatchObject({ state: 'pending', attempts: 0, event_type: 'finding.created' });
    expect(body(r).type).toBe('finding.created');
  });

  it('is atomic with the finding: a failed outbox write rolls the finding back (real FindingStore)', async () => {
    const { db, outbox } = setup([{ name: 'pager', url: 'https://a.example/h', secret: SECRET }]);
    const store = new Findings(storeFromDb(db), outbox.onFindingEvent);
    const r = (await store.record({ kind: 'unauthorized-vni', key: '172.31.0.238|5569041', at: Date.now(), vni: 5569041, sourceIp: '172.31.0.238', summary: 'rogue', evidence: {} }));
    expect(r.event?.type).toBe('finding.created');
    expect(rows(db)).toHaveLength(1);
    expect(rows(db)[0]!.finding_id).toBe(r.finding.id);

    // The disk is "full" for the outbox: the finding must not be recorded without its alert.
    db.exec("CREATE TRIGGER outbox_full BEFORE INSERT ON outbox BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END");
    await expect(store.record({ kind: 'unauthorized-vni', key: '10.0.0.9|42', at: Date.now(), summary: 'rogue 2', evidence: {} })).rejects.toThrow(/disk is full/);
    expect(db.prepare('SELECT COUNT(*) AS n FROM findings').get()).toEqual({ n: 1 });
    expect(rows(db)).toHaveLength(1);
  });
});

describe('AlertOutbox repeats', () => {
  it('rate-limits updates per finding and endpoint, coalescing them into one deferred row with the latest state', async () => {
    const clock = { t: 1_800_000_000_000 };
    const { db, outbox } = setup(
      [
        { name: 'pager', url: 'https://a.example/h', secret: SECRET, updateIntervalSeconds: 300 },
        { name: 'chat', url: 'https://b.example/h', secret: SECRET, updateIntervalSeconds: 0 },
      ],
      clock,
    );
    const f = finding();
    await outbox.onFindingEvent(event('finding.created', f, clock.t));
    // The created alert goes out (the dispatcher claims it: attempts 1).
    db.prepare('UPDATE outbox SET attempts = 1, state = ? WHERE event_type = ?').run('delivered', 'finding.created');

    for (let i = 2; i <= 6; i++) {
      clock.t += 10_000;
      await outbox.onFindingEvent(event('finding.updated', { ...f, count: i }, clock.t, 'correlated'));
    }
    const pager = rows(db, 'pager');
    expect(pager.map((r) => r.event_type)).toEqual(['finding.created', 'finding.updated']);
    const deferred = pager[1]!;
    // Due at the end of the window that started with the created alert, carrying the latest count.
    expect(deferred.next_attempt_at).toBe(1_800_000_000_000 + 300_000);
    expect(deferred.created_at).toBe(deferred.next_attempt_at);
    expect(body(deferred).data.count).toBe(6);
    expect(outbox.counters['alert.outbox.deferred']).toBe(1);
    expect(outbox.counters['alert.outbox.coalesced']).toBe(8); // 4 per endpoint

    // An endpoint with no interval gets each update at once, and only coalesces an update still unsent.
    const chat = rows(db, 'chat');
    expect(chat.map((r) => r.event_type)).toEqual(['finding.created', 'finding.updated']);
    expect(body(chat[1]!).data.count).toBe(6);
    expect(chat[1]!.next_attempt_at).toBe(1_800_000_000_000 + 10_000); // due since the first update

    // Once the deferred row is on the wire, the next update opens a new window after it.
    db.prepare('UPDATE outbox SET attempts = 1 WHERE id = ?').run(deferred.id);
    clock.t = 1_800_000_000_000 + 310_000;
    await outbox.onFindingEvent(event('finding.updated', { ...f, count: 7 }, clock.t, 'correlated'));
    const next = rows(db, 'pager')[2]!;
    expect(next.next_attempt_at).toBe(1_800_000_000_000 + 600_000);
    expect(body(next).data.count).toBe(7);
  });

  it('sends escalations at once and lets a resolution supersede stale deferred updates', async () => {
    const clock = { t: 1_800_000_000_000 };
    const { db, outbox } = setup([{ name: 'pager', url: 'https://a.example/h', secret: SECRET, updateIntervalSeconds: 300 }], clock);
    const f = finding({ severity: 'high', kind: 'unexpected-source' });
    await outbox.onFindingEvent(event('finding.created', f, clock.t));
    clock.t += 1000;
    await outbox.onFindingEvent(event('finding.updated', { ...f, count: 2 }, clock.t, 'correlated'));
    expect(rows(db).map((r) => [r.event_type, r.next_attempt_at > clock.t])).toEqual([
      ['finding.created', false],
      ['finding.updated', true],
    ]);

    clock.t += 1000;
    await outbox.onFindingEvent(event('finding.updated', { ...f, count: 3, severity: 'critical' }, clock.t, 'escalated'));
    let r = rows(db);
    // The escalation is due now and replaced the stale deferred update.
    expect(r.map((x) => x.event_type)).toEqual(['finding.created', 'finding.updated']);
    expect(r[1]!.next_attempt_at).toBe(clock.t);
    expect(body(r[1]!).data.severity).toBe('critical');

    clock.t += 1000;
    await outbox.onFindingEvent(event('finding.updated', { ...f, count: 4, severity: 'critical' }, clock.t, 'correlated'));
    // Not sent yet (no dispatcher here): the newer state rides in the same row, still due at once.
    r = rows(db);
    expect(r).toHaveLength(2);
    expect(body(r[1]!).data.count).toBe(4);
    clock.t += 1000;
    await outbox.onFindingEvent(event('finding.resolved', { ...f, count: 4, severity: 'critical', status: 'resolved' }, clock.t));
    r = rows(db);
    // The resolution carries the final state; the unsent update it supersedes is dropped.
    expect(r.map((x) => x.event_type)).toEqual(['finding.created', 'finding.resolved']);
    expect(r[1]!.next_attempt_at).toBe(clock.t);
    expect(body(r[1]!).data).toMatchObject({ count: 4, severity: 'critical', status: 'resolved' });
    expect(outbox.counters['alert.outbox.superseded']).toBe(2);
  });

  it('end to end: a burst of updates reaches the receiver as created + one update with the final count', async () => {
    const receiver = new Receiver();
    await receiver.listen();
    const db = openDb(':memory:');
    dbs.push(db);
    const { webhooks } = parseAlertsConfig({ webhooks: [{ name: 'pager', url: receiver.url, secret: SECRET, updateIntervalSeconds: 0.5 }] });
    const dispatcher = new WebhookDispatcher({ outbox: storeFromDb(db).outbox, webhooks, retry: FAST_RETRY, pollIntervalMs: 5000 });
    const outbox = new AlertOutbox({ db, webhooks, onEnqueue: () => dispatcher.notify() });
    dispatcher.start();
    try {
      const f = finding();
      const t0 = Date.now();
      await outbox.onFindingEvent(event('finding.created', f));
      // A storm: nineteen updates at once, e.g. one CloudTrail file correlating many calls.
      for (let i = 2; i <= 20; i++) (await outbox.onFindingEvent(event('finding.updated', { ...f, count: i }, Date.now(), 'correlated')));
      await waitFor(() => receiver.requests.length === 2, 5000, 'one update');
      await sleep(700); // a second window passes: nothing more is due
      const types = receiver.requests.map((r) => JSON.parse(r.body) as { type: string; data: { count: number } });
      expect(types.map((t) => [t.type, t.data.count])).toEqual([
        ['finding.created', 1],
        ['finding.updated', 20],
      ]);
      // Not before the window; and on time, found by the dispatcher's timer rather than its 5 s poll.
      expect(receiver.requests[1]!.at - t0).toBeGreaterThanOrEqual(500);
      expect(receiver.requests[1]!.at - t0).toBeLessThan(2500);
    } finally {
      await dispatcher.stop(0);
      await receiver.close();
    }
  });
});
