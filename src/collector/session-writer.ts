/**
 * Session writers: where a session's frames go after the collector has decoded them and found their
 * (source IP, VNI) pair. One SessionWriter per pair owns that pair's files, one after another:
 *
 *   open (catalog row first, then the file)  ->  append (per packet)  ->  rotate (size, age, GWLB endpoint)
 *     ->  close (flush, fsync, SHA-256 from the disk queue, catalog row finalized)
 *
 * and keeps an open file's catalog row in step with what is on disk. SessionWriters is what they share:
 * the buffer pool, the disk queue (which counts `written` and write losses, src/outcomes.ts), the file
 * sequence, the closes still in flight, and the backpressure signal a receiver may ask for.
 *
 * Per packet, SessionWriter.append() is one comparison for rotation and PcapFileWriter.append(): no
 * allocation, no I/O, no throw. It returns the writer's outcome; the collector counts refusals.
 * Nothing here has a timer: the collector's one timer calls tick() for every session, so one flush
 * interval covers every file.
 */
import { join } from 'node:path';
import { DROP, newOutcomeCounts, type DropCode } from '../outcomes.js';
import { BufferPool } from '../pcap/buffer-pool.js';
import type { PageRelease } from '../pcap/region.js';
import type { BytesCopy, PlannedCopy } from '../pcap/copy.js';
import { DiskQueue, type BatchOpen, type BatchWrite, type DiskErrorReport, type DropCache, type FileHash } from '../pcap/disk-queue.js';
import { PcapFileWriter } from '../pcap/file-writer.js';
import { GLOBAL_HEADER_BYTES, RECORD_HEADER_BYTES } from '../pcap/format.js';
import { toMicros } from '../util/clock.js';
import { RateLimiter, type Logger } from '../util/log.js';
import { flatString } from '../util/strings.js';
import type { Catalog } from './catalog.js';
import { captureRelPath } from './layout.js';

/**
 * A session's first write buffer, and the smallest class of the pool: 10,000 quiet sessions hold 10 MiB,
 * not 10,000 x 4 KiB (40 MiB, which at 2 packets/s of 128 B per session was 14 times their traffic per
 * flush interval). A buffer that fills before the interval ends makes the next one twice as large
 * (file-writer.ts GROWTH), within the fair share.
 */
export const SESSION_MIN_BUFFER_BYTES = 1024;

/** Ticks (flush intervals) a free write buffer must sit unused before the pool may let it go. */
export const POOL_TRIM_TICKS = 10;

/**
 * The share of the pool that buffers (partly filled ones included) may hold before the receiver waits.
 * Seven eighths, not three quarters (issue 16): when the disk stalls, the buffers queued for it stop
 * coming back, the receiver waits, and the burst goes to the capture ring. The pool's last quarter was
 * resident (a 10,000-session ramp takes the pool to its ceiling) and held nothing then, so the ring
 * alone had to wait out the stall. With an eighth of it in use first, a 48 MiB ring lost nothing in
 * eighteen 60 s runs of 10,000 sessions where it lost in two of four with three quarters
 * (docs/performance.md "Memory at 10,000 sessions"). The eighth left over (8 MiB by default) is for what
 * one ring block or receive batch can still take after the check, at worst a new buffer per frame in it
 * (a 128 KiB block at 10,000 sessions: about 1,300 frames of 4 KiB shares, 5 MiB); past it frames are
 * dropped and counted (pcap.write.queue_full), never lost silently.
 */
export const POOL_PRESSURE_SHARE = 7 / 8;

/** Least time between two early flushes of every session's partly filled buffer under memory pressure. */
const PRESSURE_FLUSH_MS = 100;

