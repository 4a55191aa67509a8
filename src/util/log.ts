/**
 * Logging through pino (JSON lines on stderr by default). Disabled levels cost nothing. Anything that
 * can repeat per packet or per retry goes through a RateLimiter so a storm logs at most once a minute
 * per key, with a count of what was suppressed.
 */
import { pino, type Logger } from 'pino';

export type { Logger };

export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';

export function createLogger(level: LogLevel = 'info', name = 'mirrorguard'): Logger {
  return pino({ name, level, base: { pid: process.pid } }, pino.destination({ dest: 2, sync: true }));
}

/** A logger that prints nothing, for tests and library use. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}

/** At most one log line per key per interval; the next one reports how many were suppressed. */
export class RateLimiter {
  private readonly last = new Map<string, { at: number; suppressed: number }>();
  constructor(private readonly intervalMs = 60_000) {}

  /** Returns the number suppressed since the last allowed line, or -1 when this one is suppressed. */
  allow(key: string, now = Date.now()): number {
    const e = this.last.get(key);
    if (e === undefined) {
      this.last.set(key, { at: now, suppressed: 0 });
      return 0;
    }
    if (now - e.at >= this.intervalMs) {
      const n = e.suppressed;
      e.at = now;
      e.suppressed = 0;
      return n;
    }
    e.suppressed++;
    return -1;
  }
}
