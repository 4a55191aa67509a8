/**
 * A streaming k-way merge of capture files by timestamp, written as one nanosecond pcap. The auditor API
 * uses it to extract a session's packets for a time window across its rotated files.
 *
 * - Each input is read by an AsyncCaptureReader (pcap or pcapng) holding one chunk in memory and reading
 *   the next one ahead, and a binary heap keyed by (seconds, nanoseconds, input index) picks the earliest
 *   current record. Memory is inputs x 2 x chunkBytes plus the output chunks in flight, whatever the file sizes. Equal timestamps
 *   keep input order, so a merge is deterministic (mergecap takes the file named last first).
 * - The earliest input's records go out in a run up to the next input's head, without touching the heap:
 *   one run per packet when inputs interleave packet by packet, one per read buffer when files follow
 *   each other (rotated files). A record already in our format (little-endian nanosecond pcap, our link
 *   type) is copied with its header as it is; any other is rewritten.
 * - Timestamps are compared as (sec, nsec) pairs: nanoseconds since the epoch exceed 2^53.
 * - The window is [from, to): `from` inclusive, `to` exclusive, so adjacent windows never repeat a packet.
 *   Each input is assumed to be in time order (our writer appends in arrival order); once the earliest
 *   current record of every input is at or after `to`, the merge ends without reading further.
 * - Output goes through Readable.push with backpressure: nothing is read while the consumer is slow.
 *   With `heldDownstream`, a pushed chunk is refilled once all its bytes have left, instead of a new one.
 * - Inputs are local paths, or names with an opener of their own (`openers[i]`: a ReadHandle with
 *   positional reads, e.g. ranged GETs of another node's file in S3); the merge never asks where bytes live.
 * - `signal` aborts: the stream is destroyed with an AbortError and every input is closed.
 * - `sequential` (the caller knows, from the catalog, that each file's last record comes before the next
 *   file's first): the files are taken one after another, never all open at once, and a file marked in
 *   `wholeFiles` (entirely inside the window, in our own format) is streamed as its byte range, read
 *   straight into the output chunks with no per-record work at all; only the files at the window's
 *   edges are read record by record (issue 11: rotated files at mergecap's speed). The output is the
 *   same bytes the merge would produce.
 * - `mergeStep` (the native addon's k-way step, passed in: src/pcap/ loads no addon): while every input
 *   still in the heap is a record-for-record copy (our format, no filter), the records are picked and
 *   copied by one native call per output chunk instead of a JavaScript loop per record; this class still
 *   reads, refills, ends the window and handles every record the step hands back (see MergeStepFn).
 *   Without it, or for any other input, the JavaScript loop does the same work: same bytes either way.
 * - `digest` (the body's SHA-256): each output chunk is hashed as it is pushed, on this thread (MergeDigest).
 */
import { open as openFile } from 'node:fs/promises';
import { addAbortSignal, Readable } from 'node:stream';
import { MgError } from '../errors.js';
import { GLOBAL_HEADER_BYTES, LINKTYPE_ETHERNET, PCAP_MAGIC_NSEC, RECORD_HEADER_BYTES, SNAPLEN, writeGlobalHeader, writeRecordHeader } from './format.js';
import { openCaptureAsync, type AsyncCaptureReader, type ReadHandle } from './reader.js';

export const DEFAULT_MERGE_CHUNK_BYTES = 256 * 1024;
export const DEFAULT_MERGE_OUTPUT_CHUNK_BYTES = 64 * 1024;
const NSEC_PER_SEC = 1_000_000_000;
/** MergeStream.nativeStep's answers. */
const STEP_JS = 0;
const STEP_AGAIN = 1;
const STEP_DONE = 2;

/**
 * The native merge step (native/src/merge.cc; src/api/native-merge.ts loads it): given the output chunk,
 * each input's read buffer and the state array laid out as MERGE_STEP describes, it copies records in
 * (seconds, nanoseconds, input index) order until the chunk is full, the window ends, or an input needs
 * JavaScript (a refill, a record to rewrite); it returns one of MERGE_STEP's codes (negative: bad
 * arguments, do not call it again). It allocates nothing and keeps no state between calls.
 */