/** Counters of the session writers (docs/counters.md "Capture files"). */
export interface SessionWritersCounters {
  'pcap.files.closed_early': number;
  'pcap.copy.refused': number;
  /** Gauge, sampled every tick: bytes of write buffers allocated (in use or free). */
  'pcap.buffers.pool_bytes': number;
  /** Gauge, sampled every tick: bytes of write buffers handed out (being filled or queued for disk). */
  'pcap.buffers.in_use_bytes': number;
  /** Write buffers allocated outside the pool's region because no block of their size was free (BufferPool.regionMisses). */
  'pcap.buffers.region_misses': number;
  /** Bytes written with O_DIRECT, past the page cache (pcap.directWriteBytes; DiskQueue.directBytes). */
  'pcap.direct.bytes': number;
  /** Direct writes the file system or device refused, written through the page cache instead (DiskQueue.directRefused). */
  'pcap.direct.refused': number;
  /** Batched writes sent through the page cache because the disk was behind (DiskQueue.directBehind). */
  'pcap.direct.behind': number;
}

export function newSessionWritersCounters(): SessionWritersCounters {
  return { 'pcap.files.closed_early': 0, 'pcap.copy.refused': 0, 'pcap.buffers.pool_bytes': 0, 'pcap.buffers.in_use_bytes': 0, 'pcap.buffers.region_misses': 0, 'pcap.direct.bytes': 0, 'pcap.direct.refused': 0, 'pcap.direct.behind': 0 };
}

/** What a session writer reads of its pair when a file opens (never per packet). */
export interface SessionIdentity {
  readonly sourceIp: string;
  readonly vni: number;
  readonly sessionId: string | null;
  readonly gwlbEndpointId: string | null;
  readonly gwlbAttachmentId: string | null;
}

export interface SessionWritersOptions {
  dataDir: string;
  catalog: Catalog;
  logger: Logger;
  /** Which receiver this is when several share the port (file names and catalog rows carry it). */
  workerId?: number;
  rotateBytes: number;
  rotateSeconds: number;
  /** The largest write buffer; a busy session's buffers grow to this. */
  bufferBytes: number;
  /** A session's first write buffer (src/pcap/buffer-pool.ts). Default SESSION_MIN_BUFFER_BYTES (1 KiB). */
  minBufferBytes?: number;
  /** Bytes handed to the disk and not yet written (the disk queue's bound); past half of it the receiver waits. */
  queueBytes: number;
  /**
   * Write buffers in all, being filled or queued for disk (the pool's bound; default queueBytes). Apart
   * from queueBytes because the two fill for different reasons: a burst fills the disk queue (and should
   * wait in the socket buffer or ring instead), many sessions fill buffers (each holds one while it has
   * traffic: 10,000 sessions at 10 packets/s hold 80-160 MiB, which is the traffic, not a backlog).
   */
  bufferPoolBytes?: number;
  /** Outcome counters (src/outcomes.ts) the disk queue counts written and lost frames into. Fresh when absent. */
  counts?: Float64Array;
  /** Copies frames above 128 bytes into the write buffers (the native addon's copyBytes); default Buffer#copy. */
  copyBytes?: BytesCopy | null;
  /** Frame copies from a receiver's batch buffer, one native call per batch (the addon's Copier; src/pcap/copy.ts). */
  plannedCopy?: PlannedCopy | null;
  /** Many files' writes in one threadpool job (the addon's pwriteBatch; src/pcap/disk-queue.ts). Default: one fs request per write. */
  batchWrite?: BatchWrite | null;
  /** Many files' creates in one threadpool job (the addon's openBatch), with batchWrite. Default: one fs request per create. */
  batchOpen?: BatchOpen | null;
  /** Drop-behind window, bytes (`pcap.dropBehindBytes`; 0: off; src/pcap/disk-queue.ts). Needs batchWrite. */
  dropBehindBytes?: number;
  /** Direct writes of a batched write's whole pages from this many bytes on (`pcap.directWriteBytes`; 0: off; src/pcap/disk-queue.ts). Needs batchWrite. */
  directWriteBytes?: number;
  /** Drops a closed file's pages from the page cache (the addon's dropCache), with dropBehindBytes. */
  dropCache?: DropCache | null;
  /** Each file's SHA-256, updated by the batched writes on the threadpool (the addon's FileSha256; src/pcap/disk-queue.ts). Default: node:crypto on the main thread. */
  batchHash?: (() => FileHash) | null;
  /** Page release for the buffer pool's region (src/pcap/region.ts); null: each buffer its own allocation. */
  pages?: PageRelease | null;
  /** Wall clock in seconds, replaceable in tests. */
  nowSec?: () => number;
  /**
   * Files open at once, at most (`pcap.maxOpenFiles`, resolved by src/collector/open-files.ts). Opening
   * one more first closes the files idle longest (reason `fd-pressure`). Default: no limit.
   */
  maxOpenFiles?: number;
}

