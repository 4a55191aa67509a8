/**
 * Archived captures read from S3 as ReadHandles (src/pcap/reader.ts), so an extraction merges them like
 * local files. One `ArchivedReads` per extraction holds every archived input of the merge, in the order
 * the merge opens them, and fetches ahead of the reads:
 *
 * - Per input, once it reads sequentially (a read past its first range), up to `window` ranges beyond the
 *   one being read are fetched while the merge consumes it. Ranges grow (doubling from the merge's read
 *   size) up to `maxRangeBytes`, or the input's share of the budget when many inputs read at once.
 * - When an input is opened, the first range of the next `lookahead` inputs is fetched too (the merge
 *   opens its inputs one after another, each waiting for its first bytes; past half the budget held for
 *   unopened inputs, only their 24-byte header), and when an input's read-ahead
 *   reaches its end, it goes on into the next input not opened yet: files streamed one after another
 *   (rotated files) never wait for a first byte.
 * - Bounds, whatever the number of files: at most `maxGets` GETs at once (reads the merge waits for go
 *   first), and at most `maxBytesInFlight` bytes fetched ahead and not yet consumed (the reads the merge
 *   is waiting for, two at most, and the 24-byte headers of unopened inputs come on top). A range is
 *   released once read.
 * - A body cut short is asked for again from where it stopped (the SDK retries the request itself, not a
 *   body that breaks off), for as long as each GET brings bytes; BODY_ATTEMPTS GETs in a row that bring
 *   none fail the range, and the read that needs it (a prefetched range nobody reads is dropped, its
 *   error with it).
 * - close() (the extraction ended, or its client went away) aborts every GET in flight and frees every range.
 *
 * The S3 request cost of an extraction: a GET per range, i.e. about bytes / maxRangeBytes for large
 * files read in turn, bytes / (budget / (window x inputs)) for many files read together, and one or two
 * for each small file.
 */
import type { Readable } from 'node:stream';
import type { ReadHandle } from '../pcap/reader.js';

/** Bytes start..end (inclusive) of an object version: ApiDeps.archive.readObject. `signal` aborts the GET. */
export type ReadObject = (key: string, versionId: string | null, start: number, end: number, signal?: AbortSignal) => Promise<NodeJS.ReadableStream>;

/** GETs in a row that bring no bytes before a range fails (each a new ranged GET from where the last one stopped). */
const BODY_ATTEMPTS = 3;

/** Bytes fetched ahead and not yet consumed, all inputs of one extraction together. */
export const S3_READ_BUDGET_BYTES = 32 * 1024 * 1024;
/** Ranged GETs in flight at once, one extraction. */
export const S3_MAX_CONCURRENT_GETS = 8;
/** Ranges fetched ahead of the one being read, per input. */
export const S3_READ_WINDOW = 2;
/** The largest range one GET asks for (a large file read in turn). */
export const S3_MAX_RANGE_BYTES = 8 * 1024 * 1024;
/** Inputs whose first range is fetched when an input is opened. */
export const S3_OPEN_LOOKAHEAD = 8;
const RANGE_ALIGN_BYTES = 64 * 1024;
/** A pcap global header: what is fetched ahead of an input's opening once half the budget is primed. */
const HEADER_PRIME_BYTES = 24;

export interface ArchivedReadOptions {
  /** The merge's read size (its chunkBytes): an input's first range, and the smallest read-ahead range. */
  chunkBytes?: number;
  maxBytesInFlight?: number;
  maxGets?: number;
  window?: number;
  maxRangeBytes?: number;
  lookahead?: number;
  /** False: every read is one GET of exactly the bytes asked, nothing fetched ahead (the benchmark's "before"). */
  readAhead?: boolean;
  /** Aborting it closes the reads (every GET in flight aborted). */
  signal?: AbortSignal;
}

export interface ArchivedObject {
  key: string;
  versionId: string | null;
  /** The object's size (the catalog's bytes at close): reads stop there. */
  size: number;
}

