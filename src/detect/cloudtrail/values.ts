/**
 * Scalar values as they really arrive in CloudTrail-shaped data. Raw CloudTrail writes numbers as JSON
 * numbers and times as ISO-8601 `Z`, but records that went through a SIEM do not: Panther writes
 * `eventTime: "2022-11-15 22:58:13"` and YAML-to-JSON conversions give `1.2348395e+07` for a VNI and
 * `1.23123123123e+11` for an account ID. Every function here returns `undefined` for what it cannot read,
 * never throws, and never guesses a time zone: a time without one is UTC, like CloudTrail's own.
 */
import { createHash } from 'node:crypto';

/** VXLAN Network Identifier: 24 bits (RFC 7348 section 5). */
export const VNI_MAX = 0xff_ffff;

/**
 * An integer written as a number or a decimal string, in plain, fractional (`12348395.0`) or exponent
 * (`1.2348395e+07`) form. Anything that is not exactly an integer (12348395.5, NaN, '', 'abc', true) is
 * undefined. Integers beyond 2^53 are refused: they cannot be represented exactly.
 */
export function parseInteger(v: unknown): number | undefined {
  let n: number;
  if (typeof v === 'number') n = v;
  else if (typeof v === 'string') {
    const s = v.trim();
    // Number('') is 0 and Number('0x10') is 16: accept decimal forms only.
    if (!/^[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?$/.test(s)) return undefined;
    n = Number(s);
  } else return undefined;
  return Number.isSafeInteger(n) ? n : undefined;
}

/** A VNI in 0..2^24-1, or undefined. */
export function parseVni(v: unknown): number | undefined {
  const n = parseInteger(v);
  return n !== undefined && n >= 0 && n <= VNI_MAX ? n : undefined;
}

/**
 * A 12-digit AWS account ID from a string or a number. A number has lost its leading zeros
 * (`012345678901` -> 12345678901), so it is padded back to 12 digits.
 */
export function parseAccountId(v: unknown): string | undefined {
  if (typeof v === 'string') {
    const s = v.trim();
    if (/^\d{1,12}$/.test(s)) return s.padStart(12, '0');
    const n = parseInteger(s);
    return n !== undefined && n >= 0 && n < 1e12 ? String(n).padStart(12, '0') : s.length > 0 ? s : undefined;
  }
  const n = parseInteger(v);
  return n !== undefined && n >= 0 && n < 1e12 ? String(n).padStart(12, '0') : undefined;
}

/** A non-empty trimmed string, or undefined. */
export function str(v: unknown): string | undefined {
  if (typeof v !== 'string') return undefined;
  const s = v.trim();
  return s.length > 0 ? s : undefined;
}

const MS_PER_MINUTE = 60_000;
/** Epoch values are told apart by size: seconds until 5138 CE, then ms, us and ns (CloudTrail Lake, SIEMs). */
const EPOCH_S_LIMIT = 1e11;
const EPOCH_MS_LIMIT = 1e14;
const EPOCH_US_LIMIT = 1e17;
/** 9999-12-31T23:59:59Z: beyond this a "time" is garbage, not a date. */
const MAX_TIME_MS = 253_402_300_799_999;

const TIME_RE =
  /^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d{1,9}))?)?\s*(Z|z|UTC|GMT|[+-]\d{2}(?::?\d{2})?)?$/;

/**
 * An event time in ms since the epoch. Accepts ISO-8601 / RFC 3339 (`2022-11-15T22:58:13Z`, with
 * fractional seconds, with `+02:00` / `+0200` / `+02` offsets), the space-separated SIEM form
 * (`2022-11-15 22:58:13`, `... 22:58:13.355`, `... UTC`), a missing zone meaning UTC, and epoch numbers
 * in seconds, milliseconds, microseconds or nanoseconds (as numbers or digit strings).
 */