export type MergeStepFn = (out: Uint8Array, bufs: (Uint8Array | undefined)[], st: Float64Array) => number;

/**
 * A digest the merge keeps over exactly the bytes it pushes, in order (the API's SHA-256 of the body,
 * src/api/http.ts `BodyDigest`): each output chunk buf[start, end) as it is pushed.
 */
export interface MergeDigest {
  update(buf: Uint8Array, start: number, end: number): void;
  /**
   * A digest computed on another thread (src/api/native-merge.ts `ThreadedBodyDigest`) may fall behind:
   * then a promise, and the merge fills no more output until it resolves (bounded memory). Null when
   * it keeps up, or when the digest is computed in update() itself.
   */
  behind?(): Promise<void> | null;
}

/** The state array's layout and the step's return codes; the addon exports the same in `layout`. */
export const MERGE_STEP = {
  ST_HEADER: 16,
  ST_PER_INPUT: 4,
  MAX_INPUTS: 4096,
  OUT_FULL: 0,
  TO_REACHED: 1,
  ADVANCE: 2,
  HEAD_JS: 3,
  NO_INPUT: 4,
} as const;

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
  /** Read buffer per input, bytes (each input has two: one read ahead while the other is merged). Default 256 KiB. */
  chunkBytes?: number;
  /** Size of the chunks pushed downstream, bytes. Default 64 KiB. */
  outputChunkBytes?: number;
  /**
   * Bytes of this stream's output still held downstream, beyond its own buffer: pushed but not yet
   * handed to the kernel. When given, an output chunk whose bytes have all left is refilled instead of
   * allocating a new one. Every fresh chunk is external memory, and V8 answers a few hundred MB of it
   * with a full GC every few tens of MB: about a third of the CPU of an extraction. Give it only when
   * every holder is counted (a socket's writableLength is; a test harness that keeps the chunks is not).
   */
  heldDownstream?: () => number;
  /**
   * The files follow each other in time, in the order given: every record of files[i] is earlier than
   * (or as early as) every record of files[i + 1]. The caller vouches for it (the catalog's first and
   * last times); they are then opened one at a time.
   */
  sequential?: boolean;
  /**
   * With `sequential`, no predicate: files[i] lies entirely inside the window, and holds this many
   * records (undefined: not whole). A whole file in our format (little-endian nanosecond pcap, the output
   * link type) is streamed as bytes [24, limitBytesPerFile[i]) without parsing its records.
   */
  wholeFiles?: (number | undefined)[];
  /**
   * Where files[i] is read from when it is not a local file (an archived object in S3): opens a handle
   * with FileHandle's positional read; files[i] is then only its name (stats, errors). Undefined: the file system.
   */
  openers?: ((() => Promise<ReadHandle>) | undefined)[];
  /**
   * Write the output chunks in SharedArrayBuffer memory, so that a consumer can hand them to another
   * thread without copying (the API hashes them in a worker thread: src/api/hash-offload.ts).
   */
  sharedMemory?: boolean;
  /** The native merge step (MergeStepFn). Undefined: the JavaScript loop merges every record. */
  mergeStep?: MergeStepFn;
  /** Hash every byte pushed, in order (MergeDigest). */
  digest?: MergeDigest;
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
  /** Files streamed as byte ranges (MergeOptions.wholeFiles), records not parsed. */
  wholeFiles: number;
  /** Inputs that ended at a corrupt or cut record, with the reason. */
  truncated: { path: string; problem: string }[];
  /** Link type written in the output header (-1 until the merge has started). */
  linktype: number;
}

