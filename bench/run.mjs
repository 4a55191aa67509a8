#!/usr/bin/env node
// npm run bench: mirrorguard's receivers side by side with a C reference and tcpdump.
//
// Method (docs/performance.md explains it for readers):
//   1. Compile the C reference receiver and the traffic generator from test/bench/ (gcc -O2).
//   2. For each inner frame size (64, 512, 1450 bytes) and each receiver, start the receiver on
//      127.0.0.1 with a 1 GiB receive buffer, warm it up (every session opened, the JIT warm), then
//      SIGSTOP it, send COUNT VXLAN datagrams from 16 sessions (16 outer sources 127.0.0.2-17, one VNI
//      each), SIGCONT it and time how long it takes to drain them (drain rate) and the CPU time it
//      spent (getrusage in the receiver: all its threads). The sender is done before the receiver
//      resumes, so the receiver has a core to itself and the other core takes its disk writes.
//   3. Check every datagram sent is in the receiver's PCAP files (by the session and sequence number
//      inside each inner frame), or was counted as a kernel drop (/proc/net/udp, tcpdump's count).
//   4. Peak RSS is VmHWM; heap growth and young-generation allocation come from the mirrorguard
//      children (run with --expose-gc), and from a live "soak" run of a million packets.
//   5. Print a table with ratios to the C reference and write everything to .bench/results-<date>.json.
//   6. Extraction (bench/extract.mjs): GET /v1/pcap through HTTP against mergecap (whole window) and
//      mergecap | tcpdump (filtered), on interleaved and on rotated non-overlapping files, as ratios.
//
// Options: --sizes 64,512,1450  --receivers ref,native,dgram,plain,tcpdump  --reps 3  --count N
//          --sessions 16  --no-soak  --quick (small counts, one rep: a smoke test of the harness)
//          --no-sysctl (do not raise net.core.rmem_max for the run; see raiseRmemMax)
//          --no-extract (skip the extraction rows)  --extract-only (only them)  --extract-reps 7
import { spawn, spawnSync } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, readSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, release, tmpdir, totalmem } from 'node:os';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { extractionTable, runExtraction } from './extract.mjs';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const OUT_DIR = join(ROOT, '.bench');
const BIN_DIR = join(OUT_DIR, 'bin');
const RCVBUF = 1024 * 1024 * 1024;
const WARM_PER_SESSION = 256;
/** Outer headers tcpdump stores on lo before the VXLAN payload: Ethernet 14 + IPv4 20 + UDP 8 + VXLAN 8. */
const TCPDUMP_PREFIX = 50;
/** The sender's batch; it sends BATCH datagrams for one session, then the next (vxlan_blast.c). */
const SEND_BATCH = 64;

const { values: args } = parseArgs({
  options: {
    sizes: { type: 'string', default: '64,512,1450' },
    receivers: { type: 'string', default: 'ref,native,native2,dgram,plain,tcpdump' },
    'no-sysctl': { type: 'boolean', default: false },
    reps: { type: 'string', default: '3' },
    count: { type: 'string' },
    sessions: { type: 'string', default: '16' },
    'no-soak': { type: 'boolean', default: false },
    quick: { type: 'boolean', default: false },
    'no-extract': { type: 'boolean', default: false },
    'extract-only': { type: 'boolean', default: false },
    'extract-reps': { type: 'string', default: '7' },
  },
});
const SIZES = args.sizes.split(',').map(Number);
const SESSIONS = Number(args.sessions);
const REPS = args.quick ? 1 : Number(args.reps);
const LABEL = {
  ref: 'C reference (recvmmsg)',
  native: 'mirrorguard native',
  native2: 'mirrorguard native, 2 workers',
  dgram: 'mirrorguard dgram',
  plain: 'plain dgram + PCAP',
  tcpdump: 'tcpdump -w',
};

function log(line) {
  process.stderr.write(`${line}\n`);
}

// ---- setup ---------------------------------------------------------------------------------------------
function compile() {
  mkdirSync(BIN_DIR, { recursive: true });
  for (const name of ['ref_receiver', 'vxlan_blast']) {
    const src = join(ROOT, 'test', 'bench', `${name}.c`);
    const r = spawnSync('gcc', ['-O2', '-Wall', '-o', join(BIN_DIR, name), src], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`gcc ${src} failed (the benchmark needs gcc):\n${r.stderr || r.error}`);
  }
}

