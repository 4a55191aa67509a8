/**
 * Test doubles for alert delivery that are real where it matters: a node:http receiver on 127.0.0.1
 * that can fail, hang, go down and come back on the same port, and a Standard Webhooks signature check
 * written from the spec with node:crypto (not through the `standardwebhooks` package we sign with).
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingHttpHeaders, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import { pino, type Logger } from 'pino';
import type { Finding, FindingEvent, FindingEventType } from '../../src/detect/finding.js';

export interface Received {
  n: number;
  headers: IncomingHttpHeaders;
  body: string;
  at: number;
  /** What the receiver answered; undefined when it hung. */
  status?: number;
}

export interface Reply {
  status?: number;
  headers?: Record<string, string>;
  body?: string;
  /** Never answer (until the server closes). */
  hang?: boolean;
}

/** Decide the reply to the n-th request (1-based, counted across restarts). */
export type Behaviour = (n: number, r: Received) => Reply;

export class Receiver {
  readonly requests: Received[] = [];
  behaviour: Behaviour = () => ({ status: 200 });
  private server: Server | undefined;
  private hanging = new Set<ServerResponse>();
  port = 0;

  get url(): string {
    return `http://127.0.0.1:${this.port}/hook`;
  }

  /** Listen on the remembered port (0 the first time: the OS picks one, which we keep). */
  async listen(): Promise<void> {
    const server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const r: Received = { n: this.requests.length + 1, headers: req.headers, body: Buffer.concat(chunks).toString('utf8'), at: Date.now() };
        this.requests.push(r);
        const reply = this.behaviour(r.n, r);
        if (reply.hang) {
          this.hanging.add(res);
          res.on('close', () => this.hanging.delete(res));
          return;
        }
        r.status = reply.status ?? 200;
        res.writeHead(r.status, { 'content-type': 'text/plain', ...(reply.headers ?? {}) });
        res.end(reply.body ?? (r.status < 300 ? 'ok' : 'no'));
      });
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.port, '127.0.0.1', () => {
        server.off('error', reject);
        resolve();
      });
    });
    this.port = (server.address() as AddressInfo).port;
    this.server = server;
  }

  /** Go down hard: every connection dropped, the port closed (clients get ECONNREFUSED). */
  async close(): Promise<void> {
    const s = this.server;
    if (s === undefined) return;
    this.server = undefined;
    for (const res of this.hanging) res.destroy();
    s.closeAllConnections();
    await new Promise<void>((resolve) => s.close(() => resolve()));
  }

  /** Ids the receiver accepted (answered 2xx), in order, with repeats. */
  acceptedIds(): string[] {
    return this.requests.filter((r) => r.status !== undefined && r.status >= 200 && r.status < 300).map((r) => String(r.headers['webhook-id']));
  }
}

/**
 * Standard Webhooks signature check from the spec ("Signature scheme", "Verifying signatures"):
 * HMAC-SHA256 with the base64-decoded secret after `whsec_`, over `${id}.${timestamp}.${body}`,
 * compared in constant time with each `v1,` entry of the space-separated header.
 */
export function verifySignature(secret: string, headers: IncomingHttpHeaders, body: string): boolean {
  const id = headers['webhook-id'];
  const ts = headers['webhook-timestamp'];
  const sig = headers['webhook-signature'];
  if (typeof id !== 'string' || typeof ts !== 'string' || typeof sig !== 'string') return false;
  if (!/^\d+$/.test(ts)) return false;
  const key = Buffer.from(secret.slice('whsec_'.length), 'base64');
  const expected = createHmac('sha256', key).update(`${id}.${ts}.${body}`).digest();
  for (const entry of sig.split(' ')) {
    const [version, b64] = entry.split(',');
    if (version !== 'v1' || b64 === undefined) continue;
    const got = Buffer.from(b64, 'base64');
    if (got.length === expected.length && timingSafeEqual(got, expected)) return true;
  }
  return false;
}

export const SECRET = 'whsec_' + Buffer.from('mirrorguard-test-secret-32-bytes!').toString('base64');

let seq = 0;
export function finding(over: Partial<Finding> = {}): Finding {
  seq++;
  return {
    id: `f_test${String(seq).padStart(4, '0')}`,
    kind: 'unauthorized-vni',
    severity: 'critical',
    status: 'open',
    firstSeen: '2026-03-01T10:00:00.000Z',
    lastSeen: '2026-03-01T10:00:05.000Z',
    count: 1,
    vni: 5569041,
    sourceIp: '172.31.0.238',
    sessionId: 'tms-0a1b2c3d4e5f60718',
    summary: 'VXLAN from 172.31.0.238 with VNI 5569041 matches no authorized mirror session',
    evidence: { packets: 12 },
    ...over,
  };
}

export function event(type: FindingEventType, f: Finding, at = Date.now(), reason?: FindingEvent['reason']): FindingEvent {
  return { type, finding: f, at, ...(reason ? { reason } : {}) };
}

export async function waitFor(cond: () => boolean | Promise<boolean>, timeoutMs = 10_000, what = 'condition'): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** A pino logger whose lines land in an array, to check what an operator would see. */
export function captureLogger(): { log: Logger; lines: { level: number; msg: string; [k: string]: unknown }[] } {
  const lines: { level: number; msg: string }[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const l of chunk.toString('utf8').split('\n')) if (l.trim()) lines.push(JSON.parse(l) as { level: number; msg: string });
      cb();
    },
  });
  return { log: pino({ level: 'debug' }, stream), lines };
}

/** Fast schedule for tests: 20 ms doubling to 100 ms. */
export const FAST_RETRY = { initialDelayMs: 20, maxDelayMs: 100, multiplier: 2, jitter: 'equal' as const, retryAfterMaxMs: 300 };
