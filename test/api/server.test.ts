/**
 * The API on a real socket: what app.inject() cannot show (the listening log line, TLS, a client that
 * stops reading or goes away in the middle of an extraction).
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { get as httpGet, type IncomingMessage, type ClientRequest } from 'node:http';
import { get as httpsGet } from 'node:https';
import { dirname, join } from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import { startApi } from '../../src/api/app.js';
import { captureRelPath } from '../../src/collector/layout.js';
import { GLOBAL_HEADER_BYTES, globalHeader, RECORD_HEADER_BYTES, writeRecordHeader } from '../../src/pcap/format.js';
import { itNeeds } from '../helpers/needs.js';
import { makeTmpDir } from '../helpers/tmp.js';
import { bearer, buildHarness, TOKENS, type Harness } from './helpers.js';

const T = 1_764_000_000;

function capturingLogger(): { logger: pino.Logger; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const l of chunk.toString('utf8').split('\n')) if (l.trim()) lines.push(JSON.parse(l) as Record<string, unknown>);
      cb();
    },
  });
  return { logger: pino({ level: 'info' }, sink), lines };
}

/** A large capture (crafted record by record) in the catalog, closed, with its SHA-256. */
function bigCapture(h: Harness, frames: number, frameBytes: number, sourceIp = '10.0.0.9', offsetNs = 0): { id: number; bytes: number; abs: string } {
  const rel = captureRelPath(9, sourceIp, T, offsetNs, 0, 1);
  const abs = join(h.dataDir, rel);
  mkdirSync(dirname(abs), { recursive: true });
  const buf = Buffer.alloc(GLOBAL_HEADER_BYTES + frames * (RECORD_HEADER_BYTES + frameBytes));
  globalHeader().copy(buf, 0);
  let off = GLOBAL_HEADER_BYTES;
  for (let i = 0; i < frames; i++) {
    off = writeRecordHeader(buf, off, T + Math.floor(i / 1000), (i % 1000) * 1_000_000 + offsetNs, frameBytes, frameBytes);
    buf.writeUInt32BE(i, off + 14);
    off += frameBytes;
  }
  writeFileSync(abs, buf);
  const id = h.catalog.open({ path: rel, vni: 9, sourceIp, sessionId: null, worker: 0, createdUs: T * 1e6, firstUs: T * 1e6 });
  h.catalog.close(id, { closedUs: (T + 100) * 1e6, firstUs: T * 1e6, lastUs: (T + 30) * 1e6, packets: frames, bytes: buf.length, sha256: createHash('sha256').update(buf).digest('hex'), reason: 'size' });
  return { id, bytes: buf.length, abs };
}

function request(port: number, path: string): Promise<{ req: ClientRequest; res: IncomingMessage }> {
  return new Promise((resolve, reject) => {
    const req = httpGet({ host: '127.0.0.1', port, path, headers: bearer('auditor') }, (res) => resolve({ req, res }));
    req.on('error', reject);
  });
}

async function body(res: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of res) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