export class MergeStream extends Readable {
  readonly stats: MergeStats = { packets: 0, bytes: 0, read: 0, outsideWindow: 0, filtered: 0, skipped: 0, wholeFiles: 0, truncated: [], linktype: -1 };
  private readonly files: readonly string[];
  private readonly opts: MergeOptions;
  private readers: (AsyncCaptureReader | null)[] = [];
  /** Sequential mode: the next file to take, whether each is streamed as bytes, and the one being streamed. */
  private nextSeq = 0;
  private live: boolean[] = [];
  private asRange: boolean[] = [];
  private range: { fh: ReadHandle; pos: number; end: number } | null = null;
  /** The read of the range's next piece, started when the last chunk went downstream (bytes read). */
  private rangeAhead: Promise<number> | null = null;
  /** Heap of indexes into readers, ordered by their current record's timestamp. */
  private heap: number[] = [];
  /** The current record's timestamp of each input (copied out of its reader for the heap's comparisons). */
  private secs: number[] = [];
  private nsecs: number[] = [];
  /** 1 where an input's records are byte for byte ours (classic little-endian nanosecond pcap, our link type). */
  private raw: Uint8Array = new Uint8Array(0);
  /** No predicate: records can be copied in runs. */
  private readonly plain: boolean;
  /** A run of input records waiting to be copied out: runBuf[runStart, runEnd). */
  private runBuf: Buffer | null = null;
  private runStart = 0;
  private runEnd = 0;
  /** Output bytes pushed so far, and the chunks pushed that may still be held downstream (heldDownstream). */
  private pushedBytes = 0;
  /** Hashes every chunk as it is pushed (MergeOptions.digest). */
  private readonly digest: MergeDigest | null;
  /** Set by pushOut() when the digest is behind (MergeDigest.behind): the pump waits for it first. */
  private digestLag: Promise<void> | null = null;
  private sent: { buf: Buffer; end: number }[] = [];
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
  /** The native step, its state array and its per-input buffer list (null: JavaScript only). */
  private stepFn: MergeStepFn | null;
  private st: Float64Array = new Float64Array(0);
  private stepBufs: (Buffer | undefined)[] = [];
  /** Calls of the native step, and how many handed a record back to JavaScript (tests, profiles). */
  nativeSteps = 0;

  constructor(files: readonly string[], opts: MergeOptions = {}) {
    super({ highWaterMark: opts.outputChunkBytes ?? DEFAULT_MERGE_OUTPUT_CHUNK_BYTES });
    this.files = files;
    this.opts = opts;
    this.outSize = opts.outputChunkBytes ?? DEFAULT_MERGE_OUTPUT_CHUNK_BYTES;
    if (this.outSize < GLOBAL_HEADER_BYTES + RECORD_HEADER_BYTES) throw new RangeError(`outputChunkBytes ${this.outSize} is too small`);
    this.out = this.freshChunk(this.outSize);
    this.hasFrom = opts.fromSec !== undefined;
    this.hasTo = opts.toSec !== undefined;
    this.fromSec = opts.fromSec ?? 0;
    this.fromNsec = opts.fromNsec ?? 0;
    this.toSec = opts.toSec ?? 0;
    this.toNsec = opts.toNsec ?? 0;
    this.plain = opts.predicate === undefined;
    this.digest = opts.digest ?? null;
    this.stepFn = this.plain && opts.mergeStep !== undefined && files.length <= MERGE_STEP.MAX_INPUTS ? opts.mergeStep : null;
    if (opts.signal !== undefined) addAbortSignal(opts.signal, this);
  }

  /** Bytes read from the inputs so far (read-ahead included): how far reading runs ahead of the output. */
  get inputBytesRead(): number {
    let n = this.rangeBytesRead;
    for (const r of this.readers) if (r !== null) n += r.bytesRead;
    return n;
  }
  private rangeBytesRead = 0;

  /** Bytes pushed downstream so far (all that `digest` has hashed). */
  get bytesPushed(): number {
    return this.pushedBytes;
  }

  private readyResult: Promise<void> | null = null;

  /**
   * A reader's options for files[i]. A local file is read ahead into a second buffer (a positional read in
   * flight while the merge consumes the first). An input with an opener of its own reads ahead itself (the
   * S3 reads fetch ranges ahead, and expect one read at a time per input), so its reader does not.
   */
  private readerOptions(i: number, chunkBytes: number, limitBytes: number | undefined): { chunkBytes: number; readAhead: boolean; limitBytes?: number } {
    const readAhead = this.opts.openers?.[i] === undefined;
    return limitBytes === undefined ? { chunkBytes, readAhead } : { chunkBytes, readAhead, limitBytes };
  }