export class SessionWriters {
  /** Outcome counters, indexed by DropCode; the disk queue counts OK (written) and the write losses here. */
  readonly counts: Float64Array;
  readonly rotateBytes: number;
  readonly rotateSeconds: number;
  readonly catalog: Catalog;
  readonly logger: Logger;
  readonly nowSec: () => number;
  readonly logLimit = new RateLimiter(60_000);
  private readonly pool: BufferPool;
  private readonly queue: DiskQueue;
  private readonly copy: BytesCopy | null;
  private readonly planned: PlannedCopy | null;
  private readonly halfQueue: number;
  private readonly poolHigh: number;
  private pressureFlushedMs = 0;
  private readonly workerId: number;
  /** Writers with a file open. */
  private readonly live = new Set<SessionWriter>();
  private trimTicks = 0;
  private readonly pending = new Set<Promise<void>>();
  private fileSeq = 0;
  readonly maxOpenFiles: number;
  readonly counters: SessionWritersCounters = newSessionWritersCounters();

  constructor(private readonly opts: SessionWritersOptions) {
    this.counts = opts.counts ?? newOutcomeCounts();
    this.rotateBytes = opts.rotateBytes;
    this.rotateSeconds = opts.rotateSeconds;
    this.catalog = opts.catalog;
    this.logger = opts.logger;
    this.nowSec = opts.nowSec ?? (() => Date.now() / 1000);
    this.workerId = opts.workerId ?? 0;
    this.copy = opts.copyBytes ?? null;
    const planned = (this.planned = opts.plannedCopy ?? null);
    this.pool = new BufferPool({
      bufferBytes: opts.bufferBytes,
      minBufferBytes: opts.minBufferBytes ?? SESSION_MIN_BUFFER_BYTES,
      maxBytes: Math.max(opts.bufferPoolBytes ?? opts.queueBytes, opts.queueBytes),
      onDiscard: planned === null ? undefined : (b) => planned.forget(b),
      pages: opts.pages ?? null,
    });
    // Buffers cut from the pool's region are addressed through the region (one registration, not one each).
    if (planned !== null && this.pool.region !== null) planned.addRegion(this.pool.region.buffer);
    // Every write failure (a failed create, write, truncate, sync or close; a full queue) reaches the log
    // through this one hook, which the queue rate-limits to one line per (operation, errno) a minute.
    // Folders (one per pair, src/collector/layout.ts) are made by the queue on the threadpool, not here:
    // at 10,000 new pairs, mkdir on the packet path cost about 0.9 ms each (ext4, bench VM).
    this.queue = new DiskQueue({ maxQueuedBytes: opts.queueBytes, maxConcurrentWrites: 32, counts: this.counts, makeDirs: true, batchWrite: opts.batchWrite ?? null, batchOpen: opts.batchOpen ?? null, dropBehindBytes: opts.dropBehindBytes ?? 0, directWriteBytes: opts.directWriteBytes ?? 0, dropCache: opts.dropCache ?? null, batchHash: opts.batchHash ?? null, onError: (r) => this.onDiskReport(r) });
    this.maxOpenFiles = opts.maxOpenFiles ?? Infinity;
    this.halfQueue = opts.queueBytes / 2;
    this.poolHigh = Math.max(opts.bufferPoolBytes ?? opts.queueBytes, opts.queueBytes) * POOL_PRESSURE_SHARE;
  }

