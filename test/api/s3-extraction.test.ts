/**
 * GET /v1/pcap across a fleet's files: this node's own file (on disk), its archived file whose local
 * copy is gone, another node's archived file (never on this disk) and another node's file still open
 * (not in S3 yet). The merge reads the archived ones from S3 (moto) by ranged GETs, and its bytes are
 * exactly what merging the original local files gives; the open one is named in X-Missing-Captures and
 * the audit row; the ledger's extraction record merges both archive records. Read-ahead
 * (src/api/archived-source.ts): larger archived files come in fewer, larger GETs with the same bytes; its
 * bounds (GETs at once, bytes fetched ahead) hold, counted by a ReadObject in front of the real one, with
 * bodies cut short resumed; a client that goes away aborts the GETs in flight and leaves none open.
 */
import { createHash, generateKeyPairSync } from 'node:crypto';
import { copyFileSync, readFileSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { request as httpRequest } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { ARCHIVE_DEFAULTS } from '../../src/archive/config.js';
import { ArchiveService } from '../../src/archive/service.js';
import { ArchivedReads, openArchivedObject, type ReadObject } from '../../src/api/archived-source.js';
import { EXTRACTION_OUTPUT_CHUNK_BYTES, extractionRangeBytes } from '../../src/api/routes/pcap.js';
import { Catalog } from '../../src/collector/catalog.js';
import { keyIdOf } from '../../src/ledger/keys.js';
import { mergeCaptures } from '../../src/pcap/merge.js';
import { openCaptureAsync } from '../../src/pcap/reader.js';
import { Store } from '../../src/store/store.js';
import { createLogger } from '../../src/util/log.js';
import { startMoto, type Moto } from '../helpers/moto.js';
import { describeNeeds } from '../helpers/needs.js';
import { makeTmpDir } from '../helpers/tmp.js';
import { bearer, buildHarness, craftFrames, writeCapture, type Harness } from './helpers.js';

const T = 1_764_000_000;

async function collect(s: Readable): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of s) parts.push(c as Buffer);
  return Buffer.concat(parts);
}

