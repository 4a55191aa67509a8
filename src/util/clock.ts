/**
 * Wall-clock receive timestamps without allocation: performance.now() is monotonic and returns a plain
 * double; an anchor (the wall-clock time at monotonic zero, split into whole seconds and a fraction, so
 * precision is not lost to the size of the epoch) turns it into the epoch with sub-microsecond
 * resolution. node:dgram gives no kernel timestamp, so this is the receive time for the dgram and
 * libpcap paths; the native receiver uses SO_TIMESTAMPNS.
 *
 * The monotonic clock does not follow the wall clock: an NTP step, a slew that accumulates, or a paused
 * VM (CLOCK_MONOTONIC stops while the guest is suspended) leaves an anchor taken once at start wrong for
 * the rest of the run. So the collector's flush timer calls reanchor(), which compares the two clocks
 * and moves the anchor when they disagree by more than REANCHOR_THRESHOLD_MS. Per packet nothing changes:
 * Timestamp.now() reads two numbers.
 */
import { performance } from 'node:perf_hooks';

/**
 * Date.now() has millisecond resolution, so two readings of an unchanged clock can differ by up to
 * 1 ms; a smaller threshold would re-anchor on that noise and make timestamps jitter.
 */
export const REANCHOR_THRESHOLD_MS = 2;

export interface ClockSources {
  /** Wall clock, ms since the epoch (Date.now). */
  wallMs(): number;
  /** Monotonic clock, ms (performance.now). */
  monoMs(): number;
  /** Wall-clock time at monotonic zero, when known more precisely than wallMs() - monoMs(). */
  originMs?: number;
}

const SYSTEM_SOURCES: ClockSources = { wallMs: Date.now, monoMs: () => performance.now(), originMs: performance.timeOrigin };

/** Monotonic time anchored to the wall clock; one per process (receiveClock), others in tests. */
export class ReceiveClock {
  /** The anchor: wall-clock time at monotonic zero, as whole seconds plus milliseconds. */
  anchorSec = 0;
  anchorFracMs = 0;
  /** Times the anchor moved (an NTP step, a paused VM). */
  reanchors = 0;

  constructor(readonly sources: ClockSources = SYSTEM_SOURCES) {
    this.setAnchor(sources.originMs ?? sources.wallMs() - sources.monoMs());
  }

  private setAnchor(originMs: number): void {
    this.anchorSec = Math.floor(originMs / 1000);
    this.anchorFracMs = originMs - this.anchorSec * 1000;
  }

  /**
   * Compare the wall clock with the anchored monotonic clock; when they differ by more than
   * REANCHOR_THRESHOLD_MS, move the anchor so later timestamps follow the wall clock again. Returns
   * the step in ms (positive: the wall clock jumped ahead), or 0. Call from a timer, not per packet.
   */
  reanchor(): number {
    const mono = this.sources.monoMs();
    const wall = this.sources.wallMs();
    const drift = wall - (this.anchorSec * 1000 + this.anchorFracMs + mono);
    if (!(Math.abs(drift) > REANCHOR_THRESHOLD_MS)) return 0;
    this.setAnchor(wall - mono);
    this.reanchors++;
    return drift;
  }
}

/** The process's receive clock: the dgram and libpcap receivers stamp with it, the collector's flush timer re-anchors it. */
export const receiveClock = new ReceiveClock();

/** A reusable timestamp; fill it with now(). */
export class Timestamp {
  sec = 0;
  nsec = 0;

  constructor(private readonly clock: ReceiveClock = receiveClock) {}

  /** Fill with the current wall-clock time; returns this. */
  now(): this {
    const c = this.clock;
    const ms = c.anchorFracMs + c.sources.monoMs();
    const whole = Math.floor(ms / 1000);
    this.sec = c.anchorSec + whole;
    this.nsec = Math.floor((ms - whole * 1000) * 1e6);
    if (this.nsec > 999_999_999) this.nsec = 999_999_999;
    return this;
  }

  ms(): number {
    return this.sec * 1000 + Math.floor(this.nsec / 1e6);
  }
}

/** Microseconds since the epoch, exact in a double until the year 2255 (catalog times). */
export function toMicros(sec: number, nsec: number): number {
  return sec * 1_000_000 + Math.floor(nsec / 1000);
}

/** ISO-8601 with nanoseconds, for file names and evidence. */
export function isoNanos(sec: number, nsec: number): string {
  const base = new Date(sec * 1000).toISOString().slice(0, 19);
  return `${base}.${String(nsec).padStart(9, '0')}Z`;
}
