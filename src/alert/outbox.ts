/**
 * The durable webhook outbox (table `outbox`, src/store/outbox.ts). `onFindingEvent` is called by the
 * findings (src/detect/findings.ts) inside the transaction that writes the finding, so a finding and its alerts are
 * committed together or not at all; the dispatcher delivers them afterwards, across restarts.
 *
 * One row per (event, endpoint). Decisions:
 * - The body is rendered here, once, in the endpoint's format: the stored payload is exactly the body
 *   that is signed and sent on every attempt, and what the API shows. Only the Standard Webhooks
 *   headers change per attempt (webhook-timestamp is the attempt's time; webhook-id is msg_id, the
 *   same on every attempt: the receiver's idempotency key).
 * - `created_at` is when the alert became due: the event time for most rows, the end of the rate
 *   window for a deferred update. The give-up age (maxAgeSeconds) counts from it.
 * - A row whose `attempts` is 0 has never been on the wire (the dispatcher claims a row by bumping
 *   `attempts` before it sends), so it may still be rewritten or dropped without a receiver ever
 *   seeing two bodies under one webhook-id.
 *
 * Repeats do not flood (docs/alerts.md "Repeats"): `finding.created` and `finding.resolved` always
 * go out; `finding.updated` goes out at most once per updateIntervalSeconds per finding and endpoint.
 * An update inside the window becomes one deferred row due at the window's end, and later updates
 * overwrite that row's body, so the latest state is what arrives. A resolution drops deferred updates
 * it supersedes. An escalation (higher severity) is not held back.
 */
import { randomBytes } from 'node:crypto';
import type { FindingEvent } from '../detect/finding.js';
import { severityRank } from '../detect/finding.js';
import type { Db } from '../store/db.js';
import { storeFromDb } from '../store/store.js';
import type { Sql } from '../store/engine.js';
import type { OutboxRepo, OutboxRow, OutboxState } from '../store/outbox.js';
import { ALERTING_DEFAULTS, type ResolvedWebhook } from './config.js';
import { renderSlack } from './format-slack.js';
import { renderStandard } from './format-standard.js';
import type { RenderContext } from './links.js';

export type { OutboxRow, OutboxState };

const CROCKFORD = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';

/**
 * `msg_` + a ULID-like id: 48 bits of milliseconds then 80 random bits, Crockford base32, so ids sort
 * by creation time and contain no `.` (Standard Webhooks "Signature scheme": the signed content is
 * `id.timestamp.body`).
 */
export function newMsgId(now: number = Date.now()): string {
  let t = Math.max(0, Math.floor(now));
  const out: string[] = new Array<string>(26);
  for (let i = 9; i >= 0; i--) {
    out[i] = CROCKFORD[t % 32]!;
    t = Math.floor(t / 32);
  }
  const r = randomBytes(10);
  // 80 bits as 16 groups of 5.
  let acc = 0n;
  for (const b of r) acc = (acc << 8n) | BigInt(b);
  for (let i = 25; i >= 10; i--) {
    out[i] = CROCKFORD[Number(acc & 31n)]!;
    acc >>= 5n;
  }
  return `msg_${out.join('')}`;
}

export function renderFor(hook: Pick<ResolvedWebhook, 'format'>, e: FindingEvent, ctx: RenderContext): string {
  return hook.format === 'slack' ? renderSlack(e, ctx) : renderStandard(e, ctx);
}

/** Does this endpoint want this finding (minimum severity, kind include list)? */
export function wants(hook: Pick<ResolvedWebhook, 'minSeverity' | 'kinds'>, e: FindingEvent): boolean {
  if (severityRank(e.finding.severity) < severityRank(hook.minSeverity)) return false;
  if (hook.kinds !== undefined && !hook.kinds.includes(e.finding.kind)) return false;
  return true;
}

/** Counter names as listed in docs/counters.md. */
export interface OutboxCounters {
  'alert.outbox.enqueued': number;
  'alert.outbox.deferred': number;
  'alert.outbox.coalesced': number;
  'alert.outbox.superseded': number;
  'alert.outbox.filtered': number;
  'alert.outbox.skipped_disabled': number;
}