  /** The writer for a new pair (at the first-packet edge). No file is opened until its first append. */
  writer(session: SessionIdentity): SessionWriter {
    return new SessionWriter(this, session);
  }

  /**
   * Whether the receiver would wait now (the thresholds of backlogged(), without its side effects):
   * for work that can choose its moment, such as the heap trimmer's full collection.
   */
  underPressure(): boolean {
    return this.queue.queuedBytes > this.halfQueue || this.pool.inUseBytes > this.poolHigh;
  }

  /**
   * Backpressure for receivers that can leave a burst in the socket buffer (native), asked once per
   * batch: true while more than half the disk queue's bytes are in flight, or while buffers (partly
   * filled ones included) hold more than POOL_PRESSURE_SHARE (7/8) of the pool. In the second case, with the queue
   * not busy, the partly filled buffers of many quiet sessions go to the disk now rather than at the
   * next tick, so a pool held by them slows the reader briefly instead of dropping packets.
   */
  backlogged(): boolean {
    if (!this.underPressure()) return false;
    if (this.queue.queuedBytes > this.halfQueue) return true;
    // At most every PRESSURE_FLUSH_MS: flushing every session on every batch would make many tiny writes.
    const now = Date.now();
    if (now - this.pressureFlushedMs >= PRESSURE_FLUSH_MS) {
      this.pressureFlushedMs = now;
      // Only files whose earlier buffers are written: handing over another buffer of a file the disk is
      // still behind on frees nothing, and the next packet of it would take a new buffer.
      // Only buffers above the fair share: handing over a small one frees nothing (the writer takes
      // another with its next packet) and costs a write.
      const cap = this.fairShare();
      for (const w of this.live) if (!w.diskBehind && w.bufferBytes > cap) w.flush(false);
    }
    return true;
  }

  /** A receiver reuses `buf` for every batch and calls endBatch() before overwriting it (src/ingest/sink.ts). */
  batchBuffer(buf: Uint8Array): void {
    this.planned?.addSource(buf);
  }

  /** The receiver's batch ends: carry out the frame copies planned from its buffer. */
  endBatch(): void {
    const p = this.planned;
    if (p === null) return;
    if (p.pending > 0) p.flush();
    if (p.skipped !== this.counters['pcap.copy.refused']) this.copyRefused(p.skipped);
  }

  /**
   * The addon refused planned frame copies as out of bounds (every entry is checked here first, so this
   * is a bug): those records' frame bytes are not what arrived. Counted and logged, never silent.
   */
  private copyRefused(total: number): void {
    const added = total - this.counters['pcap.copy.refused'];
    this.counters['pcap.copy.refused'] = total;
    const k = this.logLimit.allow('copy-refused');
    if (k >= 0) this.logger.error({ refused: added, total, suppressed: k }, 'planned frame copies refused as out of bounds (pcap.copy.refused): records in the files written now may hold wrong frame bytes; please report this');
  }

  /**
   * Every POOL_TRIM_TICKS ticks, let go half of the write buffers that sat free all that time
   * (BufferPool.trim; the collector's tick). A window of one tick let go buffers that the next burst took
   * again: reallocations, whose discarded buffers are garbage until V8's next full collection.
   */
  trimPool(): number {
    if (++this.trimTicks < POOL_TRIM_TICKS) return 0;
    this.trimTicks = 0;
    return this.pool.trim();
  }

  /** Sample the buffer gauges into the counters (the collector's tick). */
  sampleGauges(): void {
    this.counters['pcap.buffers.pool_bytes'] = this.pool.allocatedBytes;
    this.counters['pcap.buffers.in_use_bytes'] = this.pool.inUseBytes;
    this.counters['pcap.buffers.region_misses'] = this.pool.regionMisses;
    this.counters['pcap.direct.bytes'] = this.queue.directBytes;
    this.counters['pcap.direct.behind'] = this.queue.directBehind;
    const refused = this.queue.directRefused;
    if (refused > 0 && this.counters['pcap.direct.refused'] === 0) {
      this.logger.info({ refused }, 'the file system refuses O_DIRECT: capture files are written through the page cache (pcap.direct.refused; pcap.directWriteBytes: 0 turns direct writes off)');
    }
    this.counters['pcap.direct.refused'] = refused;
  }

