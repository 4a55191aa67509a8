// Many sessions, steady (issue 16): `mirrorguard serve` with its defaults and a manifest that authorizes
// every session, fed by test/bench/vxlan_steady.c: N sessions at RATE datagrams/s each, one outer source
// per session (as behind a Network Load Balancer, where every session comes from its own source ENI),
// plus HEAVY sessions at HEAVY_RATE, for SECONDS. Measured from outside while the traffic runs: CPU of
// every serve thread per datagram received (/proc/PID/task/*/schedstat), peak RSS (VmHWM), kernel drops
// (/proc/net/udp), serve's counters (/metrics); after a graceful stop, every record of every file read
// back by (session, sequence number).
import { spawn, spawnSync } from 'node:child_process';
import { closeSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, readSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cpuNs, SERVE_NODE_ARGS } from './proc.mjs';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
/** A deadline for Promise.race that does not keep the process alive once the race is won (the bench exits when done). */
const deadline = (ms) => new Promise((r) => setTimeout(r, ms).unref());

/** The sender's addressing (vxlan_steady.c): session s sends from 127.64.0.1 + s with VNI 5000 + s. */
export const STEADY_BASE_VNI = 5000;
export function steadySource(s) {
  const a = 0x7f400001 + s;
  return `${a >>> 24}.${(a >>> 16) & 255}.${(a >>> 8) & 255}.${a & 255}`;
}

/** A manifest (docs/manifest.md) that authorizes sessions 0..n-1 of the sender, each by its source and VNI. */
export function steadyManifest(n) {
  const lines = ['version: 1', 'sessions:'];
  for (let s = 0; s < n; s++) {
    lines.push(`  - id: tms-${(s + 1).toString(16).padStart(17, '0')}`, `    vni: ${STEADY_BASE_VNI + s}`, `    sourceIps: [${steadySource(s)}]`);
  }
  return `${lines.join('\n')}\n`;
}

export function compileSteady(binDir, root) {
  mkdirSync(binDir, { recursive: true });
  const r = spawnSync('gcc', ['-O2', '-Wall', '-o', join(binDir, 'vxlan_steady'), join(root, 'test', 'bench', 'vxlan_steady.c'), '-lm'], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`gcc vxlan_steady.c failed:\n${r.stderr || r.error}`);
}

// ---- /proc -------------------------------------------------------------------------------------------
function udpDrops(port) {
  const hex = `:${port.toString(16).toUpperCase().padStart(4, '0')}`;
  let drops = 0;
  let found = false;
  for (const line of readFileSync('/proc/net/udp', 'utf8').split('\n').slice(1)) {
    const c = line.trim().split(/\s+/);
    if (c.length < 13 || !c[1].endsWith(hex)) continue;
    found = true;
    drops += Number(c[c.length - 1]);
  }
  return { found, drops };
}

function status(pid, field) {
  try {
    const m = new RegExp(`${field}:\\s+(\\d+) kB`).exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : null;
  } catch {
    return null;
  }
}

function openFds(pid) {
  try {
    return readdirSync(`/proc/${pid}/fd`).length;
  } catch {
    return null;
  }
}

function freePort(proto) {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

async function scrape(apiPort) {
  const text = await (await fetch(`http://127.0.0.1:${apiPort}/metrics`)).text();
  const out = { written: 0, drops: {}, events: {} };
  for (const line of text.split('\n')) {
    let m = /^mirrorguard_frames_written_total (\S+)/.exec(line);
    if (m) out.written = Number(m[1]);
    m = /^mirrorguard_dropped_packets_total\{reason="([^"]+)"\} (\S+)/.exec(line);
    if (m && Number(m[2]) !== 0) out.drops[m[1]] = Number(m[2]);
    m = /^mirrorguard_events_total\{[a-z]+="([^"]+)"\} (\S+)/.exec(line);
    if (m && Number(m[2]) !== 0) out.events[m[1]] = Number(m[2]);
  }
  return out;
}

// ---- reading the files back ----------------------------------------------------------------------------
function pcapFiles(dir) {
  const out = [];
  for (const e of readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (e.isFile() && e.name.endsWith('.pcap')) out.push(join(e.parentPath ?? e.path, e.name));
  }
  return out;
}

