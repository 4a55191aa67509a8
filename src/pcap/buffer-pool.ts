/**
 * A bounded, size-classed free list of write buffers, after Arkime's writer-simple: a writer fills one
 * buffer with whole records, hands it to the disk queue, and the queue gives it back here once it is on
 * disk. Buffers are allocated on demand while the pool's bytes stay under `maxBytes`, and then reused, so
 * steady-state capture allocates nothing and memory for buffered packets has a hard ceiling.
 *
 * Sizes come in classes: `minBufferBytes`, doubling, up to `bufferBytes`. A writer starts with the
 * smallest and asks for a class twice as large when a buffer fills within a flush interval (file-writer.ts),
 * so a quiet session holds a few KiB and only a busy one holds `bufferBytes`: memory follows the traffic,
 * not the number of sessions. When a class has no free buffer and the ceiling is reached, free buffers
 * of other classes are let go to make room. When even that fails the writer drops
 * (pcap.write.queue_full): a slow disk costs packets, never unbounded memory.
 */
import { MgError } from '../errors.js';
import { Region, type PageRelease } from './region.js';

export const DEFAULT_POOL_BUFFER_BYTES = 1024 * 1024;
export const DEFAULT_POOL_MAX_BYTES = 64 * 1024 * 1024;
/** Below this a buffer holds too few records for the per-write cost to amortise (a 1 KiB buffer: 7 records of 128 B). */
export const MIN_POOL_BUFFER_BYTES = 1024;
/** The smallest class by default. Session writers start smaller (SESSION_MIN_BUFFER_BYTES, src/collector/session-writer.ts). */
export const DEFAULT_POOL_MIN_BUFFER_BYTES = 4096;

export interface BufferPoolOptions {
  /** Size of the largest buffer, bytes. Must hold at least one largest record (16 + snaplen). Default 1 MiB. */
  bufferBytes?: number;
  /** Size of the smallest buffer, bytes (a power of two times 4096 is not required). Default 4 KiB, or bufferBytes when smaller. */
  minBufferBytes?: number;
  /** Ceiling on the memory of all buffers together, bytes. Default 64 MiB. */
  maxBytes?: number;
  /** Called with each buffer the pool lets go for good (to make room for another class). */
  onDiscard?: (buf: Buffer) => void;
  /**
   * Page release (the native addon's): buffers are then cut from one region of `maxBytes` (region.ts)
   * instead of each from malloc, and trim() hands the pages it lets go back to the kernel. Without it,
   * each buffer is its own allocation, let go to V8's collector.
   */
  pages?: PageRelease | null;
}

export class BufferPool {
  /** The largest class. */
  readonly bufferBytes: number;
  /** The smallest class. */
  readonly minBufferBytes: number;
  readonly maxBytes: number;
  /** Largest buffers that fit under maxBytes. */
  readonly maxBuffers: number;
  /** Class sizes, ascending: minBufferBytes, doubling, then bufferBytes. */
  readonly classes: readonly number[];
  private readonly free: Buffer[][];
  /** Per class, the fewest free buffers since the last trim(): that many sat unused the whole time. */
  private readonly lowWater: number[];
  private readonly onDiscard: ((buf: Buffer) => void) | undefined;
  private allocated = 0;
  private freeCount = 0;
  /** Bytes of the buffers on the free lists. */
  private freeBytes = 0;
  /** Bytes of every buffer allocated and not let go (in use or free). */
  allocatedBytes = 0;
  /** Bytes of buffers handed out (being filled or queued for disk). */
  inUseBytes = 0;
  /** Bytes of free buffers let go by trim(), in all. */
  trimmedBytes = 0;
  /** Times acquire() found no buffer: the pool was the bottleneck. */
  exhausted = 0;
  /** The region buffers are cut from (null without page release). */
  readonly region: Region | null;
  /** Per class, the region level of its blocks. */
  private readonly levels: Int8Array;
  /** Buffers allocated outside the region because no block was free (its free bytes split across smaller blocks). */
  regionMisses = 0;
  /** (offset, level) of each block trim() freed, released once trim() is done. */
  private readonly trimmed: number[] = [];