describeNeeds(['s3'], 'extraction over the fleet: archived files merged from S3', () => {
  const { dir, remove } = makeTmpDir('mg-api-s3x-');
  const dirB = join(dir, 'node-b');
  const dirA = join(dir, 'node-a');
  let h: Harness;
  let moto: Moto;
  const services: ArchiveService[] = [];
  const ids: Record<string, number> = {};
  const originals: Record<string, string> = {};
  let openWriter: { close(): Promise<unknown> } | null = null;
  const objects: Record<string, { key: string; versionId: string | null; size: number }> = {};
  let base: ReadObject;

  beforeAll(async () => {
    moto = await startMoto();
    await moto.bucket('mg-ev', { objectLock: true });
    h = buildHarness({ dataDir: dirA });
    const F = craftFrames();
    const node = h.deps.store.nodeId;
    const storeB = new Store(h.deps.store.engine, 'node-b');
    const catalogB = new Catalog(storeB);
    const at = (s: number, ns = 0) => ({ data: F.tcp443!, sec: T + s, nsec: ns });
    // Own file, archived, then its local copy removed.
    const a = await writeCapture(h, { vni: 9, sourceIp: '10.0.0.9', frames: [at(0), at(2), at(4, 5), at(6)], seq: 1 });
    // Another node's file, archived by that node (its disk is not ours).
    const b = await writeCapture({ catalog: catalogB, dataDir: dirB }, { vni: 9, sourceIp: '10.0.0.7', frames: [at(1, 500), at(2, 500), at(4, 5), at(7)], seq: 1 });
    await h.catalog.flush();
    await catalogB.flush();
    const svc = (n: string, store: Store, dataDir: string) => {
      const { privateKey, publicKey } = generateKeyPairSync('ed25519');
      const s = new ArchiveService({
        config: { ...ARCHIVE_DEFAULTS, s3: { bucket: 'mg-ev', prefix: 'ev', region: 'us-east-1', endpoint: moto.endpoint, forcePathStyle: true } },
        key: { privateKey, publicKey, keyId: keyIdOf(publicKey) },
        store,
        dataDir,
        node: n,
        logger: createLogger('silent'),
        client: moto.client(3),
      });
      services.push(s);
      return s;
    };
    const svcA = svc(node, new Store(h.deps.store.engine, node), dirA);
    const svcB = svc('node-b', storeB, dirB);
    for (const s of [svcA, svcB]) {
      expect(await s.sweep()).toBe(1);
      expect(await s.worker.runOnce()).toBe(true);
    }
    // Own file on disk, not archived; another node's file still open there.
    const c = await writeCapture(h, { vni: 9, sourceIp: '10.0.0.8', frames: [at(1), at(3), at(5)], seq: 1 });
    const d = await writeCapture({ catalog: catalogB, dataDir: dirB }, { vni: 9, sourceIp: '10.0.0.6', frames: [at(3, 500)], seq: 1, state: 'open' });
    await h.catalog.flush();
    await catalogB.flush();
    openWriter = d.writer;
    // writeCapture's ids are the catalog queue's handles (per catalog): the rows' ids come from the store.
    for (const [k, f] of Object.entries({ a, c })) ids[k] = (await h.deps.store.captures.byPath(f.path))!.id;
    for (const [k, f] of Object.entries({ b, d })) ids[k] = (await storeB.captures.byPath(f.path))!.id;
    // Two larger files of node B (VNI 10, 6 MB each, interleaved in time) for read-ahead: archived, never on our disk.
    const big = Buffer.alloc(1000);
    F.tcp443!.copy(big);
    const bigFile = (src: string, offNs: number, seq = 1, fromSec = 100) =>
      writeCapture({ catalog: catalogB, dataDir: dirB }, { vni: 10, sourceIp: src, seq, frames: Array.from({ length: 6000 }, (_, i) => ({ data: big, sec: T + fromSec + Math.floor(i / 1000), nsec: (i % 1000) * 1_000_000 + offNs })) });
    const e = await bigFile('10.0.1.1', 0);
    const f = await bigFile('10.0.1.2', 500_000);
    // e's next rotated file: g follows e in time.
    const g = await bigFile('10.0.1.1', 0, 2, 106);
    await catalogB.flush();
    expect(await svcB.sweep()).toBe(3);
    for (let i = 0; i < 3; i++) expect(await svcB.worker.runOnce()).toBe(true);
    for (const [k, x] of Object.entries({ e, f, g })) {
      const row = (await storeB.captures.byPath(x.path))!;
      ids[k] = row.id;
      originals[k] = x.abs;
      objects[k] = { key: row.s3_key!, versionId: row.s3_version_id ?? null, size: row.bytes };
    }
    base = svcB.readObject.bind(svcB);
    // Originals kept for the oracle; A's local copy goes (and the row says so).
    const keep = join(dir, 'a-original.pcap');
    copyFileSync(a.abs, keep);
    Object.assign(originals, { a: keep, b: b.abs, c: c.abs });
    unlinkSync(a.abs);
    await h.deps.store.captures.markLocalRemoved(a.id, Date.now() * 1000);
    h.deps.archive = svcA;
    h.deps.ledger = svcA.ledger;
  }, 60_000);
  afterAll(async () => {
    await openWriter?.close();
    await h?.close();
    for (const s of services) s.client.destroy();
    await moto?.stop();
    remove();
  });

  it('merges local and S3 files in timestamp order, byte for byte the merge of the originals; the open file of another node is named missing', async () => {
    const from = T - 10;
    const to = T + 10;
    const r = await h.app.inject({ url: `/v1/pcap?vni=9&from=${from}&to=${to}`, headers: bearer('auditor') });
    expect(r.statusCode, r.body).toBe(200);
    expect(r.headers['x-missing-captures']).toBe(String(ids.d));
    expect(r.headers['x-capture-files']).toBe('3');
    const expected = await collect(mergeCaptures([originals.a!, originals.b!, originals.c!], { fromSec: from, fromNsec: 0, toSec: to, toNsec: 0 }));
    // Rows come in first-packet order (a, c, b): equal timestamps of two files may come in another order
    // than in this merge, so the records are compared as a set, and their times must not go back.
    const got = await records(r.rawPayload, join(dir, 'got.pcap'));
    const want = await records(expected, join(dir, 'want.pcap'));
    expect(got.length).toBe(11);
    expect(got.map((x) => x.hex).sort()).toEqual(want.map((x) => x.hex).sort());
    for (let i = 1; i < got.length; i++) expect(got[i]!.ns >= got[i - 1]!.ns).toBe(true);
    const sent = createHash('sha256').update(r.rawPayload).digest('hex');
    expect(r.trailers['x-content-sha256']).toBe(sent);
    const audit = (await h.app.inject({ url: `/v1/audit/${r.headers['x-audit-id']}`, headers: bearer('admin') })).json() as { detail: Record<string, unknown> };
    expect(audit.detail).toMatchObject({ complete: true, packets: 11, missingFiles: [ids.d], files: expect.arrayContaining([ids.a, ids.b, ids.c]) });
    expect([...(audit.detail.fromS3 as number[])].sort()).toEqual([ids.a, ids.b].sort());
    const [rec] = await h.deps.store.ledger.findBySha256(sent);
    const seqs = [(await h.deps.store.captures.byId(ids.a!))!.ledger_seq, (await h.deps.store.captures.byId(ids.b!))!.ledger_seq];
    expect(rec).toMatchObject({ kind: 'extraction', size: r.rawPayload.length });
    expect([...rec!.merged].sort()).toEqual(seqs.sort());
  });

  it('a whole archived file of another node goes out as its bytes (the sequential range path reads S3 too)', async () => {
    const r = await h.app.inject({ url: `/v1/pcap?vni=9&sourceIp=10.0.0.7&from=${T - 10}&to=${T + 10}`, headers: bearer('auditor') });
    expect(r.statusCode, r.body).toBe(200);
    expect(r.rawPayload.equals(readFileSync(originals.b!))).toBe(true);
    const audit = (await h.app.inject({ url: `/v1/audit/${r.headers['x-audit-id']}`, headers: bearer('admin') })).json() as { detail: Record<string, unknown> };
    expect(audit.detail).toMatchObject({ fromS3: [ids.b], wholeFiles: 1, complete: true });
  });

  it('read-ahead: large archived files merged with a few large GETs, byte for byte the local merge', async () => {
    const from = T + 90;
    const to = T + 200;
    const r = await h.app.inject({ url: `/v1/pcap?vni=10&from=${from}&to=${to}`, headers: bearer('auditor') });
    expect(r.statusCode, r.body).toBe(200);
    const expected = await collect(mergeCaptures([originals.e!, originals.f!, originals.g!], { fromSec: from, fromNsec: 0, toSec: to, toNsec: 0 }));
    expect(r.rawPayload.length).toBeGreaterThan(18_000_000);
    expect(r.rawPayload.equals(expected)).toBe(true);
    const audit = (await h.app.inject({ url: `/v1/audit/${r.headers['x-audit-id']}`, headers: bearer('admin') })).json() as { detail: { s3: { gets: number; bytes: number }; complete: boolean } };
    expect(audit.detail.complete).toBe(true);
    // Read one merge buffer (1 MiB here) per GET, the files would take 18 or more; growing ranges take fewer.
    const total = objects.e!.size + objects.f!.size + objects.g!.size;
    expect(audit.detail.s3.bytes).toBe(total);
    expect(audit.detail.s3.gets).toBeLessThan(Math.ceil(total / extractionRangeBytes(3)));
  }, 60_000);

  it('read-ahead stays within its GET and byte bounds over many inputs, resumes cut bodies, and gives the same bytes', async () => {
    const chunk = 64 * 1024;
    const budget = 512 * 1024;
    const maxGets = 3;
    // Together (a heap merge of four inputs: the two overlapping objects twice), and in turn (rotated
    // files e and g, whole: streamed as byte ranges, the next one fetched before the first ends).
    for (const sequential of [false, true]) {
      const inputs = sequential ? [objects.e!, objects.g!] : [objects.e!, objects.f!, objects.e!, objects.f!];
      const paths = sequential ? [originals.e!, originals.g!] : [originals.e!, originals.f!, originals.e!, originals.f!];
      const c = counting(base, { cutEvery: 4, cutAfter: 10_000 });
      const reads = new ArchivedReads(c.readObject, { chunkBytes: chunk, maxBytesInFlight: budget, maxGets, maxRangeBytes: 256 * 1024 });
      // Together, the window ends halfway through the files: the merge stops with read-ahead still being fetched.
      const opts = {
        chunkBytes: chunk,
        outputChunkBytes: EXTRACTION_OUTPUT_CHUNK_BYTES,
        limitBytesPerFile: inputs.map((o) => o.size),
        ...(sequential ? { sequential: true, wholeFiles: [6000, 6000] } : { toSec: T + 103, toNsec: 0 }),
      };
      const openers = inputs.map((o) => {
        const i = reads.add(o);
        return () => Promise.resolve(reads.open(i));
      });
      // Equal timestamps (the same object twice) go out in input order, in both merges.
      const merge = mergeCaptures(paths.map((_, i) => `s3://${i}`), { ...opts, openers });
      const got = await collect(merge);
      const want = await collect(mergeCaptures(paths, opts));
      if (sequential) expect(merge.stats.wholeFiles).toBe(2);
      expect(got.equals(want), `sequential ${sequential}`).toBe(true);
      reads.close();
      // Bounds: GETs at once, and bytes asked for and not yet consumed (read-ahead within the budget; the
      // reads the merge waits for, one merge buffer or output chunk each and at most two at once, on top).
      expect(c.stats.peak).toBeLessThanOrEqual(maxGets);
      const slack = 2 * Math.max(chunk, EXTRACTION_OUTPUT_CHUNK_BYTES);
      expect(c.stats.peakBytes).toBeLessThanOrEqual(budget + slack);
      expect(reads.stats.peakBytes).toBeLessThanOrEqual(budget + slack);
      // And it did read ahead (several GETs at once), and resumed the bodies cut short.
      expect(c.stats.peak).toBeGreaterThan(1);
      expect(c.stats.cut).toBeGreaterThan(0);
      expect(reads.stats.bytes).toBeGreaterThan(inputs.reduce((n, o) => n + o.size, 0) / 2);
      // Whole files in turn: every byte fetched once (the header check first, a resumed body, no range fetched twice).
      if (sequential) expect([reads.stats.bytes, reads.stats.dropped]).toEqual([inputs.reduce((n, o) => n + o.size, 0), 0]);
      // Closed: every GET aborted or done, nothing held.
      expect(reads.heldBytes).toBe(0);
      for (let i = 0; i < 100 && c.stats.active > 0; i++) await sleep(20);
      expect(c.stats.active).toBe(0);
      expect(reads.activeGets).toBe(0);
    }
  }, 60_000);

  it('a client that goes away mid-extraction: GETs in flight are aborted, nothing is left open or held', async () => {
    const archive = h.deps.archive!;
    const c = counting(base, { delayMs: 150 });
    h.deps.archive = { setLegalHold: archive.setLegalHold.bind(archive), readObject: c.readObject };
    try {
      await h.app.listen({ port: 0, host: '127.0.0.1' });
      const port = (h.app.server.address() as AddressInfo).port;
      const firstBytes = await new Promise<number>((resolve, reject) => {
        const req = httpRequest({ host: '127.0.0.1', port, path: `/v1/pcap?vni=10&from=${T + 90}&to=${T + 200}`, headers: bearer('auditor') }, (res) => {
          if (res.statusCode !== 200) reject(new Error(`status ${res.statusCode}`));
          res.once('data', (d: Buffer) => {
            // Gone after the first bytes: the merge's read-ahead is still being fetched.
            req.destroy();
            resolve(d.length);
          });
        });
        req.on('error', () => undefined);
        req.end();
      });
      expect(firstBytes).toBeGreaterThan(0);
      for (let i = 0; i < 100 && c.stats.active > 0; i++) await sleep(50);
      expect(c.stats.active).toBe(0);
      expect(c.stats.aborted).toBeGreaterThan(0);
      // The row is finished once the SHA-256 worker has the digest of what was sent: wait for it.
      let audit: { items: { detail: Record<string, unknown> }[] } = { items: [] };
      for (let i = 0; i < 100; i++) {
        audit = (await h.app.inject({ url: '/v1/audit?action=pcap.extract&limit=1', headers: bearer('admin') })).json() as typeof audit;
        if (audit.items[0]?.detail?.packets !== undefined) break;
        await sleep(50);
      }
      expect(audit.items[0]!.detail).toMatchObject({ complete: false });
      expect(audit.items[0]!.detail.s3).toBeDefined();
      // Everything after is as before: the slot is free, the next extraction completes.
      const r = await h.app.inject({ url: `/v1/pcap?vni=10&sourceIp=10.0.1.1&from=${T + 90}&to=${T + 106}`, headers: bearer('auditor') });
      expect(r.statusCode).toBe(200);
      expect(r.rawPayload.equals(readFileSync(originals.e!))).toBe(true);
      expect(c.stats.active).toBe(0);
    } finally {
      h.deps.archive = archive;
    }
  }, 60_000);

  // Last of the tests against moto: a restarted moto comes back empty.
  it('S3 away: the extraction is refused before any byte (500 MG_ERR_CAPTURE_READ naming the object), and the refusal is audited', async () => {
    await moto.stop();
    try {
      const r = await h.app.inject({ url: `/v1/pcap?vni=9&sourceIp=10.0.0.7&from=${T - 10}&to=${T + 10}`, headers: bearer('auditor') });
      expect(r.statusCode).toBe(500);
      expect(r.json()).toMatchObject({ code: 'MG_ERR_CAPTURE_READ', message: expect.stringContaining('s3://mg-ev/ev/vni=9/src=10.0.0.7/') });
      const audit = (await h.app.inject({ url: '/v1/audit?action=pcap.extract&limit=1', headers: bearer('admin') })).json() as { items: { status: number; detail: Record<string, unknown> }[] };
      expect(audit.items[0]).toMatchObject({ status: 500, detail: { error: 'MG_ERR_CAPTURE_READ' } });
    } finally {
      await moto.start();
    }
  }, 60_000);

  it('the handle reads any span by ranged GETs and resumes a body cut short', async () => {
    const bytes = readFileSync(originals.b!);
    let cuts = 1;
    const calls: [number, number][] = [];
    const readObject = async (_k: string, _v: string | null, start: number, end: number) => {
      calls.push([start, end]);
      const body = bytes.subarray(start, end + 1);
      // The first body breaks off after 10 bytes, as a dropped connection does.
      if (cuts-- > 0) return Readable.from([body.subarray(0, 10)]);
      return Readable.from([body.subarray(0, 7), body.subarray(7)]);
    };
    const fh = openArchivedObject(readObject, { key: 'k', versionId: null, size: bytes.length }, { readAhead: false });
    const buf = Buffer.alloc(bytes.length + 10);
    expect((await fh.read(buf, 0, 50, null)).bytesRead).toBe(50);
    expect(calls).toEqual([
      [0, 49],
      [10, 49],
    ]);
    expect((await fh.read(buf, 50, bytes.length, null)).bytesRead).toBe(bytes.length - 50);
    expect(buf.subarray(0, bytes.length).equals(bytes)).toBe(true);
    expect((await fh.read(buf, 0, 10, null)).bytesRead).toBe(0);
    // The reader parses through it like a file.
    const reader = await openCaptureAsync('s3://k', { chunkBytes: 64 }, async () => openArchivedObject(readObject, { key: 'k', versionId: null, size: bytes.length }, { chunkBytes: 64 }));
    let n = 0;
    while (await reader.next()) n++;
    expect(n).toBe(4);
    expect(reader.truncated).toBe(false);
    // An object shorter than the catalog says fails the read, naming it.
    const short = openArchivedObject(async (_k, _v, s, e) => Readable.from([bytes.subarray(s, Math.min(e + 1, 30))]), { key: 'short-key', versionId: null, size: bytes.length });
    await expect(short.read(Buffer.alloc(100), 0, 100, 0)).rejects.toThrow(/short-key/);
  });
});

