/**
 * The asynchronous side of the PCAP writer: a bounded queue of full buffers on their way to disk.
 *
 * - Every disk operation runs on the libuv threadpool (fs's callback API on a raw descriptor, or the
 *   addon's batched calls), never on the packet path.
 * - Writes to one file are serialized (a file runs one job at a time, in order), and at most
 *   `maxConcurrentWrites` files write at once, so a burst of files cannot starve the threadpool that
 *   DNS lookups and the other fs calls share (its default size is 4).
 * - `maxQueuedBytes` bounds what is waiting: the writer asks hasRoom() before it hands a buffer over
 *   and drops the packet (pcap.write.queue_full) when there is none, after Arkime's simpleMaxQ.
 * - A file is created lazily by its first job, with O_CREAT|O_EXCL ('wx': never clobber), its folder
 *   made first when missing (`makeDirs`), and its preamble (the pcap global header) as its first bytes;
 *   with a `batchOpen` (the addon's openBatch) many files are created in one threadpool job and each
 *   preamble goes with the file's first buffers in a batched write.
 * - Every write goes at an explicit position: the "committed" offset, which only ever moves to the end
 *   of a buffer that was written whole. A buffer holds whole records, so the committed offset is always
 *   a record boundary. When a write fails (ENOSPC, EDQUOT, EIO, ...) the file is truncated back to it,
 *   the buffer's packets are counted lost under WRITE_ENOSPC or WRITE_ERROR, and the next buffer is tried
 *   again, so capture resumes by itself when space returns.
 * - Outcomes (src/outcomes.ts) are counted here, once, in `counts`: a buffer's packets go to OK
 *   (`written`) when its write completes, or to WRITE_ENOSPC / WRITE_ERROR when it fails. Nothing is
 *   counted as written before it is on disk, so no count is ever taken back. If even the truncate fails, the next
 *   successful write overwrites the garbage and close() truncates again: the file always parses.
 * - SHA-256 is updated per committed buffer, so closing a file needs no re-read. With a `batchHash` (the
 *   addon's FileSha256), a batched write hashes a file's buffers on its threadpool thread just before
 *   writing them (and takes them back out of the hash if the write fails), instead of the main thread
 *   reading every buffer again, on the other core, after the write.
 * - With a `batchWrite` (the addon's pwriteBatch), the writes of files already created, of many files,
 *   go in one threadpool job (issue 16: 10,000 quiet sessions hand over ~26,000 small buffers a second);
 *   each buffer is still committed, hashed and counted alone when its own pwrite returned, and a file
 *   whose write fails goes back to one fs request per write.
 * - Failures go to one hook, at most once per interval per (operation, errno), with a suppressed count.
 */
import { createHash, type Hash } from 'node:crypto';
import { close as fsClose, fdatasync, fsync, ftruncate, open as fsOpen, write as fsWrite, writev as fsWritev } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { constants as osConstants } from 'node:os';
import { dirname } from 'node:path';
import { DROP, newOutcomeCounts, type DropCode } from '../outcomes.js';
import { MgError } from '../errors.js';
import { RateLimiter } from '../util/log.js';

export const DEFAULT_MAX_QUEUED_BYTES = 32 * 1024 * 1024;
/** The libuv threadpool's default size; more concurrent writes would only queue inside libuv. */
export const DEFAULT_MAX_CONCURRENT_WRITES = 4;
export const DEFAULT_ERROR_REPORT_INTERVAL_MS = 60_000;
export const DEFAULT_FILE_MODE = 0o640;
/** Queued buffers of one file written by one writev(2), at most (UIO_MAXIOV is 1024). */
export const WRITEV_MAX_BUFFERS = 16;
/** Bytes written by one writev(2), at most. */
export const WRITEV_MAX_BYTES = 8 * 1024 * 1024;

/** Buffers written by one batched call (BatchWrite), at most. */
export const BATCH_MAX_BUFFERS = 1024;
/** Batched calls running at once, at most (each holds one threadpool thread while it runs). */
export const BATCHES_IN_FLIGHT = 2;
/**
 * A batch of fewer files than this waits up to BATCH_GATHER_MS for more. With 10,000 quiet sessions
 * their buffers fill at random moments, ~12,000 a second: started at once, each batch held one or two
 * writes, and the fixed cost of a call (its threadpool job, the wake-up, the arrays handed over) was 9 %
 * of serve's main thread. A few milliseconds more on the way to disk cost nothing: a record waits up to
 * a flush interval (1 s) in its buffer anyway.
 */
export const BATCH_GATHER_FILES = 128;
/** ... unless they already hold this much: a few busy files' large buffers go at once (their call's cost is nothing next to the bytes). */
export const BATCH_GATHER_BYTES = 1024 * 1024;
export const BATCH_GATHER_MS = 5;

/**
 * Writes of many files in one threadpool job (the native addon's pwriteBatch, native/src/writer.cc):
 * entry i writes lengths[i] bytes of buffers[i] at positions[i] of descriptor fds[i]; results[i] becomes
 * 0 or -errno, and an entry after a failed one of the same descriptor is not tried (-ECANCELED). done()
 * runs on the main thread when all `count` entries are finished. dropWindow > 0 turns on drop-behind
 * (DiskQueueOptions.dropBehindBytes), directBytes > 0 direct writes (DiskQueueOptions.directWriteBytes);
 * the job adds the bytes it wrote directly to stats[0], and the direct writes refused to stats[1].
 */
export type BatchWrite = (
  fds: Int32Array,
  positions: Float64Array,
  lengths: Int32Array,
  buffers: Uint8Array[],
  count: number,
  results: Int32Array,
  done: () => void,
  dropWindow?: number,
  hashes?: (FileHash | null)[],
  directBytes?: number,
  stats?: Float64Array,
) => void;

