/**
 * The ordered, bounded queue between the collector and the store. The collector (its timer and the
 * first-packet edge, never the per-packet path) pushes writes and goes on; the queue runs them in
 * order, in batches of one transaction each, as soon as the event loop is free. When the store fails
 * (PostgreSQL away, a locked SQLite file), the batch stays at the head and is retried with backoff:
 * nothing is reordered, nothing is lost until the bound. Past `maxOps` queued writes, new writes are
 * refused and counted (`store.queue.dropped`); a capture file whose row was refused is adopted by the
 * recovery scan on the next start.
 *
 * A write the store refuses for what it is, not for where the store is (a constraint, a type, a column:
 * a bug, or a row the schema cannot take), would otherwise hold the head forever and everything behind
 * it. Such an error (see `isRefusal`) makes the queue run the failed batch one write per transaction;
 * the one write that is refused on its own is set aside, counted (`store.queue.rejected`) and reported
 * through `onRejected`, and the rest commit in order. An outage (connection lost, a locked or full
 * SQLite file, a serialization failure) is never a refusal: it is retried with backoff as above.
 *
 * Counters (docs/counters.md): `store.errors` (failed batch attempts), `store.queue.queued` (writes
 * that had to wait because the store was failing), `store.queue.dropped`, `store.queue.rejected`, and
 * the gauge `depth()`.
 */
import type { Sql } from './engine.js';
import type { Store } from './store.js';

/** A queued write: runs in the batch's transaction; `ids` maps the queue's handles to row ids. */
export type QueuedWrite = (q: Sql, ids: HandleIds) => Promise<void>;

export interface HandleIds {
  get(handle: number): number | undefined;
  set(handle: number, id: number): void;
  forget(handle: number): void;
}

export const DEFAULT_MAX_QUEUED_WRITES = 100_000;
const MAX_BATCH = 500;
/**
 * On SQLite (synchronous, on this thread) a batch also ends once its writes have taken this long: the
 * rest waits for the next turn of the event loop. The packet path comes first: while 10,000 sessions
 * start, the detector's and the catalog's writes (about four statements per new pair) would otherwise
 * take three times the capture ring's 10 ms share of each turn, and the ring overflowed. The writes
 * wait a little longer instead; nothing is dropped. PostgreSQL's writes leave the thread free while
 * they wait for the server, so batches there stay whole.
 */
export const SYNC_BATCH_BUDGET_MS = 4;
const RETRY_MIN_MS = 100;
const RETRY_MAX_MS = 5_000;

export interface WriteQueueCounters {
  'store.errors': number;
  'store.queue.queued': number;
  'store.queue.dropped': number;
  'store.queue.rejected': number;
}

/** The counters and the depth gauge by their docs/counters.md names (a fresh queue's zeros for the doc test). */
export function storeCounters(q: WriteQueue | null): Record<string, number> {
  return { 'store.errors': 0, 'store.queue.queued': 0, 'store.queue.dropped': 0, 'store.queue.rejected': 0, ...(q?.counters ?? {}), 'store.queue.depth': q?.depth() ?? 0 };
}

/**
 * True when the error is the store refusing this write (retrying it cannot help), false for an outage.
 * PostgreSQL: SQLSTATE classes 22 (data exception), 23 (integrity constraint) and 42 (syntax, undefined
 * table or column). SQLite: SQLITE_CONSTRAINT*, SQLITE_MISMATCH, SQLITE_RANGE, SQLITE_TOOBIG and the
 * generic SQLITE_ERROR (a statement the schema cannot run), but never BUSY, LOCKED, FULL, IOERR or
 * CANTOPEN. A JavaScript TypeError, RangeError or ReferenceError thrown by the write itself is a bug in
 * that write.
 */
export function isRefusal(e: unknown): boolean {
  const code = (e as { code?: unknown } | null)?.code;
  if (typeof code === 'string') {
    if (/^(22|23|42)[0-9A-Z]{3}$/.test(code)) return true;
    return code === 'SQLITE_ERROR' || code === 'SQLITE_MISMATCH' || code === 'SQLITE_RANGE' || code === 'SQLITE_TOOBIG' || code.startsWith('SQLITE_CONSTRAINT');
  }
  return e instanceof TypeError || e instanceof RangeError || e instanceof ReferenceError;
}

export interface WriteQueueListener {
  /** A batch failed and waits for a retry (called on every failed attempt). */
  onError?: (e: Error, queued: number) => void;
  /** A write the store refused on its own was set aside (not retried). */
  onRejected?: (e: Error) => void;
}

export class WriteQueue {
  readonly counters: WriteQueueCounters = { 'store.errors': 0, 'store.queue.queued': 0, 'store.queue.dropped': 0, 'store.queue.rejected': 0 };
  /** While > head: a batch up to this index was refused; run it one write per transaction. */
  private isolateUntil = 0;
  private readonly ops: QueuedWrite[] = [];
  private head = 0;
  private running = false;
  private scheduled = false;
  private retryMs = 0;
  private retryTimer: NodeJS.Timeout | undefined;
  private waiters: (() => void)[] = [];
  private readonly committed = new Map<number, number>();
  private readonly afterCommit = new Map<QueuedWrite, () => void>();
  private closed = false;
  /** The last error, while the store is failing. */
  lastError: Error | null = null;

  constructor(
    readonly store: Store,
    private readonly opts: { maxOps?: number } & WriteQueueListener = {},
  ) {}

