/**
 * Query-parameter schemas shared by the routes (validation and the OpenAPI document come from the same
 * JSON schema), and the checks JSON schema cannot express (IP address text, time order and window).
 */
import { canonicalIp } from '../decode/addr.js';
import { badRequest } from './errors.js';
import { compareTime, parseTime, secondsBetween, type TimePoint } from './time.js';

/** VXLAN network identifiers are 24 bits (RFC 7348 section 5). */
export const VNI_MAX = 16_777_215;

export const vniParam = { type: 'integer', minimum: 0, maximum: VNI_MAX, description: 'VXLAN network identifier (0..16777215).' } as const;
export const sourceIpParam = { type: 'string', minLength: 2, maxLength: 64, description: 'Outer source IP (IPv4 or IPv6): the mirrored ENI\'s primary address.' } as const;
export const sessionParam = {
  type: 'string',
  pattern: '^tms-(?:[0-9a-f]{8}|[0-9a-f]{17})$',
  description: 'Traffic mirror session ID from the manifest (tms- and 8 or 17 hex digits).',
} as const;
export const timeParam = (what: string) =>
  ({
    type: 'string',
    minLength: 1,
    maxLength: 48,
    description: `${what}: ISO-8601 with a zone (2026-11-28T20:40:25.123456789Z, 2026-11-28T21:40:25+01:00) or epoch seconds (1764362425.5).`,
  }) as const;
export const limitParam = { type: 'integer', minimum: 1, maximum: 1000, default: 100, description: 'Items per page (1..1000).' } as const;
export const cursorParam = { type: 'string', minLength: 1, maxLength: 200, description: 'The nextCursor of the previous page.' } as const;

/** A source IP parameter in the catalog's text form; 400 when it is not an address. */
export function parseSourceIp(text: string, param = 'sourceIp'): string {
  const c = canonicalIp(text);
  if (c === null) throw badRequest(param, `'${text}' is not an IPv4 or IPv6 address`);
  return c;
}

export interface Window {
  from?: TimePoint;
  to?: TimePoint;
}

/** Parse optional from/to; when both are given, `from` must come first. */
export function parseWindow(q: { from?: string; to?: string }): Window {
  const w: Window = {};
  if (q.from !== undefined) w.from = parseTime(q.from, 'from');
  if (q.to !== undefined) w.to = parseTime(q.to, 'to');
  if (w.from && w.to && compareTime(w.from, w.to) >= 0) throw badRequest('to', `must be after from (${q.from})`);
  return w;
}

/** A bounded window: `from` required, `to` defaulting to now, at most maxHours long. */
export function parseBoundedWindow(q: { from?: string; to?: string }, nowMs: number, maxHours: number): { from: TimePoint; to: TimePoint } {
  if (q.from === undefined) throw badRequest('from', 'required: the start of the time window');
  const from = parseTime(q.from, 'from');
  const to = q.to !== undefined ? parseTime(q.to, 'to') : { sec: Math.floor(nowMs / 1000) + 1, nsec: 0 };
  if (compareTime(from, to) >= 0) throw badRequest('to', `must be after from (${q.from})`);
  const hours = secondsBetween(from, to) / 3600;
  if (hours > maxHours) {
    throw badRequest('to', `the window is ${hours.toFixed(2)} hours; at most ${maxHours} hours per request (api.maxRangeHours): split it`);
  }
  return { from, to };
}