function requireBuilt() {
  if (!existsSync(join(ROOT, 'dist', 'collector', 'collector.js'))) throw new Error('dist/ is missing: run npm run build first (npm run bench does)');
}

function nativeBuilt() {
  return existsSync(join(ROOT, 'native', 'build', 'Release', 'mirrorguard_native.node'));
}

function hasTcpdump() {
  return spawnSync('sh', ['-c', 'command -v tcpdump']).status === 0;
}

// ---- /proc -----------------------------------------------------------------------------------------------
function udpSocket(port) {
  const hex = `:${port.toString(16).toUpperCase().padStart(4, '0')}`;
  const out = { found: false, rxQueue: 0, drops: 0 };
  for (const f of ['/proc/net/udp', '/proc/net/udp6']) {
    let text = '';
    try {
      text = readFileSync(f, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      const c = line.trim().split(/\s+/);
      if (c.length < 13 || !c[1].endsWith(hex)) continue;
      out.found = true;
      out.rxQueue += parseInt(c[4].split(':')[1], 16);
      out.drops += Number(c[c.length - 1]);
    }
  }
  return out;
}

function procState(pid) {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return s.slice(s.lastIndexOf(')') + 2, s.lastIndexOf(')') + 3);
  } catch {
    return '?';
  }
}

function vmHwmBytes(pid) {
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : null;
  } catch {
    return null;
  }
}

/** Nanoseconds on CPU, all threads of the process (sum of /proc/PID/task/TID/schedstat). */
function cpuNs(pid) {
  let total = 0;
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      total += Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ')[0]);
    } catch {
      /* the thread ended */
    }
  }
  return total;
}

async function waitStopped(pid) {
  for (let i = 0; i < 500; i++) {
    if (procState(pid) === 'T') return;
    await sleep(2);
  }
  throw new Error(`process ${pid} did not stop`);
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const now = () => process.hrtime.bigint();

// ---- traffic -----------------------------------------------------------------------------------------
function send(port, count, size, seqStart) {
  const r = spawnSync(join(BIN_DIR, 'vxlan_blast'), ['127.0.0.1', String(port), String(count), String(SESSIONS), String(size), String(seqStart), String(SEND_BATCH)], {
    encoding: 'utf8',
  });
  if (r.status !== 0) throw new Error(`vxlan_blast failed: ${r.stderr}`);
  return JSON.parse(r.stdout);
}

/** How many datagrams each session gets when COUNT are sent (round robin, SEND_BATCH at a time). */
function perSession(count) {
  const n = new Array(SESSIONS).fill(0);
  let left = count;
  for (let s = 0; left > 0; s = (s + 1) % SESSIONS) {
    const k = Math.min(SEND_BATCH, left);
    n[s] += k;
    left -= k;
  }
  return n;
}

/** Kernel memory one queued datagram of this size takes (skb truesize), measured on a stopped reference receiver. */
async function measureTruesize(size) {
  const dir = mkdtempSync(join(tmpdir(), 'mg-bench-'));
  const c = new Child(join(BIN_DIR, 'ref_receiver'), ['127.0.0.1', '0', dir, String(RCVBUF)]);
  try {
    const ready = await c.expect('ready');
    process.kill(c.pid, 'SIGSTOP');
    await waitStopped(c.pid);
    send(ready.port, 4000, size, 0);
    const q = udpSocket(ready.port);
    return { truesize: Math.ceil(q.rxQueue / 4000), recvBufferBytes: ready.recvBufferBytes };
  } finally {
    c.kill();
    rmSync(dir, { recursive: true, force: true });
  }
}

// ---- a child that speaks the line protocol ---------------------------------------------------------------
class Child {
  constructor(cmd, argv) {
    this.proc = spawn(cmd, argv, { stdio: ['pipe', 'pipe', 'pipe'] });
    this.pid = this.proc.pid;
    this.lines = [];
    this.waiters = [];
    this.stderr = '';
    this.exited = new Promise((r) => this.proc.on('exit', (code, sig) => r({ code, sig })));
    this.proc.stderr.setEncoding('utf8');
    this.proc.stderr.on('data', (d) => (this.stderr += d));
    createInterface({ input: this.proc.stdout }).on('line', (line) => {
      const sp = line.indexOf(' ');
      const msg = { kind: sp < 0 ? line : line.slice(0, sp), body: sp < 0 ? {} : JSON.parse(line.slice(sp + 1)) };
      const w = this.waiters.findIndex((x) => x.kind === msg.kind);
      if (w >= 0) this.waiters.splice(w, 1)[0].resolve(msg.body);
      else this.lines.push(msg);
    });
  }

  expect(kind, timeoutMs = 120_000) {
    const i = this.lines.findIndex((x) => x.kind === kind);
    if (i >= 0) return Promise.resolve(this.lines.splice(i, 1)[0].body);
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`no '${kind}' from pid ${this.pid} in ${timeoutMs} ms; stderr:\n${this.stderr.slice(-2000)}`)), timeoutMs);
      const w = { kind, resolve: (b) => (clearTimeout(t), resolve(b)) };
      this.waiters.push(w);
      void this.exited.then(({ code, sig }) => {
        if (!this.waiters.includes(w)) return;
        clearTimeout(t);
        reject(new Error(`pid ${this.pid} exited (${code ?? sig}) before '${kind}'; stderr:\n${this.stderr.slice(-2000)}`));
      });
    });
  }

  write(line) {
    this.proc.stdin.write(`${line}\n`);
  }

  kill() {
    try {
      process.kill(this.pid, 'SIGCONT');
      this.proc.kill('SIGKILL');
    } catch {
      /* gone */
    }
  }
}