export function parseEventTime(v: unknown): number | undefined {
  if (typeof v === 'number') return fromEpoch(v);
  if (typeof v !== 'string') return undefined;
  const s = v.trim();
  if (/^\d+(?:\.\d+)?$/.test(s)) return fromEpoch(Number(s));
  const m = TIME_RE.exec(s);
  if (!m) return undefined;
  const [year, month, day, hour, minute] = [m[1], m[2], m[3], m[4], m[5]].map(Number) as [number, number, number, number, number];
  // A leap second (:60) is folded into :59; JavaScript time has no leap seconds.
  const second = Math.min(Number(m[6] ?? 0), 59);
  if (month < 1 || month > 12 || day < 1 || hour > 23 || minute > 59 || Number(m[6] ?? 0) > 60) return undefined;
  const ms = m[7] ? Number(m[7].slice(0, 3).padEnd(3, '0')) : 0;
  const t = Date.UTC(year, month - 1, day, hour, minute, second, ms);
  // Date.UTC rolls 2022-02-30 over into March; a date that does not exist is refused instead.
  if (new Date(t).getUTCDate() !== day) return undefined;
  const offset = zoneOffsetMinutes(m[8]);
  if (offset === undefined) return undefined;
  const out = t - offset * MS_PER_MINUTE;
  return out >= 0 && out <= MAX_TIME_MS ? out : undefined;
}

function zoneOffsetMinutes(z: string | undefined): number | undefined {
  if (z === undefined || z === 'Z' || z === 'z' || z === 'UTC' || z === 'GMT') return 0;
  const m = /^([+-])(\d{2}):?(\d{2})?$/.exec(z);
  if (!m) return undefined;
  const h = Number(m[2]);
  const min = Number(m[3] ?? 0);
  if (h > 23 || min > 59) return undefined;
  return (m[1] === '-' ? -1 : 1) * (h * 60 + min);
}

function fromEpoch(n: number): number | undefined {
  if (!Number.isFinite(n) || n < 0) return undefined;
  let ms: number;
  if (n < EPOCH_S_LIMIT) ms = n * 1000;
  else if (n < EPOCH_MS_LIMIT) ms = n;
  else if (n < EPOCH_US_LIMIT) ms = n / 1000;
  else ms = n / 1e6;
  ms = Math.floor(ms);
  return ms <= MAX_TIME_MS ? ms : undefined;
}

/** ISO-8601 with `Z` and milliseconds only when they are not zero: `2022-11-15T22:58:13Z`. */
export function isoTime(ms: number): string {
  const s = new Date(ms).toISOString();
  return s.endsWith('.000Z') ? `${s.slice(0, -5)}Z` : s;
}

/**
 * SHA-256 of a JSON value with object keys sorted at every level, so the same record hashes the same
 * whether it came from a Records file, an EventBridge `detail` or a re-serialized SIEM export.
 * Cycles and absurd depth (only possible from in-process callers, never from JSON.parse) are cut.
 */
export function canonicalHash(value: unknown): string {
  const h = createHash('sha256');
  const seen = new WeakSet<object>();
  const walk = (v: unknown, depth: number): void => {
    if (depth > 64) {
      h.update('"<deep>"');
      return;
    }
    if (v === null || typeof v !== 'object') {
      h.update(JSON.stringify(v) ?? 'null');
      return;
    }
    if (seen.has(v)) {
      h.update('"<cycle>"');
      return;
    }
    seen.add(v);
    if (Array.isArray(v)) {
      h.update('[');
      v.forEach((x, i) => {
        if (i > 0) h.update(',');
        walk(x, depth + 1);
      });
      h.update(']');
    } else {
      h.update('{');
      Object.keys(v)
        .sort()
        .forEach((k, i) => {
          if (i > 0) h.update(',');
          h.update(JSON.stringify(k));
          h.update(':');
          walk((v as Record<string, unknown>)[k], depth + 1);
        });
      h.update('}');
    }
    seen.delete(v);
  };
  walk(value, 0);
  return h.digest('hex');
}
