import { describe, expect, it } from 'vitest';
import { canonicalHash, isoTime, parseAccountId, parseEventTime, parseInteger, parseVni } from '../../../src/detect/cloudtrail/values.js';

describe('parseInteger / parseVni', () => {
  it('reads integers written as numbers, strings, floats and exponents', () => {
    expect(parseVni(12348395)).toBe(12348395);
    expect(parseVni('12348395')).toBe(12348395);
    expect(parseVni(' 12348395 ')).toBe(12348395);
    expect(parseVni(1.2348395e7)).toBe(12348395);
    expect(parseVni('1.2348395e+07')).toBe(12348395);
    expect(parseVni('1.2348395E7')).toBe(12348395);
    expect(parseVni('12348395.0')).toBe(12348395);
    expect(parseVni(0)).toBe(0);
    expect(parseVni(16777215)).toBe(16777215);
  });

  it('refuses non-integers, out-of-range values and non-decimal forms', () => {
    for (const v of [12348395.5, '1.5', 16777216, -1, '-1', '0x54FA11', '', ' ', 'abc', NaN, Infinity, '1e400', true, null, undefined, {}, [5]]) {
      expect([v, parseVni(v)]).toEqual([v, undefined]);
    }
    // Beyond 2^53 a float is no longer an exact integer.
    expect(parseInteger(2 ** 53)).toBeUndefined();
    expect(parseInteger('9007199254740993')).toBeUndefined();
  });
});

describe('parseAccountId', () => {
  it('keeps strings, turns floats back into 12 digits and restores leading zeros', () => {
    expect(parseAccountId('123123123123')).toBe('123123123123');
    expect(parseAccountId(1.23123123123e11)).toBe('123123123123');
    expect(parseAccountId('1.23123123123e+11')).toBe('123123123123');
    expect(parseAccountId(12345678901)).toBe('012345678901');
    expect(parseAccountId('123123123')).toBe('000123123123');
    expect(parseAccountId('ANONYMOUS_PRINCIPAL')).toBe('ANONYMOUS_PRINCIPAL');
    expect(parseAccountId(1.5)).toBeUndefined();
    expect(parseAccountId('')).toBeUndefined();
  });
});

describe('parseEventTime', () => {
  const t = Date.UTC(2022, 10, 15, 22, 58, 13);
  it('reads ISO-8601 and the SIEM variants as UTC', () => {
    expect(parseEventTime('2022-11-15T22:58:13Z')).toBe(t);
    expect(parseEventTime('2022-11-15 22:58:13')).toBe(t); // Panther
    expect(parseEventTime('2022-11-15T22:58:13')).toBe(t); // no zone: UTC, never local time
    expect(parseEventTime('2022-11-15 22:58:13 UTC')).toBe(t);
    expect(parseEventTime('2022-11-15t22:58:13z')).toBe(t);
    expect(parseEventTime('2022-11-15T22:58:13.355Z')).toBe(t + 355);
    expect(parseEventTime('2022-11-15 22:58:13.355')).toBe(t + 355);
    expect(parseEventTime('2022-11-15 22:58:13.355000000')).toBe(t + 355); // nanoseconds
    expect(parseEventTime('2022-11-15T22:58:13,5Z')).toBe(t + 500);
    expect(parseEventTime('2022-11-15T22:58Z')).toBe(t - 13_000);
  });

  it('applies timezone offsets', () => {
    expect(parseEventTime('2022-11-16T00:58:13+02:00')).toBe(t);
    expect(parseEventTime('2022-11-16T00:58:13+0200')).toBe(t);
    expect(parseEventTime('2022-11-16T00:58:13+02')).toBe(t);
    expect(parseEventTime('2022-11-15T17:28:13-05:30')).toBe(t);
  });

  it('reads epoch seconds, milliseconds, microseconds and nanoseconds', () => {
    expect(parseEventTime(t / 1000)).toBe(t);
    expect(parseEventTime(String(t / 1000))).toBe(t);
    expect(parseEventTime(t / 1000 + 0.355)).toBe(t + 355);
    expect(parseEventTime(t)).toBe(t);
    expect(parseEventTime(String(t))).toBe(t);
    expect(parseEventTime(t * 1000)).toBe(t);
    expect(parseEventTime(`${t}000000`)).toBe(t);
  });

  it('refuses what is not a time, and dates that do not exist', () => {
    for (const v of ['', 'yesterday', '2022-13-01T00:00:00Z', '2022-02-30T00:00:00Z', '2022-11-15T24:00:00Z', '2022-11-15T22:61:00Z', '2022-11-15', '2022-11-15T22:58:13+25:00', -5, NaN, null, {}, true, '1e10']) {
      expect([v, parseEventTime(v)]).toEqual([v, undefined]);
    }
  });

  it('folds a leap second into :59', () => {
    expect(parseEventTime('2016-12-31T23:59:60Z')).toBe(Date.UTC(2016, 11, 31, 23, 59, 59));
  });

  it('prints ISO with Z, and milliseconds only when present', () => {
    expect(isoTime(t)).toBe('2022-11-15T22:58:13Z');
    expect(isoTime(t + 5)).toBe('2022-11-15T22:58:13.005Z');
  });
});

describe('canonicalHash', () => {
  it('ignores key order at every level but not values', () => {
    const a = canonicalHash({ a: 1, b: { c: [1, { d: 2, e: 3 }] } });
    expect(canonicalHash({ b: { c: [1, { e: 3, d: 2 }] }, a: 1 })).toBe(a);
    expect(canonicalHash({ a: 1, b: { c: [{ d: 2, e: 3 }, 1] } })).not.toBe(a);
    expect(canonicalHash({ a: '1', b: { c: [1, { d: 2, e: 3 }] } })).not.toBe(a);
  });

  it('survives cycles from in-process callers', () => {
    const o: Record<string, unknown> = { a: 1 };
    o.self = o;
    expect(canonicalHash(o)).toMatch(/^[0-9a-f]{64}$/);
  });
});