  constructor(opts: BufferPoolOptions = {}) {
    const bufferBytes = opts.bufferBytes ?? DEFAULT_POOL_BUFFER_BYTES;
    const maxBytes = opts.maxBytes ?? DEFAULT_POOL_MAX_BYTES;
    if (!Number.isInteger(bufferBytes) || bufferBytes < MIN_POOL_BUFFER_BYTES) {
      throw new MgError('MG_ERR_CONFIG_INVALID', `pcap buffer size ${bufferBytes} is below ${MIN_POOL_BUFFER_BYTES} bytes`, {
        problems: [{ field: 'bufferBytes', message: `must be an integer of at least ${MIN_POOL_BUFFER_BYTES}` }],
      });
    }
    if (!Number.isInteger(maxBytes) || maxBytes < bufferBytes) {
      throw new MgError('MG_ERR_CONFIG_INVALID', `pcap buffer pool of ${maxBytes} bytes cannot hold one ${bufferBytes}-byte buffer`, {
        problems: [{ field: 'maxBytes', message: 'must be at least bufferBytes' }],
      });
    }
    const minBufferBytes = Math.min(opts.minBufferBytes ?? DEFAULT_POOL_MIN_BUFFER_BYTES, bufferBytes);
    if (!Number.isInteger(minBufferBytes) || minBufferBytes < MIN_POOL_BUFFER_BYTES) {
      throw new MgError('MG_ERR_CONFIG_INVALID', `pcap minimum buffer size ${minBufferBytes} is below ${MIN_POOL_BUFFER_BYTES} bytes`, {
        problems: [{ field: 'minBufferBytes', message: `must be an integer of at least ${MIN_POOL_BUFFER_BYTES}` }],
      });
    }
    this.bufferBytes = bufferBytes;
    this.minBufferBytes = minBufferBytes;
    this.maxBytes = maxBytes;
    this.maxBuffers = Math.floor(maxBytes / bufferBytes);
    const classes: number[] = [];
    for (let s = minBufferBytes; s < bufferBytes; s *= 2) classes.push(s);
    classes.push(bufferBytes);
    this.classes = classes;
    this.free = classes.map(() => []);
    this.lowWater = classes.map(() => 0);
    this.onDiscard = opts.onDiscard;
    // Region blocks are minBufferBytes times a power of two; the largest class takes the block that holds it.
    let top = minBufferBytes;
    while (top < bufferBytes) top *= 2;
    this.region = opts.pages != null && maxBytes >= top ? new Region(maxBytes, minBufferBytes, top, opts.pages) : null;
    this.levels = Int8Array.from(classes, (c) => (this.region === null ? -1 : this.region.levelFor(c)));
  }

  /** The size acquire(bytes) hands out: the smallest class of at least `bytes` (the largest when none is). */
  classFor(bytes: number): number {
    const c = this.classes;
    for (let i = 0; i < c.length; i++) if (c[i]! >= bytes) return c[i]!;
    return this.bufferBytes;
  }

  /** The largest class of at most `bytes` (the smallest class when none is). */
  classAtMost(bytes: number): number {
    const c = this.classes;
    let best = c[0]!;
    for (let i = 1; i < c.length && c[i]! <= bytes; i++) best = c[i]!;
    return best;
  }

  private indexOf(size: number): number {
    const c = this.classes;
    for (let i = 0; i < c.length; i++) if (c[i] === size) return i;
    return -1;
  }

  /**
   * A buffer of the smallest class that holds `bytes` (default: the smallest class), for the caller's
   * exclusive use until release(). At the ceiling: free buffers of other classes let go to make room for
   * it; else a smaller one that still holds `atLeast` (a free one first); null when there is none.
   */
  acquire(bytes = 0, atLeast = bytes): Buffer | null {
    const size = this.classFor(bytes);
    const i = this.indexOf(size);
    const b = this.free[i]!.pop();
    if (b !== undefined) return this.handOut(b, i);
    if (this.allocatedBytes + size <= this.maxBytes) return this.allocate(size, i);
    // At the ceiling. When letting free buffers of other classes go makes room, they go and this class
    // is allocated: a writer gets the size it asked for. Without this, the small buffers every writer
    // starts with (and grows out of) fill the ceiling after a ramp, and thousands of writers that want
    // 4 KiB go on taking 1-2 KiB ones: three records a write instead of seven (issue 16's 10,000
    // sessions: 41,000 writes a second instead of 19,000); and a quiet writer handed a free 512 KiB
    // one holds it for a whole flush interval, until the busy writers find none.
    if (this.allocatedBytes - this.freeBytes + size <= this.maxBytes) {
      this.shedFor(i, size);
      return this.allocate(size, i);
    }
    // Else a free smaller one that still holds `atLeast`, the largest first.
    const least = this.classFor(atLeast);
    for (let j = i - 1, lo = this.indexOf(least); j >= lo; j--) {
      const f = this.free[j]!.pop();
      if (f !== undefined) return this.handOut(f, j);
    }
    this.shed(least);
    if (this.allocatedBytes + least <= this.maxBytes) return this.allocate(least, this.indexOf(least));
    this.exhausted++;
    return null;
  }