/**
 * A file's running SHA-256, of its committed bytes; digest() once, at close, as lowercase hex. With
 * `hashes` (DiskQueueOptions.batchHash), a batched write updates entry i's hash on the threadpool with
 * buffers[i][0, lengths[i]) once results[i] is 0, in order, so a hash still covers exactly what was
 * committed; the addon refuses a hash that is not its own FileSha256.
 */
export interface FileHash {
  update(data: Uint8Array): void;
  digest(): string;
}

/** node:crypto's SHA-256 as a FileHash: the hash of every file without batchHash. */
class NodeFileHash implements FileHash {
  private readonly h: Hash = createHash('sha256');
  update(data: Uint8Array): void {
    this.h.update(data);
  }
  digest(): string {
    return this.h.digest('hex');
  }
}

/** Drops a file's pages from the page cache on the threadpool (the native addon's dropCache); done() on the main thread. */
export type DropCache = (fd: number, done: () => void) => void;

/**
 * Creates of many files in one threadpool job (the native addon's openBatch, native/src/writer.cc): path i
 * is opened O_WRONLY|O_CREAT|O_EXCL with `mode`, its folder made first when missing and `makeDirs`;
 * results[i] becomes the descriptor or -errno. done() runs on the main thread when all are finished.
 */
export type BatchOpen = (paths: string[], count: number, mode: number, makeDirs: boolean, results: Int32Array, done: () => void) => void;

/** Files created by one batched call, at most. */
export const OPEN_BATCH_MAX = 1024;
/**
 * Batched creates running at once, at most. One: every new file of an hour goes in one folder, and
 * creates in one folder take its lock in turn, so a second job only spins on the lock. Measured in the
 * 10,000-session ramp with two (`perf`, 2-vCPU VM): the second threadpool thread spent ~1 s of CPU in
 * 5 s in rwsem_spin_on_owner, CPU the packet thread and the kernel needed. (One at a time created the
 * files no slower, and the ramp's loss did not change measurably.)
 */
export const OPENS_IN_FLIGHT = 1;

export type DiskOp = 'create' | 'write' | 'truncate' | 'sync' | 'close' | 'queue';

/** What the error hook receives. Never thrown: capture goes on. */
export interface DiskErrorReport {
  path: string;
  op: DiskOp;
  /** errno code (ENOSPC, EACCES, ...), or QUEUE_FULL for op 'queue'. */
  code: string;
  message: string;
  /** Packets lost by this event (the counters have the totals). */
  lostPackets: number;
  /** Reports of the same (op, code) suppressed since the last one was let through. */
  suppressed: number;
}

export interface DiskQueueOptions {
  /** Bytes handed over but not yet on disk, at most. Default 32 MiB. */
  maxQueuedBytes?: number;
  /** Files writing at the same time, at most. Default 4. */
  maxConcurrentWrites?: number;
  /** Called for failures, rate-limited. */
  onError?: (report: DiskErrorReport) => void;
  /** At most one report per (operation, errno) per this many ms. Default 60000. */
  errorReportIntervalMs?: number;
  /** Permission bits for new files. Default 0o640. */
  fileMode?: number;
  /** Make a file's missing folder (mkdir -p) before creating it, on the threadpool. Default false: a missing folder fails the create. */
  makeDirs?: boolean;
  /**
   * Outcome counters indexed by DropCode, where written and lost packets are counted (OK,
   * WRITE_ENOSPC, WRITE_ERROR). Shared with whoever counts the other outcomes; a fresh set when absent.
   */
  counts?: Float64Array;
  /**
   * Writes of files already created go through this, many files per threadpool job, instead of one
   * fs request each (the composition passes the addon's pwriteBatch; src/pcap/ loads nothing). Truncates,
   * syncs and closes, and every write of a file after a failure, stay one fs request each.
   */
  batchWrite?: BatchWrite | null;
  /**
   * New files are created through this, many per threadpool job (the addon's openBatch), instead of one
   * fs request each; their first write (the preamble with the first buffers) then goes in a write batch.
   * A create that fails here is tried again on the fs path, which counts and reports the failure.
   */
  batchOpen?: BatchOpen | null;
  /**
   * Drop-behind, bytes (0: off; needs batchWrite). As a file grows past each window of this size, the
   * window is sent to disk and the windows before it are dropped from the page cache; a closed file's
   * pages are dropped after its fsync (with dropCache). Capture files are written once and read rarely:
   * kept cached, 10,000 sessions put gigabytes a minute in the page cache, and on a VM whose memory
   * is backed on first touch, the kernel's work on that growing cache made each write 5 times dearer
   * (docs/performance.md). Default 0.
   */
  dropBehindBytes?: number;
  /** Drops a closed file's pages from the page cache (the addon's dropCache), with dropBehindBytes > 0. */
  dropCache?: DropCache | null;
  /**
   * Direct writes, bytes (0: off; needs batchWrite). A batched write with at least this many bytes of whole
   * pages inside it writes those pages with O_DIRECT, past the page cache (from an aligned copy on the
   * threadpool thread), and only its partial first and last pages through the cache. Capture data is
   * written once and read rarely; through the cache it costs the kernel a copy into fresh pages, their
   * dirty and LRU accounting and writeback, and drop-behind's freeing (docs/performance.md). Where the
   * file system refuses O_DIRECT the write goes through the cache as before, and so does every batch
   * while more than half of maxQueuedBytes waits (the disk is behind: the page cache takes the burst). A
   * multiple of 4096. Default 0.
   */
  directWriteBytes?: number;
  /**
   * Makes each file's SHA-256 (the addon's FileSha256), with batchWrite: the batched writes then hash what
   * they wrote on their threadpool thread (BatchWrite's `hashes`), and the fs path updates the same hash
   * on the main thread. Default: node:crypto on the main thread for every write.
   */
  batchHash?: (() => FileHash) | null;
}

/** errno number -> name (ENOSPC ...), for the results of a batched write. */
const ERRNO_NAMES = new Map<number, string>(Object.entries(osConstants.errno).map(([k, v]) => [v, k]));

