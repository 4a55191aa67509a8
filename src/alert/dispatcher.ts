/**
 * Delivers the outbox. The outbox table is the queue: nothing waits in memory but the requests in
 * flight, so a restart (or a crash) resumes from the database.
 *
 * - Each endpoint has its own slots (maxConcurrency) and its own query for due rows, so a slow or
 *   hanging endpoint fills only its own slots; every request has a timeout. None of this runs on the
 *   packet path.
 * - Rows are claimed before they are sent (src/store/outbox.ts `claim`): one statement bumps
 *   `attempts` and leases the row to this node past the request's timeout (`lease_owner`,
 *   `lease_until`, `next_attempt_at`); on PostgreSQL with `FOR UPDATE SKIP LOCKED`, so of several nodes
 *   sharing the outbox one sends each row, and if it dies another takes the row when the lease ends.
 *   A row is marked delivered only after a 2xx. Delivery is at-least-once: a
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
import type { OutboxRepo } from '../store/outbox.js';
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
  outbox: OutboxRepo;
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

/** A claimed row; `attempts` counts the attempt about to start. */
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

  private readonly outbox: OutboxRepo;
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

  /** The pump in progress (one at a time), and whether another was asked for meanwhile. */
  private pumping: Promise<void> | null = null;
  private pumpAgain = false;

  constructor(opts: DispatcherOptions) {
    this.outbox = opts.outbox;
    this.retry = { ...RETRY_DEFAULTS, ...opts.retry };
    this.pollIntervalMs = opts.pollIntervalMs ?? ALERTING_DEFAULTS.pollIntervalMs;
    this.stopGraceMs = opts.stopGraceMs ?? ALERTING_DEFAULTS.stopGraceMs;
    this.log = (opts.log ?? silentLogger()).child({ component: 'alerts' });
    this.now = opts.now ?? Date.now;
    this.random = opts.random ?? Math.random;
    for (const hook of opts.webhooks) {
      this.endpoints.set(hook.name, { hook, inFlight: new Map(), disabled: false, holdUntil: 0, consecutiveFailures: 0, attempts: 0 });
    }
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.abort = new AbortController();
    this.pumpSoon(() => this.resumeAll());
  }

  private async resumeAll(): Promise<void> {
    const now = this.now();
    const disabled = await this.outbox.disabledEndpoints();
    for (const [name, ep] of this.endpoints) {
      const d = disabled.find((r) => r.name === name);
      ep.disabled = d !== undefined;
      if (d !== undefined) {
        ep.disabledReason = d.reason ?? 'disabled';
        this.log.error({ endpoint: name, reason: ep.disabledReason }, `webhook '${name}' is DISABLED and receives no alerts; re-enable with 'mirrorguard alerts enable ${name}'`);
      } else delete ep.disabledReason;
      ep.holdUntil = 0;
      ep.consecutiveFailures = 0;
      await this.outbox.resume(name, now);
    }
    for (const [name, c] of Object.entries((await outboxCounts(this.outbox)).byEndpoint)) {
      if (!this.endpoints.has(name) && c.pending > 0) {
        this.log.warn({ endpoint: name, pending: c.pending }, `${c.pending} alert(s) wait for webhook '${name}', which is no longer configured`);
      }
    }
  }

  /** Is the endpoint disabled (a 410, or `alerts disable`)? */
  isDisabled(name: string): boolean {
    return this.endpoints.get(name)?.disabled ?? false;
  }

  /** `alerts enable` (another process) may have re-enabled an endpoint; pick that up on the poll. */
  private async refreshDisabled(): Promise<void> {
    const disabled = new Set((await this.outbox.disabledEndpoints()).map((r) => r.name));
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
      this.pumpSoon();
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
    if (this.pumping) await this.pumping;
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

  /** Counts from the outbox (one query) and this process's endpoint state. */
  async stats(): Promise<DispatcherStats> {
    const counts = await outboxCounts(this.outbox);
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

  /**
   * Run a pump (after `before`, if given) unless one is running; then one more if asked for meanwhile.
   * A store error (PostgreSQL away) is logged at a limited rate and retried at the poll interval.
   */
  private pumpSoon(before?: () => Promise<void>): void {
    if (!this.running) return;
    if (this.pumping) {
      this.pumpAgain = true;
      return;
    }
    this.pumping = (async () => {
      try {
        if (before) await before();
        do {
          this.pumpAgain = false;
          await this.pump();
        } while (this.pumpAgain && this.running);
      } catch (e) {
        const now = this.now();
        const n = this.limiter.allow('store', now);
        if (n >= 0) this.log.error({ err: e, suppressed: n }, 'webhook dispatcher: the store does not answer; retrying');
        this.planAt(now + this.pollIntervalMs, now);
      } finally {
        this.pumping = null;
      }
    })();
  }

  /** Start what is due on every endpoint with a free slot, then plan the next wake-up. */
  private async pump(): Promise<void> {
    if (!this.running) return;
    const now = this.now();
    for (const ep of this.endpoints.values()) {
      if (ep.disabled || ep.holdUntil > now) continue;
      const free = ep.hook.maxConcurrency - ep.inFlight.size;
      if (free <= 0) continue;
      // The lease: past the request's timeout, so nothing else picks the row while it is on the wire.
      for (const row of await this.outbox.claim(ep.hook.name, now, now + ep.hook.timeoutMs + 1_000, free)) {
        if (!this.running) break;
        this.launch(ep, row);
      }
    }
    await this.plan(now);
  }

  private async plan(now: number): Promise<void> {
    if (!this.running) return;
    let wake = now + this.pollIntervalMs;
    for (const ep of this.endpoints.values()) {
      // A full endpoint is pumped again when one of its requests finishes.
      if (ep.disabled || ep.inFlight.size >= ep.hook.maxConcurrency) continue;
      const due = await this.outbox.nextDue(ep.hook.name);
      if (due !== null) wake = Math.min(wake, Math.max(due, ep.holdUntil));
    }
    this.planAt(wake, now);
  }

  private planAt(wake: number, now: number): void {
    if (!this.running) return;
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.pumpSoon(() => this.refreshDisabled());
    }, Math.max(0, wake - now));
    // The timer alone must not keep a process alive: serve has its sockets, `alerts` its requests.
    this.timer.unref();
  }

  private launch(ep: Endpoint, row: Due): void {
    ep.attempts++;
    this.counters['alert.delivery.attempts']++;
    const attempt = row.attempts;
    const p = sendWebhook(ep.hook, row.msg_id, row.payload, { signal: this.abort.signal, now: this.now })
      .then((res) => this.settle(ep, row, attempt, res))
      .catch((e: unknown) => {
        // A store error while recording the outcome: the row stays leased and is retried after the lease.
        this.log.error({ endpoint: ep.hook.name, err: e }, 'cannot record a webhook delivery outcome');
      })
      .finally(() => {
        ep.inFlight.delete(row.id);
        this.pumpSoon();
      });
    ep.inFlight.set(row.id, p);
  }

  private async settle(ep: Endpoint, row: Due, attempt: number, res: SendResult): Promise<void> {
    const name = ep.hook.name;
    const now = this.now();
    if (res.status !== undefined) ep.lastStatus = res.status;
    switch (res.outcome) {
      case 'delivered': {
        await this.outbox.delivered(row.id, now, res.status ?? 200);
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
        await this.outbox.retryAt(row.id, now, null, res.error ?? 'interrupted');
        this.counters['alert.delivery.interrupted']++;
        return;
      }
      case 'gone': {
        const reason = `HTTP 410 Gone from ${redactUrl(ep.hook.url)} at ${new Date(now).toISOString()}`;
        await this.outbox.fail(row.id, res.status ?? 410, res.error ?? 'HTTP 410');
        const failed = await disableEndpoint(this.outbox, name, reason, now);
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
        await this.outbox.fail(row.id, res.status ?? null, res.error ?? null);
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
          await this.outbox.fail(row.id, res.status ?? null, msg);
          this.counters['alert.delivery.gave_up']++;
          const n = this.limiter.allow(`gave-up:${name}`, now);
          if (n >= 0) this.log.error({ endpoint: name, msgId: row.msg_id, attempts: attempt, error: res.error, suppressed: n }, `webhook '${name}': alert undelivered, ${msg}`);
          return;
        }
        let delay = retryDelayMs(attempt, this.retry, this.random);
        if (res.retryAfterMs !== undefined) delay = Math.max(delay, Math.min(res.retryAfterMs, this.retry.retryAfterMaxMs));
        const next = Math.min(now + delay, deadline);
        await this.outbox.retryAt(row.id, next, res.status ?? null, res.error ?? null);
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