  /** files[i] for reading: its opener's handle, or the local file. */
  private openInput(i: number): Promise<ReadHandle> {
    const o = this.opts.openers?.[i];
    return o !== undefined ? o() : openFile(this.files[i]!, 'r');
  }

  override _construct(callback: (error?: Error | null) => void): void {
    this.readyResult = this.start();
    // Whoever awaits ready() sees the error; the stream reports it too (nobody may be awaiting ready()).
    this.readyResult.catch(() => undefined);
    this.readyResult.then(
      () => callback(),
      (e: unknown) => callback(e as Error),
    );
  }

  /**
   * Resolves once every input is open and has its first record (the global header is then buffered);
   * rejects with the error that fails the stream (MG_ERR_CAPTURE_READ / MG_ERR_CAPTURE_FORMAT).
   */
  async ready(): Promise<void> {
    // _construct runs on the next tick after the constructor.
    while (this.readyResult === null) await new Promise<void>((r) => process.nextTick(r));
    return this.readyResult;
  }

  /** Open every input, read its first record, build the heap and write the global header. */
  private async start(): Promise<void> {
    const limits = this.opts.limitBytesPerFile ?? [];
    const chunkBytes = this.opts.chunkBytes ?? DEFAULT_MERGE_CHUNK_BYTES;
    const n = this.files.length;
    const sequential = this.opts.sequential === true;
    const whole = sequential && this.plain ? (this.opts.wholeFiles ?? []) : [];
    this.secs = new Array<number>(n).fill(0);
    this.nsecs = new Array<number>(n).fill(0);
    this.asRange = new Array<boolean>(n).fill(false);
    this.live = new Array<boolean>(n).fill(false);
    this.readers = new Array<AsyncCaptureReader | null>(n).fill(null);
    // Whole files in our format are streamed as bytes: their link type is read from their header.
    const rangeLinktype: number[] = new Array<number>(n).fill(-1);
    // The inputs are opened and their first records read side by side (START_CONCURRENCY at a time), not
    // one round trip after another: with 8 files of 1 MiB buffers that was 4-21 ms before the first byte.
    await eachLimited(n, START_CONCURRENCY, async (i) => {
      if (whole[i] === undefined || limits[i] === undefined) return;
      rangeLinktype[i] = await ownLinktype(() => this.openInput(i));
      this.asRange[i] = rangeLinktype[i]! >= 0;
    });
    await eachLimited(n, START_CONCURRENCY, async (i) => {
      if (this.asRange[i] || this.opts.signal?.aborted) return;
      const r = await openCaptureAsync(this.files[i]!, this.readerOptions(i, chunkBytes, limits[i]), this.opts.openers?.[i]);
      // Destroyed meanwhile (aborted): _destroy has closed the readers it saw, not this one.
      if (this.destroyed) return void (await r.close());
      this.readers[i] = r;
      this.live[i] = await r.next();
      if (this.live[i]) {
        this.stats.read++;
        this.secs[i] = r.record.tsSec;
        this.nsecs[i] = r.record.tsNsec;
      }
    });
    if (this.opts.signal?.aborted) return;
    let linktype = this.opts.linktype;
    if (linktype === undefined) {
      linktype = LINKTYPE_ETHERNET;
      for (let i = 0; i < n; i++) {
        const lt = this.asRange[i] ? rangeLinktype[i]! : this.readers[i]!.linktype;
        if (lt >= 0) {
          linktype = lt;
          break;
        }
      }
    }
    this.stats.linktype = linktype;
    this.raw = new Uint8Array(n);
    for (let i = 0; i < n; i++) {
      // A whole file of another link type goes through the record path, which skips its records.
      if (this.asRange[i] && rangeLinktype[i] !== linktype) {
        this.asRange[i] = false;
        const lim = limits[i];
        const r = (this.readers[i] = await openCaptureAsync(this.files[i]!, this.readerOptions(i, chunkBytes, lim), this.opts.openers?.[i]));
        this.live[i] = await r.next();
        if (this.live[i]) {
          this.stats.read++;
          this.secs[i] = r.record.tsSec;
          this.nsecs[i] = r.record.tsNsec;
        }
      }
      const r = this.readers[i];
      if (r === null) continue;
      this.raw[i] = r.format === 'pcap' && r.littleEndian && r.nanosecond && r.linktype === linktype ? 1 : 0;
      if (sequential) {
        // Taken in turn by pump(); an empty one is done with now.
        if (!this.live[i]) await this.retire(i);
      } else if (this.live[i]) this.heapPush(i);
      else await this.retire(i);
    }
    this.nextSeq = sequential ? 0 : n;
    if (this.stepFn !== null) {
      const st = (this.st = new Float64Array(MERGE_STEP.ST_HEADER + MERGE_STEP.ST_PER_INPUT * n));
      this.stepBufs = new Array<Buffer | undefined>(n).fill(undefined);
      st[1] = this.hasFrom ? 1 : 0;
      st[2] = this.fromSec;
      st[3] = this.fromNsec;
      st[4] = this.hasTo ? 1 : 0;
      st[5] = this.toSec;
      st[6] = this.toNsec;
      st[10] = SNAPLEN;
    }
    if (writeGlobalHeader(this.out, 0, linktype, SNAPLEN) < 0) throw new MgError('MG_ERR_CAPTURE_LINKTYPE', `link type ${linktype}`);
    this.outLen = GLOBAL_HEADER_BYTES;
    this.stats.bytes = GLOBAL_HEADER_BYTES;
  }

