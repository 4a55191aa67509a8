/**
 * Copying a frame into a write buffer without allocating. Node 20's Buffer#copy of a sub-range makes
 * a new Uint8Array view per call (lib/buffer.js _copyActual), which on the per-packet path is garbage
 * for the young generation every packet. Instead:
 *   - small frames (the common case at high packet rates) are copied 4 bytes at a time through DataViews
 *     made once per buffer: about 3x faster than Buffer#copy at 64 bytes (measured, Node 20);
 *   - larger frames use the bytes-copy function the composition passes in (the native addon's copyBytes,
 *     a bounds-checked memmove, when it is built), else Buffer#copy. This room loads no addon itself:
 *     src/pcap/ depends on nothing above it.
 * The source DataView is cached for the last source buffer: the native receiver hands every packet in
 * one shared buffer, so it is made once. node:dgram gives a new Buffer per packet, which allocates anyway.
 */
/** A bounds-checked copy of src[srcOff, srcOff + len) to dst[dstOff ...] (the native addon's copyBytes). */
export type BytesCopy = (dst: Uint8Array, dstOff: number, src: Uint8Array, srcOff: number, len: number) => void;

/** Up to this many bytes, the DataView word copy beats a memcpy call from JavaScript. */
export const SMALL_FRAME_BYTES = 128;

const views = new WeakMap<Uint8Array, DataView>();
let lastSrc: Uint8Array | null = null;
let lastSrcView: DataView | null = null;

/** A DataView over a whole buffer, made once per buffer (write buffers come from a pool and live long). */
export function viewOf(b: Uint8Array): DataView {
  let v = views.get(b);
  if (v === undefined) {
    v = new DataView(b.buffer, b.byteOffset, b.byteLength);
    views.set(b, v);
  }
  return v;
}

/**
 * Copy src[srcOff, srcOff + len) to dst[dstOff ...]. The caller has checked both ranges. `dstView` sees
 * dst's byte 0 at `viewBase` (0 for viewOf(dst); dst.byteOffset for a view of a whole region that dst is
 * cut from, region.ts). `large`: see BytesCopy.
 */
export function copyFrame(dst: Buffer, dstView: DataView, viewBase: number, dstOff: number, src: Uint8Array, srcOff: number, len: number, large: BytesCopy | null): void {
  if (len <= SMALL_FRAME_BYTES) {
    let sv = lastSrcView;
    if (src !== lastSrc || sv === null) {
      sv = new DataView(src.buffer, src.byteOffset, src.byteLength);
      lastSrc = src;
      lastSrcView = sv;
    }
    let i = 0;
    const vo = viewBase + dstOff;
    for (; i + 4 <= len; i += 4) dstView.setUint32(vo + i, sv.getUint32(srcOff + i));
    for (; i < len; i++) dst[dstOff + i] = src[srcOff + i]!;
    return;
  }
  if (large !== null) {
    large(dst, dstOff, src, srcOff, len);
    return;
  }
  if (src instanceof Buffer) src.copy(dst, dstOff, srcOff, srcOff + len);
  else dst.set(src.subarray(srcOff, srcOff + len), dstOff);
}

/**
 * The native side of a planned copy: the addon's Copier (native/src/receiver.cc). register() makes a
 * buffer addressable by a small id (and holds it until unregister()); run(n) copies plan entries [0, n)
 * and returns how many it skipped as out of bounds.
 */
export interface CopyEngine {
  register(buf: Uint8Array): number;
  unregister(id: number): boolean;
  run(count: number): number;
}

/** Int32 words per plan entry: source id, source offset, destination id, destination offset, length. */
export const PLAN_WORDS = 5;
/** Plan entries per native call at most (a full plan runs at once): four 256-datagram batches. */
export const DEFAULT_PLAN_ENTRIES = 1024;

/**
 * Frame copies for a whole receive batch in one native call (issue 11). The native receiver reuses one
 * buffer for every recvmmsg batch and says so (PacketSink.batchBuffer): frames from that buffer are not
 * copied per packet through N-API but written into a plan (five int32 words each: which source, where,
 * which write buffer, where, how long) that the addon carries out in one call when the batch ends
 * (PacketSink.endBatch), when the plan is full, or before a write buffer is handed to the disk
 * (PcapFileWriter.handOver calls flush()). Decisions stay in TypeScript; the addon only does memcpy.
 * Frames from any other buffer (node:dgram, capture files) are not planned: copy() returns false and the
 * caller copies at once.
 */