export interface ArchivedReadStats {
  /** Ranged GETs sent (retries of a cut body included). */
  gets: number;
  /** Bytes received. */
  bytes: number;
  /** Most GETs in flight at once. */
  peakGets: number;
  /** Most bytes held at once in ranges fetched or being fetched (ahead, and the reads waited for). */
  peakBytes: number;
  /** Ranges fetched ahead and dropped unread (an input closed early, or a jump). */
  dropped: number;
}

/** Bytes [start, end) of one object, fetched into buf. */
interface Range {
  readonly start: number;
  readonly end: number;
  readonly buf: Buffer;
  readonly ac: AbortController;
  /** Resolves when buf is filled; rejects with the reason it cannot be. */
  readonly done: Promise<void>;
  /** A read waits for it: it goes before read-ahead for a GET slot. */
  urgent: boolean;
  started: boolean;
  released: boolean;
}

interface Input extends ArchivedObject {
  /** Ranges held, in order and contiguous. */
  ranges: Range[];
  /** Where the last read ended (-1: none yet). */
  pos: number;
  /** Reading sequentially: read-ahead is on. */
  streaming: boolean;
  /** The next read-ahead range's size. */
  nextRange: number;
  openHandles: number;
  /** Read and closed: never fetched ahead again. */
  finished: boolean;
}

export class ArchivedReads {
  readonly stats: ArchivedReadStats = { gets: 0, bytes: 0, peakGets: 0, peakBytes: 0, dropped: 0 };
  private readonly inputs: Input[] = [];
  private readonly queue: { range: Range; go: (granted: boolean) => void }[] = [];
  private active = 0;
  private held = 0;
  private closed = false;
  private chunk: number;
  private readonly budget: number;
  private readonly maxGets: number;
  private readonly window: number;
  private readonly maxRange: number;
  private readonly lookahead: number;
  private readonly ahead: boolean;

  constructor(
    private readonly readObject: ReadObject,
    opts: ArchivedReadOptions = {},
  ) {
    this.chunk = Math.max(1, opts.chunkBytes ?? 1024 * 1024);
    this.budget = opts.maxBytesInFlight ?? S3_READ_BUDGET_BYTES;
    this.maxGets = Math.max(1, opts.maxGets ?? S3_MAX_CONCURRENT_GETS);
    this.window = opts.window ?? S3_READ_WINDOW;
    this.maxRange = opts.maxRangeBytes ?? S3_MAX_RANGE_BYTES;
    this.lookahead = opts.lookahead ?? S3_OPEN_LOOKAHEAD;
    this.ahead = opts.readAhead ?? true;
    if (opts.signal !== undefined) {
      if (opts.signal.aborted) this.close();
      else opts.signal.addEventListener('abort', () => this.close(), { once: true });
    }
  }

  /** The merge's read size, when known only once the inputs are (before any open()). */
  set chunkBytes(n: number) {
    this.chunk = Math.max(1, n);
  }

  /** Add an input (in the order the merge opens them); its index for open(). */
  add(obj: ArchivedObject): number {
    this.inputs.push({ ...obj, ranges: [], pos: -1, streaming: false, nextRange: 0, openHandles: 0, finished: false });
    return this.inputs.length - 1;
  }

  /** A handle on input `index` (MergeOptions.openers). */
  open(index: number): ArchivedObjectHandle {
    const inp = this.inputs[index]!;
    inp.openHandles++;
    if (this.ahead) for (let j = index + 1; j <= index + this.lookahead && j < this.inputs.length; j++) this.prime(j);
    return new ArchivedObjectHandle(this, index);
  }

  /** Bytes held in ranges now (tests). */
  get heldBytes(): number {
    return this.held;
  }

  /** GETs in flight now (tests). */
  get activeGets(): number {
    return this.active;
  }