  /**
   * Sequential mode, the heap empty: take the next file. A whole one becomes the byte range being
   * streamed, another goes on the (otherwise empty) heap. False when there is no file left.
   */
  private async takeNext(): Promise<boolean> {
    const n = this.files.length;
    while (this.nextSeq < n) {
      const i = this.nextSeq++;
      if (this.asRange[i]) {
        const fh = await this.openInput(i);
        const records = this.opts.wholeFiles![i]!;
        this.range = { fh, pos: GLOBAL_HEADER_BYTES, end: this.opts.limitBytesPerFile![i]! };
        this.stats.packets += records;
        this.stats.read += records;
        this.stats.wholeFiles++;
        return true;
      }
      if (this.live[i]) {
        this.heapPush(i);
        return true;
      }
    }
    return false;
  }

  /**
   * Read the next piece of the byte range being streamed straight into the output chunk. When a chunk
   * fills and goes downstream, the read of the next one starts at once, into the next chunk, so the disk
   * read overlaps the hashing and sending of the one before.
   */
  private async rangeStep(): Promise<void> {
    const g = this.range!;
    let n: number;
    const ahead = this.rangeAhead;
    if (ahead !== null) {
      this.rangeAhead = null;
      n = await ahead;
    } else {
      if (g.pos >= g.end) {
        this.range = null;
        await g.fh.close();
        return;
      }
      if (this.outLen === this.out.length) this.pushOut();
      n = (await g.fh.read(this.out, this.outLen, Math.min(this.out.length - this.outLen, g.end - g.pos), g.pos)).bytesRead;
    }
    if (this.destroyed) return;
    if (n === 0) {
      // Shorter than the catalog said (the route checks sizes first): the file ends here.
      this.stats.truncated.push({ path: this.files[this.nextSeq - 1]!, problem: `ends at byte ${g.pos}, expected ${g.end}` });
      g.pos = g.end;
      return;
    }
    g.pos += n;
    this.rangeBytesRead += n;
    this.outLen += n;
    this.stats.bytes += n;
    if (this.outLen === this.out.length) {
      this.pushOut();
      if (g.pos < g.end) {
        // this.out is ours now (fresh, or every byte of it has left): fill it while downstream works.
        const p = g.fh.read(this.out, 0, Math.min(this.out.length, g.end - g.pos), g.pos).then((r) => r.bytesRead);
        p.catch(() => undefined); // awaited by the next step; a stream destroyed first must not leave it unhandled
        this.rangeAhead = p;
      }
    }
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
    const secs = this.secs;
    const nsecs = this.nsecs;
    while (this.wantMore && !this.destroyed) {
      const lag = this.digestLag;
      if (lag !== null) {
        this.digestLag = null;
        await lag;
        continue;
      }
      if (this.range !== null) {
        await this.rangeStep();
        continue;
      }
      if (heap.length === 0) {
        if (this.nextSeq < this.files.length && (await this.takeNext())) continue;
        return this.complete();
      }
      if (this.stepFn !== null) {
        const c = await this.nativeStep();
        if (c === STEP_DONE) return this.complete();
        if (c === STEP_AGAIN) continue;
        if (heap.length === 0) continue;
      }
      const i = heap[0]!;
      // The input to beat: the earlier of the root's children (the heap's second-smallest head). Records
      // of input i up to it go out in one run, without touching the heap: one run per packet when the
      // inputs interleave packet by packet, one run per file (a byte range) when files follow each other.
      let b = -1;
      if (heap.length > 1) {
        b = heap[1]!;
        if (heap.length > 2 && this.less(heap[2]!, b)) b = heap[2]!;
      }
      const bSec = b < 0 ? Infinity : secs[b]!;
      const bNsec = b < 0 ? 0 : nsecs[b]!;
      const r = this.readers[i]!;
      const rec = r.record;
      const raw = this.raw[i] === 1;
      for (;;) {
        const sec = secs[i]!;
        const nsec = nsecs[i]!;
        // Past the next input's head (ties go to the lower input index: stable): hand over.
        if (sec > bSec || (sec === bSec && (nsec > bNsec || (nsec === bNsec && i > b)))) break;
        // The earliest record of all is at or past `to`: nothing later can be in the window.
        if (this.hasTo && (sec > this.toSec || (sec === this.toSec && nsec >= this.toNsec))) {
          this.flushRun();
          return this.complete();
        }
        if (raw && this.plain && rec.caplen <= SNAPLEN && nsec < NSEC_PER_SEC && !(this.hasFrom && (sec < this.fromSec || (sec === this.fromSec && nsec < this.fromNsec))) && rec.caplen <= rec.origLen && rec.origLen > 0) {
          // Already a record of ours, byte for byte (nanosecond little-endian pcap, our link type): extend the run.
          const recStart = rec.off - RECORD_HEADER_BYTES;
          if (this.runBuf !== rec.buf || this.runEnd !== recStart) {
            this.flushRun();
            this.runBuf = rec.buf;
            this.runStart = recStart;
          }
          this.runEnd = rec.off + rec.caplen;
          this.stats.packets++;
        } else {
          this.flushRun();
          this.accept(rec.buf, rec.off, rec.caplen, rec.origLen, sec, nsec, rec.linktype);
        }
        // Advance this input; the other inputs' records stay valid meanwhile.
        let more = r.tryNext();
        if (more === null) {
          // The read buffer is about to be compacted and refilled: the run must leave it first.
          this.flushRun();
          // A fill may bring the record's header but not all of it (a source that returns short reads,
          // as a network stream does): fill again until the step completes; at the end it cannot need more.
          do {
            await r.fill();
            if (this.destroyed) return;
            more = r.tryNext();
          } while (more === null);
        }
        if (!more) {
          this.flushRun();
          const last = heap.pop()!;
          if (heap.length > 0) {
            heap[0] = last;
            this.siftDown(0);
          }
          await this.retire(i);
          break;
        }
        this.stats.read++;
        secs[i] = rec.tsSec;
        nsecs[i] = rec.tsNsec;
        if (!this.wantMore) {
          this.flushRun();
          this.siftDown(0);
          break;
        }
      }
      if (heap[0] === i) this.siftDown(0);
    }
    this.flushRun();
  }

