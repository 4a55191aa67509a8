/**
 * Old-generation garbage, collected before it piles up (issue 16). With 10,000 sessions every flush
 * interval leaves about a megabyte a second of short-lived objects that outlive two scavenges (write
 * jobs' promises, catalog and detector rows) and die in the old generation. V8 collects it only when
 * the old generation reaches a limit it sets at about twice the live heap, so serve's RSS climbed
 * ~1 MB/s for minutes (95 MB live, 160 MB used after 45 s; heap snapshots 30 s apart held the same
 * live objects). Here a timer looks at the used heap every few seconds and, once it has grown `growBytes`
 * past what the last full collection left, runs one (a mark-compact: ~20-100 ms of the main thread at
 * 100 MB live; the capture ring or socket buffer holds the packets meanwhile).
 *
 * The collection is V8's own `gc()`, exposed at run time (v8.setFlagsFromString('--expose-gc'), as
 * Node's documentation shows for V8 flags); where that is refused, nothing is trimmed and V8 does as
 * it always does.
 */
import { getHeapStatistics, setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import type { Logger } from './log.js';

export const HEAP_TRIM_INTERVAL_MS = 2_000;
export const HEAP_TRIM_GROW_BYTES = 32 * 1024 * 1024;
/**
 * After a collection that freed less than half of growBytes (the heap was growing with live objects:
 * 10,000 sessions starting), no collection for this long: each would pause the packet thread for nothing.
 */
export const HEAP_TRIM_COOLDOWN_MS = 20_000;
/**
 * Checks a due collection may be put off while `busy()` says packets are waiting (the writer under
 * backpressure: 10,000 sessions starting, a slow disk); after that many it runs anyway, so the heap stays
 * bounded under a pressure that does not end.
 */
export const HEAP_TRIM_MAX_POSTPONED = 5;

/** V8's full collection, or null when it cannot be exposed. */
export function exposeGc(): (() => void) | null {
  try {
    setFlagsFromString('--expose-gc');
    const gc: unknown = runInNewContext('gc');
    return typeof gc === 'function' ? (gc as () => void) : null;
  } catch {
    return null;
  }
}

export interface HeapTrimOptions {
  intervalMs?: number;
  growBytes?: number;
  logger?: Logger;
  /** The collection (tests pass their own); default exposeGc(). */
  gc?: (() => void) | null;
  /** Used heap bytes (tests pass their own); default v8.getHeapStatistics().used_heap_size. */
  usedBytes?: () => number;
  /** Clock, ms (tests pass their own). */
  nowMs?: () => number;
  /**
   * True while packets wait for the writer (SessionWriters.underPressure): a due collection is put off
   * to a later check, up to HEAP_TRIM_MAX_POSTPONED times in a row. Its pause would add to the wait.
   */
  busy?: () => boolean;
}

export class HeapTrimmer {
  /** Full collections run by this trimmer. */
  runs = 0;
  /** Due collections put off because busy() was true (each check counts once). */
  postponed = 0;
  private postponedInRow = 0;
  private baseline: number;
  private timer: NodeJS.Timeout | null = null;
  private readonly gc: (() => void) | null;
  private readonly growBytes: number;
  private readonly intervalMs: number;
  private readonly used: () => number;
  private readonly now: () => number;
  private quietUntil = 0;

  constructor(private readonly opts: HeapTrimOptions = {}) {
    this.gc = opts.gc === undefined ? exposeGc() : opts.gc;
    this.growBytes = opts.growBytes ?? HEAP_TRIM_GROW_BYTES;
    this.intervalMs = opts.intervalMs ?? HEAP_TRIM_INTERVAL_MS;
    this.used = opts.usedBytes ?? (() => getHeapStatistics().used_heap_size);
    this.now = opts.nowMs ?? (() => performance.now());
    this.baseline = this.used();
  }

  /** Whether full collections can run here. */
  get available(): boolean {
    return this.gc !== null;
  }

  start(): void {
    if (this.timer !== null || this.gc === null) return;
    this.timer = setInterval(() => this.check(), this.intervalMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
  }

  /** One look: collect when the heap grew growBytes past the last baseline. True when it collected. */
  check(): boolean {
    if (this.gc === null || this.now() < this.quietUntil) return false;
    const before = this.used();
    // The live heap may also shrink (sessions closed): follow it down, so growth is measured from there.
    if (before < this.baseline) this.baseline = before;
    if (before - this.baseline < this.growBytes) return false;
    if (this.postponedInRow < HEAP_TRIM_MAX_POSTPONED && this.opts.busy?.() === true) {
      this.postponedInRow++;
      this.postponed++;
      return false;
    }
    this.postponedInRow = 0;
    const t0 = performance.now();
    this.gc();
    this.runs++;
    this.baseline = this.used();
    if (before - this.baseline < this.growBytes / 2) this.quietUntil = this.now() + HEAP_TRIM_COOLDOWN_MS;
    this.opts.logger?.debug({ postponed: this.postponed, beforeMB: Math.round(before / 1e6), afterMB: Math.round(this.baseline / 1e6), ms: Math.round(performance.now() - t0) }, 'heap trimmed');
    return true;
  }
}

/**
 * MIRRORGUARD_HEAP_TRIM_MB: the growth that triggers a collection, MiB (default 32); 0 turns trimming off.
 * An operator's knob, not a config key: it only trades RSS for short pauses.
 */
export function heapTrimFromEnv(env: NodeJS.ProcessEnv = process.env): Pick<HeapTrimOptions, 'growBytes' | 'gc'> {
  const v = env.MIRRORGUARD_HEAP_TRIM_MB;
  if (v === undefined || v.trim() === '') return {};
  const mb = Number(v);
  if (!Number.isFinite(mb) || mb < 0) return {};
  return mb === 0 ? { gc: null } : { growBytes: Math.round(mb * 1024 * 1024) };
}
