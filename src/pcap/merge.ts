/**
 * A streaming k-way merge of capture files by timestamp, written as one nanosecond pcap. The auditor API
 * uses it to extract a session's packets for a time window across its rotated files.
 *
 * - Each input is read by an AsyncCaptureReader (pcap or pcapng) holding one chunk in memory, and a
 *   binary heap keyed by (seconds, nanoseconds, input index) picks the earliest current record. Memory
 *   is inputs x chunkBytes plus one output chunk, whatever the file sizes. Equal timestamps keep input
 *   order, so a merge is deterministic.
 * - Timestamps are compared as (sec, nsec) pairs: nanoseconds since the epoch exceed 2^53.
 * - The window is [from, to): `from` inclusive, `to` exclusive, so adjacent windows never repeat a packet.
 *   Each input is assumed to be in time order (our writer appends in arrival order); once the earliest
 *   current record of every input is at or after `to`, the merge ends without reading further.
 * - Output goes through Readable.push with backpressure: nothing is read while the consumer is slow.
 * - `signal` aborts: the stream is destroyed with an AbortError and every input is closed.
 */
import { addAbortSignal, Readable } from 'node:stream';
import { MgError } from '../errors.js';
import { GLOBAL_HEADER_BYTES, LINKTYPE_ETHERNET, RECORD_HEADER_BYTES, SNAPLEN, writeGlobalHeader, writeRecordHeader } from './format.js';
import { openCaptureAsync, type AsyncCaptureReader } from './reader.js';

export const DEFAULT_MERGE_CHUNK_BYTES = 256 * 1024;
export const DEFAULT_MERGE_OUTPUT_CHUNK_BYTES = 64 * 1024;

export interface MergeOptions {
  /** Window start, inclusive. Default: no lower bound. */
  fromSec?: number;
  fromNsec?: number;
  /** Window end, exclusive. Default: no upper bound. */
  toSec?: number;
  toNsec?: number;
  /** Read at most this many bytes of files[i] (a file still being written: its last flushed record). */
  limitBytesPerFile?: (number | undefined)[];
  /** Keep a frame only when this returns true; it sees the captured bytes buf[off, end). */
  predicate?: (buf: Buffer, off: number, end: number) => boolean;
  signal?: AbortSignal;
  /** Link type of the output; records of another link type are skipped. Default: the first input's. */
  linktype?: number;
  /** Read buffer per input, bytes. Default 256 KiB. */
  chunkBytes?: number;
  /** Size of the chunks pushed downstream, bytes. Default 64 KiB. */
  outputChunkBytes?: number;
}

export interface MergeStats {
  /** Records written. */
  packets: number;
  /** Bytes written, global header included. */
  bytes: number;
  /** Records read from the inputs (before window, predicate and link-type checks). */
  read: number;
  /** Records outside the window that were read and skipped. */
  outsideWindow: number;
  /** Records the predicate refused. */
  filtered: number;
  /** Records skipped for a link type other than the output's, a caplen above 262144 or a timestamp pcap cannot hold. */
  skipped: number;
  /** Inputs that ended at a corrupt or cut record, with the reason. */
  truncated: { path: string; problem: string }[];
  /** Link type written in the output header (-1 until the merge has started). */
  linktype: number;
}

export class MergeStream extends Readable {
  readonly stats: MergeStats = { packets: 0, bytes: 0, read: 0, outsideWindow: 0, filtered: 0, skipped: 0, truncated: [], linktype: -1 };
  private readonly files: readonly string[];
  private readonly opts: MergeOptions;
  private readers: AsyncCaptureReader[] = [];
  /** Heap of indexes into readers, ordered by their current record's timestamp. */
  private heap: number[] = [];
  private out: Buffer;
  private outLen = 0;
  private readonly outSize: number;
  private pumping = false;
  private wantMore = false;
  private finished = false;
  private readonly hasFrom: boolean;
  private readonly hasTo: boolean;
  private readonly fromSec: number;
  private readonly fromNsec: number;
  private readonly toSec: number;
  private readonly toNsec: number;