// ---- checking the files --------------------------------------------------------------------------------
function pcapFiles(dir) {
  const out = [];
  for (const e of readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (e.isFile() && e.name.endsWith('.pcap')) out.push(join(e.parentPath ?? e.path, e.name));
  }
  return out;
}

/**
 * Every record of every file: the inner frame must be SIZE bytes and carry (session, seq) from the
 * sender; each (session, seq) sent must appear exactly once.
 */
function verify(files, size, sent, prefix) {
  const seen = sent.map((n) => new Uint8Array(n));
  let records = 0;
  let dups = 0;
  let bad = 0;
  const chunk = Buffer.allocUnsafe(16 * 1024 * 1024);
  for (const file of files) {
    const fd = openSync(file, 'r');
    let carry = Buffer.alloc(0);
    let first = true;
    for (;;) {
      const n = readSync(fd, chunk, 0, chunk.length, null);
      if (n === 0) break;
      let buf = carry.length ? Buffer.concat([carry, chunk.subarray(0, n)]) : chunk.subarray(0, n);
      let p = 0;
      if (first) {
        if (buf.length < 24) throw new Error(`${file}: short file`);
        const magic = buf.readUInt32LE(0);
        if (magic !== 0xa1b23c4d && magic !== 0xa1b2c3d4) throw new Error(`${file}: not a little-endian pcap file`);
        p = 24;
        first = false;
      }
      while (p + 16 <= buf.length) {
        const caplen = buf.readUInt32LE(p + 8);
        if (p + 16 + caplen > buf.length) break;
        const f = p + 16 + prefix;
        records++;
        if (caplen - prefix !== size) bad++;
        else {
          const s = buf.readUInt32BE(f + 42);
          const q = buf.readUInt32BE(f + 46);
          if (s >= SESSIONS || q >= seen[s].length) bad++;
          else if (seen[s][q]++) dups++;
        }
        p += 16 + caplen;
      }
      carry = Buffer.from(buf.subarray(p));
    }
    closeSync(fd);
  }
  let missing = 0;
  for (const arr of seen) for (let i = 0; i < arr.length; i++) if (arr[i] === 0) missing++;
  return { files: files.length, records, missing, dups, bad };
}

