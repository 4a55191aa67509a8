/**
 * One PCAP file being written. append() is the per-packet hot path: it copies a 16-byte record header and
 * the frame into the current pool buffer and returns an outcome (src/outcomes.ts); it allocates nothing,
 * does no I/O and never throws. A full buffer goes to the disk queue (src/pcap/disk-queue.ts) and a fresh
 * one comes from the pool (src/pcap/buffer-pool.ts); when neither has room the packet is refused with
 * DROP.WRITE_QUEUE_FULL. The caller counts what append() refuses; the disk queue counts what it writes
 * (`written`) or loses.
 *
 * flush() hands over a partial buffer; whoever owns the writer calls it on its timer (the session
 * writers flush every file from one timer), so a crash loses at most that long of capture, and an idle
 * writer holds no buffer at all. The writer has no timer of its own. close() flushes, waits for the
 * disk, fsyncs and describes the file as it is on disk.
 *
 * Live numbers (committedBytes, committedPackets ...) describe the file up to its last flushed record,
 * which is what the API may serve of a file still being written.
 */
import { DROP, type DropCode } from '../outcomes.js';
import { MgError } from '../errors.js';
import { BufferPool } from './buffer-pool.js';
import { DiskQueue, type DiskFile } from './disk-queue.js';
import { copyFrame, SMALL_FRAME_BYTES, viewOf, type BytesCopy, type PlannedCopy } from './copy.js';
import { LINKTYPE_ETHERNET, sharedGlobalHeader, RECORD_HEADER_BYTES, SNAPLEN } from './format.js';

/** A writer that fills this many fair-share buffers in one flush interval is busy (PcapFileWriter.sizeCap). */
export const BUSY_FACTOR = 8;
/**
 * A buffer that fills before the flush interval ends makes the next one this many times as large. Four
 * was measured (stop 25): 10,000 sessions of 10 packets/s went 1 -> 4 KiB in one step and left 10 MiB
 * of outgrown buffers instead of 30 (peak RSS 356 against 378 MB), but the larger steps allocate the
 * 4 and 8 MiB buffers of a busy writer in fewer, larger pieces, and V8 answered that external memory
 * with scavenges inside test/decode/allocation.test.ts's measured window (1 run in 4). Kept at two
 * until that is understood (docs/performance.md "The pool at its ceiling").
 */
export const GROWTH = 2;


export interface PcapFileWriterOptions {
  /** Shared buffer pool; a private one is made when absent. */
  pool?: BufferPool;
  /** Shared disk queue; a private one is made when absent. */
  queue?: DiskQueue;
  /** Link type in the file header. Default LINKTYPE_ETHERNET (1). */
  linktype?: number;
  /** Snap length in the file header and the largest frame accepted. Default 262144. */
  snaplen?: number;
  /** fdatasync at most this often while writing, ms. 0: only fsync on close. Default 0. */
  datasyncIntervalMs?: number;
  /** Copies frames above 128 bytes (the native addon's copyBytes when it is built). Default: Buffer#copy. */
  copy?: BytesCopy | null;
  /**
   * Frames above 128 bytes from a source's batch buffer are planned here and copied once per batch by
   * the addon (copy.ts PlannedCopy); others go through `copy`. Shared by every writer of a composition.
   */
  planned?: PlannedCopy | null;
}

/** What close() reports: the file as it is on disk. */
export interface ClosedFileInfo {
  path: string;
  /** False when the file could never be created (for example an unwritable directory): then bytes and packets are 0. */
  created: boolean;
  /** File size, global header included. */
  bytes: number;
  /** Records in the file. */
  packets: number;
  /** Earliest and latest record timestamps (0 when packets is 0). Equal to the first and last record when time moves forward. */
  firstSec: number;
  firstNsec: number;
  lastSec: number;
  lastNsec: number;
  /** Hex SHA-256 of the whole file (of zero bytes when it was never created). */
  sha256: string;
  /** Packets accepted by append() but lost by a failed write (ENOSPC, EIO, ...). */
  lostPackets: number;
  /** The last disk error code seen on this file, or null. */
  lastError: string | null;
}

/** Live numbers of a file being written. */
export interface PcapFileWriterStats {
  path: string;
  /** Packets accepted by append(). */
  packets: number;
  /** Packets refused by append() for lack of buffer or queue room. */
  queueFullDrops: number;
  /** Bytes on disk up to the last whole record: serve the file up to here. */
  committedBytes: number;
  committedPackets: number;
  firstSec: number;
  firstNsec: number;
  lastSec: number;
  lastNsec: number;
  lostPackets: number;
  /** Bytes accepted but not yet on disk (in the current buffer or the queue). */
  pendingBytes: number;
}

