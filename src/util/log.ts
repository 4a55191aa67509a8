/**
 * Logging through pino: JSON lines on stderr for services, journald and anything that parses logs, or
 * `pretty` lines for a person at a terminal (the default when stderr is one). Disabled levels cost
 * nothing. Anything that can repeat per packet or per retry goes through a RateLimiter so a storm logs
 * at most once a minute per key, with a count of what was suppressed.
 */
import { pino, type Logger } from 'pino';
import { createRequire } from 'node:module';
import type { PinoPretty as PinoPrettyFn } from 'pino-pretty';

export type { Logger };

export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
export type LogFormat = 'json' | 'pretty';

/** `auto` (config log.format, --log-format): pretty when the logs go to a terminal, JSON otherwise. */
export function resolveLogFormat(format: LogFormat | 'auto' = 'auto', stream: { isTTY?: boolean } = process.stderr): LogFormat {
  if (format !== 'auto') return format;
  return stream.isTTY === true ? 'pretty' : 'json';
}

/**
 * The process's logger on stderr. `colorize` (pretty only) defaults to whether stderr is a terminal; a
 * worker thread, whose stderr is a pipe to the main thread, is told by the main thread.
 */
export function createLogger(level: LogLevel = 'info', format: LogFormat = 'json', opts: { name?: string; colorize?: boolean } = {}): Logger {
  const options = { name: opts.name ?? 'mirrorguard', level, base: { pid: process.pid } };
  if (format === 'pretty') return pino(options, prettyStream(opts.colorize ?? process.stderr.isTTY === true));
  return pino(options, pino.destination({ dest: 2, sync: true }));
}

/**
 * `09:41:07.412 INFO  receiving VXLAN  receiver=native address=0.0.0.0 port=4789`: time, level and
 * message first, then the fields as key=value on the same line (objects as compact JSON), and an
 * error's stack below. Written synchronously to stderr, like the JSON logger, so nothing is lost at exit.
 */
export function prettyStream(colorize: boolean, destination: number | NodeJS.WritableStream = 2): NodeJS.WritableStream {
  // Loaded when first asked for: a service logs JSON, and pino-pretty with its dependencies is 28 modules.
  const { PinoPretty } = createRequire(import.meta.url)('pino-pretty') as { PinoPretty: typeof PinoPrettyFn };
  return PinoPretty({
    destination,
    sync: true,
    colorize,
    translateTime: 'SYS:HH:MM:ss.l',
    ignore: 'pid,hostname,name',
    hideObject: true,
    messageFormat: (log, messageKey) => prettyMessage(log as Record<string, unknown>, messageKey),
  });
}

/** Strings bare unless they need quotes; a table of counters (all numbers) as its non-zero entries only. */
function prettyValue(v: unknown): string {
  if (typeof v === 'string') return /^[^\s"=]+$/.test(v) ? v : JSON.stringify(v);
  if (v !== null && typeof v === 'object' && !Array.isArray(v)) {
    const entries = Object.entries(v);
    if (entries.length > 8 && entries.every(([, n]) => typeof n === 'number')) {
      const nonZero = entries.filter(([, n]) => n !== 0);
      return nonZero.length === 0 ? '(all 0)' : `{${nonZero.map(([k, n]) => `${k}: ${String(n)}`).join(', ')}}`;
    }
  }
  return JSON.stringify(v);
}

const PRETTY_SKIP = new Set(['level', 'time', 'pid', 'hostname', 'name', 'msg', 'v']);

/** The message and the fields of a pretty line (exported for tests). */
export function prettyMessage(log: Record<string, unknown>, messageKey = 'msg'): string {
  let out = typeof log[messageKey] === 'string' ? (log[messageKey] as string) : '';
  let stack = '';
  const fields: string[] = [];
  for (const [k, v] of Object.entries(log)) {
    if (PRETTY_SKIP.has(k) || k === messageKey || v === undefined) continue;
    if (k === 'err' && v !== null && typeof v === 'object') {
      const e = v as { message?: unknown; stack?: unknown; code?: unknown };
      fields.push(`err=${JSON.stringify(String(e.message ?? ''))}${e.code !== undefined ? ` code=${String(e.code)}` : ''}`);
      if (typeof e.stack === 'string') stack = `\n${e.stack.split('\n').slice(1).join('\n')}`;
      continue;
    }
    fields.push(`${k}=${prettyValue(v)}`);
  }
  if (fields.length > 0) out += `  ${fields.join(' ')}`;
  return out + stack;
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
