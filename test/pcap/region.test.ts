import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { BufferPool } from '../../src/pcap/buffer-pool.js';
import { Region, type PageRelease } from '../../src/pcap/region.js';
import { nativePages } from '../../src/ingest/native-addon.js';
import { describeNeeds } from '../helpers/needs.js';

/** Page release that records what it was asked (page offset 0: the region starts where the ArrayBuffer does). */
function recordingPages(): PageRelease & { calls: [number, number][] } {
  const calls: [number, number][] = [];
  return { calls, pageOffset: () => 0, releasePages: (_ab, off, len) => (calls.push([off, len]), len) };
}

describe('Region (buddy allocator)', () => {
  it('splits a top block for small ones and merges freed buddies back into it', () => {
    const pages = recordingPages();
    const r = new Region(2 * 8192, 1024, 8192, pages);
    expect([r.levels, r.bytes, r.freeBytes]).toEqual([4, 16384, 16384]);
    const a = r.alloc(0);
    const b = r.alloc(0);
    const c = r.alloc(1);
    // Cut from one top block, buddies side by side: 1 KiB, 1 KiB, then 2 KiB.
    expect([a, b, c]).toEqual([0, 1024, 2048]);
    expect(r.freeBytes).toBe(16384 - 4096);
    expect(r.alloc(3)).toBe(8192); // the other top block
    expect(r.alloc(3)).toBe(-1); // none left whole, though 4 KiB are free
    expect(r.free(a, 0)).toBe(0); // b is in use: no merge
    expect(r.free(b, 0)).toBe(1); // a and b merge to 2 KiB ...
    expect(r.free(c, 1)).toBe(3); // ... which merges with c's 2 KiB and the free 4 KiB into the top block
    expect(r.lastOffset).toBe(0);
    expect(r.alloc(3)).toBe(0);
  });

  it('releases a block only while it is free and whole, and only its own bytes', () => {
    const pages = recordingPages();
    const r = new Region(8192, 1024, 8192, pages);
    const a = r.alloc(1);
    const b = r.alloc(1);
    const la = r.free(a, 1);
    const oa = r.lastOffset;
    expect(r.release(oa, la)).toBe(2048);
    expect(pages.calls).toEqual([[0, 2048]]);
    // b's free merges a's block into the whole region: the old record is stale and releases nothing.
    const lb = r.free(b, 1);
    expect(r.release(oa, la)).toBe(0);
    expect(r.release(r.lastOffset, lb)).toBe(8192);
    expect(r.releasedBytes).toBe(2048 + 8192);
    // In use again: nothing to release.
    expect(r.alloc(3)).toBe(0);
    expect(r.release(0, 3)).toBe(0);
  });

  it('never hands out overlapping, misaligned or out-of-range blocks, and gets every byte back (property)', () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.boolean(), fc.integer({ min: 0, max: 5 }), fc.nat()), { maxLength: 400 }), (ops) => {
        const r = new Region(3 * 32768, 1024, 32768, recordingPages());
        const live: { off: number; level: number }[] = [];
        for (const [take, level, pick] of ops) {
          if (take || live.length === 0) {
            const off = r.alloc(level);
            if (off < 0) continue;
            const size = 1024 << level;
            expect(off % size).toBe(0);
            expect(off + size).toBeLessThanOrEqual(r.bytes);
            for (const o of live) expect(off + size <= o.off || o.off + (1024 << o.level) <= off).toBe(true);
            live.push({ off, level });
          } else {
            const [o] = live.splice(pick % live.length, 1);
            r.free(o!.off, o!.level);
          }
          expect(r.freeBytes).toBe(r.bytes - live.reduce((s, o) => s + (1024 << o.level), 0));
        }
        for (const o of live) r.free(o.off, o.level);
        // Everything merged back: every top block is whole again.
        expect([r.alloc(5), r.alloc(5), r.alloc(5), r.alloc(5)].sort((x, y) => x - y)).toEqual([-1, 0, 32768, 65536]);
      }),
      { numRuns: 200 },
    );
  });
});

