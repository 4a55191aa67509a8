/**
 * Delivers the outbox. The outbox table is the queue: nothing waits in memory but the requests in
 * flight, so a restart (or a crash) resumes from the database.
 *
 * - Each endpoint has its own slots (maxConcurrency) and its own query for due rows, so a slow or
 *   hanging endpoint fills only its own slots; every request has a timeout. None of this runs on the
 *   packet path: the only synchronous work is a few indexed SQLite statements per attempt.
 * - A row is claimed before it is sent by bumping `attempts` and moving `next_attempt_at` past the
 *   request's timeout (a lease), and marked delivered only after a 2xx. Delivery is at-least-once: a
 *   crash between the 2xx and the UPDATE resends the row under the same webhook-id, which the receiver
 *   dedupes. A row marked delivered is never selected again.
 * - Transient failures (timeout, connection error, 408, 429, 5xx) are retried with exponential backoff
 *   and jitter (backoff.ts), at least the receiver's Retry-After, and also hold the whole endpoint for
 *   that long, so an endpoint that is down gets probed rather than hammered by every pending row.
 *   After a failed attempt on a row older than maxAgeSeconds, the row is `failed`.
 * - 410 Gone disables the endpoint (webhook_endpoints.disabled_at) and fails its pending rows, with a
 *   loud log; another 3xx/4xx fails the row without retry.
 * - On start, rows that were already tried are due at once: a restart should not wait out a backoff
 *   computed before it. Deferred updates keep their rate-limited time.
 */
import type { Logger } from '../util/log.js';
import { RateLimiter, silentLogger } from '../util/log.js';
import type { Db } from '../store/db.js';
import { retryDelayMs } from './backoff.js';
import { ALERTING_DEFAULTS, RETRY_DEFAULTS, type ResolvedWebhook, type RetryPolicy } from './config.js';
import { disableEndpoint, outboxCounts, type OutboxRow } from './outbox.js';
import { sendWebhook, type SendResult } from './send.js';

/** Counter names as listed in docs/counters.md. */
export interface DispatcherCounters {
  'alert.delivery.attempts': number;
  'alert.delivery.delivered': number;
  'alert.delivery.retried': number;
  'alert.delivery.gave_up': number;
  'alert.delivery.rejected': number;
  'alert.delivery.gone': number;
  'alert.delivery.interrupted': number;
  'alert.delivery.timeouts': number;
}

export interface EndpointStats {
  format: string;
  /** False for rows left by an endpoint no longer in the config: they wait, undelivered. */
  configured: boolean;
  disabled: boolean;
  disabledReason?: string;
  pending: number;
  delivered: number;
  failed: number;
  inFlight: number;
  attempts: number;
  consecutiveFailures: number;
  lastStatus?: number;
  lastError?: string;
  lastDeliveredAt?: string;
}

export interface DispatcherStats {
  pending: number;
  delivered: number;
  failed: number;
  inFlight: number;
  attempts: number;
  counters: DispatcherCounters;
  byEndpoint: Record<string, EndpointStats>;
}

export interface DispatcherOptions {
  db: Db;
  webhooks: readonly ResolvedWebhook[];
  retry?: Partial<RetryPolicy>;
  /** Look at the outbox at least this often (rows written by another process). */
  pollIntervalMs?: number;
  /** stop() waits this long for requests in flight, then aborts them. */
  stopGraceMs?: number;
  log?: Logger;
  now?: () => number;
  /** [0, 1), for the jitter. */
  random?: () => number;
}

interface Endpoint {
  hook: ResolvedWebhook;
  inFlight: Map<number, Promise<void>>;
  disabled: boolean;
  disabledReason?: string;
  /** No new attempt starts before this (ms since the epoch): the endpoint is backing off. */
  holdUntil: number;
  consecutiveFailures: number;
  attempts: number;
  lastStatus?: number;
  lastError?: string;
  lastDeliveredAt?: number;
}

