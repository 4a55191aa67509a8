/**
 * One ArrayBuffer carved into write buffers by a buddy allocator (Knuth, TAOCP vol. 1, 2.5), for the
 * buffer pool (buffer-pool.ts). Each buffer from malloc would be its own heap chunk: at 10,000 sessions,
 * buffers of 1, 2 and 4 KiB come and go as writers grow, and what they leave between live chunks stays
 * resident (issue 16's run: malloc's arena held 128 MB for 87 MB in use, and malloc_trim(3) gave back
 * 4 MB). In a region, a block that goes free merges with its free buddy, the next buffer of any size is
 * cut from it at once, and what the pool lets go for good is handed back to the kernel by page
 * (PageRelease), not left for V8 to collect and malloc to reuse.
 *
 * Blocks are `unit` bytes times a power of two, up to `top`; the region holds floor(bytes / top) top
 * blocks. All state is typed arrays sized at construction: alloc and free allocate nothing.
 */

/** What the region needs from the platform (the native addon's pageOffset and releasePages, native/src/writer.cc). */
export interface PageRelease {
  /** Bytes from the start of `ab` to its first page boundary. */
  pageOffset(ab: ArrayBuffer): number;
  /** Hands back the whole pages inside [offset, offset + length) of `ab`; they read as zeros after. Returns the bytes handed back, or -errno. */
  releasePages(ab: ArrayBuffer, offset: number, length: number): number;
}

/** Room to start block 0 on a page boundary (the largest page size Linux uses for anonymous memory by default). */
const PAGE_SLACK = 65536;

export class Region {
  readonly buffer: ArrayBuffer;
  /** One DataView over all of `buffer`: a block's bytes are at its offset (the writer's record headers, file-writer.ts). */
  readonly view: DataView;
  /** Offset of block 0 in `buffer` (a page boundary). */
  readonly base: number;
  readonly unit: number;
  /** Levels: level l holds blocks of unit << l bytes; the last is `top`. */
  readonly levels: number;
  readonly top: number;
  /** Bytes the blocks cover (top blocks x top). */
  readonly bytes: number;
  /** Bytes in free blocks. */
  freeBytes: number;
  /** Bytes handed back to the kernel by release(), in all. */
  releasedBytes = 0;
  private readonly heads: Int32Array;
  private readonly next: Int32Array;
  private readonly prev: Int32Array;
  /** Per unit: level + 1 when a free block of that level starts there, else 0. */
  private readonly freeAt: Uint8Array;
  private readonly pages: PageRelease;

  /** A region of at least one block of `top` bytes within `bytes`; `top` is `unit` times a power of two. */
  constructor(bytes: number, unit: number, top: number, pages: PageRelease) {
    let levels = 1;
    while (unit * 2 ** (levels - 1) < top) levels++;
    if (unit * 2 ** (levels - 1) !== top) throw new RangeError(`region: ${top} is not ${unit} times a power of two`);
    const tops = Math.floor(bytes / top);
    if (tops < 1) throw new RangeError(`region: ${bytes} bytes hold no ${top}-byte block`);
    this.unit = unit;
    this.levels = levels;
    this.top = top;
    this.bytes = tops * top;
    this.pages = pages;
    // Zero-filled, so calloc: a large one is fresh mapped memory, resident only once written.
    this.buffer = new ArrayBuffer(this.bytes + PAGE_SLACK);
    this.view = new DataView(this.buffer);
    // Block 0 on a page boundary, so a block of whole pages is released whole.
    const pad = pages.pageOffset(this.buffer);
    this.base = pad >= 0 && pad <= PAGE_SLACK ? pad : 0;
    const units = this.bytes / unit;
    this.heads = new Int32Array(levels).fill(-1);
    this.next = new Int32Array(units);
    this.prev = new Int32Array(units);
    this.freeAt = new Uint8Array(units);
    const topUnits = top / unit;
    for (let t = tops - 1; t >= 0; t--) this.push(levels - 1, t * topUnits);
    this.freeBytes = this.bytes;
  }

  /** The level whose blocks hold `size` bytes, or -1 when none does. */
  levelFor(size: number): number {
    for (let l = 0, b = this.unit; l < this.levels; l++, b *= 2) if (b >= size) return l;
    return -1;
  }

  /** A block of level `level`: its offset in `buffer`, or -1 when no free block is large enough. */
  alloc(level: number): number {
    let l = level;
    while (l < this.levels && this.heads[l]! < 0) l++;
    if (l === this.levels) return -1;
    const u = this.heads[l]!;
    this.unlink(l, u);
    // Split down: the upper halves go free, one level at a time.
    while (l > level) {
      l--;
      this.push(l, u + (1 << l));
    }
    this.freeBytes -= this.unit << level;
    return this.base + u * this.unit;
  }

  /**
   * Frees the block of level `level` at `offset` (from alloc) and merges it with free buddies. Returns
   * the merged block's level; its offset is in `lastOffset`.
   */
  free(offset: number, level: number): number {
    let u = (offset - this.base) / this.unit;
    this.freeBytes += this.unit << level;
    let l = level;
    while (l < this.levels - 1) {
      const b = u ^ (1 << l);
      if (this.freeAt[b] !== l + 1) break;
      this.unlink(l, b);
      u = Math.min(u, b);
      l++;
    }
    this.push(l, u);
    this.lastOffset = this.base + u * this.unit;
    return l;
  }

  /** Offset of the block the last free() ended in. */
  lastOffset = 0;

  /**
   * Hands the pages of a free block back to the kernel, when it is still free and whole (a later free
   * may have merged it into a larger one, which is released on its own). Returns the bytes handed back.
   */
  release(offset: number, level: number): number {
    const u = (offset - this.base) / this.unit;
    if (this.freeAt[u] !== level + 1) return 0;
    const n = this.pages.releasePages(this.buffer, offset, this.unit << level);
    if (n > 0) this.releasedBytes += n;
    return n > 0 ? n : 0;
  }

  /** Whether `buf` is a view of this region. */
  holds(buf: Uint8Array): boolean {
    return buf.buffer === this.buffer;
  }

  private push(l: number, u: number): void {
    const h = this.heads[l]!;
    this.next[u] = h;
    this.prev[u] = -1;
    if (h >= 0) this.prev[h] = u;
    this.heads[l] = u;
    this.freeAt[u] = l + 1;
  }

  private unlink(l: number, u: number): void {
    const n = this.next[u]!;
    const p = this.prev[u]!;
    if (p >= 0) this.next[p] = n;
    else this.heads[l] = n;
    if (n >= 0) this.prev[n] = p;
    this.freeAt[u] = 0;
  }
}
