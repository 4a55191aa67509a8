/**
 * The webhook outbox (tables `outbox`, `webhook_endpoints`). What goes in (rendering, rate limits,
 * coalescing) is decided in src/alert/outbox.ts; delivery in src/alert/dispatcher.ts. Rows are
 * inserted in the transaction that writes their finding.
 *
 * Claiming (fleet): `claim` picks due rows of an endpoint and leases them to one node in one
 * statement: `SELECT ... FOR UPDATE SKIP LOCKED` on PostgreSQL, so two nodes never pick the same row,
 * and the lease (`lease_owner`, `lease_until`, and `next_attempt_at` pushed to the lease's end) keeps
 * the row away from every other node while it is on the wire. A node that dies holding a lease loses
 * it when `lease_until` passes; the row is due again and another node takes it. At-least-once: the
 * receiver dedupes on webhook-id (`msg_id`), the same on every attempt.
 */
import type { Engine, Param, Sql } from './engine.js';

export type OutboxState = 'pending' | 'delivered' | 'failed';

export interface OutboxRow {
  id: number;
  msg_id: string;
  endpoint: string;
  event_type: string;
  finding_id: string | null;
  payload: string;
  created_at: number;
  next_attempt_at: number;
  attempts: number;
  state: OutboxState;
  last_status: number | null;
  last_error: string | null;
  delivered_at: number | null;
  lease_owner?: string | null;
  lease_until?: number | null;
}

export interface NewOutboxRow {
  msgId: string;
  endpoint: string;
  eventType: string;
  findingId: string | null;
  payload: string;
  createdAt: number;
  nextAttemptAt: number;
}

/** A claimed row; `attempts` counts this attempt. */
export interface ClaimedRow {
  id: number;
  msg_id: string;
  payload: string;
  created_at: number;
  attempts: number;
}

export interface DeliveryFilter {
  state?: OutboxState;
  endpoint?: string;
  findingId?: string;
  limit: number;
}

export class OutboxRepo {
  constructor(
    private readonly q: Engine,
    private readonly node: string,
  ) {}

  /** Run `fn` in one transaction (the outbox rows of one finding event). */
  inTx<T>(fn: (q: Sql) => Promise<T>): Promise<T> {
    return this.q.tx(fn);
  }

  async insert(r: NewOutboxRow, q: Sql = this.q): Promise<void> {
    await q.run(
      'INSERT INTO outbox (msg_id, endpoint, event_type, finding_id, payload, created_at, next_attempt_at) VALUES (?, ?, ?, ?, ?, ?, ?)',
      [r.msgId, r.endpoint, r.eventType, r.findingId, r.payload, r.createdAt, r.nextAttemptAt],
    );
  }

  /** The newest created/updated row of a finding for an endpoint (rate limiting, coalescing). */
  newest(findingId: string, endpoint: string, q: Sql = this.q): Promise<Pick<OutboxRow, 'id' | 'event_type' | 'state' | 'attempts' | 'created_at'> | undefined> {
    return q.get(
      `SELECT id, event_type, state, attempts, created_at FROM outbox
        WHERE finding_id = ? AND endpoint = ? AND event_type IN ('finding.created', 'finding.updated')
        ORDER BY id DESC LIMIT 1`,
      [findingId, endpoint],
    );
  }

  /** Rewrite the body of a row never put on the wire; true when it was. */
  async coalesce(id: number, payload: string, q: Sql = this.q): Promise<boolean> {
    return (await q.run(`UPDATE outbox SET payload = ? WHERE id = ? AND state = 'pending' AND attempts = 0`, [payload, id])).changes === 1;
  }

  /** Drop a finding's unsent updates for an endpoint; how many. */
  async supersede(findingId: string, endpoint: string, q: Sql = this.q): Promise<number> {
    return (
      await q.run(`DELETE FROM outbox WHERE finding_id = ? AND endpoint = ? AND event_type = 'finding.updated' AND state = 'pending' AND attempts = 0`, [findingId, endpoint])
    ).changes;
  }

  disabledEndpoints(q: Sql = this.q): Promise<{ name: string; disabled_at: number | null; reason: string | null }[]> {
    return q.all(`SELECT name, disabled_at, reason FROM webhook_endpoints WHERE disabled_at IS NOT NULL ORDER BY name`);
  }

  /**
   * Lease up to `limit` due rows of an endpoint to this node until `leaseUntil`, bumping `attempts`.
   * Rows another node holds (locked, or leased into the future) are skipped.
   */
  claim(endpoint: string, now: number, leaseUntil: number, limit: number, q: Sql = this.q): Promise<ClaimedRow[]> {
    const lock = q.engine === 'postgres' ? 'FOR UPDATE SKIP LOCKED' : '';
    return q.all<ClaimedRow>(
      `UPDATE outbox SET attempts = attempts + 1, next_attempt_at = ?, lease_owner = ?, lease_until = ?
        WHERE id IN (SELECT id FROM outbox WHERE state = 'pending' AND endpoint = ? AND next_attempt_at <= ?
                     ORDER BY next_attempt_at, id LIMIT ? ${lock})
        RETURNING id, msg_id, payload, created_at, attempts`,
      [leaseUntil, this.node, leaseUntil, endpoint, now, limit],
    ).then((rows) => rows.sort((a, b) => a.id - b.id));
  }