export interface AlertOutboxOptions {
  /** The store's outbox repository (either engine). */
  repo?: OutboxRepo;
  /** Or a better-sqlite3 connection (tests, the `alerts` CLI), wrapped in a store. */
  db?: Db;
  webhooks: readonly ResolvedWebhook[];
  /** For PCAP links in the bodies. */
  alerting?: { publicBaseUrl?: string; pcapMarginSeconds?: number };
  now?: () => number;
  /**
   * Called after rows were written, once the current transaction is over (setImmediate), so that the
   * dispatcher never sees a row that may still be rolled back. Usually `() => dispatcher.notify()`.
   */
  onEnqueue?: () => void;
}


export class AlertOutbox {
  readonly counters: OutboxCounters = {
    'alert.outbox.enqueued': 0,
    'alert.outbox.deferred': 0,
    'alert.outbox.coalesced': 0,
    'alert.outbox.superseded': 0,
    'alert.outbox.filtered': 0,
    'alert.outbox.skipped_disabled': 0,
  };
  onEnqueue: (() => void) | undefined;

  private readonly repo: OutboxRepo;
  private readonly hooks: readonly ResolvedWebhook[];
  private readonly ctx: RenderContext;
  private readonly now: () => number;
  private wakePending = false;

  constructor(opts: AlertOutboxOptions) {
    this.repo = opts.repo ?? storeFromDb(opts.db!).outbox;
    this.hooks = opts.webhooks;
    this.now = opts.now ?? Date.now;
    this.onEnqueue = opts.onEnqueue;
    this.ctx = {
      ...(opts.alerting?.publicBaseUrl !== undefined ? { publicBaseUrl: opts.alerting.publicBaseUrl } : {}),
      pcapMarginSeconds: opts.alerting?.pcapMarginSeconds ?? ALERTING_DEFAULTS.pcapMarginSeconds,
    };
  }

  /**
   * The findings' onChange hook, in the finding's transaction `q` (either engine): the rows commit
   * with the finding or not at all, so only the node whose INSERT created a finding writes its
   * `finding.created` rows. Without `q`, in a transaction of its own. Throws only on a store error,
   * which rolls the finding back.
   */
  readonly onFindingEvent = async (e: FindingEvent, q?: Sql): Promise<void> => {
    if (this.hooks.length === 0) return;
    if (q === undefined) return this.repo.inTx((t) => this.onFindingEvent(e, t));
    const repo = this.repo;
    const disabled = new Set((await repo.disabledEndpoints(q)).filter((r) => r.disabled_at !== null).map((r) => r.name));
    const now = this.now();
    let wrote = false;
    for (const hook of this.hooks) {
      if (!wants(hook, e)) {
        this.counters['alert.outbox.filtered']++;
        continue;
      }
      if (disabled.has(hook.name)) {
        this.counters['alert.outbox.skipped_disabled']++;
        continue;
      }
      const payload = renderFor(hook, e, this.ctx);
      const fid = e.finding.id;
      if (e.type === 'finding.updated' && e.reason !== 'escalated') {
        const last = await repo.newest(fid, hook.name, q);
        if (last !== undefined && last.event_type === 'finding.updated' && last.state === 'pending' && last.attempts === 0) {
          if (await repo.coalesce(last.id, payload, q)) {
            this.counters['alert.outbox.coalesced']++;
            continue;
          }
        }
        const due = last === undefined ? now : Math.max(now, last.created_at + hook.updateIntervalSeconds * 1000);
        await repo.insert({ msgId: newMsgId(now), endpoint: hook.name, eventType: e.type, findingId: fid, payload, createdAt: due, nextAttemptAt: due }, q);
        this.counters[due > now ? 'alert.outbox.deferred' : 'alert.outbox.enqueued']++;
        wrote = true;
        continue;
      }
      if (e.type === 'finding.resolved' || e.type === 'finding.updated') {
        this.counters['alert.outbox.superseded'] += await repo.supersede(fid, hook.name, q);
      }
      await repo.insert({ msgId: newMsgId(now), endpoint: hook.name, eventType: e.type, findingId: fid, payload, createdAt: now, nextAttemptAt: now }, q);
      this.counters['alert.outbox.enqueued']++;
      wrote = true;
    }
    if (wrote) this.wake();
  };

  private wake(): void {
    if (this.wakePending || this.onEnqueue === undefined) return;
    this.wakePending = true;
    setImmediate(() => {
      this.wakePending = false;
      this.onEnqueue?.();
    });
  }
}

