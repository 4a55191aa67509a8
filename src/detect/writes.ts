/**
 * The detector's writes, in order, behind the store's write queue (src/store/write-queue.ts): the
 * same queue as the collector's catalog writes in `serve`, so a pair's observed row, its finding and
 * the finding's outbox rows go in the order they happened, in one transaction per batch, and a store
 * outage only delays them (the queue retries the batch with backoff).
 *
 * `post` is for the first-packet edge and timers (fire and forget: the packet path never waits);
 * `run` is for callers that want the result (CloudTrail ingest, inventory checks, reloads, ticks): it
 * resolves once the write's batch has committed.
 */
import type { Sql } from '../store/engine.js';
import type { WriteQueue } from '../store/write-queue.js';

export class DetectorWrites {
  constructor(
    readonly queue: WriteQueue,
    /** A write refused because the queue is full (counted by the caller). */
    private readonly onRefused: () => void = () => undefined,
    /** After the batch holding a write committed (serve: wake the webhook dispatcher for its rows). */
    readonly afterCommit: () => void = () => undefined,
  ) {}

  post(fn: (q: Sql) => Promise<unknown>): void {
    if (!this.queue.push(async (q) => void (await fn(q)), this.afterCommit)) this.onRefused();
  }

  run<T>(fn: (q: Sql) => Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      let out: T;
      const ok = this.queue.push(
        async (q) => {
          out = await fn(q);
        },
        () => {
          this.afterCommit();
          resolve(out);
        },
      );
      if (!ok) {
        this.onRefused();
        reject(new Error('the store write queue is full'));
      }
    });
  }

  /** Resolves when every write queued so far is in the store (false after `timeoutMs`). */
  settled(timeoutMs?: number): Promise<boolean> {
    return this.queue.flush(timeoutMs);
  }
}