  /** Abort every GET and free every range. Reads after this fail. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const inp of this.inputs) this.drop(inp, 0);
  }

  /** @internal ArchivedObjectHandle.read */
  async read(index: number, buffer: Buffer, offset: number, length: number, position: number | null): Promise<number> {
    const inp = this.inputs[index]!;
    const at = position ?? Math.max(0, inp.pos);
    const want = Math.min(length, inp.size - at);
    if (want <= 0) return 0;
    if (this.closed) throw new Error(`s3 object ${inp.key}: the extraction's reads are closed`);
    // A jump (not where the ranges held go on from): drop them.
    const first = inp.ranges[0];
    if (first !== undefined && (at < first.start || at > inp.ranges[inp.ranges.length - 1]!.end)) this.drop(inp, 0);
    // Reading on from a header, or a whole read buffer from the start (a record reader's first fill): sequential.
    if (this.ahead && (at > 0 || want >= Math.min(this.chunk, inp.size))) inp.streaming = true;
    let got = 0;
    while (got < want) {
      const p = at + got;
      let r = inp.ranges.find((x) => x.start <= p && p < x.end);
      if (r === undefined) {
        // Nothing held covers p (ranges end before it): one range for the rest of this read, at least the merge's read size.
        // Not streaming (a header read) with half the budget kept for unopened inputs: only what is asked.
        const exact = !this.ahead || (!inp.streaming && this.unopenedBytes() + this.chunk > this.budget / 2);
        const len = exact ? want - got : Math.max(want - got, Math.min(this.chunk, inp.size - p));
        r = this.fetch(inp, p, Math.min(inp.size, p + len), true);
      }
      this.readAhead(inp, index);
      if (!r.started) this.promote(r);
      try {
        await r.done;
      } catch (e) {
        if (this.closed) throw new Error(`s3 object ${inp.key}: the extraction's reads are closed`);
        // Failed for good: forget it, so a later read asks again.
        this.release(inp, r);
        throw new Error(`s3 object ${inp.key}: read ${got} of ${want} bytes at ${at}: ${(e as Error).message}`);
      }
      const n = Math.min(r.end - p, want - got);
      r.buf.copy(buffer, offset + got, p - r.start, p - r.start + n);
      got += n;
    }
    inp.pos = at + got;
    // Ranges read to their end are done with.
    while (inp.ranges.length > 0 && inp.ranges[0]!.end <= inp.pos) this.release(inp, inp.ranges[0]!);
    this.readAhead(inp, index);
    return got;
  }

  /** @internal ArchivedObjectHandle.close: after a header read, keep what is held (the merge opens the file again); else free it. */
  closeHandle(index: number): void {
    const inp = this.inputs[index]!;
    inp.openHandles = Math.max(0, inp.openHandles - 1);
    if (inp.openHandles > 0) return;
    // Only a header was read (the merge checks a file's header, then opens it again): keep what is held.
    // It was fetched within half the budget (prime, or a header read past it asks for the header alone).
    if (!inp.streaming) {
      inp.pos = -1;
      return;
    }
    this.drop(inp, 0);
    inp.streaming = false;
    inp.finished = inp.pos >= 0;
    inp.pos = -1;
  }

  /** Keep read-ahead `window` ranges beyond the one being read, while the budget allows. */
  private readAhead(inp: Input, index: number): void {
    if (!this.ahead || !inp.streaming || this.closed) return;
    const pos = Math.max(0, inp.pos);
    for (;;) {
      const last = inp.ranges[inp.ranges.length - 1];
      const from = last !== undefined ? last.end : pos;
      if (from >= inp.size) {
        // Fetched to its end: go on into the next input if the merge has not opened it yet (files read in
        // turn), as if it were the same file; its first range is all a merge of overlapping files needs.
        const next = this.inputs[index + 1];
        if (next !== undefined && next.openHandles === 0 && next.pos < 0 && !next.streaming && !next.finished) {
          next.streaming = true;
          this.readAhead(next, index + 1);
        }
        return;
      }
      const beyond = inp.ranges.filter((r) => r.start > pos).length;
      if (beyond >= this.window) return;
      // The first range ahead is twice the merge's read; a tail shorter than the range goes with it.
      const grown = Math.max(2 * this.chunk, inp.nextRange);
      const share = this.shareOf();
      let size = Math.min(grown, share, inp.size - from);
      if (inp.size - from - size < size && inp.size - from <= 2 * share) size = inp.size - from;
      if (this.held + size > this.budget) return;
      this.fetch(inp, from, from + size, false);
      inp.nextRange = Math.max(grown, Math.min(this.maxRange, grown * 2));
    }
  }