  /** A 2xx: the truth even if the row was failed meanwhile (its endpoint disabled by a sibling's 410). */
  async delivered(id: number, at: number, status: number): Promise<void> {
    await this.q.run(`UPDATE outbox SET state = 'delivered', delivered_at = ?, last_status = ?, last_error = NULL, lease_owner = NULL, lease_until = NULL WHERE id = ? AND state != 'delivered'`, [
      at,
      status,
      id,
    ]);
  }

  async retryAt(id: number, nextAttemptAt: number, status: number | null, error: string | null): Promise<void> {
    await this.q.run(`UPDATE outbox SET next_attempt_at = ?, last_status = ?, last_error = ?, lease_owner = NULL, lease_until = NULL WHERE id = ? AND state = 'pending'`, [
      nextAttemptAt,
      status,
      error,
      id,
    ]);
  }

  async fail(id: number, status: number | null, error: string | null): Promise<void> {
    await this.q.run(`UPDATE outbox SET state = 'failed', last_status = ?, last_error = ?, lease_owner = NULL, lease_until = NULL WHERE id = ? AND state = 'pending'`, [status, error, id]);
  }

  async nextDue(endpoint: string): Promise<number | null> {
    return (await this.q.get<{ due: number | null }>(`SELECT MIN(next_attempt_at) AS due FROM outbox WHERE endpoint = ? AND state = 'pending'`, [endpoint]))?.due ?? null;
  }

  /**
   * At start: rows this node had leased (and, on a single node, any attempted row backed off into the
   * future) are due now. Another node's live lease is left alone.
   */
  async resume(endpoint: string, now: number): Promise<number> {
    return (
      await this.q.run(
        `UPDATE outbox SET next_attempt_at = ?, lease_owner = NULL, lease_until = NULL
          WHERE state = 'pending' AND endpoint = ? AND attempts > 0 AND next_attempt_at > ?
            AND (lease_owner IS NULL OR lease_owner = ? OR lease_until < ?)`,
        [now, endpoint, now, this.node, now],
      )
    ).changes;
  }

  /** Newest first. */
  list(f: DeliveryFilter): Promise<OutboxRow[]> {
    const where: string[] = [];
    const args: Param[] = [];
    if (f.state !== undefined) (where.push('state = ?'), args.push(f.state));
    if (f.endpoint !== undefined) (where.push('endpoint = ?'), args.push(f.endpoint));
    if (f.findingId !== undefined) (where.push('finding_id = ?'), args.push(f.findingId));
    args.push(f.limit);
    return this.q.all<OutboxRow>(`SELECT * FROM outbox ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY id DESC LIMIT ?`, args);
  }

  countsByEndpoint(): Promise<{ endpoint: string; state: OutboxState; n: number }[]> {
    return this.q.all(`SELECT endpoint, state, COUNT(*) AS n FROM outbox GROUP BY endpoint, state ORDER BY endpoint, state`);
  }

  /** Forget finished deliveries created before `beforeMs`; pending ones are never pruned. */
  async prune(beforeMs: number): Promise<number> {
    return (await this.q.run(`DELETE FROM outbox WHERE state IN ('delivered', 'failed') AND created_at < ?`, [beforeMs])).changes;
  }

  /** Mark an endpoint disabled; its pending rows fail with `reason`. How many failed. */
  disable(name: string, reason: string, now: number): Promise<number> {
    return this.q.tx(async (q) => {
      await q.run(
        'INSERT INTO webhook_endpoints (name, disabled_at, reason) VALUES (?, ?, ?) ON CONFLICT (name) DO UPDATE SET disabled_at = excluded.disabled_at, reason = excluded.reason',
        [name, now, reason],
      );
      return (await q.run(`UPDATE outbox SET state = 'failed', last_error = ? WHERE endpoint = ? AND state = 'pending'`, [`endpoint disabled: ${reason}`, name])).changes;
    });
  }

  /** Re-enable an endpoint; with `requeue`, its failed rows are pending again. How many were requeued. */
  enable(name: string, opts: { requeue?: boolean; sinceMs?: number; now: number }): Promise<number> {
    return this.q.tx(async (q) => {
      await q.run('UPDATE webhook_endpoints SET disabled_at = NULL, reason = NULL WHERE name = ?', [name]);
      if (!opts.requeue) return 0;
      return this.requeueFailed({ endpoint: name, ...(opts.sinceMs !== undefined ? { sinceMs: opts.sinceMs } : {}), now: opts.now }, q);
    });
  }

  /** Failed rows back to pending, their age restarting now. */
  async requeueFailed(opts: { endpoint?: string; sinceMs?: number; now: number }, q: Sql = this.q): Promise<number> {
    const where = ["state = 'failed'"];
    const args: Param[] = [opts.now, opts.now];
    if (opts.endpoint !== undefined) (where.push('endpoint = ?'), args.push(opts.endpoint));
    if (opts.sinceMs !== undefined) (where.push('created_at >= ?'), args.push(opts.sinceMs));
    return (await q.run(`UPDATE outbox SET state = 'pending', next_attempt_at = ?, created_at = ? WHERE ${where.join(' AND ')}`, args)).changes;
  }
}
