/**
 * Wall-clock receive timestamps without allocation: performance.now() is monotonic and returns a plain
 * double; anchoring it to the epoch once (split into whole seconds and a fraction, so precision is not
 * lost to the size of the epoch) gives sub-microsecond resolution. node:dgram gives no kernel
 * timestamp, so this is the receive time for that path; the native receiver uses SO_TIMESTAMPNS.
 */
import { performance } from 'node:perf_hooks';

const originMs = performance.timeOrigin;
const originSec = Math.floor(originMs / 1000);
const originFracMs = originMs - originSec * 1000;

/** A reusable timestamp; fill it with now(). */
export class Timestamp {
  sec = 0;
  nsec = 0;

  /** Fill with the current wall-clock time; returns this. */
  now(): this {
    const ms = originFracMs + performance.now();
    const whole = Math.floor(ms / 1000);
    this.sec = originSec + whole;
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
