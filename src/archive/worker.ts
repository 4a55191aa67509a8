/**
 * The upload worker: claims jobs from ArchiveJobs, uploads each with the S3Archiver, and records the
 * outcome. It runs off the packet path on its own timer; nothing here is per packet.
 *
 * Recovery (kill -9 included) is by lease, never by trusting in-process state:
 * - claim() gives the job to this worker for `leaseMs`; a timer renews the lease every leaseMs/3 while
 *   the upload runs, so a slow multipart upload is not taken over;
 * - a process that dies mid-upload renews nothing; when the lease ends, the node's next claim() takes
 *   the job and uploads it again from the local file (only the node that wrote a file has it, so jobs
 *   are claimed by node; the key is deterministic; in a versioned bucket the interrupted attempt left
 *   either nothing, an aborted multipart upload that the lifecycle rule cleans up, or a complete version
 *   that done() never recorded; the retry makes the version that counts);
 * - on start, `recoverOwn()` returns jobs claimed under this node's owner prefix at once (the process
 *   that held them is this node's previous life), so a restart does not wait for the lease.
 * The owner is `NODE/PID/START`, so a lease held by a previous process of the same node is recognised.
 *
 * Failures: S3 and network errors retry with exponential backoff and jitter (1 s doubling to 5 min), for
 * ever, since the file is evidence; a file that no longer matches its catalog SHA-256, or is gone, fails
 * for good (counted, logged) and stays on disk for a person to look at.
 *
 * `onUploaded(job, result)` (the ledger append) runs before done(): if the process dies between the
 * two, the job is uploaded and recorded again, so the ledger may hold a record twice but never misses one.
 */
import { retryDelayMs } from '../alert/backoff.js';
import type { RetryPolicy } from '../alert/config.js';
import type { Logger } from '../util/log.js';
import { newArchiveCounters, type ArchiveCounters } from './counters.js';
import { ArchiveIntegrityError, type S3Archiver } from './s3-archiver.js';
import type { ArchiveJob, ArchiveJobs, UploadResult } from './types.js';

export const ARCHIVE_RETRY: RetryPolicy = Object.freeze({ initialDelayMs: 1000, maxDelayMs: 300_000, multiplier: 2, jitter: 'equal' as const, retryAfterMaxMs: 0 });

export interface ArchiveWorkerOptions {
  jobs: ArchiveJobs;
  archiver: Pick<S3Archiver, 'upload'>;
  /** This node's name; the owner of claims is `node/pid/startMs`. */
  node: string;
  /** Lease on a claimed job, ms. Default 5 minutes. */
  leaseMs?: number;
  /** How often an idle worker looks for due jobs, ms. Default 1000. */
  pollMs?: number;
  /** Uploads at once. Default 2. */
  concurrency?: number;
  retry?: RetryPolicy;
  /** Called with the upload's result before the job is marked done (the ledger append). */
  onUploaded?: (job: ArchiveJob, result: UploadResult) => Promise<void>;
  counters?: ArchiveCounters;
  log?: Pick<Logger, 'info' | 'warn' | 'error'>;
  now?: () => number;
  random?: () => number;
}

export class ArchiveWorker {
  readonly owner: string;
  readonly ownerPrefix: string;
  readonly counters: ArchiveCounters;
  private readonly o: Required<Omit<ArchiveWorkerOptions, 'onUploaded' | 'log' | 'counters'>> & Pick<ArchiveWorkerOptions, 'onUploaded' | 'log'>;
  private running = false;
  private timer: NodeJS.Timeout | null = null;
  private readonly active = new Set<Promise<void>>();
  private readonly aborts = new Set<AbortController>();
  private wake: (() => void) | null = null;
  private looping: Promise<void> = Promise.resolve();

  constructor(opts: ArchiveWorkerOptions) {
    this.o = {
      leaseMs: 300_000,
      pollMs: 1000,
      concurrency: 2,
      retry: ARCHIVE_RETRY,
      now: Date.now,
      random: Math.random,
      ...opts,
    };
    this.counters = opts.counters ?? newArchiveCounters();
    this.ownerPrefix = `${opts.node}/`;
    this.owner = `${opts.node}/${process.pid}/${this.o.now()}`;
  }

  /** Give back this node's jobs that a previous process left claimed (call once at start). */
  async recoverOwn(): Promise<number> {
    const n = await this.o.jobs.releaseOwner(this.ownerPrefix);
    this.counters['archive.upload.recovered'] += n;
    if (n > 0) this.o.log?.info({ jobs: n }, 'archive: uploads interrupted by the last stop are queued again');
    return n;
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.looping = this.loop();
  }