  /**
   * One call of the native step over the heap's inputs, when all of them are copies record for record.
   * Afterwards every input it advanced is re-parsed at its new current record and the heap rebuilt.
   * STEP_DONE: the window ended; STEP_AGAIN: go round (a chunk was pushed, an input refilled);
   * STEP_JS: the JavaScript loop takes the heap's first input for one run (a record to rewrite, a
   * record larger than the output chunk, an input not in our format, or no step).
   */
  private async nativeStep(): Promise<number> {
    const heap = this.heap;
    const raw = this.raw;
    for (let k = 0; k < heap.length; k++) if (raw[heap[k]!] !== 1) return STEP_JS;
    this.flushRun();
    const st = this.st;
    const bufs = this.stepBufs;
    const n = this.files.length;
    const H = MERGE_STEP.ST_HEADER;
    const W = MERGE_STEP.ST_PER_INPUT;
    for (let i = 0; i < n; i++) {
      st[H + W * i] = 0;
      bufs[i] = undefined;
    }
    for (let k = 0; k < heap.length; k++) {
      const i = heap[k]!;
      const r = this.readers[i]!;
      const rec = r.record;
      const b = H + W * i;
      bufs[i] = rec.buf;
      st[b] = 1;
      st[b + 1] = rec.off - RECORD_HEADER_BYTES;
      st[b + 2] = r.bufferEnd;
    }
    st[0] = this.outLen;
    const code = this.stepFn!(this.out, bufs, st);
    this.nativeSteps++;
    if (code < 0) {
      // Arguments it refuses (a window bound beyond 32-bit seconds): JavaScript from now on.
      this.stepFn = null;
      return STEP_JS;
    }
    const outLen = st[0]!;
    this.stats.bytes += outLen - this.outLen;
    this.outLen = outLen;
    this.stats.packets += st[8]!;
    this.stats.outsideWindow += st[9]!;
    const stopped = code === MERGE_STEP.ADVANCE ? st[7]! : -1;
    const secs = this.secs;
    const nsecs = this.nsecs;
    for (let k = 0; k < heap.length; k++) {
      const i = heap[k]!;
      const b = H + W * i;
      const count = st[b + 3]!;
      if (count === 0) continue;
      const r = this.readers[i]!;
      r.resumeAt(st[b + 1]!, count - 1);
      this.stats.read += count - 1;
      if (i === stopped) continue;
      // The step checked that this record is complete in the buffer: parsing it cannot need a read.
      if (r.tryNext() !== true) throw new Error(`merge step left input ${i} at an incomplete record`);
      this.stats.read++;
      secs[i] = r.record.tsSec;
      nsecs[i] = r.record.tsNsec;
    }
    if (stopped >= 0) {
      // Its current record went out; the next one needs the JavaScript reader (a refill, or a record
      // too large to copy as is).
      const r = this.readers[stopped]!;
      let more = r.tryNext();
      while (more === null) {
        await r.fill();
        if (this.destroyed) return STEP_AGAIN;
        more = r.tryNext();
      }
      if (more) {
        this.stats.read++;
        secs[stopped] = r.record.tsSec;
        nsecs[stopped] = r.record.tsNsec;
      } else {
        heap.splice(heap.indexOf(stopped), 1);
        await this.retire(stopped);
      }
    }
    for (let c = (heap.length >> 1) - 1; c >= 0; c--) this.siftDown(c);
    switch (code) {
      case MERGE_STEP.TO_REACHED:
        return STEP_DONE;
      case MERGE_STEP.OUT_FULL:
        // A record larger than a whole chunk goes through the JavaScript run, which splits it.
        if (this.outLen === 0) return STEP_JS;
        this.pushOut();
        return STEP_AGAIN;
      case MERGE_STEP.HEAD_JS:
        return STEP_JS;
      default:
        return STEP_AGAIN;
    }
  }