/**
 * A ReadObject in front of `base` that counts GETs in flight (from the call until the body closes) and
 * the bytes they ask for, optionally waits `delayMs` before each (honouring the abort signal), and cuts
 * every `cutEvery`-th body after `cutAfter` bytes, as a dropped connection does.
 */
function counting(base: ReadObject, o: { delayMs?: number; cutEvery?: number; cutAfter?: number }) {
  const stats = { calls: 0, active: 0, peak: 0, bytes: 0, peakBytes: 0, aborted: 0, cut: 0 };
  const readObject: ReadObject = async (key, versionId, start, end, signal) => {
    const n = ++stats.calls;
    const len = end - start + 1;
    stats.active++;
    stats.bytes += len;
    stats.peak = Math.max(stats.peak, stats.active);
    stats.peakBytes = Math.max(stats.peakBytes, stats.bytes);
    let done = false;
    const finish = () => {
      if (done) return;
      done = true;
      if (signal?.aborted) stats.aborted++;
      stats.active--;
      stats.bytes -= len;
    };
    try {
      if (o.delayMs) await sleep(o.delayMs, undefined, signal ? { signal } : {});
      const body = (await base(key, versionId, start, end, signal)) as Readable;
      if (o.cutEvery === undefined || n % o.cutEvery !== 0 || len <= o.cutAfter!) {
        body.once('close', finish);
        return body;
      }
      stats.cut++;
      const cut = Readable.from(
        (async function* () {
          let got = 0;
          for await (const c of body as AsyncIterable<Buffer>) {
            if (got + c.length >= o.cutAfter!) {
              yield c.subarray(0, o.cutAfter! - got);
              break;
            }
            got += c.length;
            yield c;
          }
        })(),
      );
      cut.once('close', () => {
        body.destroy();
        finish();
      });
      return cut;
    } catch (e) {
      finish();
      throw e;
    }
  };
  return { readObject, stats };
}

/** Each record (16-byte header + frame) as hex, in file order, with its time in ns. */
async function records(pcap: Buffer, path: string): Promise<{ ns: bigint; hex: string }[]> {
  writeFileSync(path, pcap);
  const r = await openCaptureAsync(path);
  const out: { ns: bigint; hex: string }[] = [];
  while (await r.next()) {
    const rec = r.record;
    out.push({ ns: BigInt(rec.tsSec) * 1_000_000_000n + BigInt(rec.tsNsec), hex: rec.buf.subarray(rec.off - 16, rec.off + rec.caplen).toString('hex') });
  }
  await r.close();
  return out;
}