/** An Error like fs.promises' for a batched write's -errno. */
function errnoError(negErrno: number): NodeJS.ErrnoException {
  const code = ERRNO_NAMES.get(-negErrno) ?? 'EIO';
  return Object.assign(new Error(`${code}: write failed`), { code, errno: negErrno });
}

/** A buffer of whole records on its way to disk. */
export interface WriteChunk {
  buf: Buffer;
  len: number;
  packets: number;
  /** Earliest and latest record timestamps in the chunk. */
  minSec: number;
  minNsec: number;
  maxSec: number;
  maxNsec: number;
  /** Gives the buffer back (to the pool) once the bytes are on disk or lost. */
  release: ((buf: Buffer) => void) | null;
}

/** The state of a file once closed: what is on disk. */
export interface DiskFileResult {
  path: string;
  /** Whether we created the file (false when it could never be created). It may still be empty (bytes 0) when even the header could not be written. */
  created: boolean;
  bytes: number;
  packets: number;
  minSec: number;
  minNsec: number;
  maxSec: number;
  maxNsec: number;
  /** Hex SHA-256 of the file's bytes (of zero bytes when it was never created). */
  sha256: string;
  lostPackets: number;
  /** The last error code seen on this file, or null. */
  lastError: string | null;
}

function errCode(e: unknown): string {
  const c = (e as NodeJS.ErrnoException | null)?.code;
  return typeof c === 'string' ? c : 'EIO';
}

/** ENOSPC and EDQUOT are "disk full": worth their own counter, since they heal when space is freed. */
export function dropCodeForError(code: string): DropCode {
  return code === 'ENOSPC' || code === 'EDQUOT' ? DROP.WRITE_ENOSPC : DROP.WRITE_ERROR;
}

export class DiskQueue {
  readonly maxQueuedBytes: number;
  readonly maxConcurrentWrites: number;
  readonly fileMode: number;
  readonly makeDirs: boolean;
  /** Outcome counters (see DiskQueueOptions.counts): the one place written and lost packets are counted. */
  readonly counts: Float64Array;
  private readonly onError: ((r: DiskErrorReport) => void) | undefined;
  private readonly limiter: RateLimiter;
  /** Bytes handed over and not yet written or dropped. */
  queuedBytes = 0;
  private readonly ready: DiskFile[] = [];
  private active = 0;
  private readonly batchWrite: BatchWrite | null;
  private readonly batchOpen: BatchOpen | null;
  /** Drop-behind window, bytes (0: off). */
  readonly dropBehindBytes: number;
  /** @internal drops a closed file's pages (null: off). */
  readonly dropCache: DropCache | null;
  /** Direct writes: the fewest whole-page bytes a batched write sends past the page cache (0: off). */
  readonly directWriteBytes: number;
  /** Bytes written with O_DIRECT so far (pcap.direct.bytes). */
  directBytes = 0;
  /** Writes whose O_DIRECT the file system or device refused, written through the page cache instead (pcap.direct.refused). */
  directRefused = 0;
  /** Batched writes sent through the page cache, direct writes on, because more than half the queue was waiting (pcap.direct.behind). */
  directBehind = 0;
  /** @internal the batched writes hash what they write (batchHash given, with batchWrite). */
  readonly hashesInBatch: boolean;
  private readonly newBatchHash: (() => FileHash) | null;
  /** Files waiting to be created by a batched open (their first job is a write). */
  private readonly readyOpen: DiskFile[] = [];
  private opening = 0;
  /** Files whose next job is a write that can go in a batch (created, header written, no failure to mend). */
  private readonly readyBatch: DiskFile[] = [];
  private batches = 0;
  private batchPumpQueued = false;
  /** The gather timer (BATCH_GATHER_MS) is armed; `gathered` once it fired, so the next batch goes whatever its size. */
  private gathering: NodeJS.Timeout | null = null;
  private gathered = false;
  private readonly spareWrites: PooledWrite[] = [];
  private readonly freeSlots: BatchSlot[] = [];

  constructor(opts: DiskQueueOptions = {}) {
    const maxQueuedBytes = opts.maxQueuedBytes ?? DEFAULT_MAX_QUEUED_BYTES;
    const maxConcurrentWrites = opts.maxConcurrentWrites ?? DEFAULT_MAX_CONCURRENT_WRITES;
    if (!Number.isInteger(maxQueuedBytes) || maxQueuedBytes < 1) {
      throw new MgError('MG_ERR_CONFIG_INVALID', 'maxQueuedBytes must be a positive integer', { problems: [{ field: 'maxQueuedBytes', message: 'must be a positive integer' }] });
    }
    if (!Number.isInteger(maxConcurrentWrites) || maxConcurrentWrites < 1) {
      throw new MgError('MG_ERR_CONFIG_INVALID', 'maxConcurrentWrites must be a positive integer', { problems: [{ field: 'maxConcurrentWrites', message: 'must be a positive integer' }] });
    }
    this.maxQueuedBytes = maxQueuedBytes;
    this.maxConcurrentWrites = maxConcurrentWrites;
    this.onError = opts.onError;
    this.limiter = new RateLimiter(opts.errorReportIntervalMs ?? DEFAULT_ERROR_REPORT_INTERVAL_MS);
    this.fileMode = opts.fileMode ?? DEFAULT_FILE_MODE;
    this.makeDirs = opts.makeDirs ?? false;
    this.counts = opts.counts ?? newOutcomeCounts();
    this.batchWrite = opts.batchWrite ?? null;
    this.batchOpen = opts.batchWrite ? (opts.batchOpen ?? null) : null;
    const drop = opts.dropBehindBytes ?? 0;
    if (!Number.isInteger(drop) || drop < 0) {
      throw new MgError('MG_ERR_CONFIG_INVALID', 'dropBehindBytes must be 0 or a positive integer', { problems: [{ field: 'dropBehindBytes', message: 'must be 0 or a positive integer' }] });
    }
    this.dropBehindBytes = this.batchWrite !== null ? drop : 0;
    this.dropCache = this.dropBehindBytes > 0 ? (opts.dropCache ?? null) : null;
    const direct = opts.directWriteBytes ?? 0;
    if (!Number.isInteger(direct) || direct < 0 || direct % 4096 !== 0) {
      throw new MgError('MG_ERR_CONFIG_INVALID', 'directWriteBytes must be 0 or a multiple of 4096', { problems: [{ field: 'directWriteBytes', message: 'must be 0 or a multiple of 4096 (a page)' }] });
    }
    this.directWriteBytes = this.batchWrite !== null ? direct : 0;
    this.newBatchHash = this.batchWrite !== null ? (opts.batchHash ?? null) : null;
    this.hashesInBatch = this.newBatchHash !== null;
  }