  constructor(files: readonly string[], opts: MergeOptions = {}) {
    super({ highWaterMark: opts.outputChunkBytes ?? DEFAULT_MERGE_OUTPUT_CHUNK_BYTES });
    this.files = files;
    this.opts = opts;
    this.outSize = opts.outputChunkBytes ?? DEFAULT_MERGE_OUTPUT_CHUNK_BYTES;
    if (this.outSize < GLOBAL_HEADER_BYTES + RECORD_HEADER_BYTES) throw new RangeError(`outputChunkBytes ${this.outSize} is too small`);
    this.out = Buffer.allocUnsafe(this.outSize);
    this.hasFrom = opts.fromSec !== undefined;
    this.hasTo = opts.toSec !== undefined;
    this.fromSec = opts.fromSec ?? 0;
    this.fromNsec = opts.fromNsec ?? 0;
    this.toSec = opts.toSec ?? 0;
    this.toNsec = opts.toNsec ?? 0;
    if (opts.signal !== undefined) addAbortSignal(opts.signal, this);
  }

  override _construct(callback: (error?: Error | null) => void): void {
    this.start().then(
      () => callback(),
      (e: unknown) => callback(e as Error),
    );
  }

  /** Open every input, read its first record, build the heap and write the global header. */
  private async start(): Promise<void> {
    const limits = this.opts.limitBytesPerFile ?? [];
    const chunkBytes = this.opts.chunkBytes ?? DEFAULT_MERGE_CHUNK_BYTES;
    for (let i = 0; i < this.files.length; i++) {
      const lim = limits[i];
      this.readers.push(await openCaptureAsync(this.files[i]!, lim === undefined ? { chunkBytes } : { chunkBytes, limitBytes: lim }));
    }
    for (let i = 0; i < this.readers.length; i++) {
      if (this.opts.signal?.aborted) return;
      if (await this.readers[i]!.next()) {
        this.stats.read++;
        this.heapPush(i);
      } else await this.retire(i);
    }
    let linktype = this.opts.linktype;
    if (linktype === undefined) {
      const first = this.readers.find((r) => r.linktype >= 0);
      linktype = first !== undefined ? first.linktype : LINKTYPE_ETHERNET;
    }
    this.stats.linktype = linktype;
    if (writeGlobalHeader(this.out, 0, linktype, SNAPLEN) < 0) throw new MgError('MG_ERR_CAPTURE_LINKTYPE', `link type ${linktype}`);
    this.outLen = GLOBAL_HEADER_BYTES;
    this.stats.bytes = GLOBAL_HEADER_BYTES;
  }

  override _read(): void {
    this.wantMore = true;
    if (this.pumping || this.finished) return;
    this.pumping = true;
    this.pump().then(
      () => {
        this.pumping = false;
        // _read() may have been called again between the loop's last check and now.
        if (this.wantMore && !this.finished && !this.destroyed) this._read();
      },
      (e: unknown) => {
        this.pumping = false;
        this.destroy(e as Error);
      },
    );
  }

  private async pump(): Promise<void> {
    const heap = this.heap;
    while (this.wantMore && !this.destroyed) {
      if (heap.length === 0) return this.complete();
      const i = heap[0]!;
      const r = this.readers[i]!;
      const rec = r.record;
      if (this.hasTo && (rec.tsSec > this.toSec || (rec.tsSec === this.toSec && rec.tsNsec >= this.toNsec))) return this.complete();
      this.accept(rec.buf, rec.off, rec.caplen, rec.origLen, rec.tsSec, rec.tsNsec, rec.linktype);
      // Advance this input; the other inputs' records stay valid meanwhile.
      let more = r.tryNext();
      if (more === null) {
        await r.fill();
        if (this.destroyed) return;
        more = r.tryNext() ?? false;
      }
      if (more) {
        this.stats.read++;
        this.siftDown(0);
      } else {
        const last = heap.pop()!;
        if (heap.length > 0) {
          heap[0] = last;
          this.siftDown(0);
        }
        await this.retire(i);
      }
    }
  }