describe('BufferPool over a region', () => {
  it('cuts buffers from one region, reuses them, and falls back to its own allocation when no block is whole', () => {
    const pool = new BufferPool({ bufferBytes: 8192, minBufferBytes: 1024, maxBytes: 16384, pages: recordingPages() });
    const region = pool.region!;
    const big = pool.acquire(8192)!;
    const small = [pool.acquire(1024)!, pool.acquire(1024)!];
    expect([big.buffer, small[0]!.buffer, small[1]!.buffer].every((ab) => ab === region.buffer)).toBe(true);
    expect(new Set([big.byteOffset, small[0]!.byteOffset, small[1]!.byteOffset]).size).toBe(3);
    // 10 KiB in use; 6 KiB free but split (a 2 KiB and a 4 KiB block): a 4 KiB buffer still fits, an 8 KiB one would not.
    const four = pool.acquire(4096)!;
    expect(four.buffer).toBe(region.buffer);
    pool.release(four);
    pool.release(small[0]!);
    pool.release(small[1]!);
    pool.release(big);
    expect(pool.regionMisses).toBe(0);
    // Two 4 KiB buffers in the two halves of one 8 KiB block: pool accounting says room, the region has no whole 8 KiB block left.
    const p2 = new BufferPool({ bufferBytes: 8192, minBufferBytes: 1024, maxBytes: 16384, pages: recordingPages() });
    const x = p2.acquire(1024)!;
    const y = p2.acquire(8192)!;
    const z = p2.acquire(4096)!;
    expect([x.buffer, y.buffer, z.buffer].every((ab) => ab === p2.region!.buffer)).toBe(true);
    const w = p2.acquire(2048)!;
    expect(w.buffer).toBe(p2.region!.buffer);
    expect(p2.regionMisses).toBe(0);
    expect(p2.allocatedBytes).toBe(1024 + 8192 + 4096 + 2048);
  });

  it('trim() hands the pages of what it lets go back, merged into the largest free blocks', () => {
    const pages = recordingPages();
    const pool = new BufferPool({ bufferBytes: 8192, minBufferBytes: 1024, maxBytes: 16384, pages });
    const bufs = [pool.acquire(4096)!, pool.acquire(4096)!, pool.acquire(8192)!];
    for (const b of bufs) pool.release(b);
    pool.trim(); // sets the low-water marks: nothing idle yet
    expect(pages.calls).toEqual([]);
    pool.trim(); // half of the idle ones, oldest first: one 4 KiB buffer
    pool.trim();
    pool.trim();
    // All three let go by now; the two 4 KiB blocks merged into one 8 KiB block, released as one range.
    expect(pool.allocatedBytes).toBe(0);
    const released = pages.calls.reduce((s, [, len]) => s + len, 0);
    expect(released).toBeGreaterThanOrEqual(16384);
    expect(pages.calls.some(([off, len]) => len === 8192 && off === 0)).toBe(true);
  });
});

describeNeeds(['native'], 'BufferPool over a region, with the addon releasing pages', () => {
  it('hands released pages back to the kernel: they read as zeros, and a buffer cut from them again is writable', () => {
    const pages = nativePages()!;
    expect(pages).not.toBeNull();
    const pool = new BufferPool({ bufferBytes: 64 * 1024, minBufferBytes: 4096, maxBytes: 256 * 1024, pages });
    const region = pool.region!;
    const kept = pool.acquire(64 * 1024)!;
    const gone = pool.acquire(64 * 1024)!;
    kept.fill(0xab);
    gone.fill(0xcd);
    const view = new Uint8Array(region.buffer, gone.byteOffset, gone.length);
    pool.release(gone);
    for (let i = 0; i < 4; i++) pool.trim();
    expect(pool.allocatedBytes).toBe(kept.length);
    // Blocks start on page boundaries (region.base), so a block of whole pages is released whole.
    expect(region.releasedBytes).toBeGreaterThanOrEqual(64 * 1024);
    expect(region.releasedBytes % (64 * 1024)).toBe(0);
    // madvise(MADV_DONTNEED) on private memory: the pages read back as zeros; the buffer still in use is untouched.
    expect(view.every((b) => b === 0)).toBe(true);
    expect(kept.every((b) => b === 0xab)).toBe(true);
    const again = pool.acquire(64 * 1024)!;
    again.fill(0x11);
    expect(again[again.length - 1]).toBe(0x11);
    expect(kept[0]).toBe(0xab);
    expect(() => pages.releasePages(region.buffer, 0, region.buffer.byteLength + 1)).toThrow(RangeError);
  });
});
