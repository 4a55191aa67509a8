import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { isMgError } from '../../src/errors.js';
import { contentDisposition, ifRangeAllows, noneMatch, parseRange, safeFileName } from '../../src/api/http.js';
import { isoTime, parseTime, timeToMicros } from '../../src/api/time.js';

function message(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    if (isMgError(e)) return e.message;
    throw e;
  }
  return '';
}

describe('time parameters', () => {
  it('reads ISO-8601 with a zone to the nanosecond, and epoch seconds', () => {
    expect(parseTime('2025-11-24T16:00:00Z', 'from')).toEqual({ sec: 1_764_000_000, nsec: 0 });
    expect(parseTime('2025-11-24T16:00:00.123456789Z', 'from')).toEqual({ sec: 1_764_000_000, nsec: 123_456_789 });
    expect(parseTime('2025-11-24T16:00:00.5z', 'from')).toEqual({ sec: 1_764_000_000, nsec: 500_000_000 });
    expect(parseTime('2025-11-24T17:30:00+01:30', 'from')).toEqual({ sec: 1_764_000_000, nsec: 0 });
    expect(parseTime('2025-11-24T14:00:00-0200', 'from')).toEqual({ sec: 1_764_000_000, nsec: 0 });
    // An unencoded + in a query string arrives as a space.
    expect(parseTime('2025-11-24T17:00:00 01:00', 'from')).toEqual({ sec: 1_764_000_000, nsec: 0 });
    expect(parseTime('2025-11-24', 'from')).toEqual({ sec: 1_763_942_400, nsec: 0 });
    expect(parseTime('1764000000', 'from')).toEqual({ sec: 1_764_000_000, nsec: 0 });
    expect(parseTime('1764000000.000000001', 'from')).toEqual({ sec: 1_764_000_000, nsec: 1 });
    expect(parseTime('2028-02-29T00:00:00Z', 'from').sec).toBe(Date.UTC(2028, 1, 29) / 1000);
  });

  it('refuses what is ambiguous or impossible, naming the parameter', () => {
    expect(message(() => parseTime('2025-11-24T16:00:00', 'to'))).toContain("to: '2025-11-24T16:00:00' has no time zone");
    expect(message(() => parseTime('2025-02-29T00:00:00Z', 'to'))).toContain('is not a valid date and time');
    expect(message(() => parseTime('2025-11-24T24:00:00Z', 'to'))).toContain('is not a valid date and time');
    expect(message(() => parseTime('2025-11-24T16:00:00+25:00', 'to'))).toContain('invalid offset');
    expect(message(() => parseTime('99999999999', 'to'))).toContain('past the year 2106');
    expect(message(() => parseTime('1.2.3', 'from'))).toContain("from: '1.2.3' is not a time");
    expect(message(() => parseTime('1764000000.1234567891', 'from'))).toContain('is not a time');
  });

  it('round-trips any instant through its ISO text', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 0xffff_ffff }), fc.integer({ min: 0, max: 999_999_999 }), (sec, nsec) => {
        expect(parseTime(isoTime({ sec, nsec }), 'from')).toEqual({ sec, nsec });
        expect(timeToMicros({ sec, nsec })).toBe(sec * 1_000_000 + Math.floor(nsec / 1000));
      }),
    );
  });
});

describe('range and validators (RFC 9110 sections 13, 14)', () => {
  it('parses one range, a suffix and an open end; clamps the end; ignores other units and multiple ranges', () => {
    expect(parseRange(undefined, 100)).toEqual({ kind: 'full' });
    expect(parseRange('bytes=0-9', 100)).toEqual({ kind: 'partial', start: 0, end: 9 });
    expect(parseRange('bytes=90-', 100)).toEqual({ kind: 'partial', start: 90, end: 99 });
    expect(parseRange('bytes=-10', 100)).toEqual({ kind: 'partial', start: 90, end: 99 });
    expect(parseRange('bytes=-1000', 100)).toEqual({ kind: 'partial', start: 0, end: 99 });
    expect(parseRange('bytes=50-5000', 100)).toEqual({ kind: 'partial', start: 50, end: 99 });
    expect(parseRange('Bytes = 1-2', 100)).toEqual({ kind: 'partial', start: 1, end: 2 });
    expect(parseRange('bytes=0-1,4-5', 100)).toEqual({ kind: 'full' });
    expect(parseRange('pages=1-2', 100)).toEqual({ kind: 'full' });
    for (const bad of ['bytes=100-', 'bytes=5-4', 'bytes=-0', 'bytes=a-b', 'bytes=-', 'nonsense']) expect([bad, parseRange(bad, 100).kind]).toEqual([bad, 'unsatisfiable']);
  });

  it('compares ETags weakly for If-None-Match and strongly for If-Range', () => {
    expect(noneMatch('"a", "b"', '"b"')).toBe(true);
    expect(noneMatch('W/"b"', '"b"')).toBe(true);
    expect(noneMatch('*', '"x"')).toBe(true);
    expect(noneMatch('"c"', '"b"')).toBe(false);
    expect(noneMatch(undefined, '"b"')).toBe(false);
    expect(ifRangeAllows(undefined, '"b"')).toBe(true);
    expect(ifRangeAllows('"b"', '"b"')).toBe(true);
    expect(ifRangeAllows('W/"b"', 'W/"b"')).toBe(false);
    expect(ifRangeAllows('"b"', 'W/"b"')).toBe(false);
    expect(ifRangeAllows('Sat, 28 Nov 2026 21:44:07 GMT', '"b"')).toBe(false);
  });

  it('makes file names nothing can misread', () => {
    expect(safeFileName('mirrorguard-tms-0123-10.0.0.1-20251124T160000Z.pcap')).toBe('mirrorguard-tms-0123-10.0.0.1-20251124T160000Z.pcap');
    expect(safeFileName('../../etc/passwd')).toBe('etc_passwd');
    expect(safeFileName('fd00::1";\r\nX-Evil: 1')).toBe('fd00_1_X-Evil_1');
    expect(contentDisposition('')).toBe('attachment; filename="capture"');
  });
});