type Due = Pick<OutboxRow, 'id' | 'msg_id' | 'payload' | 'created_at' | 'attempts'>;

/** The host of a URL only: Slack and other webhook URLs carry their credential in the path. */
export function redactUrl(url: string): string {
  try {
    return `${new URL(url).origin}/…`;
  } catch {
    return '(invalid URL)';
  }
}

export class WebhookDispatcher {
  readonly counters: DispatcherCounters = {
    'alert.delivery.attempts': 0,
    'alert.delivery.delivered': 0,
    'alert.delivery.retried': 0,
    'alert.delivery.gave_up': 0,
    'alert.delivery.rejected': 0,
    'alert.delivery.gone': 0,
    'alert.delivery.interrupted': 0,
    'alert.delivery.timeouts': 0,
  };

  private readonly db: Db;
  private readonly endpoints = new Map<string, Endpoint>();
  private readonly retry: RetryPolicy;
  private readonly pollIntervalMs: number;
  private readonly stopGraceMs: number;
  private readonly log: Logger;
  private readonly now: () => number;
  private readonly random: () => number;
  private readonly limiter = new RateLimiter(60_000);
  private running = false;
  private timer: NodeJS.Timeout | undefined;
  private immediate: NodeJS.Immediate | undefined;
  private abort = new AbortController();

  private readonly dueStmt;
  private readonly claimStmt;
  private readonly deliveredStmt;
  private readonly retryStmt;
  private readonly failStmt;
  private readonly nextDueStmt;
  private readonly resumeStmt;
  private readonly disabledStmt;

  constructor(opts: DispatcherOptions) {
    this.db = opts.db;
    this.retry = { ...RETRY_DEFAULTS, ...opts.retry };
    this.pollIntervalMs = opts.pollIntervalMs ?? ALERTING_DEFAULTS.pollIntervalMs;
    this.stopGraceMs = opts.stopGraceMs ?? ALERTING_DEFAULTS.stopGraceMs;
    this.log = (opts.log ?? silentLogger()).child({ component: 'alerts' });
    this.now = opts.now ?? Date.now;
    this.random = opts.random ?? Math.random;
    for (const hook of opts.webhooks) {
      this.endpoints.set(hook.name, { hook, inFlight: new Map(), disabled: false, holdUntil: 0, consecutiveFailures: 0, attempts: 0 });
    }

    this.dueStmt = this.db.prepare<[string, number, number], Due>(
      `SELECT id, msg_id, payload, created_at, attempts FROM outbox
        WHERE state = 'pending' AND endpoint = ? AND next_attempt_at <= ?
        ORDER BY next_attempt_at, id LIMIT ?`,
    );
    this.claimStmt = this.db.prepare<[number, number]>(`UPDATE outbox SET attempts = attempts + 1, next_attempt_at = ? WHERE id = ? AND state = 'pending'`);
    // A 2xx is the truth even if the row was failed meanwhile (its endpoint disabled by a 410 on a sibling).
    this.deliveredStmt = this.db.prepare<[number, number, number]>(
      `UPDATE outbox SET state = 'delivered', delivered_at = ?, last_status = ?, last_error = NULL WHERE id = ? AND state != 'delivered'`,
    );
    this.retryStmt = this.db.prepare<[number, number | null, string | null, number]>(
      `UPDATE outbox SET next_attempt_at = ?, last_status = ?, last_error = ? WHERE id = ? AND state = 'pending'`,
    );
    this.failStmt = this.db.prepare<[number | null, string | null, number]>(`UPDATE outbox SET state = 'failed', last_status = ?, last_error = ? WHERE id = ? AND state = 'pending'`);
    this.nextDueStmt = this.db.prepare<[string], { due: number | null }>(`SELECT MIN(next_attempt_at) AS due FROM outbox WHERE endpoint = ? AND state = 'pending'`);
    this.disabledStmt = this.db.prepare<[], { name: string; reason: string | null }>('SELECT name, reason FROM webhook_endpoints WHERE disabled_at IS NOT NULL');
    this.resumeStmt = this.db.prepare<[number, string, number]>(
      `UPDATE outbox SET next_attempt_at = ? WHERE state = 'pending' AND endpoint = ? AND attempts > 0 AND next_attempt_at > ?`,
    );
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.abort = new AbortController();
    const now = this.now();
    const disabled = this.disabledStmt.all();
    for (const [name, ep] of this.endpoints) {
      const d = disabled.find((r) => r.name === name);
      ep.disabled = d !== undefined;
      if (d !== undefined) {
        ep.disabledReason = d.reason ?? 'disabled';
        this.log.error({ endpoint: name, reason: ep.disabledReason }, `webhook '${name}' is DISABLED and receives no alerts; re-enable with 'mirrorguard alerts enable ${name}'`);
      } else delete ep.disabledReason;
      ep.holdUntil = 0;
      ep.consecutiveFailures = 0;
      this.resumeStmt.run(now, name, now);
    }
    for (const [name, c] of Object.entries(outboxCounts(this.db).byEndpoint)) {
      if (!this.endpoints.has(name) && c.pending > 0) {
        this.log.warn({ endpoint: name, pending: c.pending }, `${c.pending} alert(s) wait for webhook '${name}', which is no longer configured`);
      }
    }
    this.pump();
  }