  /** Copy the pending run of input records (already in our output format) to the output. */
  private flushRun(): void {
    const src = this.runBuf;
    if (src === null) return;
    this.runBuf = null;
    let a = this.runStart;
    const end = this.runEnd;
    this.stats.bytes += end - a;
    while (a < end) {
      let room = this.out.length - this.outLen;
      if (room === 0) {
        this.pushOut();
        room = this.out.length;
      }
      const n = Math.min(room, end - a);
      src.copy(this.out, this.outLen, a, a + n);
      this.outLen += n;
      a += n;
    }
    if (this.outLen === this.out.length) this.pushOut();
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
      if (need > this.out.length) this.out = this.freshChunk(need);
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
    if (this.digest !== null) {
      this.digest.update(this.out, 0, this.outLen);
      this.digestLag = this.digest.behind?.() ?? null;
    }
    const chunk = this.out.subarray(0, this.outLen);
    this.pushedBytes += this.outLen;
    const held = this.opts.heldDownstream;
    if (held !== undefined) this.sent.push({ buf: this.out, end: this.pushedBytes });
    this.outLen = 0;
    this.wantMore = this.push(chunk);
    this.out = this.freeChunk() ?? this.freshChunk(this.outSize);
  }

  private freshChunk(bytes: number): Buffer {
    return this.opts.sharedMemory === true ? Buffer.from(new SharedArrayBuffer(bytes)) : Buffer.allocUnsafe(bytes);
  }

