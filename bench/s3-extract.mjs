#!/usr/bin/env node
// Extraction of archived files from S3 (moto_server), without and with read-ahead, with and without a
// simulated per-request latency: what ArchivedReads (src/api/archived-source.ts) buys.
//
// Method (docs/performance.md, "Extraction from S3"):
//   1. Start moto_server on 127.0.0.1 (an ephemeral port) and, in front of it, a small HTTP proxy in this
//      process that holds every request for --latency-ms (30 ms: S3's first-byte latency is 20-50 ms)
//      before passing it on. Upload two sets of classic nanosecond pcap files (512 B frames):
//        rotated:     --files files of --mib MiB each that follow each other in time (one source);
//        interleaved: --files files of --mib MiB each, one packet of each in turn (overlapping);
//        many:        --many files of --many-kib KiB each that follow each other in time (an hour of
//                     rotated files: the merge checks every file's header first, then streams them in turn).
//   2. Merge each set in this process exactly as GET /v1/pcap does (src/pcap/merge.ts with the route's
//      read and output chunk sizes; rotated: its sequential plan, every file whole), reading every file
//      through ArchivedReads' handles (MergeOptions.openers), into a sink that hashes the bytes:
//        before: readAhead false (one GET per read of exactly the bytes asked: the code before read-ahead);
//        after:  the defaults (32 MiB and 8 GETs per extraction, 2 ranges ahead per input, up to 8 MiB).
//      Each combination (set x latency x mode) --reps times, interleaved; medians of wall time, and the
//      GETs each run sent (counted by ArchivedReads and, independently, by the proxy).
//   3. Every run's SHA-256 must equal that of the same merge over the local files.
//
// node bench/s3-extract.mjs [--files 8] [--mib 4] [--many 200] [--many-kib 256] [--reps 3] [--latency-ms 30]
//                           [--sets rotated,interleaved,many]   MG_BENCH_DEBUG=1: ArchivedReads state every 2 s
//   (needs `npx tsc -p tsconfig.json` first: it imports dist/)
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { closeSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { createServer, request as httpRequest, Agent } from 'node:http';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { helpFromHeader } from './help.mjs';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const FRAME_BYTES = 512;
const T0 = 1_764_000_000;

helpFromHeader(import.meta.url);
const { values: args } = parseArgs({
  options: {
    files: { type: 'string', default: '8' },
    mib: { type: 'string', default: '4' },
    reps: { type: 'string', default: '3' },
    many: { type: 'string', default: '200' },
    'many-kib': { type: 'string', default: '256' },
    sets: { type: 'string', default: 'rotated,interleaved,many' },
    'latency-ms': { type: 'string', default: '30' },
  },
});
const NFILES = Number(args.files);
const MIB = Number(args.mib);
const REPS = Number(args.reps);
const LATENCY = Number(args['latency-ms']);
const MANY = Number(args.many);
const MANY_KIB = Number(args['many-kib']);

const d = (p) => import(pathToFileURL(join(ROOT, 'dist', p)).href);
const [{ mergeCaptures }, { ArchivedReads }, { extractionChunkBytes, extractionRangeBytes, EXTRACTION_OUTPUT_CHUNK_BYTES }, { writeGlobalHeader }] = await Promise.all([d('pcap/merge.js'), d('api/archived-source.js'), d('api/routes/pcap.js'), d('pcap/format.js')]);
const { S3Client, CreateBucketCommand, PutObjectCommand, GetObjectCommand } = await import('@aws-sdk/client-s3');

/** A classic little-endian nanosecond pcap of n frames, record i at time t(i) ns after T0. */
function writePcap(path, n, t) {
  const per = 16 + FRAME_BYTES;
  const buf = Buffer.alloc(24 + n * per);
  writeGlobalHeader(buf, 0);
  let o = 24;
  for (let i = 0; i < n; i++) {
    const ns = t(i);
    buf.writeUInt32LE(T0 + Math.floor(ns / 1e9), o);
    buf.writeUInt32LE(ns % 1e9, o + 4);
    buf.writeUInt32LE(FRAME_BYTES, o + 8);
    buf.writeUInt32LE(FRAME_BYTES, o + 12);
    buf.set([0x02, 0, 0, 0, 0, 2, 0x02, 0, 0, 0, 0, 1, 0x08, 0x00], o + 16);
    buf.writeUInt32BE(i, o + 16 + 42);
    o += per;
  }
  const fd = openSync(path, 'w');
  writeSync(fd, buf);
  closeSync(fd);
  return buf.length;
}

function startMoto() {
  return new Promise((resolve, reject) => {
    const proc = spawn('moto_server', ['-H', '127.0.0.1', '-p', '0'], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, PYTHONUNBUFFERED: '1' } });
    let out = '';
    const onData = (b) => {
      out += b.toString();
      const m = /Running on http:\/\/127\.0\.0\.1:(\d+)/.exec(out);
      if (m) resolve({ proc, port: Number(m[1]) });
    };
    proc.stdout.on('data', onData);
    proc.stderr.on('data', onData);
    proc.once('exit', (c) => reject(new Error(`moto_server exited (${c}): ${out}`)));
    proc.once('error', reject);
  });
}