  /** `alerts enable` (another process) may have re-enabled an endpoint; pick that up on the poll. */
  private refreshDisabled(): void {
    const disabled = new Set(this.disabledStmt.all().map((r) => r.name));
    for (const [name, ep] of this.endpoints) {
      if (ep.disabled && !disabled.has(name)) {
        ep.disabled = false;
        delete ep.disabledReason;
        ep.holdUntil = 0;
        ep.consecutiveFailures = 0;
        this.log.info({ endpoint: name }, `webhook '${name}' was re-enabled`);
      }
    }
  }

  /** Something was enqueued (or changed): look at the outbox soon, outside the caller's transaction. */
  notify(): void {
    if (!this.running || this.immediate !== undefined) return;
    this.immediate = setImmediate(() => {
      this.immediate = undefined;
      this.pump();
    });
  }

  /**
   * Stop starting attempts; wait up to `graceMs` for those in flight, then abort the rest (they stay
   * pending, due at the next start). Resolves when nothing touches the database any more.
   */
  async stop(graceMs: number = this.stopGraceMs): Promise<void> {
    this.running = false;
    if (this.timer !== undefined) clearTimeout(this.timer);
    if (this.immediate !== undefined) clearImmediate(this.immediate);
    this.timer = undefined;
    this.immediate = undefined;
    const inFlight = (): Promise<void>[] => [...this.endpoints.values()].flatMap((ep) => [...ep.inFlight.values()]);
    let pending = inFlight();
    if (pending.length === 0) return;
    let graceTimer: NodeJS.Timeout | undefined;
    const grace = new Promise<void>((resolve) => {
      graceTimer = setTimeout(resolve, graceMs);
    });
    await Promise.race([Promise.allSettled(pending), grace]);
    clearTimeout(graceTimer);
    pending = inFlight();
    if (pending.length > 0) {
      this.abort.abort();
      await Promise.allSettled(pending);
    }
  }

  get isRunning(): boolean {
    return this.running;
  }