export class PlannedCopy {
  /** The plan shared with the engine. */
  readonly plan: Int32Array;
  private readonly engine: CopyEngine;
  private readonly capacity: number;
  private n = 0;
  private readonly ids = new WeakMap<Uint8Array, number>();
  private readonly sources = new WeakMap<Uint8Array, number>();
  /**
   * The write buffers' region (region.ts), registered whole once: a buffer cut from it needs no
   * registration of its own (its id is the region's, its offsets are from the region's start). At 10,000
   * sessions the per-buffer registrations (a WeakMap entry and an N-API reference each, taken and let go
   * as writers' buffers grow and the pool trims) were 5 % of the main thread while sessions started.
   */
  private regionAb: ArrayBufferLike | null = null;
  private regionId = -1;
  private lastSrc: Uint8Array | null = null;
  private lastSrcId = -1;
  /** Entries the engine refused as out of bounds: a bug guard, 0 in practice. */
  skipped = 0;
  /** Native calls made (run()), for the benchmark's profile. */
  runs = 0;

  /** `makeEngine` receives the plan (the addon's `new Copier(plan)`). */
  constructor(makeEngine: (plan: Int32Array) => CopyEngine, entries = DEFAULT_PLAN_ENTRIES) {
    this.plan = new Int32Array(entries * PLAN_WORDS);
    this.capacity = entries;
    this.engine = makeEngine(this.plan);
  }

  /** A source reuses `buf` for every batch and calls flush() before it overwrites it. */
  addSource(buf: Uint8Array): void {
    if (this.sources.has(buf)) return;
    this.flush();
    this.sources.set(buf, this.engine.register(buf));
    this.lastSrc = null;
  }

  /**
   * Write buffers cut from `ab` (a buffer pool's region) are addressed through one registration of the
   * whole of it: bufferId() gives the region's id and baseOf() their offset in it. Only one region: a
   * second call for another ArrayBuffer is ignored (its buffers are registered one by one, as any other).
   */
  addRegion(ab: ArrayBufferLike): void {
    if (this.regionAb !== null) return;
    const id = this.engine.register(new Uint8Array(ab));
    if (id < 0) return;
    this.regionAb = ab;
    this.regionId = id;
  }

  /** Where buf's byte 0 is in the registration bufferId(buf) names: its offset in the region, else 0. */
  baseOf(buf: Uint8Array): number {
    return buf.buffer === this.regionAb ? buf.byteOffset : 0;
  }

  /** The id of a write buffer (registered on first sight: pool buffers live as long as the pool). */
  bufferId(buf: Uint8Array): number {
    if (buf.buffer === this.regionAb) return this.regionId;
    let id = this.ids.get(buf);
    if (id === undefined) {
      id = this.engine.register(buf);
      this.ids.set(buf, id);
    }
    return id;
  }

  /** A write buffer the pool let go: drop its registration (after any planned copy into it). */
  forget(buf: Uint8Array): void {
    if (buf.buffer === this.regionAb) {
      // Its pages may be handed back to the kernel next: nothing planned may land there after.
      this.flush();
      return;
    }
    const id = this.ids.get(buf);
    if (id === undefined) return;
    this.flush();
    this.ids.delete(buf);
    this.engine.unregister(id);
  }

  /**
   * Plan src[srcOff, srcOff + len) -> the buffer with id dstId at dstOff; false when src is not a
   * batch buffer (copy it now instead). The caller has checked both ranges.
   */
  copy(dstId: number, dstOff: number, src: Uint8Array, srcOff: number, len: number): boolean {
    if (src !== this.lastSrc) {
      this.lastSrc = src;
      const id = this.sources.get(src);
      this.lastSrcId = id === undefined ? -1 : id;
    }
    const s = this.lastSrcId;
    if (s < 0) return false;
    const p = this.plan;
    const n = this.n;
    const w = n * PLAN_WORDS;
    p[w] = s;
    p[w + 1] = srcOff;
    p[w + 2] = dstId;
    p[w + 3] = dstOff;
    p[w + 4] = len;
    this.n = n + 1;
    if (n + 1 === this.capacity) this.flush();
    return true;
  }

  /** Copies planned and not yet carried out. */
  get pending(): number {
    return this.n;
  }

  /** Carry out every planned copy now. */
  flush(): void {
    const n = this.n;
    if (n === 0) return;
    this.n = 0;
    this.runs++;
    const bad = this.engine.run(n);
    if (bad !== 0) this.skipped += bad;
  }
}
