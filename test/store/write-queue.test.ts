/**
 * The collector's writes through the store's queue (src/store/write-queue.ts, src/collector/catalog.ts):
 * in order, one transaction per batch, and, on PostgreSQL, through an outage: the database is stopped
 * mid-run, writes wait (counted, /healthz-visible as degraded), and land in order when it is back.
 */
import { expect, it } from 'vitest';
import { Catalog } from '../../src/collector/catalog.js';
import type { Sql } from '../../src/store/engine.js';
import { SYNC_BATCH_BUDGET_MS, WriteQueue } from '../../src/store/write-queue.js';
import { describeEngines } from '../helpers/engines.js';

const row = (i: number) => ({ path: `pcap/vni-1/10.0.0.1/2026-01-01/f${i}.pcap`, vni: 1, sourceIp: '10.0.0.1', sessionId: null, worker: 0, createdUs: i, firstUs: i });

/**
 * Push n writes (`write(sql, i)`) and count, until the queue is empty, how many commit between two turns of
 * the event loop (a setImmediate chain): one entry per run of commits with no turn between them.
 */
async function commitsBetweenTurns(q: WriteQueue, n: number, write: (sql: Sql, i: number) => Promise<void>): Promise<number[]> {
  const events: string[] = [];
  for (let i = 0; i < n; i++) q.push((sql) => write(sql, i), () => events.push('c'));
  const tick = (): void => {
    events.push('t');
    if (q.depth() > 0) setImmediate(tick);
  };
  setImmediate(tick);
  expect(await q.flush()).toBe(true);
  return events.join('').split('t').filter((r) => r.length > 0).map((r) => r.length);
}