  /** One streaming input's share of the budget, per range: every open input may read ahead at once. */
  private shareOf(): number {
    let open = 0;
    for (const i of this.inputs) if (i.openHandles > 0 && i.streaming) open++;
    const share = Math.floor(this.budget / Math.max(1, open) / Math.max(1, this.window) / RANGE_ALIGN_BYTES) * RANGE_ALIGN_BYTES;
    return Math.max(this.chunk, Math.min(this.maxRange, share));
  }

  /** Fetch input j's first range ahead of its opening, if nothing of it is held and the budget allows (primed ranges: at most half of it). */
  private prime(j: number): void {
    const inp = this.inputs[j];
    if (inp === undefined || this.closed || inp.finished || inp.ranges.length > 0 || inp.openHandles > 0 || inp.pos >= 0 || inp.size <= 0) return;
    // A tail shorter than the first range goes with it. Past half the budget, only the file's header:
    // the merge reads every file's header before it streams them in turn, and each would wait its GET.
    let size = inp.size < 2 * this.chunk ? inp.size : this.chunk;
    if (this.unopenedBytes() + size > this.budget / 2) size = Math.min(inp.size, HEADER_PRIME_BYTES);
    if (this.held + size > this.budget) return;
    this.fetch(inp, 0, size, false);
  }

  /** Bytes held for inputs no handle has open (primed, or kept after a header read). */
  private unopenedBytes(): number {
    let n = 0;
    for (const i of this.inputs) if (i.openHandles === 0) for (const r of i.ranges) n += r.end - r.start;
    return n;
  }

  private fetch(inp: Input, start: number, end: number, urgent: boolean): Range {
    const ac = new AbortController();
    let resolve!: () => void;
    let reject!: (e: unknown) => void;
    const done = new Promise<void>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    done.catch(() => undefined); // read-ahead nobody reads: its error goes with it
    const r: Range = { start, end, buf: Buffer.allocUnsafe(end - start), ac, done, urgent, started: false, released: false };
    inp.ranges.push(r);
    inp.ranges.sort((a, b) => a.start - b.start);
    this.held += end - start;
    if (this.held > this.stats.peakBytes) this.stats.peakBytes = this.held;
    this.run(inp, r).then(resolve, reject);
    return r;
  }

  private async run(inp: Input, r: Range): Promise<void> {
    const granted = await this.slot(r);
    const signal = r.ac.signal;
    if (!granted) throw new Error('aborted');
    r.started = true;
    try {
      const want = r.end - r.start;
      let got = 0;
      let lastError: unknown = null;
      // Every GET that brings bytes moves `got` on, so this ends: done, or BODY_ATTEMPTS GETs in a row with none.
      for (let failures = 0; failures < BODY_ATTEMPTS && got < want; ) {
        if (signal.aborted) throw new Error('aborted');
        let body: Readable | null = null;
        const stop = () => body?.destroy(new Error('aborted'));
        const before = got;
        try {
          this.stats.gets++;
          body = (await this.readObject(inp.key, inp.versionId, r.start + got, r.end - 1, signal)) as Readable;
          signal.addEventListener('abort', stop, { once: true });
          if (signal.aborted) stop();
          for await (const chunk of body as AsyncIterable<Buffer>) {
            const n = Math.min(chunk.length, want - got);
            chunk.copy(r.buf, got, 0, n);
            got += n;
            this.stats.bytes += n;
            if (got >= want) break;
          }
          if (got === before) throw new Error(`no bytes at ${r.start + got} (shorter than the catalog's ${inp.size})`);
        } catch (e) {
          if (signal.aborted) throw e;
          lastError = e;
        } finally {
          signal.removeEventListener('abort', stop);
          // The slot is free once the connection is: wait for the body to close.
          if (body !== null) await closed(body);
        }
        failures = got > before ? 0 : failures + 1;
      }
      if (got < want) throw new Error((lastError as Error | null)?.message ?? 'body ended early');
    } finally {
      this.active--;
      this.next();
    }
  }