  /** Copy one record into the output if it passes the window, the link type and the predicate. */
  private accept(buf: Buffer, off: number, caplen: number, origLen: number, tsSec: number, tsNsec: number, linktype: number): void {
    if (this.hasFrom && (tsSec < this.fromSec || (tsSec === this.fromSec && tsNsec < this.fromNsec))) {
      this.stats.outsideWindow++;
      return;
    }
    if (linktype !== this.stats.linktype || caplen > SNAPLEN) {
      this.stats.skipped++;
      return;
    }
    const p = this.opts.predicate;
    if (p !== undefined && !p(buf, off, off + caplen)) {
      this.stats.filtered++;
      return;
    }
    const need = RECORD_HEADER_BYTES + caplen;
    if (this.outLen + need > this.out.length) {
      this.pushOut();
      if (need > this.out.length) this.out = Buffer.allocUnsafe(need);
    }
    const o = writeRecordHeader(this.out, this.outLen, tsSec, tsNsec, caplen, Math.max(origLen, caplen, 1));
    if (o < 0) {
      this.stats.skipped++;
      return;
    }
    buf.copy(this.out, o, off, off + caplen);
    this.outLen = o + caplen;
    this.stats.packets++;
    this.stats.bytes += need;
  }

  private pushOut(): void {
    if (this.outLen === 0) return;
    const chunk = this.out.subarray(0, this.outLen);
    this.out = Buffer.allocUnsafe(this.outSize);
    this.outLen = 0;
    this.wantMore = this.push(chunk);
  }

  private async complete(): Promise<void> {
    this.finished = true;
    for (const i of this.heap) await this.retire(i);
    this.heap.length = 0;
    this.pushOut();
    this.emit('summary', this.stats);
    this.push(null);
  }

  private async retire(i: number): Promise<void> {
    const r = this.readers[i]!;
    if (r.truncated) this.stats.truncated.push({ path: r.path, problem: r.problem ?? 'corrupt record' });
    await r.close();
  }

  override _destroy(err: Error | null, callback: (error?: Error | null) => void): void {
    Promise.allSettled(this.readers.map((r) => r.close())).then(() => callback(err));
  }

  private less(a: number, b: number): boolean {
    const ra = this.readers[a]!.record;
    const rb = this.readers[b]!.record;
    if (ra.tsSec !== rb.tsSec) return ra.tsSec < rb.tsSec;
    if (ra.tsNsec !== rb.tsNsec) return ra.tsNsec < rb.tsNsec;
    return a < b;
  }

  private heapPush(i: number): void {
    const h = this.heap;
    h.push(i);
    let c = h.length - 1;
    while (c > 0) {
      const parent = (c - 1) >> 1;
      if (!this.less(h[c]!, h[parent]!)) break;
      [h[c], h[parent]] = [h[parent]!, h[c]!];
      c = parent;
    }
  }

  private siftDown(at: number): void {
    const h = this.heap;
    let c = at;
    for (;;) {
      const l = 2 * c + 1;
      const r = l + 1;
      let m = c;
      if (l < h.length && this.less(h[l]!, h[m]!)) m = l;
      if (r < h.length && this.less(h[r]!, h[m]!)) m = r;
      if (m === c) return;
      [h[c], h[m]] = [h[m]!, h[c]!];
      c = m;
    }
  }
}

/**
 * Merge capture files by timestamp into one nanosecond pcap stream. Read `stats` (or listen for the
 * 'summary' event, emitted just before 'end') for the packets and bytes written. An input that cannot be
 * opened, or is not pcap/pcapng, fails the stream with MG_ERR_CAPTURE_READ / MG_ERR_CAPTURE_FORMAT
 * before any byte is produced.
 */
export function mergeCaptures(files: readonly string[], opts: MergeOptions = {}): MergeStream {
  return new MergeStream(files, opts);
}
