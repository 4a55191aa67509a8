/**
 * The capture catalog as the collector sees it: one row per PCAP file (src/store/captures.ts), plus
 * the observed-session deltas (src/store/observed.ts). A row is requested, state 'open', before the
 * file's first byte is written, so after a crash every file on disk either has a row to repair or is
 * adopted by the recovery scan. Rows are synced from memory on a timer (packets, bytes flushed, last
 * time) and finalized with the SHA-256 on close.
 *
 * Writes never wait: they go through the store's ordered write queue (src/store/write-queue.ts) and
 * return at once. `open` hands back a handle that later writes for the same file use; the queue maps
 * it to the row id once the insert is in. `flush()` waits until everything queued is in the store (a
 * live download, shutdown, tests). Reads (recovery, retention) ask the store directly.
 */
import { join } from 'node:path';
import type { Db } from '../store/db.js';
import type { CaptureRow, CloseInfo, NewCapture } from '../store/captures.js';
import { storeFromDb, type Store } from '../store/store.js';
import { WriteQueue } from '../store/write-queue.js';

export type { CaptureRow, CloseInfo };

export class Catalog {
  readonly store: Store;
  readonly queue: WriteQueue;
  private nextHandle = 0;
  /** With an archive: what a closed file's upload job needs, per open handle (path, pair, session). */
  private archiveTo: { node: string; dataDir: string; onEnqueued?: () => void } | null = null;
  private readonly opened = new Map<number, NewCapture>();

  /** A store (or, for tests and tools on one SQLite file, its connection) and optionally a queue to share. */
  constructor(storeOrDb: Store | Db, queue?: WriteQueue) {
    this.store = isStore(storeOrDb) ? storeOrDb : storeFromDb(storeOrDb);
    this.queue = queue ?? new WriteQueue(this.store);
  }

  /**
   * Archive every file this catalog closes: its upload job is enqueued in the transaction that writes the
   * row's SHA-256 (src/archive/service.ts uploads it). `dataDir` makes the row's relative path absolute.
   */
  archive(node: string, dataDir: string, onEnqueued?: () => void): void {
    this.archiveTo = { node, dataDir, ...(onEnqueued ? { onEnqueued } : {}) };
  }

  /** Request the row of a file about to be written; a handle for the file's later writes. */
  open(row: NewCapture): number {
    const h = ++this.nextHandle;
    if (this.archiveTo) this.opened.set(h, { ...row });
    const repo = this.store.captures;
    this.queue.push(async (q, ids) => ids.set(h, await repo.open(row, q)));
    return h;
  }

  sync(handle: number, packets: number, bytes: number, lastUs: number): void {
    const repo = this.store.captures;
    this.queue.push(async (q, ids) => {
      const id = ids.get(handle);
      if (id !== undefined) await repo.sync(id, packets, bytes, lastUs, q);
    });
  }

  close(handle: number, info: CloseInfo): void {
    const repo = this.store.captures;
    const jobs = this.store.archive;
    const arch = this.archiveTo;
    const row = this.opened.get(handle);
    this.opened.delete(handle);
    this.queue.push(async (q, ids) => {
      const id = ids.get(handle);
      if (id === undefined) return;
      await repo.close(id, info, q);
      ids.forget(handle);
      if (arch && row) {
        const empty = info.packets === 0;
        await jobs.enqueue(
          {
            captureId: id,
            node: arch.node,
            path: join(arch.dataDir, row.path),
            vni: row.vni,
            sourceIp: row.sourceIp,
            sessionId: row.sessionId,
            createdUs: row.createdUs,
            firstUs: empty ? null : info.firstUs,
            lastUs: empty ? null : info.lastUs,
            packets: info.packets,
            bytes: info.bytes,
            sha256: info.sha256,
          },
          Math.floor(info.closedUs / 1000),
          q,
        );
        arch.onEnqueued?.();
      }
    });
  }

  /** Drop the row of a file that was never created on disk. */
  delete(handle: number): void {
    this.opened.delete(handle);
    const repo = this.store.captures;
    this.queue.push(async (q, ids) => {
      const id = ids.get(handle);
      if (id === undefined) return;
      await repo.delete(id, q);
      ids.forget(handle);
    });
  }

  setSessionId(handle: number, sessionId: string | null): void {
    const repo = this.store.captures;
    const opened = this.opened.get(handle);
    if (opened) opened.sessionId = sessionId;
    this.queue.push(async (q, ids) => {
      const id = ids.get(handle);
      if (id !== undefined) await repo.setSessionId(id, sessionId, q);
    });
  }

  /** Add deltas to the observed-session row of a pair. */
  observe(
    sourceIp: string,
    vni: number,
    sessionId: string | null,
    firstSeenMs: number,
    lastSeenMs: number,
    packets: number,
    bytes: number,
    gwlbEndpointId: string | null = null,
    gwlbAttachmentId: string | null = null,
  ): void {
    const repo = this.store.observed;
    this.queue.push((q) => repo.observe({ sourceIp, vni, sessionId, firstSeenMs, lastSeenMs, packets, bytes, gwlbEndpointId, gwlbAttachmentId }, q));
  }

  /** Several writes: they are queued in order and reach the store in one transaction when they can. */
  batch<T>(fn: () => T): T {
    return fn();
  }

  /** Wait until every write queued so far is in the store; false after `timeoutMs`. */
  flush(timeoutMs?: number): Promise<boolean> {
    return this.queue.flush(timeoutMs);
  }

  // --- reads and the recovery scan's writes: straight to the store, at start or on the retention timer.

  /** This node's open rows (optionally one worker's). */
  openRows(worker?: number): Promise<CaptureRow[]> {
    return this.store.captures.openRows(worker);
  }

  byPath(path: string): Promise<CaptureRow | undefined> {
    return this.store.captures.byPath(path);
  }

  /** Closed files, oldest first (retention order). */
  closedOldestFirst(): Promise<CaptureRow[]> {
    return this.store.captures.closedOldestFirst();
  }

  totalBytes(): Promise<number> {
    return this.store.captures.totalBytes();
  }

  /** A row by its id (recovery, retention). */
  deleteRow(id: number): Promise<void> {
    return this.store.captures.delete(id);
  }

  closeRow(id: number, info: CloseInfo): Promise<void> {
    return this.store.captures.close(id, info);
  }

  /** Insert and close at once (recovery adopting a file with no row); its id. */
  async adopt(row: NewCapture, info: CloseInfo): Promise<number> {
    return this.store.tx(async (q) => {
      const id = await this.store.captures.open(row, q);
      await this.store.captures.close(id, info, q);
      return id;
    });
  }
}

function isStore(x: Store | Db): x is Store {
  return typeof (x as Store).captures === 'object' && typeof (x as Store).tx === 'function';
}