// --- queries for the API, the CLI and metrics ------------------------------------------------------

export interface DeliveryView {
  id: number;
  msgId: string;
  endpoint: string;
  type: string;
  findingId: string | null;
  state: OutboxState;
  attempts: number;
  createdAt: string;
  nextAttemptAt: string | null;
  deliveredAt: string | null;
  lastStatus: number | null;
  lastError: string | null;
}

function view(r: OutboxRow): DeliveryView {
  return {
    id: r.id,
    msgId: r.msg_id,
    endpoint: r.endpoint,
    type: r.event_type,
    findingId: r.finding_id,
    state: r.state,
    attempts: r.attempts,
    createdAt: new Date(r.created_at).toISOString(),
    nextAttemptAt: r.state === 'pending' ? new Date(r.next_attempt_at).toISOString() : null,
    deliveredAt: r.delivered_at === null ? null : new Date(r.delivered_at).toISOString(),
    lastStatus: r.last_status,
    lastError: r.last_error,
  };
}

/** Deliveries, newest first, for `GET /v1/alerts` and `mirrorguard alerts status`. */
export async function listDeliveries(repo: OutboxRepo, q: { state?: OutboxState; endpoint?: string; findingId?: string; limit?: number } = {}): Promise<DeliveryView[]> {
  const limit = Math.min(Math.max(1, q.limit ?? 100), 1000);
  return (await repo.list({ ...q, limit })).map(view);
}

export interface EndpointRecord {
  name: string;
  disabledAt: string | null;
  reason: string | null;
}

export async function listDisabledEndpoints(repo: OutboxRepo): Promise<EndpointRecord[]> {
  return (await repo.disabledEndpoints()).map((r) => ({ name: r.name, disabledAt: r.disabled_at === null ? null : new Date(r.disabled_at).toISOString(), reason: r.reason }));
}

/** Mark an endpoint disabled (a 410 from it, or an operator). Its pending rows fail with `reason`. */
export function disableEndpoint(repo: OutboxRepo, name: string, reason: string, now: number = Date.now()): Promise<number> {
  return repo.disable(name, reason, now);
}

/**
 * Re-enable an endpoint a 410 disabled. With `requeue`, the deliveries that failed because of it (or
 * any failed ones since `sinceMs`) are pending again under their original webhook-id, so a receiver
 * that did get one dedupes it. Returns how many were requeued. A running dispatcher picks the change
 * up on its next poll.
 */
export function enableEndpoint(repo: OutboxRepo, name: string, opts: { requeue?: boolean; sinceMs?: number; now?: number } = {}): Promise<number> {
  return repo.enable(name, { ...(opts.requeue !== undefined ? { requeue: opts.requeue } : {}), ...(opts.sinceMs !== undefined ? { sinceMs: opts.sinceMs } : {}), now: opts.now ?? Date.now() });
}

/**
 * Failed deliveries back to pending (Standard Webhooks "Visibility into failures and manual
 * retries"). Their age restarts now, so they get a fresh maxAgeSeconds.
 */
export function requeueFailed(repo: OutboxRepo, opts: { endpoint?: string; sinceMs?: number; now?: number } = {}): Promise<number> {
  return repo.requeueFailed({ ...(opts.endpoint !== undefined ? { endpoint: opts.endpoint } : {}), ...(opts.sinceMs !== undefined ? { sinceMs: opts.sinceMs } : {}), now: opts.now ?? Date.now() });
}

export interface OutboxCounts {
  pending: number;
  delivered: number;
  failed: number;
  byEndpoint: Record<string, { pending: number; delivered: number; failed: number }>;
}

export async function outboxCounts(repo: OutboxRepo): Promise<OutboxCounts> {
  const out: OutboxCounts = { pending: 0, delivered: 0, failed: 0, byEndpoint: {} };
  for (const r of await repo.countsByEndpoint()) {
    out[r.state] += r.n;
    (out.byEndpoint[r.endpoint] ??= { pending: 0, delivered: 0, failed: 0 })[r.state] += r.n;
  }
  return out;
}

/**
 * Forget finished deliveries (delivered or failed) created before `beforeMs`; pending ones are never
 * pruned. For the retention timer; returns how many rows went.
 */
export function pruneDeliveries(repo: OutboxRepo, beforeMs: number): Promise<number> {
  return repo.prune(beforeMs);
}