  /** Bytes of write buffers handed out: being filled, or queued for disk. */
  get bufferedBytes(): number {
    return this.pool.inUseBytes;
  }

  /** Bytes of write buffers allocated (in use or free): the memory the pool holds. */
  get poolBytes(): number {
    return this.pool.allocatedBytes;
  }

  /** Bytes handed to the disk queue and not yet written. */
  get queuedBytes(): number {
    return this.queue.queuedBytes;
  }

  /** Hand every file's buffered records to the disk now (the timer, or a caller that wants it on disk). */
  flushAll(): void {
    const cap = this.fairShare();
    for (const w of this.live) w.flush(true, cap);
  }

  /**
   * The largest buffer a quiet writer may take until the next timer flush: three quarters of the pool
   * shared by the writers with a file open, rounded down to a pool class (so, with power-of-two classes,
   * between 3/8 and 3/4 of the pool is held by filling buffers, and the rest stays for the buffers of the
   * last interval being written), at least the smallest. 10 writers: no limit in practice; 10,000
   * writers and a 64 MiB pool: 4 KiB, which a session at 10 packets/s of 512 B fills 1.3 times a second.
   * With half the pool (2 KiB there) it was 2.6 times, and under the kernel's writeback of 10,000 small
   * files the number of writes is what costs (docs/performance.md). A busy writer grows past it
   * (file-writer.ts BUSY_FACTOR).
   */
  fairShare(): number {
    return this.pool.classAtMost((this.pool.maxBytes * 3) / (4 * Math.max(1, this.live.size)));
  }

  /** Wait until everything handed to the disk is written (capture-file replays pace themselves on this). */
  async drain(): Promise<void> {
    const ws: Promise<void>[] = [];
    for (const w of this.live) ws.push(w.drain());
    await Promise.all(ws);
  }

  /**
   * For a live download: hand every buffer to the disk, wait for the writes, and bring the open files'
   * catalog rows up to what is on disk, so a file being written can be served up to its last record.
   */
  async flushLive(): Promise<void> {
    this.flushAll();
    await this.drain();
    this.catalog.batch(() => {
      for (const w of this.live) w.syncRow();
    });
  }

  /** Close every file and wait for the disk; the catalog is final when this resolves. */
  async close(): Promise<void> {
    for (const w of [...this.live]) w.close('shutdown');
    while (this.pending.size) await Promise.allSettled([...this.pending]);
  }

  /** Files open now (created or about to be), one per writer with a file. */
  get openFiles(): number {
    return this.live.size;
  }

  /**
   * At the open-file limit: close the files idle longest, a sixteenth of the limit at once (so the scan
   * and sort run once per that many opens, not per open). Their pairs open a new file with their next
   * packet; each closed file is complete (flushed, fsynced, SHA-256, catalog row closed, reason `fd-pressure`).
   */
  private closeIdlest(except: SessionWriter): void {
    const all = [...this.live].filter((x) => x !== except);
    all.sort((a, b) => a.lastSec - b.lastSec);
    const n = Math.min(all.length, Math.max(1, Math.floor(this.maxOpenFiles / 16)));
    for (let i = 0; i < n; i++) all[i]!.close('fd-pressure');
    this.counters['pcap.files.closed_early'] += n;
    const k = this.logLimit.allow('fd-pressure');
    if (k >= 0) this.logger.warn({ maxOpenFiles: this.maxOpenFiles, closed: n, suppressed: k }, 'open-file limit reached: closed the capture files idle longest (pcap.files.closed_early); their sessions start a new file with their next packet');
  }

