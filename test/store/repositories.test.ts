/**
 * Every repository of src/store/ on both engines: what a caller writes is what it reads back, the
 * same way on SQLite and PostgreSQL.
 */
import { expect, it } from 'vitest';
import { SCHEMA_VERSION } from '../../src/store/migrations.js';
import type { FindingRow } from '../../src/store/findings.js';
import { describeEngines } from '../helpers/engines.js';

function finding(id: string, over: Partial<FindingRow> = {}): FindingRow {
  return {
    id,
    kind: 'unauthorized_vni',
    severity: 'high',
    status: 'open',
    first_seen: 1_000,
    last_seen: 1_000,
    count: 1,
    vni: 77,
    source_ip: '10.0.0.9',
    session_id: null,
    summary: 'traffic on an unknown VNI',
    evidence: '{}',
    correlated: null,
    updated_at: 1_000,
    ...over,
  };
}

describeEngines('store repositories', (ctx) => {
  it('migrates to the latest version, and a second open finds nothing pending', async () => {
    const st = await ctx.store.status();
    expect(st).toMatchObject({ engine: ctx.engine, version: SCHEMA_VERSION, latest: SCHEMA_VERSION, pending: [] });
    const again = await ctx.open();
    expect(await again.migrate()).toEqual([]);
    expect((await again.status()).version).toBe(SCHEMA_VERSION);
  });

  it('captures: open, sync, close; rows carry the node; list and extraction queries', async () => {
    const c = ctx.store.captures;
    const id = await c.open({ path: 'pcap/vni-7/10.0.0.1/2026-01-01/a.pcap', vni: 7, sourceIp: '10.0.0.1', sessionId: null, worker: 0, createdUs: 10, firstUs: 20 });
    const id2 = await c.open({ path: 'pcap/vni-7/10.0.0.2/2026-01-01/b.pcap', vni: 7, sourceIp: '10.0.0.2', sessionId: 'tms-1', worker: 1, createdUs: 30, firstUs: 40, gwlbEndpointId: 'vpce-1' });
    expect(id2).toBeGreaterThan(id);
    await c.sync(id, 5, 500, 25);
    expect(await c.byPath('pcap/vni-7/10.0.0.1/2026-01-01/a.pcap')).toMatchObject({ id, packets: 5, bytes: 500, last_us: 25, state: 'open', node: 'node-a' });
    expect((await c.openRows()).map((r) => r.id)).toEqual([id, id2]);
    expect((await c.openRows(1)).map((r) => r.id)).toEqual([id2]);
    await c.close(id, { closedUs: 99, firstUs: 20, lastUs: 26, packets: 6, bytes: 600, sha256: 'ab'.repeat(32), reason: 'rotate' });
    await c.setSessionId(id, 'tms-0');
    const row = (await c.byId(id))!;
    expect(row).toMatchObject({ state: 'closed', closed_us: 99, packets: 6, bytes: 600, sha256: 'ab'.repeat(32), close_reason: 'rotate', session_id: 'tms-0' });
    expect(typeof row.bytes).toBe('number');
    expect(await c.totalBytes()).toBe(600);
    expect((await c.closedOldestFirst()).map((r) => r.id)).toEqual([id]);
    expect((await c.list({ limit: 1 })).map((r) => r.id)).toEqual([id2, id]);
    expect((await c.list({ limit: 10, beforeId: id2 })).map((r) => r.id)).toEqual([id]);
    expect((await c.list({ limit: 10, sourceIp: '10.0.0.2' })).map((r) => r.gwlb_endpoint_id)).toEqual(['vpce-1']);
    expect((await c.forExtraction({ vni: 7, fromUs: 0, toUs: 1000 })).map((r) => r.id)).toEqual([id, id2]);
    expect((await c.forExtraction({ session: { id: 'tms-1' }, fromUs: 0, toUs: 1000 })).map((r) => r.id)).toEqual([id2]);
    expect((await c.forExtraction({ vni: 7, fromUs: 27, toUs: 1000 })).map((r) => r.id)).toEqual([id2]); // closed file ended at 26
    expect(await c.byState()).toEqual([
      { state: 'closed', n: 1, bytes: 600 },
      { state: 'open', n: 1, bytes: 0 },
    ]);
    expect(await c.pairs()).toEqual([
      { vni: 7, sourceIp: '10.0.0.1', sessionId: 'tms-0', files: 1, packets: 6, bytes: 600, gwlbEndpointId: null },
      { vni: 7, sourceIp: '10.0.0.2', sessionId: 'tms-1', files: 1, packets: 0, bytes: 0, gwlbEndpointId: 'vpce-1' },
    ]);
    // Another node's files are not this node's to recover or expire.
    const b = await ctx.open();
    expect(await b.captures.openRows()).toEqual([]);
    expect(await b.captures.closedOldestFirst()).toEqual([]);
    await c.delete(id);
    expect(await c.byId(id)).toBeUndefined();
  });

  it('observed sessions: deltas add up, times widen, the last reporting node is kept', async () => {
    const o = ctx.store.observed;
    await o.note('10.0.0.1', 5, null, 1_000);
    await o.observe({ sourceIp: '10.0.0.1', vni: 5, sessionId: 'tms-1', firstSeenMs: 1_100, lastSeenMs: 2_000, packets: 3, bytes: 300 });
    const b = await ctx.open();
    await b.observed.observe({ sourceIp: '10.0.0.1', vni: 5, sessionId: 'tms-1', firstSeenMs: 900, lastSeenMs: 1_500, packets: 2, bytes: 200, gwlbEndpointId: 'vpce-9' });
    expect(await o.get('10.0.0.1', 5)).toMatchObject({ first_seen: 900, last_seen: 2_000, packets: 5, bytes: 500, session_id: 'tms-1', gwlb_endpoint_id: 'vpce-9', node: 'node-b' });
    expect((await o.flowing({ vni: 5, sinceMs: 1_999, limit: 5 })).length).toBe(1);
    expect((await o.flowing({ vni: 5, sinceMs: 2_001, limit: 5 })).length).toBe(0);
    expect((await o.flowing({ vni: 5, sinceMs: 0, unattributedOnly: true, limit: 5 })).length).toBe(0);
    expect(await o.byVni()).toEqual([{ vni: 5, packets: 5, bytes: 500 }]);
  });

  it('findings: created once, repeats add counts and widen times, lists page newest first', async () => {
    const f = ctx.store.findings;
    expect(await f.create(finding('f_a'))).toBe(true);
    expect(await f.create(finding('f_a'))).toBe(false);
    await ctx.store.tx(async (q) => {
      const cur = (await f.lock('f_a', q))!;
      await f.repeat({ ...cur, last_seen: 5_000, first_seen: 500, summary: 'again' }, 3, q);
    });
    expect(await f.get('f_a')).toMatchObject({ count: 4, first_seen: 500, last_seen: 5_000, summary: 'again' });
    await f.create(finding('f_b', { last_seen: 7_000, kind: 'rogue_session', severity: 'critical' }));
    await f.create(finding('f_c', { last_seen: 7_000, status: 'resolved' }));
    const page1 = await f.list({ limit: 2 });
    expect(page1.map((r) => r.id)).toEqual(['f_c', 'f_b', 'f_a']);
    expect((await f.list({ limit: 2, after: { lastSeen: 7_000, id: 'f_b' } })).map((r) => r.id)).toEqual(['f_a']);
    expect((await f.list({ limit: 9, kinds: ['rogue_session'] })).map((r) => r.id)).toEqual(['f_b']);
    expect((await f.list({ limit: 9, status: 'open', severities: ['high'] })).map((r) => r.id)).toEqual(['f_a']);
    expect((await f.open(['unauthorized_vni'], { vni: 77 })).map((r) => r.id)).toEqual(['f_a']);
    await f.setResolved('f_a', '{"resolution":{}}', 9);
    await f.setCorrelated('f_b', '{"control":[]}', 9);
    await f.setEvidence('f_b', '{"x":1}', 9);
    expect(await f.get('f_b')).toMatchObject({ correlated: '{"control":[]}', evidence: '{"x":1}' });
    expect(await f.counts()).toEqual([
      { kind: 'rogue_session', severity: 'critical', status: 'open', findings: 1, occurrences: 1 },
      { kind: 'unauthorized_vni', severity: 'high', status: 'resolved', findings: 2, occurrences: 5 },
    ]);
  });

  it('outbox: a claim leases rows to one node; an expired lease lets another node take over', async () => {
    const a = ctx.store.outbox;
    for (let i = 0; i < 3; i++) {
      await a.insert({ msgId: `msg_${i}`, endpoint: 'hook', eventType: 'finding.created', findingId: 'f_a', payload: `{"n":${i}}`, createdAt: 100, nextAttemptAt: 100 });
    }
    const b = (await ctx.open()).outbox;
    const mine = await a.claim('hook', 200, 10_000, 2);
    expect(mine.map((r) => r.msg_id)).toEqual(['msg_0', 'msg_1']);
    expect(mine.every((r) => r.attempts === 1)).toBe(true);
    const theirs = await b.claim('hook', 200, 15_000, 5);
    expect(theirs.map((r) => r.msg_id)).toEqual(['msg_2']);
    expect(await b.claim('hook', 9_999, 20_000, 5)).toEqual([]);
    expect(await a.claim('hook', 9_999, 20_000, 5)).toEqual([]);
    // node-a dies holding msg_0 and msg_1; after the lease node-b takes them over.
    const takeover = await b.claim('hook', 10_000, 30_000, 5);
    expect(takeover.map((r) => [r.msg_id, r.attempts])).toEqual([
      ['msg_0', 2],
      ['msg_1', 2],
    ]);
    await b.delivered(takeover[0]!.id, 10_050, 204);
    await b.retryAt(takeover[1]!.id, 50_000, 503, 'busy');
    await b.fail(theirs[0]!.id, 400, 'bad request');
    const rows = await a.list({ limit: 10 });
    expect(rows.map((r) => [r.msg_id, r.state, r.lease_owner ?? null])).toEqual([
      ['msg_2', 'failed', null],
      ['msg_1', 'pending', null],
      ['msg_0', 'delivered', null],
    ]);
    expect(await a.nextDue('hook')).toBe(50_000);
    expect(await a.countsByEndpoint()).toEqual([
      { endpoint: 'hook', state: 'delivered', n: 1 },
      { endpoint: 'hook', state: 'failed', n: 1 },
      { endpoint: 'hook', state: 'pending', n: 1 },
    ]);
    expect(await a.resume('hook', 20_000)).toBe(1);
    expect(await a.disable('hook', 'gone (410)', 30_000)).toBe(1);
    expect((await a.disabledEndpoints()).map((r) => [r.name, r.reason])).toEqual([['hook', 'gone (410)']]);
    expect(await a.enable('hook', { requeue: true, now: 40_000 })).toBe(2);
    expect(await a.disabledEndpoints()).toEqual([]);
    expect(await a.prune(1_000_000)).toBe(1);
    const newest = await a.newest('f_a', 'hook');
    expect(newest?.event_type).toBe('finding.created');
    await a.insert({ msgId: 'msg_u', endpoint: 'hook', eventType: 'finding.updated', findingId: 'f_a', payload: '{}', createdAt: 1, nextAttemptAt: 1 });
    const u = (await a.newest('f_a', 'hook'))!;
    expect(await a.coalesce(u.id, '{"v":2}')).toBe(true);
    expect(await a.supersede('f_a', 'hook')).toBe(1);
  });

  it('audit log: written, completed, listed newest first with the node', async () => {
    const au = ctx.store.audit;
    const id = await au.write({ at: 5, actor: 'ann', role: 'auditor', remoteIp: '127.0.0.1', action: 'capture.download', target: 'capture:1', status: 200, bytes: null, sha256: null, detail: '{"complete":false}' });
    await au.finish(id, { status: 200, bytes: 24, sha256: 'cd'.repeat(32), detail: '{"complete":true}' });
    const id2 = await au.write({ at: 6, actor: 'bob', role: 'admin', remoteIp: null, action: 'manifest.reload', target: 'm.yaml', status: 200, bytes: null, sha256: null, detail: null });
    expect(await au.get(id)).toMatchObject({ bytes: 24, sha256: 'cd'.repeat(32), detail: '{"complete":true}', node: 'node-a' });
    expect((await au.list({ limit: 10 })).map((r) => r.id)).toEqual([id2, id]);
    expect((await au.list({ limit: 10, actor: 'ann', sinceMs: 5, untilMs: 6 })).map((r) => r.id)).toEqual([id]);
  });

  it('control events: idempotent on the event id; history queries', async () => {
    const ce = ctx.store.controlEvents;
    const ev = { event_id: 'e1', event_name: 'CreateTrafficMirrorSession', event_time: 1_000, actor_arn: 'arn:aws:iam::1:user/x', source_ip: '1.2.3.4', session_id: 'tms-9', eni: 'eni-1', vni: 42, target_id: null, filter_id: null, error_code: null, record: '{}' };
    expect(await ce.record(ev)).toBe(true);
    expect(await ce.record(ev)).toBe(false);
    await ce.record({ ...ev, event_id: 'e2', event_name: 'DeleteTrafficMirrorSession', event_time: 2_000, vni: null });
    expect((await ce.sessionChanges('tms-9', 5)).map((r) => r.event_id)).toEqual(['e1']);
    expect((await ce.changesOn(42, null, 5_000)).map((r) => r.event_id)).toEqual(['e1']);
    expect((await ce.history('tms-9', 5_000)).map((r) => r.event_id)).toEqual(['e1', 'e2']);
    expect(await ce.lastVni('tms-9')).toBe(42);
    expect(await ce.lastVni('tms-0')).toBeUndefined();
  });

  it('a transaction that throws writes nothing', async () => {
    await expect(
      ctx.store.tx(async (q) => {
        await ctx.store.findings.create(finding('f_x'), q);
        throw new Error('boom');
      }),
    ).rejects.toThrow('boom');
    expect(await ctx.store.findings.get('f_x')).toBeUndefined();
  });

  it('two nodes raising the same finding at the same moment: one creates it, the counts add up', async () => {
    // SQLite is one node's store: its second "node" is the same store (one connection, one writer).
    const b = ctx.engine === 'postgres' ? await ctx.open() : ctx.store;
    const raise = (s: typeof b) =>
      s.tx(async (q) => {
        if (await s.findings.create(finding('f_same'), q)) return true;
        const cur = (await s.findings.lock('f_same', q))!;
        await s.findings.repeat({ ...cur, last_seen: 2_000 }, 1, q);
        return false;
      });
    const created = await Promise.all(Array.from({ length: 20 }, (_, i) => raise(i % 2 ? b : ctx.store)));
    expect(created.filter(Boolean).length).toBe(1);
    expect(await ctx.store.findings.get('f_same')).toMatchObject({ count: 20, last_seen: 2_000 });
  });
});
