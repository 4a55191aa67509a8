/**
 * Times in query parameters: ISO-8601 with a zone (`2026-11-28T20:40:25.123456789Z`, `...+01:00`), a
 * date alone (midnight UTC), or seconds since the epoch (`1764362425`, `1764362425.5`). Kept as whole
 * seconds plus nanoseconds, because our PCAP timestamps are nanoseconds and ns since the epoch do not
 * fit a double exactly.
 *
 * A time without a zone is refused rather than guessed. A `+` in a URL query decodes to a space, so
 * `...T10:00:00 01:00` (an unencoded `+01:00`) is read as the offset it was meant to be.
 */
import { badRequest } from './errors.js';

export interface TimePoint {
  sec: number;
  nsec: number;
}

const EPOCH_RE = /^(\d{1,11})(?:\.(\d{1,9}))?$/;
const ISO_RE = /^(\d{4})-(\d{2})-(\d{2})(?:[Tt ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d{1,9}))?)?([Zz]|[+\- ]\d{2}:?\d{2})?)?$/;
/** Timestamps a classic pcap record can hold: seconds are an unsigned 32-bit field. */
const MAX_SEC = 0xffff_ffff;

function fracToNsec(frac: string | undefined): number {
  return frac === undefined ? 0 : Number(frac.padEnd(9, '0'));
}

/** Parse one time parameter; throws a 400 naming `param`. */
export function parseTime(text: string, param: string): TimePoint {
  const e = EPOCH_RE.exec(text);
  if (e) {
    const sec = Number(e[1]);
    if (sec > MAX_SEC) throw badRequest(param, `${text} is past the year 2106`);
    return { sec, nsec: fracToNsec(e[2]) };
  }
  const m = ISO_RE.exec(text);
  if (!m) {
    throw badRequest(param, `'${text}' is not a time: use ISO-8601 with a zone (2026-11-28T20:40:25.5Z, 2026-11-28T21:40:25+01:00) or epoch seconds (1764362425.5)`);
  }
  const [, y, mo, d, h, mi, s, frac, zone] = m;
  if (h !== undefined && zone === undefined) throw badRequest(param, `'${text}' has no time zone: end it with Z or an offset such as +01:00`);
  const year = Number(y);
  const month = Number(mo);
  const day = Number(d);
  const hour = Number(h ?? 0);
  const minute = Number(mi ?? 0);
  const second = Number(s ?? 0);
  const ms = Date.UTC(year, month - 1, day, hour, minute, second);
  const back = new Date(ms);
  // Date.UTC rolls 2026-02-30 over to March; refuse it instead.
  if (
    month < 1 ||
    month > 12 ||
    back.getUTCDate() !== day ||
    back.getUTCMonth() !== month - 1 ||
    hour > 23 ||
    minute > 59 ||
    second > 59
  ) {
    throw badRequest(param, `'${text}' is not a valid date and time`);
  }
  let offsetMin = 0;
  if (zone !== undefined && zone !== 'Z' && zone !== 'z') {
    const z = /^([+\- ])(\d{2}):?(\d{2})$/.exec(zone)!;
    const oh = Number(z[2]);
    const om = Number(z[3]);
    if (oh > 23 || om > 59) throw badRequest(param, `'${text}' has an invalid offset`);
    offsetMin = (z[1] === '-' ? -1 : 1) * (oh * 60 + om);
  }
  const sec = Math.floor(ms / 1000) - offsetMin * 60;
  if (sec < 0 || sec > MAX_SEC) throw badRequest(param, `'${text}' is outside 1970..2106`);
  return { sec, nsec: fracToNsec(frac) };
}

export function compareTime(a: TimePoint, b: TimePoint): number {
  return a.sec !== b.sec ? a.sec - b.sec : a.nsec - b.nsec;
}

/** Microseconds since the epoch (the catalog's unit), rounded down. */
export function timeToMicros(t: TimePoint): number {
  return t.sec * 1_000_000 + Math.floor(t.nsec / 1000);
}

/** Milliseconds since the epoch (findings, audit log), rounded down. */
export function timeToMs(t: TimePoint): number {
  return t.sec * 1000 + Math.floor(t.nsec / 1_000_000);
}

/** Seconds between two points, as a double (for window limits). */
export function secondsBetween(a: TimePoint, b: TimePoint): number {
  return b.sec - a.sec + (b.nsec - a.nsec) / 1e9;
}

/** ISO-8601 with nanoseconds, trailing zero groups trimmed to ms/us/ns. */
export function isoTime(t: TimePoint): string {
  const base = new Date(t.sec * 1000).toISOString().slice(0, 19);
  if (t.nsec === 0) return `${base}Z`;
  const ns = String(t.nsec).padStart(9, '0');
  const frac = ns.endsWith('000000') ? ns.slice(0, 3) : ns.endsWith('000') ? ns.slice(0, 6) : ns;
  return `${base}.${frac}Z`;
}

/** ISO-8601 of a catalog time (microseconds), or null. */
export function isoMicros(us: number | null): string | null {
  if (us === null) return null;
  const sec = Math.floor(us / 1_000_000);
  return isoTime({ sec, nsec: (us - sec * 1_000_000) * 1000 });
}

/** A compact UTC stamp for file names: 20261128T204025Z. */
export function fileStamp(t: TimePoint): string {
  return new Date(t.sec * 1000).toISOString().slice(0, 19).replace(/[-:]/g, '') + 'Z';
}