  stats(): DispatcherStats {
    const counts = outboxCounts(this.db);
    const byEndpoint: Record<string, EndpointStats> = {};
    let inFlight = 0;
    let attempts = 0;
    for (const [name, ep] of this.endpoints) {
      const c = counts.byEndpoint[name] ?? { pending: 0, delivered: 0, failed: 0 };
      inFlight += ep.inFlight.size;
      attempts += ep.attempts;
      byEndpoint[name] = {
        format: ep.hook.format,
        configured: true,
        disabled: ep.disabled,
        ...(ep.disabledReason !== undefined ? { disabledReason: ep.disabledReason } : {}),
        ...c,
        inFlight: ep.inFlight.size,
        attempts: ep.attempts,
        consecutiveFailures: ep.consecutiveFailures,
        ...(ep.lastStatus !== undefined ? { lastStatus: ep.lastStatus } : {}),
        ...(ep.lastError !== undefined ? { lastError: ep.lastError } : {}),
        ...(ep.lastDeliveredAt !== undefined ? { lastDeliveredAt: new Date(ep.lastDeliveredAt).toISOString() } : {}),
      };
    }
    for (const [name, c] of Object.entries(counts.byEndpoint)) {
      if (!this.endpoints.has(name)) byEndpoint[name] = { format: 'unknown', configured: false, disabled: false, ...c, inFlight: 0, attempts: 0, consecutiveFailures: 0 };
    }
    return { pending: counts.pending, delivered: counts.delivered, failed: counts.failed, inFlight, attempts, counters: { ...this.counters }, byEndpoint };
  }

  /** Start what is due on every endpoint with a free slot, then plan the next wake-up. */
  private pump(): void {
    if (!this.running) return;
    const now = this.now();
    for (const ep of this.endpoints.values()) {
      if (ep.disabled || ep.holdUntil > now) continue;
      let free = ep.hook.maxConcurrency - ep.inFlight.size;
      if (free <= 0) continue;
      // In-flight rows are leased into the future, so they are not due; the skip below is a backstop.
      for (const row of this.dueStmt.all(ep.hook.name, now, free)) {
        if (ep.inFlight.has(row.id)) continue;
        if (free-- <= 0) break;
        this.launch(ep, row, now);
      }
    }
    this.plan(now);
  }