async function until(cond: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('the API on a socket', () => {
  const { dir, remove } = makeTmpDir('mg-api-server-');
  afterAll(remove);

  it('logs "api listening" with its port, bounds concurrent extractions (429 + Retry-After), and frees the slot when a client goes away', async () => {
    const { logger, lines } = capturingLogger();
    const h = buildHarness({ dataDir: dir, api: { maxConcurrentExtractions: 1 }, logger });
    // 32 MiB: far more than the socket buffers between a client that stops reading and the server.
    const big = bigCapture(h, 22_000, 1500);
    const api = await startApi(h.app, { listen: '127.0.0.1:0' });
    const listening = lines.find((l) => l.msg === 'api listening');
    expect(listening).toMatchObject({ port: api.port, host: '127.0.0.1', tls: false });
    expect(api.port).toBeGreaterThan(0);

    const q = `/v1/pcap?vni=9&from=${T}&to=${T + 60}`;
    const first = await request(api.port, q);
    expect(first.res.statusCode).toBe(200);
    first.res.pause();
    const auditId = Number(first.res.headers['x-audit-id']);

    const second = await request(api.port, q);
    expect(second.res.statusCode).toBe(429);
    expect(second.res.headers['retry-after']).toBe('5');
    expect(JSON.parse((await body(second.res)).toString()).code).toBe('MG_ERR_API_BUSY');

    // The first client disconnects mid-transfer: its merge stops, its slot frees, its audit row says so.
    first.req.destroy();
    const row = () => h.db.prepare('SELECT bytes, sha256, detail FROM audit_log WHERE id = ?').get(auditId) as { bytes: number | null; sha256: string | null; detail: string };
    await until(() => row().sha256 !== null);
    const d = JSON.parse(row().detail) as { complete: boolean; packets: number };
    expect(d.complete).toBe(false);
    expect(row().bytes).toBeGreaterThan(0);
    expect(row().bytes).toBeLessThan(big.bytes);
    // The digest and the size name the same bytes: the body's first `bytes` (here the file's).
    expect(row().sha256).toBe(createHash('sha256').update(readFileSync(big.abs).subarray(0, row().bytes!)).digest('hex'));

    const third = await request(api.port, q);
    expect(third.res.statusCode).toBe(200);
    const all = await body(third.res);
    expect(all.length).toBe(big.bytes);
    // One file, whole window: the extraction is the file itself, byte for byte (its records went out in runs).
    expect(all.equals(readFileSync(big.abs))).toBe(true);
    expect(third.res.trailers['x-content-sha256']).toBe(createHash('sha256').update(all).digest('hex'));
    const status = await request(api.port, '/v1/status');
    expect(JSON.parse((await body(status.res)).toString()).extractions).toEqual({ active: 0, max: 1, started: 2, refusedBusy: 1 });
    await api.close();
    h.db.close();
  }, 60_000);

  // The body hashed on a threadpool thread (the default with the addon), by the merge on its thread, or in
  // the worker thread: the same bytes and digest.
  it.each(['thread', 'merge', 'worker'])('reuses output chunks only once the socket took them: a slow reader gets what app.inject() gets (SHA-256 in the %s)', async (hashIn) => {
    const saved = process.env.MIRRORGUARD_EXTRACT_HASH;
    process.env.MIRRORGUARD_EXTRACT_HASH = hashIn;
    const h = buildHarness({ dataDir: join(dir, `slow-${hashIn}`) });
    // Two sources interleaved packet by packet (0.5 ms apart): a heap merge, ~13 MB of output.
    bigCapture(h, 4000, 1500, '10.0.0.9', 0);
    bigCapture(h, 4000, 1500, '10.0.0.10', 500_000);
    const q = `/v1/pcap?vni=9&from=${T}&to=${T + 60}`;
    const injected = await h.app.inject({ url: q, headers: bearer('auditor') });
    expect(injected.statusCode).toBe(200);
    const api = await startApi(h.app, { listen: '127.0.0.1:0' });
    const { res } = await request(api.port, q);
    expect(res.statusCode).toBe(200);
    const chunks: Buffer[] = [];
    for await (const c of res) {
      chunks.push(c as Buffer);
      // Stop now and then, so that the socket buffers fill and the server's chunks wait in them.
      if (chunks.length % 64 === 0) await new Promise((r) => setTimeout(r, 5));
    }
    const all = Buffer.concat(chunks);
    expect(all.length).toBe(24 + 8000 * (16 + 1500));
    expect(all.equals(injected.rawPayload)).toBe(true);
    expect(res.trailers['x-content-sha256']).toBe(createHash('sha256').update(all).digest('hex'));
    const audit = () => h.db.prepare('SELECT bytes, sha256 FROM audit_log WHERE id = ?').get(Number(res.headers['x-audit-id'])) as { bytes: number | null; sha256: string | null };
    await until(() => audit().sha256 !== null);
    expect(audit()).toEqual({ bytes: all.length, sha256: res.trailers['x-content-sha256'] });
    await api.close();
    h.db.close();
    if (saved === undefined) delete process.env.MIRRORGUARD_EXTRACT_HASH;
    else process.env.MIRRORGUARD_EXTRACT_HASH = saved;
  }, 60_000);

  itNeeds(['openssl'], 'serves HTTPS with the configured certificate and key', async () => {
    const cert = join(dir, 'api.crt');
    const key = join(dir, 'api.key');
    execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=mirrorguard-test', '-addext', 'subjectAltName=IP:127.0.0.1'], { stdio: 'ignore' });
    const { logger, lines } = capturingLogger();
    const h = buildHarness({ dataDir: join(dir, 'tls'), api: { tls: { certFile: cert, keyFile: key } }, logger });
    const api = await startApi(h.app, { listen: '127.0.0.1:0', tls: { certFile: cert, keyFile: key } });
    expect(lines.find((l) => l.msg === 'api listening')).toMatchObject({ port: api.port, tls: true });
    const res = await new Promise<IncomingMessage>((resolve, reject) => {
      httpsGet({ host: '127.0.0.1', port: api.port, path: '/v1/status', ca: readFileSync(cert), headers: { authorization: `Bearer ${TOKENS.auditor}` } }, resolve).on('error', reject);
    });
    expect(res.statusCode).toBe(200);
    expect(JSON.parse((await body(res)).toString())).toHaveProperty('counters');
    // The console (docs/console.md) is on the same listener, over the same TLS.
    const page = await new Promise<IncomingMessage>((resolve, reject) => {
      httpsGet({ host: '127.0.0.1', port: api.port, path: '/', ca: readFileSync(cert) }, resolve).on('error', reject);
    });
    expect(page.statusCode).toBe(200);
    expect(page.headers['content-security-policy']).toContain("frame-ancestors 'none'");
    expect((await body(page)).toString()).toContain('/console/app.js');
    // An extraction over TLS: output chunks are reused once the TLS socket took them; the bytes are the file's.
    const big = bigCapture(h, 6000, 1500);
    const pcap = await new Promise<IncomingMessage>((resolve, reject) => {
      httpsGet({ host: '127.0.0.1', port: api.port, path: `/v1/pcap?vni=9&from=${T}&to=${T + 60}`, ca: readFileSync(cert), headers: { authorization: `Bearer ${TOKENS.auditor}` } }, resolve).on('error', reject);
    });
    expect(pcap.statusCode).toBe(200);
    const got = await body(pcap);
    expect(got.equals(readFileSync(big.abs))).toBe(true);
    expect(pcap.trailers['x-content-sha256']).toBe(createHash('sha256').update(got).digest('hex'));
    // Plain HTTP to the TLS port is not answered.
    await expect(request(api.port, '/healthz')).rejects.toThrow(/socket hang up|ECONNRESET/);
    await api.close();
    h.db.close();
  }, 60_000);
});
