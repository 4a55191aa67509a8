import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { nominalSchedule, parseRetryAfter, retryDelayMs } from '../../src/alert/backoff.js';
import { RETRY_DEFAULTS } from '../../src/alert/config.js';

describe('retry schedule', () => {
  it('starts at about a second and caps at about a minute by default', () => {
    expect(nominalSchedule(RETRY_DEFAULTS, 9)).toEqual([1000, 2000, 4000, 8000, 16000, 32000, 60000, 60000, 60000]);
  });

  it('equal jitter stays within [step/2, step]; full jitter within (0, step]', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 10_000 }), fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }), (n, r) => {
        const step = Math.min(60_000, 1000 * 2 ** (n - 1));
        const eq = retryDelayMs(n, RETRY_DEFAULTS, () => r);
        expect(eq).toBeGreaterThanOrEqual(Math.floor(step / 2));
        expect(eq).toBeLessThanOrEqual(step);
        const full = retryDelayMs(n, { ...RETRY_DEFAULTS, jitter: 'full' }, () => r);
        expect(full).toBeGreaterThanOrEqual(1);
        expect(full).toBeLessThanOrEqual(step);
      }),
    );
  });

  it('spreads simultaneous failures apart', () => {
    const delays = new Set(Array.from({ length: 50 }, () => retryDelayMs(3, RETRY_DEFAULTS)));
    expect(delays.size).toBeGreaterThan(25);
  });
});

describe('Retry-After (RFC 9110 section 10.2.3)', () => {
  const now = Date.parse('2026-03-01T10:00:00Z');
  it('reads delay-seconds and HTTP-dates', () => {
    expect(parseRetryAfter('120', now)).toBe(120_000);
    expect(parseRetryAfter(' 0 ', now)).toBe(0);
    expect(parseRetryAfter('Sun, 01 Mar 2026 10:00:30 GMT', now)).toBe(30_000);
    expect(parseRetryAfter('Sunday, 01-Mar-26 10:01:00 GMT', now)).toBe(60_000); // obsolete RFC 850 form
    expect(parseRetryAfter('Sun, 01 Mar 2026 09:00:00 GMT', now)).toBe(0); // in the past
  });
  it('ignores what is not one of those', () => {
    for (const v of [null, undefined, '', '-5', '1.5', 'soon', '12abc']) expect(parseRetryAfter(v, now)).toBeUndefined();
  });
});