  /** Stop claiming; abort running uploads after graceMs (their jobs go back by lease or recoverOwn). */
  async stop(graceMs = 10_000): Promise<void> {
    this.running = false;
    if (this.timer) clearTimeout(this.timer);
    this.wake?.();
    const t = setTimeout(() => {
      for (const a of this.aborts) a.abort();
    }, graceMs);
    // The loop may be inside a claim: let it end (a job it claims still runs), then wait for the uploads.
    await this.looping;
    await Promise.allSettled([...this.active]);
    clearTimeout(t);
  }

  /**
   * Upload every due job of this node, one after another, until none is due or `deadlineMs` (ms since the
   * epoch, on this worker's clock) passes: what a draining collector (Auto Scaling termination, SIGTERM)
   * runs after closing its files. Returns how many jobs were still pending (any node's) at the end.
   */
  async drain(deadlineMs: number): Promise<number> {
    while (this.o.now() < deadlineMs && (await this.runOnce()));
    return this.o.jobs.pending();
  }

  /** Look for work now (after an enqueue) instead of at the next poll. */
  poke(): void {
    this.wake?.();
  }

  private async loop(): Promise<void> {
    while (this.running) {
      // Fill the free upload slots with due jobs, then wait for a slot to free, a poke, or the poll timer.
      while (this.running && this.active.size < this.o.concurrency) {
        const job = await this.claimOne();
        if (!job) break;
        const p = this.process(job).finally(() => {
          this.active.delete(p);
          this.wake?.();
        });
        this.active.add(p);
      }
      if (!this.running) break;
      await new Promise<void>((resolve) => {
        this.wake = resolve;
        this.timer = setTimeout(resolve, this.o.pollMs);
      });
      this.wake = null;
      if (this.timer) clearTimeout(this.timer);
    }
  }

  private async claimOne(): Promise<ArchiveJob | null> {
    try {
      return await this.o.jobs.claim(this.o.node, this.owner, this.o.now(), this.o.leaseMs);
    } catch (e) {
      this.counters['archive.jobs.errors']++;
      this.o.log?.warn({ err: e }, 'archive: cannot claim an upload job');
      return null;
    }
  }

  /** Claim and upload one due job; false when none was due. For tests and `drain`. */
  async runOnce(): Promise<boolean> {
    const job = await this.claimOne();
    if (!job) return false;
    await this.process(job);
    return true;
  }

  private async process(job: ArchiveJob): Promise<void> {
    const abort = new AbortController();
    this.aborts.add(abort);
    const renew = setInterval(() => {
      void this.o.jobs.renew(job.id, this.owner, this.o.now() + this.o.leaseMs).then(
        (held) => {
          if (!held) abort.abort(); // another node took it over: stop spending bandwidth on it
        },
        () => undefined,
      );
    }, Math.max(10, Math.floor(this.o.leaseMs / 3)));
    try {
      const result = await this.o.archiver.upload(job.file, abort.signal);
      await this.o.onUploaded?.(job, result);
      const held = await this.o.jobs.done(job.id, this.owner, result, this.o.now());
      if (held) {
        this.counters['archive.upload.ok']++;
        this.counters['archive.upload.bytes'] += result.size;
      } else this.counters['archive.upload.lost_lease']++;
    } catch (e) {
      const permanent = e instanceof ArchiveIntegrityError;
      const retryAt = permanent ? null : this.o.now() + retryDelayMs(job.attempts + 1, this.o.retry, this.o.random);
      this.counters[permanent ? 'archive.upload.integrity' : 'archive.upload.retry']++;
      const msg = e instanceof Error ? `${e.name}: ${e.message}` : String(e);
      if (permanent) this.o.log?.error({ job: job.id, path: job.file.path, err: msg }, 'archive: file does not match its catalog entry; not archived');
      else this.o.log?.warn({ job: job.id, path: job.file.path, attempt: job.attempts + 1, retryInMs: retryAt! - this.o.now(), err: msg }, 'archive: upload failed; will retry');
      await this.o.jobs.failed(job.id, this.owner, msg, retryAt).catch(() => {
        this.counters['archive.jobs.errors']++;
      });
    } finally {
      clearInterval(renew);
      this.aborts.delete(abort);
    }
  }
}
