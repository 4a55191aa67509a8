/**
 * Fleet semantics on one store: two nodes raising the same finding at the same moment make one finding
 * and one alert row; two webhook dispatchers sharing the outbox deliver every row exactly once; a row
 * leased by a node that stopped is delivered by the other after the lease. On PostgreSQL the two nodes
 * are two stores (two pools); on SQLite, one store (one node by design).
 */
import { afterEach, expect, it } from 'vitest';
import { parseAlertsConfig } from '../../src/alert/config.js';
import { WebhookDispatcher } from '../../src/alert/dispatcher.js';
import type { FindingRow } from '../../src/store/findings.js';
import type { Store } from '../../src/store/store.js';
import { FAST_RETRY, Receiver, SECRET, verifySignature, waitFor } from '../alert/helpers.js';
import { describeEngines } from '../helpers/engines.js';

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const FID = 'f_0123456789abcdef0123';

function row(at: number): FindingRow {
  return { id: FID, kind: 'rogue-session', severity: 'critical', status: 'open', first_seen: at, last_seen: at, count: 1, vni: 42, source_ip: '10.1.2.3', session_id: null, summary: 'rogue', evidence: '{}', correlated: null, updated_at: at };
}

/** What the findings store does on a raise: create once (with its alert row), or add an occurrence. */
function raise(s: Store, at: number): Promise<boolean> {
  return s.tx(async (q) => {
    if (await s.findings.create(row(at), q)) {
      await s.outbox.insert({ msgId: `msg_created_${FID}`, endpoint: 'pager', eventType: 'finding.created', findingId: FID, payload: JSON.stringify({ type: 'finding.created', data: { id: FID } }), createdAt: at, nextAttemptAt: at }, q);
      return true;
    }
    const cur = (await s.findings.lock(FID, q))!;
    // repeat() widens first_seen and last_seen in SQL: whichever node created the row, the times end up the extremes.
    await s.findings.repeat({ ...cur, first_seen: at, last_seen: at }, 1, q);
    return false;
  });
}

describeEngines('fleet semantics', (ctx) => {
  const second = async (): Promise<Store> => (ctx.engine === 'postgres' ? ctx.open({ nodeId: 'node-b' }) : ctx.store);

  it('the same rogue pair raised by two nodes at once: one finding, counts summed, one alert delivered once', async () => {
    const a = ctx.store;
    const b = await second();
    const created = await Promise.all(Array.from({ length: 30 }, (_, i) => raise(i % 2 ? b : a, 1_000 + i)));
    expect(created.filter(Boolean)).toHaveLength(1);
    expect(await a.findings.get(FID)).toMatchObject({ count: 30, first_seen: 1_000, last_seen: 1_029 });
    expect(await a.outbox.list({ limit: 10 })).toHaveLength(1);

    // Plus more alerts, so that both dispatchers have work at the same time.
    for (let i = 0; i < 20; i++) await a.outbox.insert({ msgId: `msg_${i}`, endpoint: 'pager', eventType: 'finding.updated', findingId: FID, payload: `{"n":${i}}`, createdAt: 1, nextAttemptAt: 1 });
    const receiver = new Receiver();
    await receiver.listen();
    cleanups.push(() => receiver.close());
    receiver.behaviour = () => ({ status: 204 });
    const webhooks = parseAlertsConfig({ webhooks: [{ name: 'pager', url: receiver.url, secret: SECRET, maxConcurrency: 4 }] }).webhooks;
    const da = new WebhookDispatcher({ outbox: a.outbox, webhooks, retry: FAST_RETRY, pollIntervalMs: 20 });
    const db = new WebhookDispatcher({ outbox: b.outbox, webhooks, retry: FAST_RETRY, pollIntervalMs: 20 });
    cleanups.push(() => da.stop(0), () => db.stop(0));
    da.start();
    db.start();
    await waitFor(async () => (await a.outbox.countsByEndpoint()).every((c) => c.state === 'delivered'), 15_000, 'every alert delivered');
    const accepted = receiver.acceptedIds();
    expect(accepted.length).toBe(21);
    expect(new Set(accepted).size).toBe(21);
    expect(accepted.filter((id) => id === `msg_created_${FID}`)).toHaveLength(1);
    for (const r of receiver.requests) expect(verifySignature(SECRET, r.headers, r.body)).toBe(true);
    // A dispatcher counts a delivery once the row is marked delivered (the await above may see the row first).
    await waitFor(async () => da.counters['alert.delivery.delivered'] + db.counters['alert.delivery.delivered'] >= 21, 5_000, 'both dispatchers counted');
    expect(da.counters['alert.delivery.delivered'] + db.counters['alert.delivery.delivered']).toBe(21);
  });

  it("a node that stops holding a lease: the other delivers the row when the lease runs out, and not before", async () => {
    const a = ctx.store;
    const b = await second();
    await a.outbox.insert({ msgId: 'msg_leased', endpoint: 'pager', eventType: 'finding.created', findingId: FID, payload: '{}', createdAt: Date.now(), nextAttemptAt: Date.now() });
    // Node A claims it and dies before sending.
    const leaseUntil = Date.now() + 1_500;
    expect((await a.outbox.claim('pager', Date.now(), leaseUntil, 5)).map((r) => r.msg_id)).toEqual(['msg_leased']);
    const receiver = new Receiver();
    await receiver.listen();
    cleanups.push(() => receiver.close());
    const webhooks = parseAlertsConfig({ webhooks: [{ name: 'pager', url: receiver.url, secret: SECRET }] }).webhooks;
    const d = new WebhookDispatcher({ outbox: b.outbox, webhooks, retry: FAST_RETRY, pollIntervalMs: 50 });
    cleanups.push(() => d.stop(0));
    d.start();
    await waitFor(async () => (await a.outbox.list({ limit: 1 }))[0]?.state === 'delivered', 10_000, 'the takeover');
    expect(receiver.acceptedIds()).toEqual(['msg_leased']);
    // On PostgreSQL node B respected A's live lease; on SQLite (one node) a restart resumes at once.
    if (ctx.engine === 'postgres') expect(receiver.requests[0]!.at).toBeGreaterThanOrEqual(leaseUntil);
    expect((await a.outbox.list({ limit: 1 }))[0]).toMatchObject({ state: 'delivered', attempts: 2 });
  });

  it('the dispatcher through a PostgreSQL outage: it retries on its poll and delivers the alert once when the database is back', async () => {
    if (ctx.engine !== 'postgres' || ctx.pg === null || process.env.MIRRORGUARD_TEST_PG_URL) return;
    const a = ctx.store;
    await a.outbox.insert({ msgId: 'msg_outage', endpoint: 'pager', eventType: 'finding.created', findingId: FID, payload: '{}', createdAt: Date.now(), nextAttemptAt: Date.now() });
    const receiver = new Receiver();
    await receiver.listen();
    cleanups.push(() => receiver.close());
    const webhooks = parseAlertsConfig({ webhooks: [{ name: 'pager', url: receiver.url, secret: SECRET }] }).webhooks;
    await ctx.pg.pause();
    const d = new WebhookDispatcher({ outbox: a.outbox, webhooks, retry: FAST_RETRY, pollIntervalMs: 100 });
    cleanups.push(() => d.stop(0));
    d.start();
    await new Promise((r) => setTimeout(r, 500));
    expect(receiver.requests).toHaveLength(0);
    await ctx.pg.resume();
    await waitFor(async () => (await a.outbox.list({ limit: 1 }))[0]?.state === 'delivered', 15_000, 'delivery after the outage');
    expect(receiver.acceptedIds()).toEqual(['msg_outage']);
  }, 60_000);
});