// ---- one run of one receiver ---------------------------------------------------------------------------
async function runSocketReceiver(kind, size, count) {
  const dir = mkdtempSync(join(tmpdir(), `mg-bench-${kind}-`));
  const c =
    kind === 'ref'
      ? new Child(join(BIN_DIR, 'ref_receiver'), ['127.0.0.1', '0', dir, String(RCVBUF)])
      : new Child(process.execPath, ['--expose-gc', join(ROOT, 'bench', 'child.mjs'), kind, dir, String(RCVBUF)]);
  try {
    const ready = await c.expect('ready', 30_000);
    const port = ready.port;
    if (ready.recvBufferBytes < RCVBUF) log(`  ${LABEL[kind]} got a ${ready.recvBufferBytes}-byte receive buffer (asked ${RCVBUF}): expect kernel drops`);
    // Warm-up: every session's file opened, the JIT warm, the buffer pool filled.
    const warm = WARM_PER_SESSION * SESSIONS;
    send(port, warm, size, 0);
    c.write(`target ${warm}`);
    await c.expect('done', 60_000);
    c.write('mark');
    const mark = await c.expect('marked');
    const before = udpSocket(port);
    process.kill(c.pid, 'SIGSTOP');
    await waitStopped(c.pid);
    const s = send(port, count, size, WARM_PER_SESSION);
    const after = udpSocket(port);
    const kernelDrops = after.drops - before.drops;
    const expected = warm + s.sent - kernelDrops;
    c.write(`target ${expected}`);
    const t0 = now();
    process.kill(c.pid, 'SIGCONT');
    const done = await c.expect('done', 300_000);
    const rss = vmHwmBytes(c.pid);
    c.write('quit');
    const closed = await c.expect('closed', 120_000);
    await c.exited;
    const drained = s.sent - kernelDrops;
    const drainNs = Number(BigInt(done.monoNs) - t0);
    const sentPer = perSession(s.sent).map((n) => n + WARM_PER_SESSION);
    const check = verify(pcapFiles(dir), size, sentPer, 0);
    // Datagrams the receiver took but counted as dropped (decode errors, pcap.write.queue_full ...).
    const countedDrops = kind === 'ref' ? closed.decodeDrops + closed.truncated : kind === 'plain' ? closed.processed - closed.written : closed.drops.slice(1).reduce((a, b) => a + b, 0);
    return {
      receiver: kind,
      size,
      sent: s.sent,
      sendNs: s.elapsedNs,
      queuedBytes: after.rxQueue,
      kernelDrops,
      drainNs,
      drainPps: drained / (drainNs / 1e9),
      cpuNsPerPacket: ((done.cpuUs - mark.cpuUs) * 1000) / drained,
      peakRssBytes: rss,
      heap: done.heap ?? null,
      countedDrops,
      lost: check.missing - kernelDrops,
      check,
      counters: closed,
    };
  } finally {
    c.kill();
    rmSync(dir, { recursive: true, force: true });
  }
}

function freePort() {
  for (;;) {
    const p = 20000 + Math.floor(Math.random() * 30000);
    if (!udpSocket(p).found) return p;
  }
}