  /** @internal a new file's SHA-256. */
  newHash(): FileHash {
    return this.newBatchHash !== null ? this.newBatchHash() : new NodeFileHash();
  }

  /** Files writing right now (at most maxConcurrentWrites). */
  get inFlight(): number {
    return this.active;
  }

  /** Whether `bytes` more may be handed over now. */
  hasRoom(bytes: number): boolean {
    return this.queuedBytes + bytes <= this.maxQueuedBytes;
  }

  /** A file this queue will write. No I/O happens until its first job runs. */
  file(path: string, preamble: Buffer, opts: DiskFileOptions = {}): DiskFile {
    return new DiskFile(this, path, preamble, opts);
  }

  /** Rate-limited report to the hook. */
  report(path: string, op: DiskOp, code: string, message: string, lostPackets: number): void {
    if (this.onError === undefined) return;
    const suppressed = this.limiter.allow(`${op}:${code}`);
    if (suppressed < 0) return;
    try {
      this.onError({ path, op, code, message, lostPackets, suppressed });
    } catch {
      // A failing hook must not stop the disk queue.
    }
  }

  /** @internal a write job for DiskFile.enqueueRecords, reused. */
  takeWrite(): PooledWrite {
    const w = this.spareWrites.pop();
    if (w !== undefined) return w;
    const n = { kind: 'write', buf: NO_BUFFER, len: 0, packets: 0, minSec: 0, minNsec: 0, maxSec: 0, maxNsec: 0, release: null, chunk: null, pooled: true } as unknown as PooledWrite;
    n.chunk = n;
    return n;
  }

  /** @internal a chunk's write is finished (written or lost, its buffer released): reuse its job. */
  recycle(chunk: WriteChunk): void {
    const w = chunk as Partial<PooledWrite>;
    if (w.pooled !== true || this.spareWrites.length >= SPARE_WRITES_MAX) return;
    chunk.buf = NO_BUFFER;
    chunk.release = null;
    this.spareWrites.push(w as PooledWrite);
  }

  /** @internal a file has a job to run. */
  schedule(f: DiskFile): void {
    const toOpen = this.batchOpen !== null && f.openable();
    if (toOpen || (this.batchWrite !== null && f.batchable())) {
      (toOpen ? this.readyOpen : this.readyBatch).push(f);
      // The timer hands every file's buffer over in one turn: batch them all, not the first one alone.
      if (!this.batchPumpQueued) {
        this.batchPumpQueued = true;
        queueMicrotask(() => {
          this.batchPumpQueued = false;
          this.pump();
        });
      }
      return;
    }
    this.ready.push(f);
    this.pump();
  }

  private pump(): void {
    while (this.active < this.maxConcurrentWrites && this.ready.length > 0) {
      const f = this.ready.shift()!;
      this.active++;
      void f.runOne().then(() => {
        this.active--;
        f.afterRun();
        this.pump();
      });
    }
    while (this.batches < BATCHES_IN_FLIGHT && this.readyBatch.length > 0) {
      if (this.readyBatch.length < BATCH_GATHER_FILES && !this.gathered && this.readyBatchBytes() < BATCH_GATHER_BYTES) {
        this.gatherMore();
        break;
      }
      this.gathered = false;
      this.runBatch();
    }
    while (this.opening < OPENS_IN_FLIGHT && this.readyOpen.length > 0) this.runOpenBatch();
  }

  /**
   * One batched create for the files waiting to be opened (OPENS_IN_FLIGHT at once). Each file created
   * goes on to the write batches with its preamble; a file whose create failed is tried again on the fs
   * path, which reports the failure and counts its buffers lost.
   */
  private runOpenBatch(): void {
    const q = this.readyOpen;
    const n = Math.min(q.length, OPEN_BATCH_MAX);
    const files = q.splice(0, n);
    const paths = files.map((f) => f.path);
    const results = new Int32Array(n);
    this.opening++;
    const done = (): void => {
      this.opening--;
      for (let i = 0; i < n; i++) {
        const f = files[i]!;
        f.opened(results[i]!);
        f.afterRun();
      }
      this.pump();
    };
    try {
      this.batchOpen!(paths, n, this.fileMode, this.makeDirs, results, done);
    } catch (e) {
      // A bug guard: an addon that refuses the call leaves the files to the fs path.
      this.report('', 'create', 'EIO', `batched create refused: ${(e as Error).message}`, 0);
      results.fill(-5, 0, n);
      done();
    }
  }

  /** Bytes queued by the files waiting for a write batch (fewer than BATCH_GATHER_FILES of them). */
  private readyBatchBytes(): number {
    let n = 0;
    for (const f of this.readyBatch) n += f.pendingBytes;
    return n;
  }

  /**
   * Let a small batch wait BATCH_GATHER_MS for more files. The timer is not unref'd: writes waiting on it
   * must keep the process alive (a CLI's last close waits behind them, and nothing else may hold the loop).
   */
  private gatherMore(): void {
    if (this.gathering !== null) return;
    this.gathering = setTimeout(() => {
      this.gathering = null;
      this.gathered = true;
      this.pump();
    }, BATCH_GATHER_MS);
  }

