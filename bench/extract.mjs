#!/usr/bin/env node
// Extraction through the HTTP API against mergecap (whole window) and `mergecap | tcpdump` (filtered).
//
// Method (docs/performance.md, "Extraction"):
//   1. A child process (this file with `serve DIR`) writes two sets of capture files and catalogs them
//      the way the collector does, then serves the real API (dist/) on 127.0.0.1:
//        interleaved: 8 sources of one VNI, 50,000 frames of 512 B each, interleaved in time (one packet
//                     of each source in turn), one file per source: 8 overlapping files;
//        rotated:     one source, 400,000 frames in 8 rotated files that follow each other in time.
//      Each inner frame is UDP 10.0.0.1:40000 -> 10.0.0.2:(1000 + i % 100): `port 1007` keeps 1 %.
//   2. For each scenario and each tool, interleaved repetitions (ours, mergecap, ours, mergecap ...):
//        ours:     curl -o FILE 'GET /v1/pcap?vni=..&from=..&to=..[&filter=port 1007]' (the body is
//                  hashed on the server and sent with its SHA-256 trailer, as in production);
//        mergecap: mergecap -F nsecpcap -w FILE files... (-F pcap would rewrite the timestamps in microseconds);
//        filtered: sh -c 'mergecap -F nsecpcap -w - files... | tcpdump -r - -w FILE "port 1007"'.
//      Wall time from spawn to exit of the client (curl) or the tool pipeline; the medians are compared
//      as ratios (tool time / our time: 1.0 = as fast, above 1 = faster than the tool).
//   3. The outputs are checked: our whole-window output is byte for byte mergecap's -F pcap output
//      (after the global header), and the filtered packet counts agree.
//   4. The transfer's own floor (whole-window rows): a third process (this file with `floor FILE...`)
//      holds mergecap's output in memory and sends it to the same curl command as HTTP/1.1 chunked,
//      512 KiB per write, with a trailer: an HTTP server with no merge, no reads and no hash to do.
//      Its time, in the same repetitions, shows what curl and the loopback transfer cost alone, so
//      `floor / ours` is how close our server comes to free, and `tool / floor` what the goal allows.
//
// Standalone: node bench/extract.mjs [--reps 7] [--frames 50000] [--files 8] [--quick]
//             [--only interleaved|rotated] [--filter both|yes|no] [--js-merge | --worker-hash]
//   --js-merge: a second server on the same files with the native merge step turned off
//               (MIRRORGUARD_NATIVE_MERGE pointing nowhere), its curl runs alternated with the first's
//               and the tool's: the JavaScript merge and the native step side by side in one run.
//   --worker-hash: the same, the second server hashing the body in its worker thread
//               (MIRRORGUARD_EXTRACT_HASH=worker) instead of on a threadpool thread (the default with the
//               addon); --merge-hash: the second server hashing it in the merge, on the main thread
//               (MIRRORGUARD_EXTRACT_HASH=merge, the default before); with MG_BENCH_SECOND_ENV='{"K":"V"}'
//               the second server gets that environment instead (an A/B of any knob read from it;
//               MG_BENCH_SECOND_ENV='{}' measures the harness's own bias between the two servers).
//   MG_BENCH_CPU_PROF=DIR profiles the server (node --cpu-prof), MG_BENCH_NODE_FLAGS adds node flags.
// From npm run bench: runExtraction() below.
import { spawn, spawnSync } from 'node:child_process';
import { closeSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, statSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const { writeGlobalHeader } = await import(pathToFileURL(join(ROOT, 'dist', 'pcap', 'format.js')).href);
const T0 = 1_764_000_000;
const VNI_INTERLEAVED = 4242;
const VNI_ROTATED = 4343;
const FRAME_BYTES = 512;
const FILTER = 'port 1007';
const TOKEN = 'bench-auditor-token-0123456789abcdef';

// ---- the server child ---------------------------------------------------------------------------------
/** An Ethernet/IPv4/UDP frame of FRAME_BYTES, UDP 10.0.0.1:40000 -> 10.0.0.2:dport, with a sequence number. */
function frameTemplate() {
  const f = Buffer.alloc(FRAME_BYTES);
  f.set([0x02, 0, 0, 0, 0, 2, 0x02, 0, 0, 0, 0, 1, 0x08, 0x00], 0);
  const ip = 14;
  f[ip] = 0x45;
  f.writeUInt16BE(FRAME_BYTES - 14, ip + 2);
  f[ip + 8] = 64;
  f[ip + 9] = 17;
  f.set([10, 0, 0, 1, 10, 0, 0, 2], ip + 12);
  const udp = ip + 20;
  f.writeUInt16BE(40000, udp);
  f.writeUInt16BE(FRAME_BYTES - 34, udp + 4);
  return f;
}

/** Write one classic nanosecond pcap with records built by rec(i) -> [sec, nsec, dport, seq]. */
function writePcap(path, n, rec) {
  mkdirSync(dirname(path), { recursive: true });
  const fd = openSync(path, 'w');
  const tpl = frameTemplate();
  const per = 16 + FRAME_BYTES;
  const batch = 2048;
  const buf = Buffer.alloc(24 + batch * per);
  writeGlobalHeader(buf, 0);
  let o = 24;
  let first = null;
  let last = null;
  for (let i = 0; i < n; i++) {
    const [sec, nsec, dport, seq] = rec(i);
    first ??= [sec, nsec];
    last = [sec, nsec];
    buf.writeUInt32LE(sec, o);
    buf.writeUInt32LE(nsec, o + 4);
    buf.writeUInt32LE(FRAME_BYTES, o + 8);
    buf.writeUInt32LE(FRAME_BYTES, o + 12);
    tpl.copy(buf, o + 16);
    buf.writeUInt16BE(dport, o + 16 + 36);
    buf.writeUInt32BE(seq, o + 16 + 42);
    o += per;
    if (o + per > buf.length) {
      writeSync(fd, buf, 0, o);
      o = 0;
    }
  }
  if (o > 0) writeSync(fd, buf, 0, o);
  closeSync(fd);
  return { first, last, bytes: statSync(path).size, packets: n };
}

async function serve(dir, frames, nfiles, reuse) {
  const d = (p) => import(pathToFileURL(join(ROOT, 'dist', p)).href);
  const [{ buildApi }, { parseApiConfig, sha256Digest }, { Catalog }, { captureRelPath }, { Detector }, { openDb }, { storeFromDb }, { toMicros }] = await Promise.all([
    d('api/app.js'),
    d('api/config.js'),
    d('collector/catalog.js'),
    d('collector/layout.js'),
    d('detect/detector.js'),
    d('store/db.js'),
    d('store/store.js'),
    d('util/clock.js'),
  ]);
  const db = openDb(join(dir, 'catalog.db'));
  const store = storeFromDb(db, 'bench', 'sqlite:');
  const catalog = new Catalog(store);
  const detector = new Detector({ store, queue: catalog.queue, manifest: null, silentAfterMs: 0 });
  const scenarios = {};
  const add = (name, vni, sourceIp, seq, n, rec) => {
    const [s0, n0] = rec(0);
    const rel = captureRelPath(vni, sourceIp, s0, n0, 0, seq);
    const abs = join(dir, rel);
    // reuse: a second server on the files (and catalog) the first one wrote.
    const info = reuse ? { first: rec(0).slice(0, 2), last: rec(n - 1).slice(0, 2), bytes: statSync(abs).size, packets: n } : writePcap(abs, n, rec);
    (scenarios[name] ??= { vni, files: [], packets: 0, bytes: 0 }).files.push(abs);
    scenarios[name].packets += n;
    scenarios[name].bytes += info.bytes;
    if (reuse) return;
    const us = (t) => toMicros(t[0], t[1]);
    const id = catalog.open({ path: rel, vni, sourceIp, sessionId: null, worker: 0, createdUs: us(info.first), firstUs: us(info.first) });
    catalog.close(id, { closedUs: us(info.last) + 1, firstUs: us(info.first), lastUs: us(info.last), packets: n, bytes: info.bytes, sha256: '0'.repeat(64), reason: 'size' });
  };
  // Interleaved: source k's packet i at T0 + (i * nfiles + k) microseconds.
  for (let k = 0; k < nfiles; k++) {
    add('interleaved', VNI_INTERLEAVED, `172.31.0.${10 + k}`, 1, frames, (i) => {
      const t = i * nfiles + k;
      return [T0 + Math.floor(t / 1e6), (t % 1e6) * 1000, 1000 + (t % 100), t];
    });
  }
  // Rotated: one source, file f holds packets [f * frames, (f + 1) * frames), one microsecond apart.
  for (let f = 0; f < nfiles; f++) {
    add('rotated', VNI_ROTATED, '172.31.1.10', f + 1, frames, (i) => {
      const t = f * frames + i;
      return [T0 + Math.floor(t / 1e6), (t % 1e6) * 1000, 1000 + (t % 100), t];
    });
  }
  await catalog.flush();
  const cfg = parseApiConfig({ listen: '127.0.0.1:0', maxRangeHours: 24 });
  const app = buildApi(
    {
      store,
      dataDir: dir,
      findings: detector.store,
      detector,
      counters: () => ({}),
      kernelStats: () => null,
      sessionsLive: () => [],
      flushLive: async () => undefined,
      reloadManifest: () => null,
    },
    cfg,
    [{ name: 'bench', role: 'auditor', digest: sha256Digest(TOKEN) }],
  );
  await app.listen({ host: '127.0.0.1', port: 0 });
  const port = app.server.address().port;
  process.stdout.write(`ready ${JSON.stringify({ port, scenarios, from: T0, to: T0 + 10 })}\n`);
  createInterface({ input: process.stdin }).on('line', async (line) => {
    if (line === 'quit') {
      await app.close();
      db.close();
      process.exit(0);
    }
  });
}

// ---- the floor server child -------------------------------------------------------------------------------
/** Serve each file's bytes, held in memory, at /0, /1 ...: chunked, 512 KiB per write, with a trailer. */
async function floorServe(paths) {
  const http = await import('node:http');
  const bodies = paths.map((p) => readFileSync(p));
  const CHUNK = 512 * 1024;
  const server = http.createServer((req, res) => {
    const body = bodies[Number(req.url.slice(1))];
    if (body === undefined) return res.writeHead(404).end();
    res.writeHead(200, { 'content-type': 'application/vnd.tcpdump.pcap', trailer: 'x-content-sha256' });
    let off = 0;
    const pump = () => {
      while (off < body.length) {
        const ok = res.write(body.subarray(off, Math.min(off + CHUNK, body.length)));
        off += CHUNK;
        if (!ok) return void res.once('drain', pump);
      }
      // The same trailer field as ours, with a constant: the floor does no hashing.
      res.addTrailers({ 'x-content-sha256': '0'.repeat(64) });
      res.end();
    };
    pump();
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  process.stdout.write(`ready ${JSON.stringify({ port: server.address().port })}\n`);
  createInterface({ input: process.stdin }).on('line', (line) => {
    if (line === 'quit') server.close(() => process.exit(0));
  });
}

// ---- the timing parent ----------------------------------------------------------------------------------
const median = (xs) => {
  const v = [...xs].sort((a, b) => a - b);
  return v.length % 2 ? v[(v.length - 1) / 2] : (v[v.length / 2 - 1] + v[v.length / 2]) / 2;
};

function timed(cmd, argv) {
  const t = process.hrtime.bigint();
  const r = spawnSync(cmd, argv, { encoding: 'utf8', maxBuffer: 1 << 20 });
  const s = Number(process.hrtime.bigint() - t) / 1e9;
  if (r.status !== 0) throw new Error(`${cmd} ${argv.join(' ')} failed (${r.status}): ${r.stderr}`);
  return { s, stdout: r.stdout, stderr: r.stderr };
}

/** CPU seconds (user + system, all threads) of a process so far, from /proc. */
function cpuSeconds(pid) {
  const st = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = st.slice(st.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12])) / 100;
}

const serverCpu = [];
function timedCpu(pid, fn) {
  const c = cpuSeconds(pid);
  const s = fn();
  serverCpu.push(cpuSeconds(pid) - c);
  return s;
}

function has(tool) {
  return spawnSync('sh', ['-c', `command -v ${tool}`]).status === 0;
}

/** Records in a pcap file (classic, any byte order): count only. */
function countRecords(path) {
  const b = readFileSync(path);
  const le = b.readUInt32LE(0) === 0xa1b23c4d || b.readUInt32LE(0) === 0xa1b2c3d4;
  let o = 24;
  let n = 0;
  while (o + 16 <= b.length) {
    o += 16 + (le ? b.readUInt32LE(o + 8) : b.readUInt32BE(o + 8));
    n++;
  }
  return n;
}

function sameRecords(a, b) {
  const x = readFileSync(a);
  const y = readFileSync(b);
  return x.length === y.length && x.subarray(24).equals(y.subarray(24));
}

/**
 * Run the extraction comparison. Returns rows { scenario, filtered, oursS, toolS, ratio, ... }.
 * log: a function for progress lines.
 */
export async function runExtraction({ reps = 7, frames = 50_000, files = 8, only = null, filters = [false, true], sinks = ['file', 'null'], jsMerge = false, workerHash = false, mergeHash = false, log = (l) => process.stderr.write(`${l}\n`) } = {}) {
  if (!has('mergecap') || !has('curl')) return { skipped: 'mergecap or curl is not installed', rows: [] };
  const withTcpdump = has('tcpdump');
  const dir = mkdtempSync(join(tmpdir(), 'mg-bench-extract-'));
  // MG_BENCH_CPU_PROF=DIR: profile the server (node --cpu-prof) for docs/performance.md.
  const prof = process.env.MG_BENCH_CPU_PROF ? ['--cpu-prof', '--cpu-prof-dir', process.env.MG_BENCH_CPU_PROF] : [];
  if (process.env.MG_BENCH_NODE_FLAGS) prof.push(...process.env.MG_BENCH_NODE_FLAGS.split(' '));
  /** This file run as a child (`serve ...` or `floor ...`); `ready` is the JSON of its `ready` line. */
  const startChild = (nodeArgs, args, env, what) => {
    const c = spawn(process.execPath, [...nodeArgs, fileURLToPath(import.meta.url), ...args], { stdio: ['pipe', 'pipe', 'inherit'], env: { ...process.env, ...env } });
    const ready = new Promise((resolve, reject) => {
      // Other lines (node --trace-gc through MG_BENCH_NODE_FLAGS) go to stderr.
      createInterface({ input: c.stdout }).on('line', (l) => (l.startsWith('ready ') ? resolve(JSON.parse(l.slice(6))) : process.stderr.write(`${what}: ${l}\n`)));
      c.once('exit', (code) => reject(new Error(`the ${what} exited (${code})`)));
    });
    ready.catch(() => undefined);
    return { child: c, ready };
  };
  const startServer = (reuse, env) => startChild(prof, ['serve', dir, String(frames), String(files), reuse ? 'reuse' : 'write'], env, 'extraction server');
  const children = [];
  const stop = async (c) => {
    c.stdin.write('quit\n');
    await new Promise((r) => (c.exitCode !== null ? r() : c.once('exit', r)));
  };
  const first = startServer(false, {});
  const child = first.child;
  children.push(child);
  try {
    const ready = await first.ready;
    // --js-merge: the same files served with the native merge step turned off, for a side-by-side run;
    // --worker-hash: with the body hashed in the worker thread.
    let js = null;
    const secondLabel = jsMerge ? 'JS merge' : process.env.MG_BENCH_SECOND_ENV ? 'second server' : mergeHash ? 'hash in the merge' : 'worker hash';
    if (jsMerge || workerHash || mergeHash) {
      const secondEnv = process.env.MG_BENCH_SECOND_ENV ? JSON.parse(process.env.MG_BENCH_SECOND_ENV) : { MIRRORGUARD_EXTRACT_HASH: mergeHash ? 'merge' : 'worker' };
      const second = startServer(true, jsMerge ? { MIRRORGUARD_NATIVE_MERGE: join(dir, 'no-native-merge.node') } : secondEnv);
      children.push(second.child);
      js = { child: second.child, ready: await second.ready };
    }
    // The floor server: mergecap's output of each scenario's whole window, held in memory (step 4 above).
    const names = Object.keys(ready.scenarios).filter((nm) => only === null || only === nm);
    const floorFiles = names.map((nm) => join(dir, `floor-${nm}.pcap`));
    names.forEach((nm, k) => timed('mergecap', ['-F', 'nsecpcap', '-w', floorFiles[k], ...ready.scenarios[nm].files]));
    const floorServer = startChild([], ['floor', ...floorFiles], {}, 'floor server');
    children.push(floorServer.child);
    const floorReady = await floorServer.ready;
    const rows = [];
    for (const [name, sc] of Object.entries(ready.scenarios)) {
      if (only !== null && only !== name) continue;
      const plan = [];
      for (const filtered of withTcpdump ? filters : filters.filter((f) => !f)) for (const sink of filtered ? ['file'] : sinks) plan.push({ filtered, sink });
      for (const { filtered, sink } of plan) {
        const q = `vni=${sc.vni}&from=${ready.from}&to=${ready.to}${filtered ? `&filter=${encodeURIComponent(FILTER)}` : ''}`;
        const url = `http://127.0.0.1:${ready.port}/v1/pcap?${q}`;
        // sink 'null': both write to /dev/null, leaving out the cost of writing 211 MB to a file.
        const oursOut = sink === 'null' ? '/dev/null' : join(dir, 'ours.pcap');
        const toolOut = sink === 'null' ? '/dev/null' : join(dir, 'tool.pcap');
        const ours = () => timedCpu(child.pid, () => timed('curl', ['-sS', '--fail', '-o', oursOut, '-H', `authorization: Bearer ${TOKEN}`, url]).s);
        const jsCpu = [];
        const jsOut = sink === 'null' ? '/dev/null' : join(dir, 'ours-js.pcap');
        const oursJs = () => {
          const c = cpuSeconds(js.child.pid);
          const t = timed('curl', ['-sS', '--fail', '-o', jsOut, '-H', `authorization: Bearer ${TOKEN}`, `http://127.0.0.1:${js.ready.port}/v1/pcap?${q}`]).s;
          jsCpu.push(cpuSeconds(js.child.pid) - c);
          return t;
        };
        const tool = filtered
          ? () => timed('sh', ['-c', `mergecap -F nsecpcap -w - ${sc.files.map((f) => `'${f}'`).join(' ')} | tcpdump -r - -w '${toolOut}' '${FILTER}' 2>/dev/null`]).s
          : () => timed('mergecap', ['-F', 'nsecpcap', '-w', toolOut, ...sc.files]).s;
        const floorOut = sink === 'null' ? '/dev/null' : join(dir, 'floor-out.pcap');
        const floor = filtered ? null : () => timed('curl', ['-sS', '--fail', '-o', floorOut, `http://127.0.0.1:${floorReady.port}/${names.indexOf(name)}`]).s;
        // One warm-up of each (page cache, JIT), then interleaved repetitions.
        ours();
        tool();
        floor?.();
        if (js !== null) oursJs();
        const a = [];
        const b = [];
        const f = [];
        const j = [];
        serverCpu.length = 0;
        jsCpu.length = 0;
        for (let r = 0; r < reps; r++) {
          // With the second server, the two take turns at going first.
          if (js !== null && r % 2 === 1) j.push(oursJs());
          a.push(ours());
          b.push(tool());
          if (floor !== null) f.push(floor());
          if (js !== null && r % 2 === 0) j.push(oursJs());
        }
        const oursPackets = sink === 'null' ? null : countRecords(oursOut);
        const toolPackets = sink === 'null' ? null : countRecords(toolOut);
        const identical = sink === 'null' ? null : filtered ? oursPackets === toolPackets : sameRecords(oursOut, toolOut);
        const row = {
          scenario: name,
          filtered,
          sink,
          tool: filtered ? 'mergecap | tcpdump' : 'mergecap',
          files: sc.files.length,
          inputBytes: sc.bytes,
          inputPackets: sc.packets,
          outputPackets: oursPackets,
          oursS: median(a),
          serverCpuS: median(serverCpu),
          toolS: median(b),
          oursRuns: a,
          toolRuns: b,
          ratio: median(b) / median(a),
          sameOutput: identical,
          // The transfer alone (step 4): floor / ours is how close our server is to free, tool / floor the most the goal allows.
          ...(f.length
            ? { floorS: median(f), floorRuns: f, floorRatio: median(f) / median(a), toolOverFloor: median(b) / median(f) }
            : {}),
          ...(js !== null
            ? {
                secondLabel,
                secondS: median(j),
                secondServerCpuS: median(jsCpu),
                secondRuns: j,
                secondRatio: median(b) / median(j),
                // Repetition by repetition (the two servers ran back to back): second time / first time.
                pairRatios: j.map((t, r) => t / a[r]),
                secondSameOutput: sink === 'null' ? null : sameRecords(jsOut, oursOut),
              }
            : {}),
        };
        rows.push(row);
        log(
          `extract ${name.padEnd(11)} ${filtered ? `filter '${FILTER}'` : 'whole window     '} -> ${sink.padEnd(4)}  ours ${row.oursS.toFixed(3)} s (server CPU ${row.serverCpuS.toFixed(2)} s)  ${row.tool} ${row.toolS.toFixed(3)} s  ` +
            `tool/ours ${row.ratio.toFixed(2)}` + (sink === 'null' ? '' : `  (${oursPackets} packets, ${identical ? 'same as the tool' : 'DIFFERENT from the tool'})`) +
            (row.floorS !== undefined ? `  | floor ${row.floorS.toFixed(3)} s: floor/ours ${row.floorRatio.toFixed(2)}, tool/floor ${row.toolOverFloor.toFixed(2)}` : '') +
            (js !== null
              ? `  | ${secondLabel} ${row.secondS.toFixed(3)} s (server CPU ${row.secondServerCpuS.toFixed(2)} s) tool/ours ${row.secondRatio.toFixed(2)}${row.secondSameOutput === false ? ' DIFFERENT from the first server' : ''}` +
                `  | ${secondLabel} time / first per pair: median ${median(row.pairRatios).toFixed(2)} (${Math.min(...row.pairRatios).toFixed(2)}-${Math.max(...row.pairRatios).toFixed(2)}), first faster in ${row.pairRatios.filter((x) => x > 1).length} of ${row.pairRatios.length}`
              : ''),
        );
      }
    }
    return { rows, frames, files, frameBytes: FRAME_BYTES, filter: FILTER, reps };
  } finally {
    for (const c of children) await stop(c);
    rmSync(dir, { recursive: true, force: true });
  }
}

export function extractionTable(result) {
  const withJs = result.rows.some((r) => r.secondS !== undefined);
  const label = result.rows.find((r) => r.secondLabel !== undefined)?.secondLabel ?? '';
  const lines = [
    '| files | window | written to | mirrorguard (HTTP, SHA-256 trailer) | its server CPU | tool | tool time | tool / mirrorguard | output | floor: curl from a server with nothing to do | floor / mirrorguard | tool / floor |' + (withJs ? ` ${label} | its server CPU | tool / ${label} |` : ''),
    '|---|---|---|---:|---:|---|---:|---:|---|---:|---:|---:|' + (withJs ? '---:|---:|---:|' : ''),
  ];
  for (const r of result.rows) {
    lines.push(
      `| ${r.scenario} (${r.files} x ${(r.inputPackets / r.files).toLocaleString('en-US')}) | ${r.filtered ? `filter \`${result.filter}\`` : 'whole'} | ${r.sink === 'null' ? '/dev/null' : 'a file'} | ${r.oursS.toFixed(3)} s | ${r.serverCpuS.toFixed(2)} s | ${r.tool.replace('|', '\\|')} | ${r.toolS.toFixed(3)} s | ${r.ratio.toFixed(2)} | ${r.sameOutput === null ? '-' : r.sameOutput ? (r.filtered ? 'same packet count' : 'same bytes') : 'DIFFERENT'} |` +
        (r.floorS === undefined ? ' - | - | - |' : ` ${r.floorS.toFixed(3)} s | ${r.floorRatio.toFixed(2)} | ${r.toolOverFloor.toFixed(2)} |`) +
        (withJs ? (r.secondS === undefined ? ' - | - | - |' : ` ${r.secondS.toFixed(3)} s | ${r.secondServerCpuS.toFixed(2)} s | ${r.secondRatio.toFixed(2)} |`) : ''),
    );
  }
  return lines.join('\n');
}

const isMain = process.argv[1] === fileURLToPath(import.meta.url);
if (isMain && process.argv[2] === 'serve') {
  await serve(process.argv[3], Number(process.argv[4]), Number(process.argv[5]), process.argv[6] === 'reuse');
} else if (isMain && process.argv[2] === 'floor') {
  await floorServe(process.argv.slice(3));
} else if (isMain) {
  const { values } = parseArgs({ options: { reps: { type: 'string', default: '7' }, frames: { type: 'string', default: '50000' }, files: { type: 'string', default: '8' }, quick: { type: 'boolean', default: false }, only: { type: 'string' }, filter: { type: 'string', default: 'both' }, 'js-merge': { type: 'boolean', default: false }, 'worker-hash': { type: 'boolean', default: false }, 'merge-hash': { type: 'boolean', default: false } } });
  const res = await runExtraction({
    reps: values.quick ? 1 : Number(values.reps),
    frames: values.quick ? 5000 : Number(values.frames),
    files: Number(values.files),
    only: values.only ?? null,
    filters: values.filter === 'both' ? [false, true] : [values.filter === 'yes'],
    jsMerge: values['js-merge'],
    workerHash: values['worker-hash'],
    mergeHash: values['merge-hash'],
  });
  if (res.skipped) process.stdout.write(`skipped: ${res.skipped}\n`);
  else process.stdout.write(`${extractionTable(res)}\n`);
}