async function runTcpdump(size, count) {
  const dir = mkdtempSync(join(tmpdir(), 'mg-bench-tcpdump-'));
  const file = join(dir, 'tcpdump.pcap');
  const port = freePort();
  // The ring must hold the whole burst. On lo the kernel copies each packet into it twice (as sent and
  // as received; libpcap skips the outgoing copy), and TPACKET_V3 adds ~100 bytes of header to each.
  const bufKiB = Math.max(65536, Math.ceil((2 * count * (size + TCPDUMP_PREFIX + 160) * 1.2) / 1024));
  const c = new Child('tcpdump', ['-i', 'lo', '-n', '-s', '262144', '-B', String(bufKiB), '-Z', 'root', '-w', file, `udp dst port ${port}`]);
  try {
    for (let i = 0; !c.stderr.includes('listening on'); i++) {
      if (i > 2000) throw new Error(`tcpdump did not start: ${c.stderr}`);
      await sleep(5);
    }
    process.kill(c.pid, 'SIGSTOP');
    await waitStopped(c.pid);
    const s = send(port, count, size, 0);
    const cpu0 = cpuNs(c.pid);
    const t0 = now();
    process.kill(c.pid, 'SIGCONT');
    // tcpdump prints "N packets captured, ... M packets dropped by kernel" on SIGUSR1; ask every few ms
    // until every datagram that reached the ring has been handed to its pcap writer.
    let tEnd = t0;
    let cpuEnd = cpu0;
    let lastCaptured = -1;
    let lastProgress = now();
    for (;;) {
      const seen = c.stderr.length;
      process.kill(c.pid, 'SIGUSR1');
      for (let i = 0; i < 200 && c.stderr.length === seen; i++) await sleep(1);
      const stats = [...c.stderr.matchAll(/(\d+) packets? captured, \d+ packets? received by filter, (\d+) packets? dropped by kernel/g)].pop();
      const captured = stats ? Number(stats[1]) : 0;
      const dropped = stats ? Number(stats[2]) : 0;
      if (captured !== lastCaptured) {
        lastCaptured = captured;
        lastProgress = now();
      }
      if (captured >= s.sent - dropped) {
        tEnd = now();
        cpuEnd = cpuNs(c.pid);
        break;
      }
      if (Number(now() - lastProgress) > 2e9) throw new Error(`tcpdump stalled at ${captured} of ${s.sent} packets`);
      await sleep(3);
    }
    const drainNs = Number(tEnd - t0);
    const rss = vmHwmBytes(c.pid);
    process.kill(c.pid, 'SIGINT');
    await c.exited;
    const captured = Number(/(\d+) packets? captured/.exec(c.stderr)?.[1] ?? NaN);
    const kernelDrops = Number(/(\d+) packets? dropped by kernel/.exec(c.stderr)?.[1] ?? 0);
    const check = verify([file], size, perSession(s.sent), TCPDUMP_PREFIX);
    const drained = s.sent - kernelDrops;
    return {
      receiver: 'tcpdump',
      size,
      sent: s.sent,
      sendNs: s.elapsedNs,
      kernelDrops,
      drainNs,
      drainPps: drained / (drainNs / 1e9),
      cpuNsPerPacket: (cpuEnd - cpu0) / drained,
      peakRssBytes: rss,
      heap: null,
      countedDrops: 0,
      lost: check.missing - kernelDrops,
      check,
      counters: { captured, ringKiB: bufKiB },
    };
  } finally {
    c.kill();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Live, not paused: a million small packets through the native path, for heap growth and GC counts. */
async function runSoak(count) {
  const dir = mkdtempSync(join(tmpdir(), 'mg-bench-soak-'));
  const c = new Child(process.execPath, ['--expose-gc', join(ROOT, 'bench', 'child.mjs'), 'native', dir, String(RCVBUF)]);
  try {
    const ready = await c.expect('ready', 30_000);
    const warm = WARM_PER_SESSION * SESSIONS;
    send(ready.port, warm, 64, 0);
    c.write(`target ${warm}`);
    await c.expect('done', 60_000);
    c.write('mark');
    await c.expect('marked');
    const before = udpSocket(ready.port);
    const s = send(ready.port, count, 64, WARM_PER_SESSION);
    await sleep(50);
    const drops = udpSocket(ready.port).drops - before.drops;
    c.write(`target ${warm + s.sent - drops}`);
    const done = await c.expect('done', 300_000);
    const rss = vmHwmBytes(c.pid);
    c.write('quit');
    await c.expect('closed', 120_000);
    return { packets: s.sent - drops, kernelDrops: drops, heap: done.heap, peakRssBytes: rss };
  } finally {
    c.kill();
    rmSync(dir, { recursive: true, force: true });
  }
}

// ---- reporting -------------------------------------------------------------------------------------------
const median = (xs) => {
  const v = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (!v.length) return NaN;
  return v.length % 2 ? v[(v.length - 1) / 2] : (v[v.length / 2 - 1] + v[v.length / 2]) / 2;
};
const fmtInt = (n) => (Number.isFinite(n) ? Math.round(n).toLocaleString('en-US') : '-');
const fmtRatio = (n) => (Number.isFinite(n) ? n.toFixed(2) : '-');
const fmtMB = (b) => (b == null ? '-' : `${(b / 1048576).toFixed(0)} MB`);

function summarize(runs) {
  const out = [];
  for (const size of SIZES) {
    const ofSize = runs.filter((r) => r.size === size);
    const ref = ofSize.filter((r) => r.receiver === 'ref');
    const refPps = median(ref.map((r) => r.drainPps));
    const refCpu = median(ref.map((r) => r.cpuNsPerPacket));
    for (const kind of Object.keys(LABEL)) {
      const rs = ofSize.filter((r) => r.receiver === kind);
      if (!rs.length) continue;
      const pps = median(rs.map((r) => r.drainPps));
      const cpu = median(rs.map((r) => r.cpuNsPerPacket));
      const heapRuns = rs.filter((r) => r.heap && r.heap.gcAvailable);
      out.push({
        size,
        receiver: kind,
        label: LABEL[kind],
        runs: rs.length,
        packetsPerRun: rs[0].sent,
        drainPps: pps,
        drainRatio: pps / refPps,
        cpuNsPerPacket: cpu,
        cpuRatio: refCpu / cpu,
        peakRssBytes: Math.max(...rs.map((r) => r.peakRssBytes ?? 0)),
        lost: rs.reduce((a, r) => a + Math.max(0, r.lost), 0),
        countedDrops: rs.reduce((a, r) => a + r.countedDrops, 0),
        kernelDrops: rs.reduce((a, r) => a + r.kernelDrops, 0),
        dups: rs.reduce((a, r) => a + r.check.dups + r.check.bad, 0),
        heapGrowthPerMillion: heapRuns.length ? median(heapRuns.map((r) => (r.heap.heapGrowthBytes / (r.sent - r.kernelDrops)) * 1e6)) : null,
        minorGcsPerMillion: heapRuns.length ? median(heapRuns.map((r) => (r.heap.minorGcs / (r.sent - r.kernelDrops)) * 1e6)) : null,
      });
    }
  }
  return out;
}

function table(summary) {
  const head = ['inner', 'receiver', 'drain pkt/s', 'vs C', 'CPU ns/pkt', 'C/it', 'peak RSS', 'lost', 'kernel drops', 'counted drops', 'heap growth/M pkts', 'scavenges/M pkts'];
  const rows = summary.map((s) => [
    `${s.size} B`,
    s.label,
    fmtInt(s.drainPps),
    fmtRatio(s.drainRatio),
    fmtInt(s.cpuNsPerPacket),
    fmtRatio(s.cpuRatio),
    fmtMB(s.peakRssBytes),
    String(s.lost + s.dups),
    String(s.kernelDrops),
    String(s.countedDrops),
    s.heapGrowthPerMillion == null ? '-' : `${fmtInt(s.heapGrowthPerMillion / 1024)} KiB`,
    s.minorGcsPerMillion == null ? '-' : fmtRatio(s.minorGcsPerMillion),
  ]);
  const lines = [`| ${head.join(' | ')} |`, `|${head.map((h, i) => (i < 2 ? '---' : '---:')).join('|')}|`];
  for (const r of rows) lines.push(`| ${r.join(' | ')} |`);
  return lines.join('\n');
}

function targets(summary, soak) {
  const get = (size, kind) => summary.find((s) => s.size === size && s.receiver === kind);
  const out = [];
  for (const size of [64, 512]) {
    const n = get(size, 'native');
    const d = get(size, 'dgram');
    if (n) out.push({ target: `native CPU/packet within 1.4x of C at ${size} B (C/native >= 0.7)`, value: n.cpuRatio, pass: n.cpuRatio >= 0.7 });
    if (n && d) {
      out.push({ target: `native drains >= 5x dgram at ${size} B`, value: n.drainPps / d.drainPps, pass: n.drainPps / d.drainPps >= 5 });
      out.push({ target: `native CPU/packet <= 1/5 of dgram at ${size} B`, value: d.cpuNsPerPacket / n.cpuNsPerPacket, pass: d.cpuNsPerPacket / n.cpuNsPerPacket >= 5 });
    }
  }
  for (const n of summary.filter((s) => s.receiver === 'native')) {
    out.push({ target: `native lost nothing that reached the socket at ${n.size} B (missing from the files, kernel drops aside)`, value: n.lost + n.dups, pass: n.lost + n.dups === 0 });
    out.push({ target: `native peak RSS < 200 MB at ${n.size} B`, value: Math.round(n.peakRssBytes / 1048576), pass: n.peakRssBytes < 200 * 1048576 });
  }
  for (const size of SIZES) {
    const d = get(size, 'dgram');
    const p = get(size, 'plain');
    if (d && p) out.push({ target: `dgram path no slower than plain dgram + PCAP at ${size} B`, value: d.drainPps / p.drainPps, pass: d.drainPps >= p.drainPps * 0.95 });
  }
  if (soak) out.push({ target: 'native path: heap growth per million packets < 64 KiB (soak)', value: soak.heapGrowthPerMillion, pass: soak.heapGrowthPerMillion < 65536 });
  return out;
}

// ---- the receive buffer cap -------------------------------------------------------------------------------
/**
 * node:dgram asks SO_RCVBUF only, which the kernel caps at net.core.rmem_max (the native receiver and the
 * C reference may use SO_RCVBUFFORCE). So that every socket receiver holds the same burst, the run raises
 * rmem_max to the buffer it asks for, when it may (root), and puts the old value back at the end: the
 * same setting deploy/sysctl.d/60-mirrorguard.conf makes for production.
 */
const RMEM_MAX = '/proc/sys/net/core/rmem_max';
function raiseRmemMax() {
  let old;
  try {
    old = Number(readFileSync(RMEM_MAX, 'utf8').trim());
    if (old >= RCVBUF) return () => {};
    writeFileSync(RMEM_MAX, String(RCVBUF));
  } catch {
    log(`cannot raise ${RMEM_MAX} (not root?): node:dgram receivers keep a ${old ?? '?'}-byte cap and may drop`);
    return () => {};
  }
  log(`raised net.core.rmem_max from ${old} to ${RCVBUF} for the run (restored at the end)`);
  const restore = () => {
    try {
      writeFileSync(RMEM_MAX, String(old));
    } catch {
      /* reported below if it matters */
    }
  };
  process.once('exit', restore);
  for (const sig of ['SIGINT', 'SIGTERM']) process.once(sig, () => (restore(), process.exit(130)));
  return restore;
}

// ---- main ------------------------------------------------------------------------------------------------
async function main() {
  const started = Date.now();
  requireBuilt();
  compile();
  const restoreRmem = args['no-sysctl'] ? () => {} : raiseRmemMax();
  let kinds = args.receivers.split(',');
  const skipped = {};
  if (!nativeBuilt()) {
    for (const k of ['native', 'native2']) if (kinds.includes(k)) skipped[k] = 'the addon is not built (native/build/Release/mirrorguard_native.node)';
    kinds = kinds.filter((k) => k !== 'native' && k !== 'native2');
  }
  if (kinds.includes('tcpdump') && !hasTcpdump()) {
    skipped.tcpdump = 'tcpdump is not installed';
    kinds = kinds.filter((k) => k !== 'tcpdump');
  }
  if (args['extract-only']) kinds = [];
  for (const [k, why] of Object.entries(skipped)) log(`skipping ${LABEL[k]}: ${why}`);

  const meta = {
    date: new Date().toISOString(),
    node: process.version,
    kernel: release(),
    cpu: cpus()[0]?.model ?? 'unknown',
    cpus: cpus().length,
    memoryBytes: totalmem(),
    sessions: SESSIONS,
    reps: REPS,
    recvBufferRequested: RCVBUF,
    skipped,
  };
  const runs = [];
  const plan = {};
  for (const size of kinds.length ? SIZES : []) {
    const { truesize, recvBufferBytes } = await measureTruesize(size);
    // Fill at most 60% of what the kernel granted, and at most what keeps a run short.
    const fits = Math.floor((recvBufferBytes * 0.6) / truesize);
    const want = args.count ? Number(args.count) : args.quick ? 20_000 : size >= 1024 ? 150_000 : 300_000;
    plan[size] = { truesize, recvBufferBytes, count: Math.max(1000, Math.min(want, fits)) };
    if (plan[size].count < want) log(`inner ${size} B: the receive buffer (${recvBufferBytes} bytes) holds only ${fits} datagrams of ${truesize} bytes; sending ${plan[size].count}`);
  }
  meta.plan = plan;
  for (let rep = 0; rep < REPS; rep++) {
    for (const size of kinds.length ? SIZES : []) {
      for (const kind of kinds) {
        const count = plan[size].count;
        const t = Date.now();
        const r = kind === 'tcpdump' ? await runTcpdump(size, count) : await runSocketReceiver(kind, size, count);
        runs.push(r);
        log(
          `rep ${rep + 1}/${REPS} ${String(size).padStart(4)} B ${LABEL[kind].padEnd(24)} ${fmtInt(r.drainPps).padStart(10)} pkt/s ${fmtInt(r.cpuNsPerPacket).padStart(6)} ns/pkt` +
            `  rss ${fmtMB(r.peakRssBytes)}  lost ${r.lost}  kdrops ${r.kernelDrops}  (${((Date.now() - t) / 1000).toFixed(1)} s)`,
        );
      }
    }
  }
  let soak = null;
  if (!args['no-soak'] && kinds.includes('native')) {
    const n = args.quick ? 100_000 : 1_000_000;
    const s = await runSoak(n);
    soak = { ...s, heapGrowthPerMillion: (s.heap.heapGrowthBytes / s.packets) * 1e6, minorGcsPerMillion: (s.heap.minorGcs / s.packets) * 1e6 };
    log(`soak: ${fmtInt(s.packets)} packets live through the native path: heap growth ${fmtInt(soak.heapGrowthPerMillion)} bytes per million, ${fmtRatio(soak.minorGcsPerMillion)} scavenges per million`);
  }
  restoreRmem();
  let extraction = null;
  if (!args['no-extract']) {
    extraction = await runExtraction({ reps: args.quick ? 1 : Number(args['extract-reps']), ...(args.quick ? { frames: 5000 } : {}), log });
    if (extraction.skipped) log(`skipping extraction: ${extraction.skipped}`);
  }
  const summary = summarize(runs);
  const checks = targets(summary, soak);
  for (const r of extraction?.rows ?? []) {
    checks.push({ target: `extraction (${r.scenario}, ${r.filtered ? 'filtered' : 'whole window'}${r.sink === 'null' ? ', to /dev/null' : ''}) at least as fast as ${r.tool} (tool time / ours >= 1)`, value: r.ratio, pass: r.ratio >= 1 });
  }
  meta.elapsedSeconds = Math.round((Date.now() - started) / 1000);
  mkdirSync(OUT_DIR, { recursive: true });
  const file = join(OUT_DIR, `results-${meta.date.replace(/[:.]/g, '-')}.json`);
  writeFileSync(file, `${JSON.stringify({ meta, summary, checks, soak, runs, extraction }, null, 2)}\n`);

  const out = [];
  out.push(`mirrorguard bench ${meta.date}: ${meta.cpus} x ${meta.cpu}, Linux ${meta.kernel}, Node ${meta.node}`);
  if (runs.length) out.push(`${SESSIONS} sessions, median of ${REPS} run(s); packets per run: ${SIZES.map((s) => `${s} B: ${fmtInt(plan[s].count)}`).join(', ')}`);
  out.push('');
  if (runs.length) out.push(table(summary));
  if (extraction?.rows?.length) {
    out.push('');
    out.push(`Extraction: ${extraction.files} files x ${fmtInt(extraction.frames)} frames of ${extraction.frameBytes} B, median of ${extraction.reps} interleaved runs`);
    out.push(extractionTable(extraction));
  }
  if (soak) {
    out.push('');
    out.push(
      `Soak (live, ${fmtInt(soak.packets)} x 64 B through native -> decode -> session -> PCAP): heap growth ${fmtInt(soak.heapGrowthPerMillion)} bytes per million packets, ` +
        `${fmtRatio(soak.minorGcsPerMillion)} scavenges per million, young-generation bytes ${fmtInt(soak.heap.youngBytes)}, peak RSS ${fmtMB(soak.peakRssBytes)}, kernel drops ${soak.kernelDrops}`,
    );
  }
  out.push('');
  for (const c of checks) out.push(`${c.pass ? 'PASS' : 'FAIL'}  ${c.target}: ${typeof c.value === 'number' ? fmtRatio(c.value) : c.value}`);
  out.push('');
  out.push(`results: ${file} (${meta.elapsedSeconds} s)`);
  process.stdout.write(`${out.join('\n')}\n`);
}

main().catch((e) => {
  log(e instanceof Error ? e.stack : String(e));
  process.exit(1);
});