  /**
   * One batched call for the files waiting with a write (each file's queued buffers in order, as many as
   * one writev would take). Each buffer is hashed and committed alone when its result comes back; a file
   * whose write failed counts its buffers lost, is cut back to its last whole record and takes the
   * one-request-per-write path from then on, like any write failure.
   */
  private runBatch(): void {
    // The arrays of a batch slot are reused (BATCHES_IN_FLIGHT slots): a batch's arrays live until its
    // writes return, long enough to be promoted, and ~30 batches a second would pile them up as garbage.
    const slot = this.freeSlots.pop() ?? new BatchSlot();
    const q = this.readyBatch;
    let n = 0;
    let taken = 0;
    while (taken < q.length && n < BATCH_MAX_BUFFERS - 1) {
      const f = q[taken++]!;
      let pos = f.committedBytes;
      const fd = f.fd;
      if (pos === 0) {
        // A file just created: its preamble goes first, in the same batch as its first buffers.
        const pre = f.preambleBytes;
        slot.fds[n] = fd;
        slot.positions[n] = 0;
        slot.lengths[n] = pre.length;
        slot.buffers[n] = pre;
        slot.chunks[n] = null;
        slot.files[n] = f;
        slot.hashes[n] = f.fileHash;
        pos = pre.length;
        n++;
      }
      const chunks = f.takeWrites(BATCH_MAX_BUFFERS - n);
      for (const c of chunks) {
        slot.fds[n] = fd;
        slot.positions[n] = pos;
        slot.lengths[n] = c.len;
        slot.buffers[n] = c.buf;
        slot.chunks[n] = c;
        slot.files[n] = f;
        slot.hashes[n] = f.fileHash;
        pos += c.len;
        n++;
      }
    }
    q.splice(0, taken);
    this.batches++;
    const done = (): void => {
      this.batches--;
      const { files, chunks, results, stats } = slot;
      this.directBytes += stats[0]!;
      this.directRefused += stats[1]!;
      stats[0] = stats[1] = 0;
      let i = 0;
      while (i < n) {
        const f = files[i]!;
        let j = i + 1;
        while (j < n && files[j] === f) j++;
        const mend = f.finishBatch(chunks, i, j, results);
        if (mend === null) f.afterRun();
        else void mend.then(() => f.afterRun());
        i = j;
      }
      slot.clear(n);
      this.freeSlots.push(slot);
      this.pump();
    };
    // A direct write returns once the device has the data; a buffered one once the page cache has it. When
    // the disk is behind (more than half the queue waiting), the page cache takes the burst, as it did
    // before direct writes: up to the kernel's dirty limits, gigabytes, against the queue's 64 MiB.
    let direct = this.directWriteBytes;
    if (direct > 0 && this.queuedBytes > this.maxQueuedBytes / 2) {
      direct = 0;
      this.directBehind++;
    }
    try {
      this.batchWrite!(slot.fds, slot.positions, slot.lengths, slot.buffers, n, slot.results, done, this.dropBehindBytes, this.hashesInBatch ? slot.hashes : undefined, direct, slot.stats);
    } catch (e) {
      // A bug guard: an addon that refuses the call loses nothing silently; every buffer is counted lost
      // (EIO) and its file leaves batches.
      slot.results.fill(-5, 0, n);
      this.report('', 'write', 'EIO', `batched write refused: ${(e as Error).message}`, 0);
      done();
    }
  }
}

export interface DiskFileOptions {
  /** fdatasync at most this often while writing, ms (0: only fsync on close). */
  datasyncIntervalMs?: number;
}

type Job = { kind: 'write'; chunk: WriteChunk } | { kind: 'close'; done: (r: DiskFileResult) => void } | { kind: 'idle'; done: () => void };

/**
 * A write job that is its own chunk, reused (DiskFile.enqueueRecords): at 10,000 quiet sessions serve
 * hands over ~26,000 buffers a second, and a job and a chunk object for each, alive until the write
 * returns, were promoted to V8's old generation and piled up as garbage at ~10 MB/s between full
 * collections (RSS rose past 600 MB in a minute).
 */
interface PooledWrite extends WriteChunk {
  kind: 'write';
  chunk: WriteChunk;
  pooled: true;
}

/** The arrays one batched call works on, reused from batch to batch. */
class BatchSlot {
  readonly fds = new Int32Array(BATCH_MAX_BUFFERS);
  readonly positions = new Float64Array(BATCH_MAX_BUFFERS);
  readonly lengths = new Int32Array(BATCH_MAX_BUFFERS);
  readonly results = new Int32Array(BATCH_MAX_BUFFERS);
  readonly buffers: Uint8Array[] = new Array<Uint8Array>(BATCH_MAX_BUFFERS).fill(NO_BUFFER);
  readonly chunks: (WriteChunk | null)[] = new Array<WriteChunk | null>(BATCH_MAX_BUFFERS).fill(null);
  readonly files: (DiskFile | null)[] = new Array<DiskFile | null>(BATCH_MAX_BUFFERS).fill(null);
  readonly hashes: (FileHash | null)[] = new Array<FileHash | null>(BATCH_MAX_BUFFERS).fill(null);
  /** The job's [bytes written with O_DIRECT, O_DIRECT refused], read and zeroed when it is done. */
  readonly stats = new Float64Array(2);

  /** Drop the references of the first n entries (their chunks are recycled, their files may close). */
  clear(n: number): void {
    this.buffers.fill(NO_BUFFER, 0, n);
    this.chunks.fill(null, 0, n);
    this.files.fill(null, 0, n);
    this.hashes.fill(null, 0, n);
  }
}

/** Spare pooled writes kept at most (beyond this the garbage collector takes them). */
const SPARE_WRITES_MAX = 65_536;
const NO_BUFFER = Buffer.alloc(0);

/** One file on disk, written by one writer through the queue. */
export class DiskFile {
  private handle: RawFile | null = null;
  /** Not created by a batched open yet (false once tried, whatever the outcome). */
  private openPending = true;
  private readonly jobs: Job[] = [];
  private scheduled = false;
  private closed = false;
  private readonly hash: FileHash;
  private lastSyncAt = Date.now();
  /** Bytes that may sit past the committed offset after a failed write and a failed truncate. */
  private dirty = false;
  /** We created the file (O_EXCL succeeded). */
  private created = false;
  /** A batched write failed: this file's writes go one by one through fs from now on. */
  private batchOff = false;