/** Every record: SIZE bytes carrying (session, seq); each (session, seq) sent found exactly once. */
export function verifySteady(dir, size, sentPer) {
  const seen = sentPer.map((n) => new Uint8Array(n));
  const files = pcapFiles(dir);
  let records = 0;
  let dups = 0;
  let bad = 0;
  let truncated = 0;
  const chunk = Buffer.allocUnsafe(4 * 1024 * 1024);
  for (const file of files) {
    const fd = openSync(file, 'r');
    let carry = Buffer.alloc(0);
    let first = true;
    for (;;) {
      const n = readSync(fd, chunk, 0, chunk.length, null);
      if (n === 0) break;
      const buf = carry.length ? Buffer.concat([carry, chunk.subarray(0, n)]) : chunk.subarray(0, n);
      let p = 0;
      if (first) {
        if (buf.length < 24) break;
        p = 24;
        first = false;
      }
      while (p + 16 <= buf.length) {
        const caplen = buf.readUInt32LE(p + 8);
        if (p + 16 + caplen > buf.length) break;
        records++;
        if (caplen !== size) bad++;
        else {
          const s = buf.readUInt32BE(p + 16 + 42);
          const q = buf.readUInt32BE(p + 16 + 46);
          if (s >= seen.length || q >= seen[s].length) bad++;
          else if (seen[s][q]++) dups++;
        }
        p += 16 + caplen;
      }
      carry = Buffer.from(buf.subarray(p));
    }
    if (carry.length > 0 || first) truncated++;
    closeSync(fd);
  }
  let missing = 0;
  for (const arr of seen) for (let i = 0; i < arr.length; i++) if (arr[i] === 0) missing++;
  return { files: files.length, records, missing, dups, bad, truncated };
}

// ---- one run --------------------------------------------------------------------------------------------
/**
 * One steady run through serve. Returns what was sent, CPU per datagram (all threads, over the sending
 * window and the drain after it), peak and final RSS, open descriptors at the end of the traffic, kernel
 * drops, serve's counted drops by reason, and the read-back check.
 */