  /** Wait for a GET slot (true), or for the range to be dropped first (false): reads waited for first, then read-ahead in the order asked. */
  private slot(r: Range): Promise<boolean> {
    if (r.ac.signal.aborted) return Promise.resolve(false);
    if (this.active < this.maxGets && this.queue.length === 0) {
      this.take();
      return Promise.resolve(true);
    }
    return new Promise<boolean>((resolve) => {
      const entry = { range: r, go: resolve };
      if (r.urgent) {
        const k = this.queue.findIndex((q) => !q.range.urgent);
        this.queue.splice(k < 0 ? this.queue.length : k, 0, entry);
      } else this.queue.push(entry);
      r.ac.signal.addEventListener(
        'abort',
        () => {
          const k = this.queue.indexOf(entry);
          if (k >= 0) this.queue.splice(k, 1);
          resolve(false);
        },
        { once: true },
      );
    });
  }

  /** A GET starts: counted when its slot is given, so no other waiter takes the same one. */
  private take(): void {
    this.active++;
    if (this.active > this.stats.peakGets) this.stats.peakGets = this.active;
  }

  private next(): void {
    while (this.active < this.maxGets && this.queue.length > 0) {
      const q = this.queue.shift()!;
      this.take();
      q.go(true);
    }
  }

  /** A read waits for r: move it ahead of read-ahead in the queue. */
  private promote(r: Range): void {
    if (r.urgent) return;
    r.urgent = true;
    const k = this.queue.findIndex((q) => q.range === r);
    if (k < 0) return;
    const [e] = this.queue.splice(k, 1);
    const at = this.queue.findIndex((q) => !q.range.urgent);
    this.queue.splice(at < 0 ? this.queue.length : at, 0, e!);
  }

  /** Drop input ranges from index `keep` on (aborting their GETs). */
  private drop(inp: Input, keep: number): void {
    for (const r of inp.ranges.slice(keep)) {
      if (!r.released && r.end > Math.max(0, inp.pos)) this.stats.dropped++;
      this.release(inp, r);
    }
  }

  private release(inp: Input, r: Range): void {
    if (r.released) return;
    r.released = true;
    const k = inp.ranges.indexOf(r);
    if (k >= 0) inp.ranges.splice(k, 1);
    this.held -= r.end - r.start;
    r.ac.abort();
  }
}

/** Destroy a body (a no-op once it ended) and wait for its 'close'. */
function closed(body: Readable): Promise<void> {
  if (body.closed) return Promise.resolve();
  return new Promise<void>((resolve) => {
    body.once('close', () => resolve());
    body.destroy();
  });
}

/** One input of an ArchivedReads as a ReadHandle (FileHandle's positional read and close). */
export class ArchivedObjectHandle implements ReadHandle {
  private closed = false;

  /** @internal use ArchivedReads.open() */
  constructor(
    private readonly reads: ArchivedReads,
    private readonly index: number,
  ) {}

  async read(buffer: Buffer, offset: number, length: number, position: number | null): Promise<{ bytesRead: number }> {
    if (this.closed) throw new Error('s3 object: handle is closed');
    return { bytesRead: await this.reads.read(this.index, buffer, offset, length, position) };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.reads.closeHandle(this.index);
  }
}

/** One archived object alone as a ReadHandle (its own ArchivedReads). */
export function openArchivedObject(readObject: ReadObject, obj: ArchivedObject, opts: ArchivedReadOptions = {}): ArchivedObjectHandle {
  const reads = new ArchivedReads(readObject, opts);
  return reads.open(reads.add(obj));
}