  /** File size up to the last whole record written: what a reader may safely read. */
  committedBytes = 0;
  committedPackets = 0;
  minSec = 0;
  minNsec = 0;
  maxSec = 0;
  maxNsec = 0;
  lostPackets = 0;
  lastError: string | null = null;
  /** Bytes handed over to this file and not yet written or lost. */
  pendingBytes = 0;

  constructor(
    private readonly queue: DiskQueue,
    readonly path: string,
    private readonly preamble: Buffer,
    opts: DiskFileOptions,
  ) {
    this.datasyncIntervalMs = opts.datasyncIntervalMs ?? 0;
    this.hash = queue.newHash();
  }

  /** @internal the SHA-256 a batched write updates (DiskQueue.hashesInBatch). */
  get fileHash(): FileHash {
    return this.hash;
  }

  private readonly datasyncIntervalMs: number;

  /** Hand a chunk over. The queue owns the buffer until it calls chunk.release. */
  enqueue(chunk: WriteChunk): void {
    if (this.closed) throw new Error(`enqueue after close: ${this.path}`);
    this.queue.queuedBytes += chunk.len;
    this.pendingBytes += chunk.len;
    this.push({ kind: 'write', chunk });
  }

  /**
   * enqueue() without allocating: the chunk's fields, in a write job the queue reuses once the write is
   * finished (the caller keeps no reference to it).
   */
  enqueueRecords(buf: Buffer, len: number, packets: number, minSec: number, minNsec: number, maxSec: number, maxNsec: number, release: ((buf: Buffer) => void) | null): void {
    if (this.closed) throw new Error(`enqueue after close: ${this.path}`);
    const w = this.queue.takeWrite();
    w.buf = buf;
    w.len = len;
    w.packets = packets;
    w.minSec = minSec;
    w.minNsec = minNsec;
    w.maxSec = maxSec;
    w.maxNsec = maxNsec;
    w.release = release;
    this.queue.queuedBytes += len;
    this.pendingBytes += len;
    this.push(w);
  }

  /** Resolves once every job handed over so far has finished. */
  idle(): Promise<void> {
    return new Promise((done) => this.push({ kind: 'idle', done }));
  }

  /**
   * After every pending write: make sure the file exists (with its preamble), cut anything past the
   * committed offset, fsync, close. Never rejects: failures are in the result and went to the hook.
   */
  close(): Promise<DiskFileResult> {
    if (this.closed) return Promise.reject(new Error(`closed twice: ${this.path}`));
    const p = new Promise<DiskFileResult>((done) => this.push({ kind: 'close', done }));
    this.closed = true;
    return p;
  }

  get isClosed(): boolean {
    return this.closed;
  }

  private push(job: Job): void {
    this.jobs.push(job);
    if (!this.scheduled) {
      this.scheduled = true;
      this.queue.schedule(this);
    }
  }

  /** @internal the next job is a write that a batch can do: created, nothing to mend (the preamble may still be due: the batch writes it first). */
  batchable(): boolean {
    const j = this.jobs[0];
    return j !== undefined && j.kind === 'write' && this.handle !== null && !this.dirty && this.datasyncIntervalMs === 0 && !this.batchOff;
  }

  /** @internal the next job is a write to a file not created yet, and a batched open has not been tried. */
  openable(): boolean {
    const j = this.jobs[0];
    return this.openPending && j !== undefined && j.kind === 'write' && this.handle === null && this.datasyncIntervalMs === 0;
  }

  /** @internal the batched open's result for this file: a descriptor, or -errno (the fs path tries again and reports). */
  opened(result: number): void {
    this.openPending = false;
    if (result >= 0) {
      this.handle = new RawFile(result);
      this.created = true;
    }
  }

  /** @internal the preamble, for a batch that writes it. */
  get preambleBytes(): Buffer {
    return this.preamble;
  }

  /** @internal the descriptor (batchable() files only). */
  get fd(): number {
    return this.handle!.fd;
  }

  /** @internal take the queued writes at the head (as many as one writev would take, at most `max`). */
  takeWrites(max: number): WriteChunk[] {
    const out: WriteChunk[] = [];
    let bytes = 0;
    const jobs = this.jobs;
    for (let j = jobs[0]; j !== undefined && j.kind === 'write' && out.length < max && out.length < WRITEV_MAX_BUFFERS; j = jobs[0]) {
      if (out.length > 0 && bytes + j.chunk.len > WRITEV_MAX_BYTES) break;
      jobs.shift();
      out.push(j.chunk);
      bytes += j.chunk.len;
    }
    return out;
  }

  /**
   * @internal a batch wrote (or failed) chunks[from, to) with results[from, to): commit in order up to the first
   * failure, count the rest lost. After a failure the file is cut back to its last whole record (the
   * returned promise) and leaves batches for good: its later writes go one fs request each.
   */
  finishBatch(chunks: readonly (WriteChunk | null)[], from: number, to: number, results: Int32Array): Promise<void> | null {
    let err: NodeJS.ErrnoException | null = null;
    for (let i = from; i < to; i++) {
      const c = chunks[i];
      const r = results[i]!;
      if (err === null && r !== 0) err = errnoError(r);
      if (c === null || c === undefined) {
        // The preamble of a file just created (always its first entry).
        if (err === null) {
          if (!this.queue.hashesInBatch) this.hash.update(this.preamble);
          this.committedBytes = this.preamble.length;
        } else this.fail('write', err, 0);
        continue;
      }
      if (err === null) {
        if (!this.queue.hashesInBatch) this.hash.update(c.buf.subarray(0, c.len));
        this.commit(c);
      } else this.lose(c, 'write', err);
      this.queue.queuedBytes -= c.len;
      this.pendingBytes -= c.len;
      if (c.release !== null) c.release(c.buf);
      this.queue.recycle(c);
    }
    if (err === null) return null;
    this.batchOff = true;
    return this.rollBack();
  }