  /** The oldest pushed chunk, when every byte of it has left for the kernel (FIFO: the bytes before it too). */
  private freeChunk(): Buffer | null {
    const held = this.opts.heldDownstream;
    const oldest = this.sent[0];
    if (held === undefined || oldest === undefined) return null;
    const left = this.pushedBytes - this.readableLength - held();
    if (oldest.end > left) return null;
    this.sent.shift();
    return oldest.buf;
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
    const r = this.readers[i];
    if (r === null || r === undefined) return;
    if (r.truncated) this.stats.truncated.push({ path: r.path, problem: r.problem ?? 'corrupt record' });
    await r.close();
  }

  override _destroy(err: Error | null, callback: (error?: Error | null) => void): void {
    const closing: Promise<void>[] = this.readers.map((r) => (r === null ? Promise.resolve() : r.close()));
    if (this.range !== null) closing.push(this.range.fh.close());
    this.range = null;
    Promise.allSettled(closing).then(() => callback(err));
  }

  private less(a: number, b: number): boolean {
    const sa = this.secs[a]!;
    const sb = this.secs[b]!;
    if (sa !== sb) return sa < sb;
    const na = this.nsecs[a]!;
    const nb = this.nsecs[b]!;
    if (na !== nb) return na < nb;
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

/** The link type of a classic little-endian nanosecond pcap (what our writer makes), else -1. */
/** How many inputs the merge opens and reads its first records of at once. */
const START_CONCURRENCY = 16;

/**
 * fn(0) .. fn(n - 1), at most `limit` at a time. Every call runs to its end; then the first error by
 * index is thrown (the same error whatever order the calls finished in).
 */
async function eachLimited(n: number, limit: number, fn: (i: number) => Promise<void>): Promise<void> {
  const errors: unknown[] = new Array<unknown>(n);
  let failed = false;
  let next = 0;
  const lane = async (): Promise<void> => {
    while (next < n) {
      const i = next++;
      try {
        await fn(i);
      } catch (e) {
        errors[i] = e;
        failed = true;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, n) }, lane));
  if (failed) for (let i = 0; i < n; i++) if (i in errors) throw errors[i];
}

async function ownLinktype(openInput: () => Promise<ReadHandle>): Promise<number> {
  let fh: ReadHandle | null = null;
  try {
    fh = await openInput();
    const h = Buffer.alloc(GLOBAL_HEADER_BYTES);
    const { bytesRead } = await fh.read(h, 0, GLOBAL_HEADER_BYTES, 0);
    if (bytesRead < GLOBAL_HEADER_BYTES || h.readUInt32LE(0) !== PCAP_MAGIC_NSEC) return -1;
    return h.readUInt32LE(20) & 0x0fffffff;
  } catch {
    return -1; // the record path reports why it cannot be read
  } finally {
    await fh?.close();
  }
}