  /** @internal a SessionWriter opens a file: catalog row first, then the writer (no I/O until its first flush). */
  openFile(w: SessionWriter, s: SessionIdentity, tsSec: number, tsNsec: number): { file: PcapFileWriter; catalogId: number; relPath: string } {
    if (this.live.size >= this.maxOpenFiles) this.closeIdlest(w);
    // Flat (src/util/strings.ts): the writer, the disk queue and this session keep these while the file is open.
    const rel = flatString(captureRelPath(s.vni, s.sourceIp, tsSec, tsNsec, this.workerId, ++this.fileSeq));
    const abs = flatString(join(this.opts.dataDir, rel));
    let catalogId = 0;
    try {
      catalogId = this.catalog.open({
        path: rel,
        vni: s.vni,
        sourceIp: s.sourceIp,
        sessionId: s.sessionId,
        gwlbEndpointId: s.gwlbEndpointId,
        gwlbAttachmentId: s.gwlbAttachmentId,
        worker: this.workerId,
        createdUs: Math.floor(this.nowSec() * 1e6),
        firstUs: toMicros(tsSec, tsNsec),
      });
    } catch (e) {
      // The catalog is on the same disk; if it cannot take a row the file is still written and the
      // recovery scan adopts it on the next start.
      const n = this.logLimit.allow('catalog-open');
      if (n >= 0) this.logger.error({ err: e, path: rel, suppressed: n }, 'catalog insert failed');
    }
    const file = new PcapFileWriter(abs, { pool: this.pool, queue: this.queue, copy: this.copy, planned: this.planned });
    this.live.add(w);
    // Within its fair share from the first packet: 10,000 new files at once, each behind on the disk
    // while it is created, would otherwise double their buffers as if each were busy.
    file.retune(this.fairShare());
    return { file, catalogId, relPath: rel };
  }

  /** @internal a SessionWriter closed its file; `done` finalizes the catalog row. */
  closed(w: SessionWriter, done: Promise<void>): void {
    this.live.delete(w);
    const p = done.finally(() => this.pending.delete(p));
    this.pending.add(p);
  }

  /** The disk queue's hook: already rate-limited (one report per operation and errno a minute, with the count suppressed). */
  private onDiskReport(report: DiskErrorReport): void {
    if (report.op === 'queue') this.logger.warn(report, 'disk queue full: packets dropped (pcap.write.queue_full); the disk is slower than the capture');
    else this.logger.error(report, 'PCAP write failed; capture continues and retries on the next flush');
  }
}

/** One (source IP, VNI) pair's files, one at a time. */
export class SessionWriter {
  private file: PcapFileWriter | null = null;
  private openedSec = 0;
  /** Bytes accepted into the current file (header included), for size rotation. */
  private fileBytes = 0;
  private catalogId = 0;
  /** The file's committed size when its catalog row was last synced. */
  private syncedBytes = 0;
  /** The current (or last) file, relative to the data directory. */
  relPath = '';
  /** Receive time (seconds) of the last frame appended: how long the file has been idle, for the open-file limit. */
  lastSec = 0;

  constructor(
    private readonly hub: SessionWriters,
    private readonly session: SessionIdentity,
  ) {}

  /**
   * Per packet: rotate when the record would pass rotateBytes or the file is rotateSeconds old, then
   * append. Returns the PCAP writer's outcome (DROP.OK, or why it refused the frame).
   */
  append(buf: Uint8Array, off: number, end: number, origLen: number, tsSec: number, tsNsec: number): DropCode {
    const rec = RECORD_HEADER_BYTES + (end - off);
    let f = this.file;
    if (f === null) f = this.open(tsSec, tsNsec);
    else {
      const hub = this.hub;
      const tooBig = this.fileBytes + rec > hub.rotateBytes && this.fileBytes > GLOBAL_HEADER_BYTES;
      if (tooBig || tsSec - this.openedSec >= hub.rotateSeconds) {
        this.close(tooBig ? 'size' : 'age');
        f = this.open(tsSec, tsNsec);
      }
    }
    const code = f.append(buf, off, end, origLen, tsSec, tsNsec);
    if (code === DROP.OK) this.fileBytes += rec;
    this.lastSec = tsSec;
    return code;
  }