  /** @internal */
  afterRun(): void {
    if (this.jobs.length > 0) this.queue.schedule(this);
    else this.scheduled = false;
  }

  /**
   * @internal run the oldest job; never rejects. Write jobs queued behind it for the same file go with it
   * in one writev(2) (at most WRITEV_MAX_BUFFERS and WRITEV_MAX_BYTES): when the disk is slower than the
   * capture, full buffers pile up per file, and one threadpool round trip for several of them saves the
   * dispatch and the wake-ups of the others (issue 11). Each buffer is still hashed and committed alone.
   */
  async runOne(): Promise<void> {
    const job = this.jobs.shift()!;
    try {
      if (job.kind === 'write') {
        const jobs = this.jobs;
        let next = jobs[0];
        if (next === undefined || next.kind !== 'write') await this.write(job.chunk);
        else {
          const chunks = [job.chunk];
          let bytes = job.chunk.len;
          while (next !== undefined && next.kind === 'write' && chunks.length < WRITEV_MAX_BUFFERS && bytes + next.chunk.len <= WRITEV_MAX_BYTES) {
            jobs.shift();
            chunks.push(next.chunk);
            bytes += next.chunk.len;
            next = jobs[0];
          }
          await this.writeMany(chunks, bytes);
        }
      }
      else if (job.kind === 'close') job.done(await this.finish());
      else job.done();
    } catch (e) {
      // Every expected failure is handled inside; this is a bug guard so the queue keeps running and
      // nobody waits forever on a close.
      this.fail(job.kind === 'close' ? 'close' : 'write', e, 0);
      if (job.kind === 'close') job.done(this.result());
    }
  }

  /** Record a failure: last error, the queue's rate-limited hook. */
  private fail(op: DiskOp, e: unknown, lostPackets: number): void {
    const code = errCode(e);
    const message = (e as Error | null)?.message ?? String(e);
    this.lastError = code;
    this.queue.report(this.path, op, code, message, lostPackets);
  }

  /** A buffer's packets are lost: the one site that counts WRITE_ENOSPC and WRITE_ERROR. */
  private lose(chunk: WriteChunk, op: DiskOp, e: unknown): void {
    this.lostPackets += chunk.packets;
    this.queue.counts[dropCodeForError(errCode(e))]! += chunk.packets;
    this.fail(op, e, chunk.packets);
  }

  /** Open the file if it is not open yet. Returns false (and reports) when it cannot be created. */
  private async ensureOpen(chunk: WriteChunk | null): Promise<boolean> {
    if (this.handle !== null) return true;
    try {
      this.handle = await this.create();
      this.created = true;
      return true;
    } catch (e) {
      if (chunk !== null) this.lose(chunk, 'create', e);
      else {
        this.fail('create', e, 0);
      }
      return false;
    }
  }

