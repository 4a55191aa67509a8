/**
 * The archive as `serve` runs it (docs/architecture.md, "How serve wires it"): the store's upload queue
 * (store.archive), the S3Archiver, the ArchiveWorker, and the Ledger over the store's chain
 * (store.ledger). Nothing here is on the packet path:
 *
 * - a closed file is enqueued by the catalog's close, in the same store transaction as the row's
 *   SHA-256 (src/collector/catalog.ts, through the ordered write queue); a sweep on the timer (and at
 *   start) enqueues every closed row of this node that has no job yet: files closed by the recovery
 *   scan after kill -9, by worker threads, or while the archive was off;
 * - the worker uploads, appends the ledger record, marks the job done (which writes the S3 location
 *   into the catalog) and sets the row's ledger seq;
 * - the same timer removes local copies `archive.keepLocalHours` after S3 confirmed them (never one under
 *   legal hold);
 * - stop: the caller has closed every file; the sweep enqueues them, the worker drains within the grace
 *   it is given, then stops. What is left is taken up by the next start (recoverOwn + sweep).
 */
import { unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { GetObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import type { Readable } from 'node:stream';
import type { CaptureRow } from '../store/captures.js';
import type { Store } from '../store/store.js';
import type { SigningKey } from '../ledger/keys.js';
import { Ledger } from '../ledger/ledger.js';
import type { Logger } from '../util/log.js';
import { s3ClientFor } from './client.js';
import type { ArchiveConfig } from './config.js';
import { newArchiveCounters, type ArchiveCounters } from './counters.js';
import { localCopiesToRemove } from './local-retention.js';
import { S3Archiver } from './s3-archiver.js';
import type { ArchiveFile } from './types.js';
import { ArchiveWorker } from './worker.js';

/** How often the sweep and the keep-local pass run, ms. */
export const ARCHIVE_TICK_MS = 2000;
/** Rows the sweep enqueues per tick. */
const SWEEP_BATCH = 500;

/** The ArchiveFile of a closed catalog row (its local path made absolute). */
export function archiveFileOf(row: CaptureRow, node: string, dataDir: string): ArchiveFile {
  return {
    captureId: row.id,
    node: row.node || node,
    path: join(dataDir, row.path),
    vni: row.vni,
    sourceIp: row.source_ip,
    sessionId: row.session_id,
    createdUs: row.created_us,
    firstUs: row.packets > 0 ? row.first_us : null,
    lastUs: row.packets > 0 ? row.last_us : null,
    packets: row.packets,
    bytes: row.bytes,
    sha256: row.sha256!,
  };
}

export interface ArchiveServiceOptions {
  config: ArchiveConfig & { s3: NonNullable<ArchiveConfig['s3']> };
  key: SigningKey;
  store: Store;
  dataDir: string;
  node: string;
  logger: Logger;
  client?: S3Client;
  now?: () => number;
  tickMs?: number;
}

export class ArchiveService {
  readonly archiver: S3Archiver;
  readonly ledger: Ledger;
  readonly worker: ArchiveWorker;
  readonly client: S3Client;
  private timer: NodeJS.Timeout | null = null;
  private ticking: Promise<void> = Promise.resolve();
  private readonly now: () => number;
  readonly counters: ArchiveCounters = newArchiveCounters();

  constructor(private readonly o: ArchiveServiceOptions) {
    this.now = o.now ?? Date.now;
    const s3 = o.config.s3;
    this.client = o.client ?? s3ClientFor(s3);
    this.archiver = new S3Archiver({ client: this.client, bucket: s3.bucket, prefix: s3.prefix, objectLock: o.config.objectLock, kmsKeyId: o.config.kmsKeyId });
    this.ledger = new Ledger(o.store.ledger, o.key, o.node, this.now);
    this.worker = new ArchiveWorker({
      jobs: o.store.archive,
      archiver: this.archiver,
      node: o.node,
      log: o.logger,
      now: this.now,
      counters: this.counters,
      onUploaded: async (job, result) => {
        const rec = await this.ledger.appendArchive(job.file, result);
        this.counters['archive.ledger.appended']++;
        await o.store.captures.setLedgerSeq(job.file.captureId, rec.seq);
      },
    });
  }

  async start(): Promise<void> {
    await this.worker.recoverOwn();
    await this.sweep();
    this.worker.start();
    let busy = false;
    this.timer = setInterval(() => {
      // One pass at a time: a slow store must not stack sweeps (or remove a copy twice).
      if (busy) return;
      busy = true;
      this.ticking = this.tick().finally(() => {
        busy = false;
      });
    }, this.o.tickMs ?? ARCHIVE_TICK_MS);
    this.timer.unref();
  }

  private async tick(): Promise<void> {
    try {
      if ((await this.sweep()) > 0) this.worker.poke();
      await this.removeLocalCopies();
    } catch (e) {
      this.counters['archive.jobs.errors']++;
      this.o.logger.warn({ err: e }, 'archive: sweep failed; retrying on the next tick');
    }
  }

  /** Enqueue this node's closed files that have no job yet; how many. */
  async sweep(): Promise<number> {
    const rows = await this.o.store.captures.unarchived(SWEEP_BATCH);
    const now = this.now();
    for (const r of rows) await this.o.store.archive.enqueue(archiveFileOf(r, this.o.node, this.o.dataDir), now);
    return rows.length;
  }

  /** Remove local copies archive.keepLocalHours after S3 confirmed them; never one under legal hold. */
  async removeLocalCopies(): Promise<number> {
    const rows = (await this.o.store.captures.archivedLocal()).filter((r) => !r.legal_hold);
    const due = localCopiesToRemove(
      rows.map((r) => ({ captureId: r.id, path: r.path, archivedMs: Math.floor(r.archived_us! / 1000), open: r.state === 'open' })),
      this.now(),
      this.o.config.keepLocalHours,
    );
    for (const d of due) {
      try {
        unlinkSync(join(this.o.dataDir, d.path));
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'ENOENT') {
          this.o.logger.error({ path: d.path, err: (e as Error).message }, 'archive: cannot remove an archived local copy');
          continue;
        }
      }
      await this.o.store.captures.markLocalRemoved(d.captureId, this.now() * 1000);
      this.counters['archive.local.removed']++;
    }
    return due.length;
  }

  /**
   * After the collector closed every file and the catalog queue is flushed: enqueue them and upload until
   * none of this node's jobs is due or `deadlineMs` passes; then stop the worker. Returns this node's
   * jobs still pending (uploaded by the next start).
   */
  async stop(deadlineMs: number): Promise<number> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.ticking;
    let left = 0;
    try {
      await this.sweep();
      await this.worker.stop(Math.max(0, deadlineMs - this.now()));
      await this.worker.drain(deadlineMs);
      left = await this.o.store.archive.pendingFor(this.o.node);
    } catch (e) {
      this.o.logger.warn({ err: e }, 'archive: drain failed; the next start uploads what is left');
    }
    if (left > 0) this.o.logger.warn({ pending: left }, 'archive: uploads left for the next start');
    else this.o.logger.info('archive: every closed file is uploaded');
    return left;
  }

  /** Read an archived object (bytes start..end inclusive), for a download whose local copy is gone or an extraction; `signal` aborts the request. */
  async readObject(key: string, versionId: string | null, start: number, end: number, signal?: AbortSignal): Promise<Readable> {
    const r = await this.client.send(
      new GetObjectCommand({ Bucket: this.o.config.s3.bucket, Key: key, ...(versionId ? { VersionId: versionId } : {}), Range: `bytes=${start}-${end}` }),
      signal ? { abortSignal: signal } : {},
    );
    return r.Body as Readable;
  }

  /** S3 Object Lock legal hold on an archived object's version (the API's legal-hold route). */
  setLegalHold(key: string, versionId: string | null, on: boolean): Promise<void> {
    return this.archiver.setLegalHold(key, versionId, on);
  }

  snapshot(): Record<string, number> {
    return { ...this.counters };
  }
}