  /** Who hears about failed attempts and rejected writes (serve logs them). */
  listen(l: WriteQueueListener): void {
    if (l.onError) this.opts.onError = l.onError;
    if (l.onRejected) this.opts.onRejected = l.onRejected;
  }

  /** Queued writes not yet in the store. */
  depth(): number {
    return this.ops.length - this.head;
  }

  /** True while the store fails and writes wait. */
  get degraded(): boolean {
    return this.lastError !== null;
  }

  /**
   * Queue a write; false (and counted) when the queue is full. `onCommitted` runs once the batch that
   * holds the write has committed (a write retried after a failed batch runs again; its effects
   * count only from the committing run).
   */
  push(op: QueuedWrite, onCommitted?: () => void): boolean {
    if (this.depth() >= (this.opts.maxOps ?? DEFAULT_MAX_QUEUED_WRITES)) {
      this.counters['store.queue.dropped']++;
      return false;
    }
    if (onCommitted !== undefined) this.afterCommit.set(op, onCommitted);
    this.ops.push(op);
    if (this.lastError !== null) this.counters['store.queue.queued']++;
    this.schedule();
    return true;
  }

  /** Resolves when everything queued so far is in the store (or `timeoutMs` passed: false). */
  flush(timeoutMs = 30_000): Promise<boolean> {
    if (this.depth() === 0 && !this.running) return Promise.resolve(true);
    return new Promise((resolve) => {
      let done = false;
      const t = setTimeout(() => {
        done = true;
        resolve(false);
      }, timeoutMs);
      t.unref();
      this.waiters.push(() => {
        if (done) return;
        clearTimeout(t);
        resolve(true);
      });
      this.schedule();
    });
  }

  /** Stop retrying (shutdown); what is still queued is lost (and was counted as queued). */
  close(): void {
    this.closed = true;
    if (this.retryTimer !== undefined) clearTimeout(this.retryTimer);
  }

  private schedule(): void {
    if (this.scheduled || this.running || this.retryTimer !== undefined || this.closed) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      void this.run();
    });
  }

  private async run(): Promise<void> {
    if (this.running || this.closed) return;
    this.running = true;
    try {
      while (this.depth() > 0 && !this.closed) {
        const end = this.isolateUntil > this.head ? this.head + 1 : Math.min(this.ops.length, this.head + MAX_BATCH);
        const batch = this.ops.slice(this.head, end);
        const staged = new Map<number, number | null>();
        const ids: HandleIds = {
          get: (h) => {
            const s = staged.get(h);
            return s === null ? undefined : (s ?? this.committed.get(h));
          },
          set: (h, id) => void staged.set(h, id),
          forget: (h) => void staged.set(h, null),
        };
        // How many of the batch's writes ran (all of them, unless SQLite's time budget ended it early).
        let ran = 0;
        try {
          await this.store.tx(async (q) => {
            ran = 0;
            const budget = q.engine === 'sqlite' ? SYNC_BATCH_BUDGET_MS : Infinity;
            const t0 = performance.now();
            for (const op of batch) {
              await op(q, ids);
              ran++;
              if (performance.now() - t0 >= budget) break;
            }
          });
        } catch (e) {
          this.counters['store.errors']++;
          const err = e instanceof Error ? e : new Error(String(e));
          if (isRefusal(e)) {
            if (batch.length > 1) {
              this.isolateUntil = end; // find the one write the store refuses: one per transaction
              continue;
            }
            // This write alone is refused: set it aside, and go on with the rest in order.
            this.counters['store.queue.rejected']++;
            this.afterCommit.delete(batch[0]!);
            this.head = end;
            this.opts.onRejected?.(err);
            continue;
          }
          if (this.lastError === null) this.counters['store.queue.queued'] += this.depth();
          this.lastError = err;
          this.opts.onError?.(err, this.depth());
          this.retryMs = Math.min(RETRY_MAX_MS, Math.max(RETRY_MIN_MS, this.retryMs * 2));
          this.retryTimer = setTimeout(() => {
            this.retryTimer = undefined;
            this.schedule();
          }, this.retryMs);
          this.retryTimer.unref();
          return;
        }
        for (const [h, id] of staged) {
          if (id === null) this.committed.delete(h);
          else this.committed.set(h, id);
        }
        this.head += ran;
        if (this.afterCommit.size > 0) {
          for (let i = 0; i < ran; i++) {
            const op = batch[i]!;
            const f = this.afterCommit.get(op);
            if (f === undefined) continue;
            this.afterCommit.delete(op);
            f();
          }
        }
        if (this.head > 4096 && this.head * 2 > this.ops.length) {
          this.ops.splice(0, this.head);
          this.head = 0;
        }
        this.lastError = null;
        this.retryMs = 0;
        // One batch per turn of the event loop (finally schedules the next): a backlog of thousands of
        // writes (10,000 new pairs in a second) would otherwise run as one chain of microtasks, and for
        // that long nothing else on this thread runs: packets, file creates coming back, timers.
        if (this.depth() > 0) break;
      }
      if (this.depth() === 0) {
        this.ops.length = 0;
        this.head = 0;
        const w = this.waiters;
        this.waiters = [];
        for (const f of w) f();
      }
    } finally {
      this.running = false;
      if (this.depth() > 0 && this.retryTimer === undefined) this.schedule();
    }
  }
}