/** An HTTP proxy to 127.0.0.1:port that holds each request `delay()` ms first; counts the GETs. */
function startProxy(port, delay) {
  const agent = new Agent({ keepAlive: true, maxSockets: 64 });
  const stats = { gets: 0 };
  const server = createServer((req, res) => {
    if (req.method === 'GET') stats.gets++;
    setTimeout(() => {
      const up = httpRequest({ host: '127.0.0.1', port, method: req.method, path: req.url, headers: req.headers, agent }, (r) => {
        res.writeHead(r.statusCode, r.headers);
        r.pipe(res);
      });
      up.on('error', () => res.destroy());
      res.on('close', () => up.destroy());
      req.pipe(up);
    }, delay());
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve({ server, agent, stats, port: server.address().port })));
}

const client = (port) =>
  new S3Client({ endpoint: `http://127.0.0.1:${port}`, region: 'us-east-1', forcePathStyle: true, credentials: { accessKeyId: 'testing', secretAccessKey: 'testing' }, requestChecksumCalculation: 'WHEN_REQUIRED', responseChecksumValidation: 'WHEN_SUPPORTED', maxAttempts: 1 });

function sink() {
  const h = createHash('sha256');
  let bytes = 0;
  const w = new Writable({
    write(c, _e, cb) {
      h.update(c);
      bytes += c.length;
      cb();
    },
  });
  return { w, digest: () => h.digest('hex'), bytes: () => bytes };
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
};