  get hasFile(): boolean {
    return this.file !== null;
  }

  private open(tsSec: number, tsNsec: number): PcapFileWriter {
    const o = this.hub.openFile(this, this.session, tsSec, tsNsec);
    this.file = o.file;
    this.catalogId = o.catalogId;
    this.relPath = o.relPath;
    this.openedSec = tsSec;
    this.fileBytes = GLOBAL_HEADER_BYTES;
    this.syncedBytes = 0;
    return o.file;
  }

  /** Close the current file (rotation, idle, GWLB endpoint change, shutdown); the next append opens another. */
  close(reason: string): void {
    const w = this.file;
    if (w === null) return;
    this.file = null;
    const id = this.catalogId;
    const path = this.relPath;
    const hub = this.hub;
    const done = w
      .close()
      .then((info) => {
        if (id === 0) return;
        if (!info.created) {
          hub.catalog.delete(id);
          return;
        }
        hub.catalog.close(id, {
          closedUs: Math.floor(hub.nowSec() * 1e6),
          firstUs: info.packets > 0 ? toMicros(info.firstSec, info.firstNsec) : null,
          lastUs: info.packets > 0 ? toMicros(info.lastSec, info.lastNsec) : null,
          packets: info.packets,
          bytes: info.bytes,
          sha256: info.sha256 ?? '',
          reason,
        });
      })
      .catch((e: unknown) => {
        hub.logger.error({ err: e, path }, 'closing a PCAP file failed; it is repaired on the next start');
      });
    hub.closed(this, done);
  }

  /** Hand the partial buffer to the disk; `resize` false for an early flush under memory pressure (file-writer.ts); `cap` the fair share. */
  flush(resize = true, cap = Infinity): void {
    this.file?.flush(resize, cap);
  }

  /** Size of the buffer being filled (0 without one). */
  get bufferBytes(): number {
    return this.file === null ? 0 : this.file.bufferBytes;
  }

  drain(): Promise<void> {
    return this.file === null ? Promise.resolve() : this.file.drain();
  }

  /** The disk has not yet written every buffer handed over for the current file (a new file not yet created, a slow disk). */
  get diskBehind(): boolean {
    return this.file !== null && this.file.queuedBytes > 0;
  }

  /**
   * The timer: flush, sync the open file's row to what is committed, rotate by age. A file the disk is
   * still behind on keeps filling its buffer instead: its records could not reach the disk sooner, and
   * 10,000 new files waiting to be created would otherwise hold 10,000 nearly empty buffers per tick.
   */
  tick(nowSec: number, syncRow = true, cap = Infinity): void {
    const w = this.file;
    if (w === null) return;
    if (w.queuedBytes === 0) w.flush(true, cap);
    else w.retune(cap);
    // Disk writes complete after the flush: sync what is committed now, on this tick or the next.
    if (syncRow) this.syncRow();
    if (nowSec - this.openedSec >= this.hub.rotateSeconds) this.close('age');
  }

  /** Bring an open file's catalog row up to what is committed on disk (packets, bytes, last time). */
  syncRow(): void {
    const w = this.file;
    if (w === null || this.catalogId === 0 || w.committedBytes === this.syncedBytes) return;
    this.hub.catalog.sync(this.catalogId, w.committedPackets, w.committedBytes, toMicros(w.lastSec, w.lastNsec));
    this.syncedBytes = w.committedBytes;
  }

  /** The detector's verdict changed (a manifest reload): the row of the current (or last) file follows. */
  sessionIdChanged(sessionId: string | null): void {
    if (this.catalogId !== 0) this.hub.catalog.setSessionId(this.catalogId, sessionId);
  }
}
