import { getHeapStatistics } from 'node:v8';
import { describe, expect, it } from 'vitest';
import { exposeGc, HEAP_TRIM_MAX_POSTPONED, heapTrimFromEnv, HeapTrimmer } from '../../src/util/heap-trim.js';

describe('HeapTrimmer', () => {
  it('collects once the heap grew growBytes past the last collection, and follows a shrinking heap down', () => {
    let used = 100;
    let collections = 0;
    const t = new HeapTrimmer({ growBytes: 50, usedBytes: () => used, gc: () => ((collections++), (used = 110)), nowMs: () => 0 });
    used = 149;
    expect(t.check()).toBe(false);
    used = 150;
    expect(t.check()).toBe(true);
    expect([collections, t.runs]).toEqual([1, 1]);
    used = 159; // 110 + 49
    expect(t.check()).toBe(false);
    used = 60; // sessions closed: the live heap fell
    expect(t.check()).toBe(false);
    used = 110; // 60 + 50
    expect(t.check()).toBe(true);
    expect(collections).toBe(2);
  });

  it('stays quiet for a while after a collection that freed little (a heap growing with live objects)', () => {
    let used = 100;
    let now = 0;
    let collections = 0;
    const t = new HeapTrimmer({ growBytes: 50, usedBytes: () => used, nowMs: () => now, gc: () => void collections++ });
    used = 160; // all live: the collection frees nothing
    expect(t.check()).toBe(true);
    used = 230;
    now = 19_999;
    expect(t.check()).toBe(false);
    now = 20_000;
    expect(t.check()).toBe(true);
    expect(collections).toBe(2);
  });

  it('puts a due collection off while packets wait for the writer, but not for ever', () => {
    let used = 100;
    let busy = true;
    let collections = 0;
    const t = new HeapTrimmer({ growBytes: 50, usedBytes: () => used, nowMs: () => 0, busy: () => busy, gc: () => ((collections++), (used = 100)) });
    used = 150;
    expect(t.check()).toBe(false);
    expect(t.check()).toBe(false);
    busy = false; // the backlog is written: the next check collects
    expect(t.check()).toBe(true);
    expect([collections, t.postponed]).toEqual([1, 2]);
    // Under a pressure that does not end, the heap is still collected after HEAP_TRIM_MAX_POSTPONED checks.
    busy = true;
    used = 150;
    for (let i = 0; i < HEAP_TRIM_MAX_POSTPONED; i++) expect(t.check()).toBe(false);
    expect(t.check()).toBe(true);
    expect([collections, t.postponed]).toEqual([2, 2 + HEAP_TRIM_MAX_POSTPONED]);
  });

  it('takes MIRRORGUARD_HEAP_TRIM_MB: a size, or 0 to turn it off', () => {
    expect(heapTrimFromEnv({})).toEqual({});
    expect(heapTrimFromEnv({ MIRRORGUARD_HEAP_TRIM_MB: '64' })).toEqual({ growBytes: 64 * 1024 * 1024 });
    expect(heapTrimFromEnv({ MIRRORGUARD_HEAP_TRIM_MB: '0' })).toEqual({ gc: null });
    expect(heapTrimFromEnv({ MIRRORGUARD_HEAP_TRIM_MB: 'lots' })).toEqual({});
  });

  it('does nothing where the collection cannot be exposed', () => {
    const t = new HeapTrimmer({ gc: null, growBytes: 1, usedBytes: () => 1e9 });
    expect(t.available).toBe(false);
    expect(t.check()).toBe(false);
    t.start();
    t.stop();
  });

  it("exposes V8's full collection, which frees the old generation's garbage", () => {
    const gc = exposeGc();
    expect(gc).toBeTypeOf('function');
    // Twice: right after one collection, pages its sweeper has not reached yet still count as used, and
    // on a busy machine that inflated `base` enough to fail the check below (16.7 MB of growth seen).
    gc!();
    gc!();
    const base = getHeapStatistics().used_heap_size;
    // Made on the clean heap: its baseline is `base`.
    const t = new HeapTrimmer({ growBytes: 16 * 1024 * 1024 });
    // Old-generation garbage: objects kept past several scavenges, then dropped (~50 MB, well past growBytes).
    let keep: object[] | null = [];
    for (let i = 0; i < 700_000; i++) keep.push({ i, s: `pair-${i}` });
    for (let k = 0; k < 3; k++) new Array(1_000_000).fill(k); // young-generation churn promotes `keep`
    keep = null;
    const grown = getHeapStatistics().used_heap_size;
    expect(grown - base).toBeGreaterThan(20 * 1024 * 1024);
    expect(t.check()).toBe(true);
    expect(getHeapStatistics().used_heap_size - base).toBeLessThan(8 * 1024 * 1024);
    expect(keep).toBeNull();
  });
});