  /**
   * O_CREAT|O_EXCL; when the folder is missing, make it here, on the threadpool like the open, so a new
   * folder (one an hour, src/collector/layout.ts) costs the packet path nothing. Retention removes
   * folders it empties: if that happens between our mkdir and open, make it again (a few times at most).
   */
  private async create(): Promise<RawFile> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await RawFile.create(this.path, this.queue.fileMode);
      } catch (e) {
        if (!this.queue.makeDirs || errCode(e) !== 'ENOENT' || attempt >= 3) throw e;
        await mkdir(dirname(this.path), { recursive: true });
      }
    }
  }

  /** Write all of buf[0, len) at `pos`, continuing short writes. Throws the I/O error. */
  private async writeAll(buf: Buffer, len: number, pos: number): Promise<void> {
    let done = 0;
    let zeroWrites = 0;
    while (done < len) {
      const { bytesWritten } = await this.handle!.write(buf, done, len - done, pos + done);
      if (bytesWritten === 0) {
        // write(2) returning 0 for a non-empty buffer makes no progress; don't spin on it.
        if (++zeroWrites > 2) throw Object.assign(new Error('write made no progress'), { code: 'EIO' });
      }
      done += bytesWritten;
    }
  }

  /** Cut the file back to the last committed record after a failed write. */
  private async rollBack(): Promise<void> {
    try {
      await this.handle!.truncate(this.committedBytes);
      this.dirty = false;
    } catch (e) {
      this.dirty = true;
      this.fail('truncate', e, 0);
    }
  }

  /** The preamble goes first, once; until it is on disk the committed size stays 0. */
  private async ensurePreamble(chunk: WriteChunk | null): Promise<boolean> {
    if (this.committedBytes > 0) return true;
    try {
      await this.writeAll(this.preamble, this.preamble.length, 0);
    } catch (e) {
      if (chunk !== null) this.lose(chunk, 'write', e);
      else {
        this.fail('write', e, 0);
      }
      await this.rollBack();
      return false;
    }
    this.hash.update(this.preamble);
    this.committedBytes = this.preamble.length;
    return true;
  }

  private async write(chunk: WriteChunk): Promise<void> {
    try {
      if (!(await this.ensureOpen(chunk))) return;
      if (!(await this.ensurePreamble(chunk))) return;
      try {
        await this.writeAll(chunk.buf, chunk.len, this.committedBytes);
      } catch (e) {
        this.lose(chunk, 'write', e);
        await this.rollBack();
        return;
      }
      this.hash.update(chunk.buf.subarray(0, chunk.len));
      this.commit(chunk);
      if (this.datasyncIntervalMs > 0 && Date.now() - this.lastSyncAt >= this.datasyncIntervalMs) {
        this.lastSyncAt = Date.now();
        try {
          await this.handle!.datasync();
        } catch (e) {
          this.fail('sync', e, 0);
        }
      }
    } finally {
      this.queue.queuedBytes -= chunk.len;
      this.pendingBytes -= chunk.len;
      if (chunk.release !== null) chunk.release(chunk.buf);
      this.queue.recycle(chunk);
    }
  }

  /** write() for several chunks in one writev(2): all of them are committed, or all are lost. */
  private async writeMany(chunks: WriteChunk[], bytes: number): Promise<void> {
    try {
      if (!(await this.ensureOpen(chunks[0]!))) {
        for (let i = 1; i < chunks.length; i++) this.lose(chunks[i]!, 'create', Object.assign(new Error(this.lastError ?? 'create failed'), { code: this.lastError ?? 'EIO' }));
        return;
      }
      if (!(await this.ensurePreamble(chunks[0]!))) {
        for (let i = 1; i < chunks.length; i++) this.lose(chunks[i]!, 'write', Object.assign(new Error(this.lastError ?? 'write failed'), { code: this.lastError ?? 'EIO' }));
        return;
      }
      const views = chunks.map((c) => c.buf.subarray(0, c.len));
      try {
        const pos = this.committedBytes;
        const { bytesWritten } = await this.handle!.writev(views, pos);
        if (bytesWritten < bytes) {
          // A short writev: the rest, buffer by buffer, at its place.
          let at = 0;
          for (const v of views) {
            const from = Math.max(0, bytesWritten - at);
            if (from < v.length) await this.writeAll(v.subarray(from), v.length - from, pos + at + from);
            at += v.length;
          }
        }
      } catch (e) {
        for (const c of chunks) this.lose(c, 'write', e);
        await this.rollBack();
        return;
      }
      for (let i = 0; i < chunks.length; i++) {
        this.hash.update(views[i]!);
        this.commit(chunks[i]!);
      }
      if (this.datasyncIntervalMs > 0 && Date.now() - this.lastSyncAt >= this.datasyncIntervalMs) {
        this.lastSyncAt = Date.now();
        try {
          await this.handle!.datasync();
        } catch (e) {
          this.fail('sync', e, 0);
        }
      }
    } finally {
      for (const c of chunks) {
        this.queue.queuedBytes -= c.len;
        this.pendingBytes -= c.len;
        if (c.release !== null) c.release(c.buf);
        this.queue.recycle(c);
      }
    }
  }

  private commit(chunk: WriteChunk): void {
    if (chunk.packets > 0) {
      if (this.committedPackets === 0 || chunk.minSec < this.minSec || (chunk.minSec === this.minSec && chunk.minNsec < this.minNsec)) {
        this.minSec = chunk.minSec;
        this.minNsec = chunk.minNsec;
      }
      if (this.committedPackets === 0 || chunk.maxSec > this.maxSec || (chunk.maxSec === this.maxSec && chunk.maxNsec > this.maxNsec)) {
        this.maxSec = chunk.maxSec;
        this.maxNsec = chunk.maxNsec;
      }
    }
    this.committedBytes += chunk.len;
    this.committedPackets += chunk.packets;
    // The one site that counts `written`: the records are on disk.
    this.queue.counts[DROP.OK]! += chunk.packets;
  }

  private async finish(): Promise<DiskFileResult> {
    // A file with no packets still gets its header, so every catalogued file opens in tshark.
    if ((await this.ensureOpen(null)) && (await this.ensurePreamble(null))) {
      const h = this.handle!;
      if (this.dirty) await this.rollBack();
      let synced = false;
      try {
        await h.sync();
        synced = true;
      } catch (e) {
        this.fail('sync', e, 0);
      }
      // Its pages are on disk: drop them from the page cache (drop-behind left the last windows).
      const drop = this.queue.dropCache;
      if (synced && drop !== null) await new Promise<void>((done) => drop(h.fd, done));
    }
    if (this.handle !== null) {
      try {
        await this.handle.close();
      } catch (e) {
        this.fail('close', e, 0);
      }
      this.handle = null;
    }
    return this.result();
  }

  private result(): DiskFileResult {
    return {
      path: this.path,
      created: this.created,
      bytes: this.committedBytes,
      packets: this.committedPackets,
      minSec: this.minSec,
      minNsec: this.minNsec,
      maxSec: this.maxSec,
      maxNsec: this.maxNsec,
      sha256: this.hash.digest(),
      lostPackets: this.lostPackets,
      lastError: this.lastError,
    };
  }
}

/**
 * A file descriptor with the few operations the queue needs, each on the libuv threadpool like
 * fs.promises (fs's callback API: a descriptor from a batched open cannot become a FileHandle). The
 * queue closes every file it opened (finish()); nothing relies on garbage collection to close one.
 */
class RawFile {
  constructor(readonly fd: number) {}

  static create(path: string, mode: number): Promise<RawFile> {
    return new Promise((res, rej) => fsOpen(path, 'wx', mode, (e, fd) => (e ? rej(e) : res(new RawFile(fd)))));
  }

  write(buf: Uint8Array, off: number, len: number, pos: number): Promise<{ bytesWritten: number }> {
    return new Promise((res, rej) => fsWrite(this.fd, buf, off, len, pos, (e, n) => (e ? rej(e) : res({ bytesWritten: n }))));
  }

  writev(bufs: Uint8Array[], pos: number): Promise<{ bytesWritten: number }> {
    return new Promise((res, rej) => fsWritev(this.fd, bufs, pos, (e, n) => (e ? rej(e) : res({ bytesWritten: n }))));
  }

  truncate(len: number): Promise<void> {
    return new Promise((res, rej) => ftruncate(this.fd, len, (e) => (e ? rej(e) : res())));
  }

  datasync(): Promise<void> {
    return new Promise((res, rej) => fdatasync(this.fd, (e) => (e ? rej(e) : res())));
  }

  sync(): Promise<void> {
    return new Promise((res, rej) => fsync(this.fd, (e) => (e ? rej(e) : res())));
  }

  close(): Promise<void> {
    return new Promise((res, rej) => fsClose(this.fd, (e) => (e ? rej(e) : res())));
  }
}