describeEngines('catalog write queue', (ctx) => {
  it('runs writes in order: a file opened, synced and closed lands as one closed row', async () => {
    const cat = new Catalog(ctx.store);
    const handles = Array.from({ length: 50 }, (_, i) => cat.open(row(i)));
    for (const h of handles) cat.sync(h, 5, 500, 99);
    for (const h of handles.slice(0, 25)) cat.close(h, { closedUs: 100, firstUs: 1, lastUs: 99, packets: 5, bytes: 500, sha256: 'ab', reason: 'rotate' });
    cat.delete(handles[49]!);
    cat.observe('10.0.0.1', 1, null, 1, 2, 3, 4);
    cat.observe('10.0.0.1', 1, null, 1, 5, 3, 4);
    expect(await cat.flush()).toBe(true);
    const rows = await ctx.store.captures.list({ limit: 100 });
    expect(rows).toHaveLength(49);
    expect(rows.filter((r) => r.state === 'closed')).toHaveLength(25);
    expect(rows.every((r) => r.packets === 5 && r.bytes === 500)).toBe(true);
    expect(await ctx.store.observed.get('10.0.0.1', 1)).toMatchObject({ packets: 6, bytes: 8, last_seen: 5 });
    expect(cat.queue.depth()).toBe(0);
  });

  it('refuses writes past its bound, and counts them', async () => {
    const q = new WriteQueue(ctx.store, { maxOps: 3 });
    const cat = new Catalog(ctx.store, q);
    for (let i = 0; i < 5; i++) cat.open(row(i));
    expect(q.counters['store.queue.dropped']).toBe(2);
    await cat.flush();
    expect(await ctx.store.captures.list({ limit: 10 })).toHaveLength(3);
  });

  it('a write the store refuses on its own is set aside, counted and reported; the writes around it land in order', async () => {
    const rejected: string[] = [];
    const q = new WriteQueue(ctx.store);
    q.listen({ onRejected: (e) => rejected.push(e.message) });
    const cat = new Catalog(ctx.store, q);
    const committed: string[] = [];
    for (let i = 0; i < 10; i++) cat.open(row(i));
    // A finding row without its NOT NULL columns: a constraint violation on either engine.
    q.push(
      async (sql) => void (await sql.run(`INSERT INTO findings (id) VALUES (?)`, ['f_bad'])),
      () => committed.push('bad'),
    );
    q.push(
      async (sql) => void (await sql.run(`UPDATE captures SET packets = 7 WHERE path = ?`, [row(3).path])),
      () => committed.push('good'),
    );
    for (let i = 10; i < 20; i++) cat.open(row(i));
    expect(await cat.flush(10_000)).toBe(true);
    expect(q.counters['store.queue.rejected']).toBe(1);
    expect(rejected).toHaveLength(1);
    expect(rejected[0]).toMatch(/null|NOT NULL/i);
    expect(committed).toEqual(['good']);
    expect(q.degraded).toBe(false);
    const rows = await ctx.store.captures.list({ limit: 100 });
    expect(rows).toHaveLength(20);
    expect(rows.find((r) => r.path === row(3).path)!.packets).toBe(7);
    expect(await ctx.store.findings.get('f_bad')).toBeUndefined();
  });

  it('a backlog of thousands of writes yields to the event loop between batches', async () => {
    // 10,000 new pairs in a second queue thousands of catalog writes at once; run as one chain of
    // microtasks, they would hold off packets, file creates coming back and timers until all had landed.
    const q = new WriteQueue(ctx.store);
    const cat = new Catalog(ctx.store, q);
    const runs = await commitsBetweenTurns(q, 1600, async (sql, i) => void (await sql.run(`UPDATE captures SET packets = ? WHERE path = ?`, [i, 'none'])));
    expect(await cat.flush()).toBe(true);
    expect(runs.reduce((a, b) => a + b, 0)).toBe(1600);
    // Batches of at most 500 writes: another macrotask ran between the end of each and the next.
    expect(Math.max(...runs)).toBeLessThanOrEqual(500);
    expect(runs.length).toBeGreaterThanOrEqual(4);
  });

  it('on SQLite a batch also ends after SYNC_BATCH_BUDGET_MS of writes; on PostgreSQL it stays whole', async () => {
    // SQLite runs on the packet thread: slow writes (10,000 new pairs' rows) give way to it every few ms.
    const q = new WriteQueue(ctx.store);
    const order: number[] = [];
    const runs = await commitsBetweenTurns(q, 40, async (sql, i) => {
      await sql.run(`UPDATE captures SET packets = ? WHERE path = ?`, [i, 'none']);
      const until = performance.now() + 1; // a write that takes 1 ms of this thread
      while (performance.now() < until);
      order.push(i);
    });
    expect(order).toEqual(Array.from({ length: 40 }, (_, i) => i));
    expect(runs.reduce((a, b) => a + b, 0)).toBe(40);
    if (ctx.engine === 'sqlite') expect(Math.max(...runs)).toBeLessThanOrEqual(SYNC_BATCH_BUDGET_MS + 1);
    else expect(runs).toEqual([40]);
  });

  it('PostgreSQL stopped mid-run: writes wait in order and land when it is back', async () => {
    if (ctx.engine !== 'postgres' || ctx.pg === null || process.env.MIRRORGUARD_TEST_PG_URL) return;
    const errors: string[] = [];
    const q = new WriteQueue(ctx.store, { onError: (e) => errors.push(e.message) });
    const cat = new Catalog(ctx.store, q);
    const h0 = cat.open(row(0));
    expect(await cat.flush()).toBe(true);

    await ctx.pg.pause();
    cat.sync(h0, 1, 100, 10);
    const h1 = cat.open(row(1));
    cat.sync(h0, 2, 200, 20);
    cat.close(h1, { closedUs: 30, firstUs: 1, lastUs: 25, packets: 7, bytes: 700, sha256: 'cd', reason: 'rotate' });
    cat.observe('10.0.0.9', 9, null, 1, 2, 3, 4);
    expect(await cat.flush(1500)).toBe(false);
    expect(q.degraded).toBe(true);
    expect(q.counters['store.errors']).toBeGreaterThan(0);
    expect(q.counters['store.queue.queued']).toBeGreaterThanOrEqual(5);
    expect(q.depth()).toBe(5);
    expect(errors.length).toBeGreaterThan(0);

    await ctx.pg.resume();
    expect(await cat.flush(20_000)).toBe(true);
    expect(q.degraded).toBe(false);
    const rows = await ctx.store.captures.list({ limit: 10 });
    expect(rows.map((r) => [r.path.slice(-7), r.state, r.packets, r.bytes])).toEqual([
      ['f1.pcap', 'closed', 7, 700],
      ['f0.pcap', 'open', 2, 200],
    ]);
    expect(await ctx.store.observed.get('10.0.0.9', 9)).toMatchObject({ packets: 3 });
  }, 60_000);
});