export class PcapFileWriter {
  readonly path: string;
  readonly snaplen: number;
  readonly linktype: number;
  private readonly pool: BufferPool;
  private readonly queue: DiskQueue;
  private readonly file: DiskFile;
  private readonly releaseBuf: (buf: Buffer) => void;
  private readonly largeCopy: BytesCopy | null;
  private readonly planned: PlannedCopy | null;
  /** The current buffer's id in `planned` (-1 without it). */
  private curId = -1;
  /** Where the current buffer's byte 0 is in the registration `curId` names (planned.baseOf). */
  private curCopyBase = 0;
  private closing: Promise<ClosedFileInfo> | null = null;

  // The buffer being filled, and the time range of its records.
  private cur: Buffer | null = null;
  /** A DataView that sees the current buffer's byte 0 at curBase: the pool region's one view (region.ts), else the buffer's own. */
  private curView: DataView | null = null;
  private curBase = 0;
  private curLen = 0;
  private curPackets = 0;
  private curMinSec = 0;
  private curMinNsec = 0;
  private curMaxSec = 0;
  private curMaxNsec = 0;
  /** Size of the next buffer to ask the pool for: small at first, GROWTH times as large when one fills, resized to the traffic at each flush. */
  private nextSize: number;
  /** Bytes appended since the last flush(): this writer's rate over one flush interval. */
  private intervalBytes = 0;
  /**
   * The largest buffer this writer may take while it is quiet (its owner's fair share of the pool,
   * set at each timer flush). A writer that fills BUSY_FACTOR of those in one interval is busy and may
   * grow past it: its large buffers are its traffic, and few writers can be busy at once.
   */
  private sizeCap = Infinity;

  /** Packets accepted by append(). */
  packets = 0;
  /** Bytes accepted by append() (record headers included), not counting the global header. */
  appendedBytes = 0;
  /** Packets refused with WRITE_QUEUE_FULL. */
  queueFullDrops = 0;
  private queueFullReported = 0;

  constructor(path: string, opts: PcapFileWriterOptions = {}) {
    this.path = path;
    this.pool = opts.pool ?? new BufferPool();
    this.queue = opts.queue ?? new DiskQueue();
    this.snaplen = opts.snaplen ?? SNAPLEN;
    this.linktype = opts.linktype ?? LINKTYPE_ETHERNET;
    if (!Number.isInteger(this.snaplen) || this.snaplen < 1 || this.snaplen > SNAPLEN) {
      throw new MgError('MG_ERR_CONFIG_INVALID', `snaplen ${this.snaplen} is out of range`, { problems: [{ field: 'snaplen', message: `must be 1..${SNAPLEN}` }] });
    }
    if (this.snaplen + RECORD_HEADER_BYTES > this.pool.bufferBytes) {
      throw new MgError('MG_ERR_CONFIG_INVALID', `a ${this.pool.bufferBytes}-byte pcap buffer cannot hold a ${this.snaplen}-byte frame`, {
        problems: [{ field: 'bufferBytes', message: `must be at least snaplen + ${RECORD_HEADER_BYTES}` }],
      });
    }
    this.file = this.queue.file(path, sharedGlobalHeader(this.linktype, this.snaplen), { datasyncIntervalMs: opts.datasyncIntervalMs ?? 0 });
    const pool = this.pool;
    this.releaseBuf = pool.releaser;
    this.largeCopy = opts.copy ?? null;
    this.planned = opts.planned ?? null;
    this.nextSize = pool.minBufferBytes;
  }

