/**
 * One delivery attempt: sign (Standard Webhooks headers, via the `standardwebhooks` package), POST with
 * a timeout, and classify the answer. Used by the dispatcher for every attempt and by `alerts test`.
 *
 * Status handling follows Standard Webhooks "Delivery success and failure": 2xx is success; 3xx is a
 * failure (redirects are not followed: the URL should be updated instead); 410 Gone means the receiver
 * wants no more; 429, 502, 504 and the other 5xx are transient, as are 408 Request Timeout (RFC 9110
 * section 15.5.9), timeouts and connection errors; any other 4xx will not get better by retrying.
 */
import { Webhook } from 'standardwebhooks';
import { VERSION } from '../version.js';
import { parseRetryAfter } from './backoff.js';

export interface SendTarget {
  url: string;
  /** `whsec_...`; when absent the request carries webhook-id and webhook-timestamp but no signature. */
  secret?: string;
  headers?: Readonly<Record<string, string>>;
  timeoutMs: number;
}

export type SendOutcome =
  /** 2xx. */
  | 'delivered'
  /** Timeout, connection error, 408, 429, 5xx: try again later. */
  | 'retry'
  /** 410 Gone: disable the endpoint. */
  | 'gone'
  /** Any other status: retrying will not help. */
  | 'rejected'
  /** Our own shutdown aborted the request; the outcome is unknown. */
  | 'interrupted';

export interface SendResult {
  outcome: SendOutcome;
  /** The HTTP status, when a response arrived. */
  status?: number;
  /** A one-line description for logs and the outbox's last_error. */
  error?: string;
  /** The receiver's Retry-After, in ms from the response. */
  retryAfterMs?: number;
  /** The first bytes of the response body (for `alerts test`). */
  body: string;
  durationMs: number;
  /** The signed headers as sent. */
  headers: Record<string, string>;
}

export const USER_AGENT = `mirrorguard/${VERSION} (+webhook)`;
/** How much of a response body we keep: enough for an error message, bounded against a chatty receiver. */
const MAX_BODY_BYTES = 2048;

/** The headers for one attempt. The timestamp is the attempt's, per Standard Webhooks "Webhook metadata". */
export function signedHeaders(target: SendTarget, msgId: string, payload: string, at: Date): Record<string, string> {
  // Lower-case names throughout: a configured 'User-Agent' must replace ours, not be sent beside it.
  const h: Record<string, string> = { 'user-agent': USER_AGENT };
  for (const [k, v] of Object.entries(target.headers ?? {})) h[k.toLowerCase()] = v;
  h['content-type'] = 'application/json';
  h['webhook-id'] = msgId;
  h['webhook-timestamp'] = String(Math.floor(at.getTime() / 1000));
  if (target.secret !== undefined) h['webhook-signature'] = new Webhook(target.secret).sign(msgId, at, payload);
  else delete h['webhook-signature'];
  return h;
}

export function classifyStatus(status: number): SendOutcome {
  if (status >= 200 && status <= 299) return 'delivered';
  if (status === 410) return 'gone';
  if (status === 408 || status === 429 || status >= 500) return 'retry';
  return 'rejected';
}

async function readSome(res: Response, signal: AbortSignal): Promise<string> {
  if (res.body === null) return '';
  const reader = res.body.getReader();
  const chunks: Uint8Array[] = [];
  let n = 0;
  try {
    while (n < MAX_BODY_BYTES && !signal.aborted) {
      const { done, value } = await reader.read();
      if (done) break;
      chunks.push(value);
      n += value.byteLength;
    }
  } finally {
    // Stop a large or endless body here; the connection is dropped rather than drained.
    if (n >= MAX_BODY_BYTES || signal.aborted) await reader.cancel().catch(() => undefined);
    else reader.releaseLock();
  }
  return Buffer.concat(chunks).subarray(0, MAX_BODY_BYTES).toString('utf8');
}

function oneLine(s: string, max = 300): string {
  const t = s.replace(/\s+/g, ' ').trim();
  return t.length <= max ? t : `${t.slice(0, max)}…`;
}

/** What went wrong below HTTP, in the words of the OS where possible (ECONNREFUSED, ENOTFOUND ...). */
function networkError(e: unknown): string {
  const err = e as Error & { cause?: { code?: string; message?: string } };
  const c = err.cause;
  if (c?.code) return `${c.code}${c.message && !c.message.includes(c.code) ? `: ${c.message}` : c.message ? ` (${c.message})` : ''}`;
  if (c?.message) return c.message;
  return err.message ?? String(e);
}

export interface SendOptions {
  /** Aborts the attempt (dispatcher shutdown); the result is then `interrupted`. */
  signal?: AbortSignal;
  /** The attempt time, for the signed timestamp. */
  now?: () => number;
}

export async function sendWebhook(target: SendTarget, msgId: string, payload: string, opts: SendOptions = {}): Promise<SendResult> {
  const now = opts.now ?? Date.now;
  const started = now();
  const headers = signedHeaders(target, msgId, payload, new Date(started));
  const timeout = AbortSignal.timeout(target.timeoutMs);
  const signal = opts.signal ? AbortSignal.any([timeout, opts.signal]) : timeout;
  const done = (r: Omit<SendResult, 'durationMs' | 'headers'>): SendResult => ({ ...r, durationMs: now() - started, headers });
  try {
    const res = await fetch(target.url, { method: 'POST', headers, body: payload, redirect: 'manual', signal });
    const body = await readSome(res, signal).catch(() => '');
    const outcome = classifyStatus(res.status);
    if (outcome === 'delivered') return done({ outcome, status: res.status, body });
    const retryAfterMs = parseRetryAfter(res.headers.get('retry-after'), now());
    let error = `HTTP ${res.status}${res.statusText ? ` ${res.statusText}` : ''}`;
    if (res.status >= 300 && res.status < 400) error += `: redirect to ${res.headers.get('location') ?? '(no Location)'}; update the webhook URL`;
    else if (body) error += `: ${oneLine(body)}`;
    return done({ outcome, status: res.status, error, body, ...(retryAfterMs !== undefined ? { retryAfterMs } : {}) });
  } catch (e) {
    if (opts.signal?.aborted && !timeout.aborted) return done({ outcome: 'interrupted', error: 'interrupted by shutdown', body: '' });
    if (timeout.aborted) return done({ outcome: 'retry', error: `timed out after ${target.timeoutMs} ms`, body: '' });
    return done({ outcome: 'retry', error: oneLine(networkError(e)), body: '' });
  }
}