  private handOut(b: Buffer, i: number): Buffer {
    const n = this.free[i]!.length;
    if (n < this.lowWater[i]!) this.lowWater[i] = n;
    this.freeCount--;
    this.freeBytes -= b.length;
    this.inUseBytes += b.length;
    return b;
  }

  private allocate(size: number, i: number): Buffer {
    this.allocated++;
    this.allocatedBytes += size;
    this.inUseBytes += size;
    const r = this.region;
    if (r !== null) {
      const off = r.alloc(this.levels[i]!);
      // A view of the region: its old contents are always overwritten by records before any byte is written out.
      if (off >= 0) return Buffer.from(r.buffer, off, size);
      this.regionMisses++;
    }
    // allocUnsafeSlow: a dedicated ArrayBuffer, never a slice of Node's shared pool; its old contents
    // are always overwritten by records before any byte of it is written out.
    return Buffer.allocUnsafeSlow(size);
  }

  /** Let free buffers go until `size` more fits under the ceiling: smaller classes than `i` first (smallest first), then larger ones (largest first). */
  private shedFor(i: number, size: number): void {
    for (let j = 0; j < i && this.allocatedBytes + size > this.maxBytes; j++) {
      const list = this.free[j]!;
      while (list.length > 0 && this.allocatedBytes + size > this.maxBytes) this.discard(list.pop()!, j);
    }
    // Class i's own list is empty (acquire found none), so the rest comes from larger ones.
    if (this.allocatedBytes + size > this.maxBytes) this.shed(size);
  }

  private discard(b: Buffer, i: number, trimming = false): void {
    if (this.onDiscard !== undefined) this.onDiscard(b);
    const n = this.free[i]!.length;
    if (n < this.lowWater[i]!) this.lowWater[i] = n;
    this.freeCount--;
    this.freeBytes -= b.length;
    this.allocated--;
    this.allocatedBytes -= b.length;
    const r = this.region;
    if (r !== null && r.holds(b)) {
      const level = r.free(b.byteOffset, this.levels[i]!);
      if (trimming) this.trimmed.push(r.lastOffset, level);
    }
  }

  /** Let free buffers of other classes go (largest first) until `size` more fits under the ceiling. */
  private shed(size: number): void {
    for (let i = this.free.length - 1; i >= 0 && this.freeCount > 0; i--) {
      const list = this.free[i]!;
      while (list.length > 0 && this.allocatedBytes + size > this.maxBytes) this.discard(list.pop()!, i);
      if (this.allocatedBytes + size <= this.maxBytes) return;
    }
  }

  /**
   * Let go half of the free buffers that no acquire() needed since the last trim, per class (the owner
   * calls this once a flush interval). After a ramp, or when busy sessions went quiet, the pool's free
   * lists otherwise hold its ceiling for good (issue 16's run: 64 MiB held, 43 MiB in use). Buffers that
   * are taken within an interval stay. With a region, the pages of what goes are handed back to the kernel
   * now; else what goes is garbage until V8 collects it. Returns the bytes let go.
   */
  trim(): number {
    let bytes = 0;
    for (let i = 0; i < this.free.length; i++) {
      const list = this.free[i]!;
      const idle = Math.min(this.lowWater[i]!, list.length);
      // Oldest first: the bottom of the LIFO list is what has waited longest.
      const n = Math.ceil(idle / 2);
      for (const b of list.splice(0, n)) {
        this.discard(b, i, true);
        bytes += b.length;
      }
      this.lowWater[i] = list.length;
    }
    // After every discard: a block a later one merged into a larger block is released with that one.
    const t = this.trimmed;
    for (let k = 0; k < t.length; k += 2) this.region!.release(t[k]!, t[k + 1]!);
    t.length = 0;
    this.trimmedBytes += bytes;
    return bytes;
  }

  /** release(), bound once: what the disk queue calls when a buffer is written (one closure per pool, not one per file). */
  readonly releaser = (buf: Buffer): void => this.release(buf);

  release(buf: Buffer): void {
    const i = this.indexOf(buf.length);
    if (i < 0) throw new RangeError('buffer does not belong to this pool');
    this.free[i]!.push(buf);
    this.freeCount++;
    this.freeBytes += buf.length;
    this.inUseBytes -= buf.length;
  }

  /** Buffers currently handed out (being filled or queued for disk). */
  get inUse(): number {
    return this.allocated - this.freeCount;
  }

  /** Largest buffers that could still be handed out. */
  get available(): number {
    return Math.floor((this.maxBytes - this.inUseBytes) / this.bufferBytes);
  }
}