  /**
   * Append one frame: bytes buf[off, end), wire length origLen (raised to the captured length when
   * smaller), captured at tsSec.tsNsec. Returns DROP.OK, WRITE_QUEUE_FULL (no buffer or queue room),
   * INNER_TOO_LONG (caplen > snaplen), INNER_TOO_SHORT (empty frame) or WRITE_ERROR (closed, or a
   * timestamp outside the pcap fields).
   */
  append(buf: Uint8Array, off: number, end: number, origLen: number, tsSec: number, tsNsec: number): DropCode {
    const caplen = end - off;
    if (caplen > this.snaplen) return DROP.INNER_TOO_LONG;
    if (caplen <= 0) return DROP.INNER_TOO_SHORT;
    if (this.closing !== null) return DROP.WRITE_ERROR;
    if (origLen < caplen) origLen = caplen;
    const need = RECORD_HEADER_BYTES + caplen;
    let b = this.cur;
    if (b === null || this.curLen + need > b.length) {
      b = this.nextBuffer(need);
      if (b === null) {
        this.queueFullDrops++;
        return DROP.WRITE_QUEUE_FULL;
      }
    }
    // The record header (format.ts writeRecordHeader's layout and checks), written through the buffer's
    // DataView: four Buffer#writeUInt32LE calls cost more on this path.
    if (!(tsSec >= 0 && tsSec <= 0xffff_ffff && tsNsec >= 0 && tsNsec < 1_000_000_000 && origLen <= 0xffff_ffff)) return DROP.WRITE_ERROR;
    const v = this.curView!;
    const vb = this.curBase;
    const h = this.curLen;
    v.setUint32(vb + h, tsSec, true);
    v.setUint32(vb + h + 4, tsNsec, true);
    v.setUint32(vb + h + 8, caplen, true);
    v.setUint32(vb + h + 12, origLen, true);
    const p = h + RECORD_HEADER_BYTES;
    // The passed-in copy called here, at a call site of its own whose feedback sees one target.
    if (caplen > SMALL_FRAME_BYTES) {
      // Planned (one native call per batch) when the frame is in a source's batch buffer; else now.
      const planned = this.planned;
      if (planned === null || !planned.copy(this.curId, this.curCopyBase + p, buf, off, caplen)) {
        const large = this.largeCopy;
        if (large !== null) large(b, p, buf, off, caplen);
        else copyFrame(b, v, vb, p, buf, off, caplen, null);
      }
    } else copyFrame(b, v, vb, p, buf, off, caplen, null);
    this.curLen = p + caplen;
    if (this.curPackets === 0) {
      this.curMinSec = this.curMaxSec = tsSec;
      this.curMinNsec = this.curMaxNsec = tsNsec;
    } else {
      if (tsSec < this.curMinSec || (tsSec === this.curMinSec && tsNsec < this.curMinNsec)) {
        this.curMinSec = tsSec;
        this.curMinNsec = tsNsec;
      }
      if (tsSec > this.curMaxSec || (tsSec === this.curMaxSec && tsNsec > this.curMaxNsec)) {
        this.curMaxSec = tsSec;
        this.curMaxNsec = tsNsec;
      }
    }
    this.curPackets++;
    this.packets++;
    this.appendedBytes += need;
    this.intervalBytes += need;
    return DROP.OK;
  }

  /**
   * Hand the current buffer over (if any) and take a fresh one that holds at least `need` bytes; null
   * when there is no room. A buffer that filled before the flush interval ended means a busy session:
   * the next one is GROWTH times as large, up to the pool's largest.
   */
  private nextBuffer(need: number): Buffer | null {
    const cur = this.cur;
    if (cur !== null && this.curLen > 0) {
      if (!this.queue.hasRoom(this.curLen)) return null;
      // Twice as large, within the fair share (a 4 KiB buffer under a 5 KiB share stays 4 KiB: at
      // 10,000 sessions 8 KiB each would be more than the pool), past it only when busy.
      if (this.nextSize <= cur.length) {
        let grown = Math.min(cur.length * GROWTH, this.pool.bufferBytes);
        if (grown > this.sizeCap && this.intervalBytes < BUSY_FACTOR * this.sizeCap) grown = this.pool.classAtMost(this.sizeCap);
        if (grown > cur.length) this.nextSize = grown;
      }
    }
    const next = this.pool.acquire(need > this.nextSize ? need : this.nextSize, need);
    if (next === null) return null;
    if (this.cur !== null) {
      if (this.curLen > 0) this.handOver();
      else this.pool.release(this.cur);
    }
    this.cur = next;
    const region = this.pool.region;
    if (region !== null && next.buffer === region.buffer) {
      this.curView = region.view;
      this.curBase = next.byteOffset;
    } else {
      this.curView = viewOf(next);
      this.curBase = 0;
    }
    if (this.planned !== null) {
      this.curId = this.planned.bufferId(next);
      this.curCopyBase = this.planned.baseOf(next);
    }
    this.curLen = 0;
    this.curPackets = 0;
    return next;
  }

  private handOver(): void {
    // Copies planned into this buffer must land before the disk queue reads (writes, hashes) it.
    const planned = this.planned;
    if (planned !== null && planned.pending > 0) planned.flush();
    const buf = this.cur!;
    const len = this.curLen;
    const packets = this.curPackets;
    this.cur = null;
    this.curLen = 0;
    this.curPackets = 0;
    this.file.enqueueRecords(buf, len, packets, this.curMinSec, this.curMinNsec, this.curMaxSec, this.curMaxNsec, this.releaseBuf);
  }