export async function runSteady({ root, binDir, sessions, rate, seconds, heavy, heavyRate, size, ramp = 0, nodeArgs = SERVE_NODE_ARGS, extraConfig = '', log = () => {} }) {
  const dir = mkdtempSync(join(tmpdir(), 'mg-bench-steady-'));
  const dataDir = join(dir, 'data');
  const all = sessions + heavy;
  writeFileSync(join(dir, 'manifest.yaml'), steadyManifest(all));
  writeFileSync(join(dir, 'bench.yaml'), `manifest: ${join(dir, 'manifest.yaml')}\napi:\n  publicMetrics: true\n${extraConfig}`);
  const udpPort = await freePort();
  const apiPort = await freePort();
  const logFd = openSync(join(dir, 'serve.log'), 'w');
  const proc = spawn(
    process.execPath,
    [...nodeArgs, join(root, 'bin', 'mirrorguard.js'), 'serve', '--config', join(dir, 'bench.yaml'), '--listen', `127.0.0.1:${udpPort}`, '--data-dir', dataDir, '--api', `127.0.0.1:${apiPort}`],
    { stdio: ['ignore', logFd, logFd] },
  );
  closeSync(logFd);
  const pid = proc.pid;
  let gone = false;
  const exited = new Promise((r) => proc.on('exit', (code, sig) => ((gone = true), r({ code, sig }))));
  const serveLog = () => readFileSync(join(dir, 'serve.log'), 'utf8').slice(-3000);
  try {
    for (let i = 0; ; i++) {
      if (gone) throw new Error(`serve exited while starting:\n${serveLog()}`);
      if (udpDrops(udpPort).found) {
        try {
          await scrape(apiPort);
          break;
        } catch {
          /* the API is not up yet */
        }
      }
      if (i > 3000) throw new Error(`serve did not start in 30 s:\n${serveLog()}`);
      await sleep(10);
    }
    const receiver = /"receiver":"([\w-]+)"/.exec(serveLog())?.[1] ?? 'unknown';
    const d0 = udpDrops(udpPort).drops;
    // What the kernel dropped before serve read it. With the capture ring (receiver auto as root) the bound
    // UDP socket is never read and drops every datagram by design: the loss is the ring's own drop counter.
    const kernelLost = (c) => (receiver === 'af-packet' ? (c.events['ingest.ring.drops'] ?? 0) : udpDrops(udpPort).drops - d0);
    const cpu0 = cpuNs(pid);
    const sender = spawn(join(binDir, 'vxlan_steady'), ['127.0.0.1', String(udpPort), String(sessions), String(rate), String(seconds), String(size), String(heavy), String(heavyRate), String(ramp)], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    sender.stdout.on('data', (d) => (out += d));
    sender.stderr.on('data', (d) => (err += d));
    // Sample RSS and descriptors while the traffic runs.
    let maxFds = 0;
    const timeline = [];
    const tStart = process.hrtime.bigint();
    // The kernel's loss so far (ring drops under af-packet), from the last scrape (one a second, off the sampler).
    let lostSoFar = 0;
    const sampler = setInterval(() => {
      const n = openFds(pid);
      if (n !== null && n > maxFds) maxFds = n;
      timeline.push({ s: Number(process.hrtime.bigint() - tStart) / 1e9, kernelLost: lostSoFar, socketDrops: udpDrops(udpPort).drops - d0, cpuNs: cpuNs(pid) - cpu0, rss: status(pid, 'VmRSS'), fds: n });
      scrape(apiPort).then((c) => (lostSoFar = kernelLost(c)), () => {});
    }, 1000);
    const code = await new Promise((r) => sender.on('exit', r));
    clearInterval(sampler);
    if (code !== 0) throw new Error(`vxlan_steady failed (${code}): ${err}`);
    const s = JSON.parse(out);
    // Everything sent has been read once `written` + counted drops stop moving (the flush timer is 1 s).
    let last = -1;
    let c = null;
    for (let i = 0; i < 600; i++) {
      c = await scrape(apiPort);
      const processed = c.written + Object.values(c.drops).reduce((a, b) => a + b, 0);
      if (processed >= s.sent - kernelLost(c) || processed === last) break;
      last = processed;
      await sleep(1500);
    }
    const cpu = cpuNs(pid) - cpu0;
    const peakRss = status(pid, 'VmHWM');
    const rss = status(pid, 'VmRSS');
    const kernelDrops = kernelLost(c);
    proc.kill('SIGTERM');
    const ex = await Promise.race([exited, deadline(120_000).then(() => null)]);
    if (!ex) throw new Error('serve did not exit in 120 s after SIGTERM');
    const sentPer = Array.from({ length: all }, (_, i) => Math.round((i < sessions ? rate : heavyRate) * seconds));
    const check = verifySteady(dataDir, size, sentPer);
    const countedDrops = Object.values(c.drops).reduce((a, b) => a + b, 0);
    const r = {
      sessions,
      ramp,
      heavy,
      rate,
      heavyRate,
      seconds,
      size,
      receiver,
      sent: s.sent,
      senderElapsedNs: s.elapsedNs,
      senderMaxLagMs: s.maxLagMs,
      pps: s.sent / (s.elapsedNs / 1e9),
      cpuNsPerPacket: cpu / s.sent,
      cpuShare: cpu / s.elapsedNs,
      peakRssBytes: peakRss,
      rssBytes: rss,
      maxFds,
      kernelDrops,
      countedDrops,
      dropsByReason: c.drops,
      events: c.events,
      written: c.written,
      check,
      timeline,
      logTail: serveLog(),
      tStartUs: Number(tStart / 1000n),
      exit: ex,
    };
    log(
      `steady ${sessions} sessions x ${rate}/s + ${heavy} x ${heavyRate}/s for ${seconds} s: ${Math.round(r.pps)} pkt/s, ${Math.round(r.cpuNsPerPacket)} ns/pkt (${(r.cpuShare * 100).toFixed(0)}% of a core), ` +
        `peak RSS ${Math.round(peakRss / 1e6)} MB, fds ${maxFds}, kernel drops ${kernelDrops}, counted ${countedDrops}, missing ${check.missing}, dups ${check.dups}, files ${check.files}`,
    );
    return r;
  } finally {
    try {
      if (!gone) process.kill(pid, 'SIGKILL');
    } catch {
      /* gone */
    }
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The steady rows as a Markdown table: one row per run. */
export function steadyTable(runs) {
  const head = ['sessions', 'ramp', 'heavy', 'datagrams/s', 'CPU ns/datagram', 'CPU (cores)', 'peak RSS', 'fds', 'files', 'kernel drops', 'counted drops', 'missing', 'dups'];
  const rows = runs.map((r) => [
    `${r.sessions.toLocaleString('en-US')} x ${r.rate}/s`,
    `${r.ramp} s`,
    `${r.heavy} x ${r.heavyRate.toLocaleString('en-US')}/s`,
    Math.round(r.pps).toLocaleString('en-US'),
    Math.round(r.cpuNsPerPacket).toLocaleString('en-US'),
    r.cpuShare.toFixed(2),
    `${Math.round(r.peakRssBytes / 1e6)} MB`,
    String(r.maxFds),
    String(r.check.files),
    String(r.kernelDrops),
    r.countedDrops ? JSON.stringify(r.dropsByReason) : '0',
    String(r.check.missing),
    String(r.check.dups),
  ]);
  return [`| ${head.join(' | ')} |`, `|${head.map(() => '---').join('|')}|`, ...rows.map((x) => `| ${x.join(' | ')} |`)].join('\n');
}
