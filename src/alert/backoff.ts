/**
 * When to try a failed delivery again. Exponential from about a second, capped at about a minute, with
 * jitter so that many alerts failing together (a receiver restart) do not retry in lock-step. A
 * receiver's Retry-After (RFC 9110 section 10.2.3) is honoured as a floor, up to a cap.
 */
import type { RetryPolicy } from './config.js';

/**
 * Delay before the next attempt after `failures` consecutive failed attempts (1 after the first).
 * `random` returns [0, 1); injectable so tests can pin the jitter.
 */
export function retryDelayMs(failures: number, policy: RetryPolicy, random: () => number = Math.random): number {
  const n = Math.max(1, failures);
  // Math.pow overflows to Infinity for huge n, which min() turns into the cap: no special case needed.
  const step = Math.min(policy.maxDelayMs, policy.initialDelayMs * Math.pow(policy.multiplier, n - 1));
  const r = random();
  const d = policy.jitter === 'full' ? r * step : step / 2 + (r * step) / 2;
  return Math.max(1, Math.round(d));
}

/**
 * Retry-After in ms from now, or undefined when absent or malformed. RFC 9110 section 10.2.3:
 * `Retry-After = HTTP-date / delay-seconds`, delay-seconds being 1*DIGIT. A date in the past is 0.
 */
export function parseRetryAfter(value: string | null | undefined, nowMs: number): number | undefined {
  if (value === null || value === undefined) return undefined;
  const v = value.trim();
  if (v === '') return undefined;
  if (/^\d+$/.test(v)) return Number(v) * 1000;
  // An HTTP-date (IMF-fixdate, or the obsolete RFC 850 / asctime forms, which Date.parse also reads).
  if (!/[a-z]/i.test(v)) return undefined;
  const t = Date.parse(v);
  if (Number.isNaN(t)) return undefined;
  return Math.max(0, t - nowMs);
}

/** The nominal (jitter-free upper bound) schedule: the delay before each retry, for docs and `--help`. */
export function nominalSchedule(policy: RetryPolicy, retries: number): number[] {
  const out: number[] = [];
  for (let i = 1; i <= retries; i++) out.push(Math.min(policy.maxDelayMs, policy.initialDelayMs * Math.pow(policy.multiplier, i - 1)));
  return out;
}