const dir = mkdtempSync(join(tmpdir(), 'mg-bench-s3x-'));
let moto = null;
let proxy = null;
try {
  moto = await startMoto();
  let latency = 0;
  proxy = await startProxy(moto.port, () => latency);
  const direct = client(moto.port);
  await direct.send(new CreateBucketCommand({ Bucket: 'bench' }));
  const frames = Math.floor((MIB * 1024 * 1024) / (16 + FRAME_BYTES));
  const sets = { rotated: [], interleaved: [], many: [] };
  const put = async (name, f, n, t) => {
    const path = join(dir, `${name}-${f}.pcap`);
    const size = writePcap(path, n, t);
    const key = `${name}/${f}.pcap`;
    await direct.send(new PutObjectCommand({ Bucket: 'bench', Key: key, Body: readFileSync(path) }));
    sets[name].push({ path, key, size, packets: n });
  };
  for (let f = 0; f < NFILES; f++) {
    await put('rotated', f, frames, (i) => (f * frames + i) * 1000);
    await put('interleaved', f, frames, (i) => (i * NFILES + f) * 1000);
  }
  const small = Math.floor((MANY_KIB * 1024) / (16 + FRAME_BYTES));
  if (args.sets.includes("many")) for (let f = 0; f < MANY; f++) await put('many', f, small, (i) => (f * small + i) * 1000);
  const wanted = new Set(args.sets.split(','));
  for (const k of Object.keys(sets)) if (!wanted.has(k) || sets[k].length === 0) delete sets[k];
  const viaProxy = client(proxy.port);
  const readObject = (key, versionId, start, end, signal) =>
    viaProxy.send(new GetObjectCommand({ Bucket: 'bench', Key: key, Range: `bytes=${start}-${end}` }), signal ? { abortSignal: signal } : {}).then((r) => r.Body);

  const mergeOpts = (name, files) => ({
    ...(name !== 'interleaved' ? { sequential: true, wholeFiles: files.map((f) => f.packets) } : {}),
    limitBytesPerFile: files.map((f) => f.size),
    chunkBytes: extractionChunkBytes(files.length),
    outputChunkBytes: EXTRACTION_OUTPUT_CHUNK_BYTES,
  });
  const oracle = {};
  for (const [name, files] of Object.entries(sets)) {
    const s = sink();
    await pipeline(mergeCaptures(files.map((f) => f.path), mergeOpts(name, files)), s.w);
    oracle[name] = s.digest();
  }

  const results = [];
  for (const [name, files] of Object.entries(sets)) {
    for (const lat of [0, LATENCY]) {
      const runs = { before: [], after: [] };
      for (let rep = 0; rep < REPS; rep++) {
        for (const mode of ['before', 'after']) {
          latency = lat;
          const reads = new ArchivedReads(readObject, { chunkBytes: extractionRangeBytes(files.length), readAhead: mode === 'after' });
          const openers = files.map((f) => {
            const i = reads.add({ key: f.key, versionId: null, size: f.size });
            return () => Promise.resolve(reads.open(i));
          });
          const proxied = proxy.stats.gets;
          const s = sink();
          const t0 = process.hrtime.bigint();
          const dbg = process.env.MG_BENCH_DEBUG ? setInterval(() => process.stderr.write(`${name} ${mode} lat ${lat}: ${JSON.stringify(reads.stats)} active ${reads.activeGets} held ${reads.heldBytes} queue ${reads.queue?.length}\n`), 2000) : null;
          await pipeline(mergeCaptures(files.map((f) => `s3://bench/${f.key}`), { ...mergeOpts(name, files), openers }), s.w);
          const ms = Number(process.hrtime.bigint() - t0) / 1e6;
          if (dbg) clearInterval(dbg);
          reads.close();
          if (s.digest() !== oracle[name]) throw new Error(`${name} ${mode}: output differs from the local merge`);
          runs[mode].push({ ms, gets: reads.stats.gets, proxied: proxy.stats.gets - proxied, peakGets: reads.stats.peakGets, peakMiB: reads.stats.peakBytes / 1048576 });
        }
      }
      const row = { set: name, latencyMs: lat, files: files.length, mib: files.reduce((n, f) => n + f.size, 0) / 1048576 };
      for (const mode of ['before', 'after']) {
        const r = runs[mode];
        row[mode] = { ms: median(r.map((x) => x.ms)), gets: median(r.map((x) => x.gets)), proxied: median(r.map((x) => x.proxied)), peakGets: Math.max(...r.map((x) => x.peakGets)), peakMiB: Math.max(...r.map((x) => x.peakMiB)) };
      }
      row.speedup = row.before.ms / row.after.ms;
      results.push(row);
      process.stderr.write(`${name} latency ${lat} ms: before ${row.before.ms.toFixed(0)} ms / ${row.before.gets} GETs (proxy saw ${row.before.proxied}), after ${row.after.ms.toFixed(0)} ms / ${row.after.gets} GETs (proxy saw ${row.after.proxied})\n`);
    }
  }
  const lines = [
    `S3 extraction: median of ${REPS} runs, output checked against the local merge`,
    '| files | MiB | latency per request | before: wall, GETs | after: wall, GETs | before / after | after: peak GETs, peak MiB held |',
    '|---|---:|---:|---:|---:|---:|---:|',
    ...results.map((r) => `| ${r.set} (${r.files}) | ${r.mib.toFixed(0)} | ${r.latencyMs} ms | ${r.before.ms.toFixed(0)} ms, ${r.before.gets} | ${r.after.ms.toFixed(0)} ms, ${r.after.gets} | ${r.speedup.toFixed(1)}x | ${r.after.peakGets}, ${r.after.peakMiB.toFixed(1)} |`),
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
  viaProxy.destroy();
  direct.destroy();
} finally {
  proxy?.server.close();
  proxy?.server.closeAllConnections?.();
  proxy?.agent.destroy();
  if (moto) {
    moto.proc.kill('SIGTERM');
    await new Promise((r) => (moto.proc.exitCode !== null ? r() : moto.proc.once('exit', r)));
  }
  rmSync(dir, { recursive: true, force: true });
}
