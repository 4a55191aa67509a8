/**
 * Findings on the store's repositories (src/detect/findings.ts) with the outbox's enqueue in the same
 * transaction (AlertOutbox.onFindingEvent), on both engines: the rules of the synchronous store,
 * atomicity with the outbox, and one `finding.created` alert fleet-wide when two nodes raise the same
 * incident at the same moment.
 */
import { expect, it } from 'vitest';
import { parseAlertsConfig } from '../../src/alert/config.js';
import { AlertOutbox } from '../../src/alert/outbox.js';
import type { FindingEvent } from '../../src/detect/finding.js';
import { Findings } from '../../src/detect/findings.js';
import { findingId } from '../../src/detect/store.js';
import type { Store } from '../../src/store/store.js';
import { describeEngines } from '../helpers/engines.js';
import { SECRET } from '../alert/helpers.js';
import { input, T0 } from './finding-input.js';

function withOutbox(store: Store): { findings: Findings; outbox: AlertOutbox; events: FindingEvent[] } {
  const { webhooks } = parseAlertsConfig({ webhooks: [{ name: 'pager', url: 'https://a.example/h', secret: SECRET, updateIntervalSeconds: 0 }] });
  const outbox = new AlertOutbox({ repo: store.outbox, webhooks });
  const events: FindingEvent[] = [];
  const findings = new Findings(store, async (e, q) => {
    events.push(e);
    await outbox.onFindingEvent(e, q);
  });
  return { findings, outbox, events };
}

describeEngines('async findings', (ctx) => {
  it('counts repeats under one id, widens first/last seen, and alerts once for the creation', async () => {
    const { findings, events } = withOutbox(ctx.store);
    const a = await findings.record(input());
    expect(a.created).toBe(true);
    expect(a.finding.id).toBe(findingId('unauthorized-vni', '10.0.0.1|42'));
    const b = await findings.record(input({ at: T0 + 5000 }));
    const c = await findings.record(input({ at: T0 - 1000 }));
    expect(b.created).toBe(false);
    expect(c.finding).toMatchObject({ count: 3, firstSeen: new Date(T0 - 1000).toISOString(), lastSeen: new Date(T0 + 5000).toISOString() });
    expect(events.map((e) => e.type)).toEqual(['finding.created']);
    const rows = await ctx.store.outbox.list({ limit: 10 });
    expect(rows.map((r) => [r.event_type, r.finding_id])).toEqual([['finding.created', a.finding.id]]);
  });

  it('correlation, escalation, resolution and a recurrence emit the same events as the synchronous store', async () => {
    const { findings, events } = withOutbox(ctx.store);
    const { finding } = await findings.record(input());
    const ctl = { eventId: 'e1', eventName: 'CreateTrafficMirrorSession', eventTime: new Date(T0).toISOString() };
    await findings.attachCorrelation(finding.id, { control: [ctl] }, T0);
    await findings.attachCorrelation(finding.id, { control: [ctl] }, T0); // nothing new
    await findings.record(input({ kind: 'unauthorized-vni', severity: 'critical' }));
    const acked = await findings.acknowledge(finding.id, T0, 'alice', 'looking');
    expect(acked?.evidence.acknowledgement).toMatchObject({ by: 'alice', note: 'looking' });
    expect((await findings.resolveIfOpen(finding.id, T0 + 1, 'gone'))?.status).toBe('resolved');
    expect(await findings.resolveIfOpen(finding.id, T0 + 2, 'again')).toBeUndefined();
    const again = await findings.record(input({ at: T0 + 10 }));
    expect(again.event).toMatchObject({ type: 'finding.created', reason: 'reopened' });
    expect(again.finding.evidence.acknowledgement).toBeUndefined();
    expect(events.map((e) => e.type)).toEqual(['finding.created', 'finding.updated', 'finding.resolved', 'finding.created']);
    // The resolution superseded the unsent update: the receiver gets the latest state.
    expect((await ctx.store.outbox.list({ limit: 10 })).map((r) => r.event_type).sort()).toEqual(['finding.created', 'finding.created', 'finding.resolved']);
    const page = await findings.list({ status: 'open', kind: ['unauthorized-vni'], limit: 1 });
    expect(page.items.map((f) => f.id)).toEqual([finding.id]);
    expect(await findings.openFindings(['unauthorized-vni'], { vni: 42 })).toHaveLength(1);
    expect(await findings.counts()).toEqual([{ kind: 'unauthorized-vni', severity: 'critical', status: 'open', findings: 1, occurrences: 3 }]);
  });

  it('a failed outbox write rolls the finding back', async () => {
    const { webhooks } = parseAlertsConfig({ webhooks: [{ name: 'pager', url: 'https://a.example/h', secret: SECRET }] });
    const outbox = new AlertOutbox({ repo: ctx.store.outbox, webhooks });
    const findings = new Findings(ctx.store, async (e, q) => {
      await outbox.onFindingEvent(e, q);
      throw new Error('outbox is full');
    });
    await expect(findings.record(input())).rejects.toThrow(/outbox is full/);
    expect(await findings.get(findingId('unauthorized-vni', '10.0.0.1|42'))).toBeUndefined();
    expect(await ctx.store.outbox.list({ limit: 10 })).toEqual([]);
  });

  // A fleet shares PostgreSQL; two SQLite connections in one process would block the event loop on the lock.
  it.skipIf(ctx.engine === 'sqlite')('two nodes raising one incident at the same moment: one row, the count of both, one finding.created row', async () => {
    const other = await ctx.open();
    const a = withOutbox(ctx.store);
    const b = withOutbox(other);
    const raises: Promise<unknown>[] = [];
    for (let i = 0; i < 10; i++) raises.push(a.findings.record(input({ at: T0 + i })), b.findings.record(input({ at: T0 + i })));
    await Promise.all(raises);
    const f = await a.findings.get(findingId('unauthorized-vni', '10.0.0.1|42'));
    expect(f?.count).toBe(20);
    expect([...a.events, ...b.events].filter((e) => e.type === 'finding.created')).toHaveLength(1);
    expect((await ctx.store.outbox.list({ limit: 100 })).map((r) => r.event_type)).toEqual(['finding.created']);
  });
});