  private plan(now: number): void {
    if (!this.running) return;
    let wake = now + this.pollIntervalMs;
    for (const ep of this.endpoints.values()) {
      // A full endpoint is pumped again when one of its requests finishes.
      if (ep.disabled || ep.inFlight.size >= ep.hook.maxConcurrency) continue;
      const due = this.nextDueStmt.get(ep.hook.name)?.due;
      if (due !== null && due !== undefined) wake = Math.min(wake, Math.max(due, ep.holdUntil));
    }
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.refreshDisabled();
      this.pump();
    }, Math.max(0, wake - now));
    // The timer alone must not keep a process alive: serve has its sockets, `alerts` its requests.
    this.timer.unref();
  }

  private launch(ep: Endpoint, row: Due, now: number): void {
    // The lease: past the request's timeout, so nothing else picks the row while it is on the wire.
    if (this.claimStmt.run(now + ep.hook.timeoutMs + 1_000, row.id).changes !== 1) return;
    ep.attempts++;
    this.counters['alert.delivery.attempts']++;
    const attempt = row.attempts + 1;
    const p = sendWebhook(ep.hook, row.msg_id, row.payload, { signal: this.abort.signal, now: this.now })
      .then((res) => this.settle(ep, row, attempt, res))
      .catch((e: unknown) => {
        // A database error while recording the outcome: the row stays leased and is retried later.
        this.log.error({ endpoint: ep.hook.name, err: e }, 'cannot record a webhook delivery outcome');
      })
      .finally(() => {
        ep.inFlight.delete(row.id);
        this.pump();
      });
    ep.inFlight.set(row.id, p);
  }

  private settle(ep: Endpoint, row: Due, attempt: number, res: SendResult): void {
    const name = ep.hook.name;
    const now = this.now();
    if (res.status !== undefined) ep.lastStatus = res.status;
    switch (res.outcome) {
      case 'delivered': {
        this.deliveredStmt.run(now, res.status ?? 200, row.id);
        this.counters['alert.delivery.delivered']++;
        if (ep.consecutiveFailures > 0) {
          this.log.info({ endpoint: name, failures: ep.consecutiveFailures }, `webhook '${name}' is answering again after ${ep.consecutiveFailures} failed attempt(s)`);
        }
        ep.consecutiveFailures = 0;
        ep.holdUntil = 0;
        ep.lastDeliveredAt = now;
        delete ep.lastError;
        return;
      }
      case 'interrupted': {
        // Unknown outcome: pending, due at the next start, under the same webhook-id.
        this.retryStmt.run(now, null, res.error ?? 'interrupted', row.id);
        this.counters['alert.delivery.interrupted']++;
        return;
      }
      case 'gone': {
        const reason = `HTTP 410 Gone from ${redactUrl(ep.hook.url)} at ${new Date(now).toISOString()}`;
        this.failStmt.run(res.status ?? 410, res.error ?? 'HTTP 410', row.id);
        const failed = disableEndpoint(this.db, name, reason, now);
        ep.disabled = true;
        ep.disabledReason = reason;
        ep.lastError = res.error ?? 'HTTP 410';
        this.counters['alert.delivery.gone']++;
        this.log.error(
          { endpoint: name, url: redactUrl(ep.hook.url), failedPending: failed, msgId: row.msg_id },
          `WEBHOOK '${name}' DISABLED: the receiver answered 410 Gone, so it gets no more alerts (${failed} pending alert(s) failed). Fix the receiver, then run 'mirrorguard alerts enable ${name} --requeue'.`,
        );
        return;
      }
      case 'rejected': {
        this.failStmt.run(res.status ?? null, res.error ?? null, row.id);
        this.counters['alert.delivery.rejected']++;
        ep.lastError = res.error ?? 'rejected';
        const n = this.limiter.allow(`rejected:${name}`, now);
        if (n >= 0) {
          this.log.error(
            { endpoint: name, status: res.status, error: res.error, msgId: row.msg_id, suppressed: n },
            `webhook '${name}' rejected an alert (${res.error}); not retrying`,
          );
        }
        return;
      }
      case 'retry': {
        ep.lastError = res.error ?? 'failed';
        ep.consecutiveFailures++;
        if (res.error?.startsWith('timed out')) this.counters['alert.delivery.timeouts']++;
        const deadline = row.created_at + ep.hook.maxAgeSeconds * 1000;
        if (now >= deadline) {
          const msg = `gave up after ${attempt} attempt(s) over ${Math.round((now - row.created_at) / 1000)} s: ${res.error}`;
          this.failStmt.run(res.status ?? null, msg, row.id);
          this.counters['alert.delivery.gave_up']++;
          const n = this.limiter.allow(`gave-up:${name}`, now);
          if (n >= 0) this.log.error({ endpoint: name, msgId: row.msg_id, attempts: attempt, error: res.error, suppressed: n }, `webhook '${name}': alert undelivered, ${msg}`);
          return;
        }
        let delay = retryDelayMs(attempt, this.retry, this.random);
        if (res.retryAfterMs !== undefined) delay = Math.max(delay, Math.min(res.retryAfterMs, this.retry.retryAfterMaxMs));
        const next = Math.min(now + delay, deadline);
        this.retryStmt.run(next, res.status ?? null, res.error ?? null, row.id);
        this.counters['alert.delivery.retried']++;
        // Hold the endpoint too, by its own run of failures: while a receiver is down it gets one probe
        // per backoff step (up to maxConcurrency at once), not one per pending row.
        let hold = retryDelayMs(ep.consecutiveFailures, this.retry, this.random);
        if (res.retryAfterMs !== undefined) hold = Math.max(hold, Math.min(res.retryAfterMs, this.retry.retryAfterMaxMs));
        ep.holdUntil = Math.max(ep.holdUntil, now + hold);
        const n = this.limiter.allow(`retry:${name}`, now);
        if (n >= 0) {
          this.log.warn(
            { endpoint: name, status: res.status, error: res.error, attempt, retryInMs: next - now, msgId: row.msg_id, suppressed: n },
            `webhook '${name}' delivery failed (${res.error}); retrying`,
          );
        }
        return;
      }
    }
  }
}