  /**
   * Hand the partial buffer to the disk queue so it reaches the disk soon. Returns false when there was
   * something to flush but the queue had no room (it stays buffered for the next try). Also reports
   * queue-full drops, rate-limited, off the hot path. `resize` (the timer's flush): size the next
   * buffer to the traffic since the last one; an early flush under memory pressure leaves it. `cap`
   * (with resize): the largest buffer a quiet writer may take until the next timer flush (see sizeCap).
   */
  flush(resize = true, cap = Infinity): boolean {
    if (this.queueFullDrops !== this.queueFullReported) {
      const n = this.queueFullDrops - this.queueFullReported;
      this.queueFullReported = this.queueFullDrops;
      this.queue.report(this.path, 'queue', 'QUEUE_FULL', `disk queue full (${this.queue.queuedBytes} bytes queued): ${n} packets not saved; the disk is too slow for the capture rate`, n);
    }
    if (this.closing !== null) return true;
    if (resize) this.sizeCap = cap;
    if (this.cur === null || this.curLen === 0) {
      if (resize) this.intervalBytes = 0;
      return true;
    }
    if (!this.queue.hasRoom(this.curLen)) return false;
    this.handOver();
    if (resize) {
      // The next buffer fits what came in during the interval just ended (and grows again if more comes),
      // within the fair share unless the writer is busy.
      const fit = this.pool.classFor(this.intervalBytes);
      this.nextSize = fit > cap && this.intervalBytes < BUSY_FACTOR * cap ? this.pool.classAtMost(cap) : fit;
      this.intervalBytes = 0;
    }
    return true;
  }

  /**
   * A new interval without a flush (the disk is still behind on this file: its buffer keeps filling):
   * the fair share may have changed, and the rate is measured afresh, so that records held back by a
   * slow disk do not count as a busy session.
   */
  retune(cap: number): void {
    this.sizeCap = cap;
    this.intervalBytes = 0;
  }

  /** Size of the buffer being filled (0 without one). */
  get bufferBytes(): number {
    return this.cur === null ? 0 : this.cur.length;
  }

  /** Bytes handed to the disk queue for this file and not yet written or lost: the disk is behind on it. */
  get queuedBytes(): number {
    return this.file.pendingBytes;
  }

  /** Flush and resolve once everything accepted so far has been written (or lost). */
  async drain(): Promise<void> {
    this.flush();
    await this.file.idle();
  }

  /**
   * Flush (past the queue bound: the memory is already spent), wait for pending writes, fsync and close.
   * Never rejects for disk errors: they are in the result, the counters and the error hook.
   */
  close(): Promise<ClosedFileInfo> {
    if (this.closing !== null) return this.closing;
    this.flush();
    if (this.cur !== null) {
      if (this.curLen > 0) this.handOver();
      else {
        this.pool.release(this.cur);
        this.cur = null;
      }
    }
    this.closing = this.file.close().then((r) => ({
      path: r.path,
      created: r.created,
      bytes: r.bytes,
      packets: r.packets,
      firstSec: r.minSec,
      firstNsec: r.minNsec,
      lastSec: r.maxSec,
      lastNsec: r.maxNsec,
      sha256: r.sha256,
      lostPackets: r.lostPackets,
      lastError: r.lastError,
    }));
    return this.closing;
  }

  get closed(): boolean {
    return this.closing !== null;
  }

  /** File size up to the last record written whole; a reader may read this far. */
  get committedBytes(): number {
    return this.file.committedBytes;
  }

  get committedPackets(): number {
    return this.file.committedPackets;
  }

  get lostPackets(): number {
    return this.file.lostPackets;
  }

  /** Earliest and latest timestamps among the records on disk (0 while committedPackets is 0). */
  get firstSec(): number {
    return this.file.minSec;
  }
  get firstNsec(): number {
    return this.file.minNsec;
  }
  get lastSec(): number {
    return this.file.maxSec;
  }
  get lastNsec(): number {
    return this.file.maxNsec;
  }

  stats(): PcapFileWriterStats {
    const f = this.file;
    return {
      path: this.path,
      packets: this.packets,
      queueFullDrops: this.queueFullDrops,
      committedBytes: f.committedBytes,
      committedPackets: f.committedPackets,
      firstSec: f.minSec,
      firstNsec: f.minNsec,
      lastSec: f.maxSec,
      lastNsec: f.maxNsec,
      lostPackets: f.lostPackets,
      pendingBytes: this.curLen + f.pendingBytes,
    };
  }
}
