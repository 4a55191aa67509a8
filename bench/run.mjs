#!/usr/bin/env node
// npm run bench: mirrorguard's receivers side by side with a C reference that does the same work, and tcpdump.
//
// Method (docs/performance.md explains it for readers):
//   1. Compile the C reference receiver (OpenSSL libcrypto for its SHA-256) and the traffic generator
//      from test/bench/ (gcc -O2).
//   2. For each inner frame size (64, 512, 1450 bytes) and each receiver, start the receiver on
//      127.0.0.1 with a 1 GiB receive buffer, warm it up (every session opened, the JIT warm), then
//      SIGSTOP it, send COUNT (300,000) VXLAN datagrams from 16 sessions (16 outer sources
//      127.0.0.2-17, one VNI each), SIGCONT it and time how long it takes to drain them (drain rate).
//      The sender is done before the receiver resumes, so the receiver has a core to itself and the
//      other core takes its disk writes.
//   3. CPU per packet: /proc/PID/task/*/schedstat of the receiver (every thread) from SIGCONT until
//      every packet is in its files (the C reference is told to flush; serve and the Collector rows,
//      which flush on a 1 s timer, are waited for), minus the receiver's idle rate over that wait.
//      Ratios pair each run with the hashing C reference of the same repetition.
//   4. Check every datagram sent is in the receiver's PCAP files (by the session and sequence number
//      inside each inner frame), or was counted as a kernel drop (/proc/net/udp, tcpdump's count), or
//      as a drop by the receiver (serve: by reason, from its /metrics after the run).
//   5. Peak RSS is VmHWM; heap growth and young-generation allocation come from the Collector
//      children (run with --expose-gc), and from a live "soak" run of a million packets.
//   6. Many sessions (issue 16): the C reference and serve at 10, 1,000 and 10,000 sessions (distinct
//      VNIs), 512 B, one datagram per session in turn.
//   7. Extraction (bench/extract.mjs): GET /v1/pcap through HTTP against mergecap (whole window) and
//      mergecap | tcpdump (filtered), on interleaved and on rotated non-overlapping files, as ratios;
//      and the floor: the same curl fetching mergecap's output from a server that only sends it.
//   8. Print the tables with ratios to the C reference and write everything to .bench/results-<date>.json.
//
// Rows: ref (the C reference, SHA-256 of every buffer), refnohash (the same without the hash), serve
// (`mirrorguard serve` with its defaults, as deployed), native / dgram / native2 (the Collector behind
// each receiver, built by bench/child.mjs), plain (node:dgram + hand-made PCAP), tcpdump.
//
// Options: --sizes 64,512,1450  --receivers ref,refnohash,serve,native,dgram,plain,tcpdump  (native2 too)
//          --reps 3  --count N  --sessions 16  --session-counts 10,1000,10000  --session-size 512
//          --no-sessions  --no-soak  --cpu-prof (profile serve's main thread over one 512 B drain)
//          --steady-counts 10,1000,10000  --steady-seconds 60  --steady-rate 10  --steady-heavy 4
//          --steady-heavy-rate 5000  --steady-size 512  --steady-ramp 0 (seconds over which the sessions start
//          one after another; 0: all in the first second)  --no-steady (the steady many-sessions rows, bench/steady.mjs)
//          --no-extract (skip the extraction rows)  --extract-only (only them)  --extract-reps 7
//          --extract-js-merge (a second server with the native merge step off, side by side)
//          --quick (small counts, one rep: a smoke test of the harness)
//          --no-sysctl (do not raise net.core.rmem_max for the run; see raiseRmemMax)
//          --live (instead of all this: the live mode, bench/live.mjs, every receiver at a fixed packet
//          rate with the sender and the receiver pinned to their own cores; its options follow it)
//
// Receivers serveA and serveB: serve again, side by side with serve in every repetition, with
// MG_SERVEA_ENV / MG_SERVEB_ENV ("NAME=value NAME2=value") added to its environment and MG_SERVEA_YAML /
// MG_SERVEB_YAML (YAML, \n for newlines) appended to its config: to measure a setting against the default.
// MG_PERF=PREFIX: `perf record -g` each drain of the C reference and serve (PREFIX.KIND.SIZE.TIME; serve
// runs with --perf-basic-prof-only-functions so JavaScript frames have names). Profiling slows both.
// MG_PERF_ALL=1 with it: the whole machine (`perf record -a`) instead of the receiver's process, so the
// work the kernel does for a receiver outside it (softirqs on the other CPU, the flusher) is seen too.
//
// The drain rows run serve with --receiver native (auto would pick af-packet as root, whose 64 MiB
// ring cannot hold a queued burst of 300,000 packets; the live mode measures af-packet).
import { spawn, spawnSync } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, readSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';

/** perf record's target: the receiver's process, or the whole machine with MG_PERF_ALL=1. */
function perfTarget(pid) {
  return process.env.MG_PERF_ALL === '1' ? ['-a'] : ['-p', String(pid)];
}
import { cpus, release, tmpdir, totalmem } from 'node:os';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { helpFromHeader } from './help.mjs';
import { formatTable, readProfile, selfTimeTable } from './cpu-profile.mjs';
import { extractionTable, runExtraction } from './extract.mjs';
import { compileSteady, runSteady, steadyTable } from './steady.mjs';
import { cpuNs, machineBusyNs, SERVE_NODE_ARGS } from './proc.mjs';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const OUT_DIR = join(ROOT, '.bench');
const BIN_DIR = join(OUT_DIR, 'bin');
const RCVBUF = 1024 * 1024 * 1024;
const WARM_PER_SESSION = 256;
/** Outer headers tcpdump stores on lo before the VXLAN payload: Ethernet 14 + IPv4 20 + UDP 8 + VXLAN 8. */
const TCPDUMP_PREFIX = 50;
/** The sender's batch; it sends BATCH datagrams for one session, then the next (vxlan_blast.c). */
const SEND_BATCH = 64;
/** The C reference reads 64 datagrams per recvmmsg call (issue 11's reference). */
const REF_BATCH = 64;
/** Warm-up datagrams in all, shared by the sessions (at least one each). */
const WARM_TOTAL = WARM_PER_SESSION * 16;
/** A timer-flushed receiver (serve's 1 s flush interval) has written everything when its files stop growing this long. */
const SETTLE_STALL_MS = 1600;

helpFromHeader(import.meta.url);
const { values: args } = parseArgs({
  options: {
    sizes: { type: 'string', default: '64,512,1450' },
    receivers: { type: 'string', default: 'ref,refnohash,serve,native,dgram,plain,tcpdump' },
    'no-sysctl': { type: 'boolean', default: false },
    reps: { type: 'string', default: '3' },
    count: { type: 'string' },
    sessions: { type: 'string', default: '16' },
    'no-soak': { type: 'boolean', default: false },
    quick: { type: 'boolean', default: false },
    'session-counts': { type: 'string', default: '10,1000,10000' },
    'session-size': { type: 'string', default: '512' },
    'no-sessions': { type: 'boolean', default: false },
    'steady-counts': { type: 'string', default: '10,1000,10000' },
    'steady-seconds': { type: 'string', default: '60' },
    'steady-rate': { type: 'string', default: '10' },
    'steady-heavy': { type: 'string', default: '4' },
    'steady-heavy-rate': { type: 'string', default: '5000' },
    'steady-size': { type: 'string', default: '512' },
    'steady-ramp': { type: 'string', default: '0' },
    'no-steady': { type: 'boolean', default: false },
    'cpu-prof': { type: 'boolean', default: false },
    'no-extract': { type: 'boolean', default: false },
    'extract-only': { type: 'boolean', default: false },
    'extract-reps': { type: 'string', default: '7' },
    'extract-js-merge': { type: 'boolean', default: false },
    live: { type: 'boolean', default: false },
  },
  // --live hands the rest of the command line to bench/live.mjs.
  strict: !process.argv.includes('--live'),
});
const SIZES = args.sizes.split(',').map(Number);
const SESSIONS = Number(args.sessions);
const REPS = args.quick ? 1 : Number(args.reps);
const LABEL = {
  ref: 'C reference (SHA-256)',
  refnohash: 'C reference, no hash',
  serve: 'mirrorguard serve',
  serveA: 'serve (variant A)',
  serveB: 'serve (variant B)',
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
  const gcc = (name, libs) => spawnSync('gcc', ['-O2', '-Wall', '-o', join(BIN_DIR, name), join(ROOT, 'test', 'bench', `${name}.c`), ...libs], { encoding: 'utf8' });
  let r = gcc('vxlan_blast', []);
  if (r.status !== 0) throw new Error(`gcc vxlan_blast.c failed (the benchmark needs gcc):\n${r.stderr || r.error}`);
  // The reference hashes with OpenSSL's libcrypto, as Node does. With libssl-dev, -lcrypto; without it,
  // the runtime library itself (libcrypto.so.3 comes with the openssl package; ref_receiver.c declares
  // the six EVP functions it uses when the headers are missing).
  r = gcc('ref_receiver', ['-lcrypto']);
  if (r.status !== 0) {
    const first = r.stderr;
    r = gcc('ref_receiver', ['-l:libcrypto.so.3']);
    if (r.status !== 0) throw new Error(`gcc ref_receiver.c failed: it needs OpenSSL 3's libcrypto (apt-get install libssl-dev, or at least openssl):\n${first}\n${r.stderr || r.error}`);
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

async function waitStopped(pid) {
  for (let i = 0; i < 500; i++) {
    if (procState(pid) === 'T') return;
    await sleep(2);
  }
  throw new Error(`process ${pid} did not stop`);
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
/** A deadline for Promise.race that does not keep the process alive once the race is won (the bench exits when done). */
const deadline = (ms) => new Promise((r) => setTimeout(r, ms).unref());
const now = () => process.hrtime.bigint();

// ---- traffic -----------------------------------------------------------------------------------------
function send(port, count, size, seqStart, sessions = SESSIONS, batch = SEND_BATCH) {
  const r = spawnSync(join(BIN_DIR, 'vxlan_blast'), ['127.0.0.1', String(port), String(count), String(sessions), String(size), String(seqStart), String(batch)], {
    encoding: 'utf8',
  });
  if (r.status !== 0) throw new Error(`vxlan_blast failed: ${r.stderr}`);
  return JSON.parse(r.stdout);
}

/** How many datagrams each session gets when COUNT are sent (round robin, SEND_BATCH at a time). */
function perSession(count, sessions = SESSIONS, batch = SEND_BATCH) {
  const n = new Array(sessions).fill(0);
  let left = count;
  for (let s = 0; left > 0; s = (s + 1) % sessions) {
    const k = Math.min(batch, left);
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
    // 'close', not 'exit': 'exit' may come before the last lines on stdout were read (a child that printed
    // 'closed' and exited was once taken for one that exited before it).
    this.exited = new Promise((r) => this.proc.on('close', (code, sig) => r({ code, sig })));
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
          if (s >= seen.length || q >= seen[s].length) bad++;
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

// ---- CPU accounting, the same for every receiver ----------------------------------------------------------
// CPU is read from outside (/proc/PID/task/*/schedstat: every thread, nanoseconds), from the moment the
// stopped receiver is resumed until every packet of the burst is processed *and* in its files: the C
// reference is told to flush (hash and write its partly filled buffers), a timer-flushed receiver
// (serve, the Collector rows) is waited for until its files stop growing. That wait is mostly idle; the
// receiver's idle CPU rate, measured before the burst, is taken off for it.

/** CPU nanoseconds per second the receiver burns while idle (timers), over MS milliseconds. */
/**
 * The machine-wide count (docs/performance.md, "Method"): everything the machine did for a drain, from
 * SIGCONT until its packets are in files and synced, whoever did it (the receiver's threads, the
 * kernel's writeback threads, softirqs run on another CPU), minus this process's own CPU (its polling)
 * and the receiver's idle rate over the wait for its files. It syncs before it starts, so earlier runs'
 * dirty pages are not counted, and end() syncs, so a receiver that leaves its writeback to the kernel
 * pays for it too. Assumes a machine otherwise quiet (10 ms ticks).
 */
function machineWindow() {
  spawnSync('sync');
  const m0 = machineBusyNs();
  const self0 = process.cpuUsage();
  return {
    end(idleNs) {
      spawnSync('sync');
      const self = process.cpuUsage(self0);
      return machineBusyNs() - m0 - (self.user + self.system) * 1000 - idleNs;
    },
  };
}

async function idleRate(pid, ms = 400) {
  const c0 = cpuNs(pid);
  const t0 = now();
  await sleep(ms);
  return ((cpuNs(pid) - c0) / Number(now() - t0)) * 1e9;
}

/** Record bytes (file size minus the 24-byte global header) of every pcap file under DIR. */
function recordBytes(dir) {
  let total = 0;
  for (const f of pcapFiles(dir)) {
    try {
      total += Math.max(0, statSync(f).size - 24);
    } catch {
      /* renamed or removed between the listing and the stat */
    }
  }
  return total;
}

/** Wait until the files hold EXPECT record bytes, or have not grown for SETTLE_STALL_MS. */
async function waitFiles(dir, expect, pollMs) {
  let last = -1;
  let lastChange = now();
  for (;;) {
    const b = recordBytes(dir);
    if (b >= expect) return { complete: true, bytes: b };
    if (b !== last) {
      last = b;
      lastChange = now();
    } else if (Number(now() - lastChange) > SETTLE_STALL_MS * 1e6) return { complete: false, bytes: b };
    await sleep(pollMs);
  }
}

// ---- one run of one receiver ---------------------------------------------------------------------------
/**
 * Send the warm-up to a running receiver; returns the kernel drops it caused (a receiver left with a
 * small buffer, e.g. node:dgram when net.core.rmem_max was lowered under the run, drops some), so the
 * caller waits for what arrived rather than for ever.
 */
async function warmUp(port, size, sessions, warm) {
  const d0 = udpSocket(port).drops;
  send(port, warm.total, size, 0, sessions, warm.batch);
  await sleep(20);
  const drops = udpSocket(port).drops - d0;
  if (drops > 0) log(`  the warm-up lost ${drops} datagrams to the kernel (receive buffer too small?)`);
  return drops;
}

/**
 * The warm-up: PER datagrams to each session (sequence numbers 0..PER-1), sent BATCH at a time round
 * robin; PER is a multiple of BATCH so that every session gets exactly PER.
 */
function warmPlan(sessions, batch) {
  const b = Math.max(1, Math.min(batch, Math.floor(WARM_TOTAL / sessions)));
  const per = Math.max(1, Math.floor(WARM_TOTAL / sessions / b)) * b;
  return { per, batch: b, total: per * sessions };
}

async function runSocketReceiver(kind, size, count, sessions = SESSIONS, batch = SEND_BATCH) {
  if (kind === 'dgram' || kind === 'plain') ensureRmemMax();
  const dir = mkdtempSync(join(tmpdir(), `mg-bench-${kind}-`));
  const c =
    kind === 'ref' || kind === 'refnohash'
      ? new Child(join(BIN_DIR, 'ref_receiver'), ['127.0.0.1', '0', dir, String(RCVBUF), String(REF_BATCH), kind === 'ref' ? 'sha256' : 'none'])
      : new Child(process.execPath, ['--expose-gc', join(ROOT, 'bench', 'child.mjs'), kind, dir, String(RCVBUF)]);
  const isRef = kind === 'ref' || kind === 'refnohash';
  const timerFlushed = kind === 'native' || kind === 'native2' || kind === 'dgram';
  try {
    const ready = await c.expect('ready', 30_000);
    const port = ready.port;
    if (ready.recvBufferBytes < RCVBUF) log(`  ${LABEL[kind]} got a ${ready.recvBufferBytes}-byte receive buffer (asked ${RCVBUF}): expect kernel drops`);
    // Warm-up: every session's file opened, the JIT warm, the buffer pool filled.
    const warm = warmPlan(sessions, batch);
    const warmDrops = await warmUp(port, size, sessions, warm);
    c.write(`target ${warm.total - warmDrops}`);
    await c.expect('done', 60_000);
    if (isRef) {
      c.write('flush');
      await c.expect('flushed');
    } else if (timerFlushed) await sleep(1200); // the warm-up's partly filled buffers go out on the flush timer
    const idleNsPerSec = isRef ? 0 : await idleRate(c.pid);
    c.write('mark');
    const mark = await c.expect('marked');
    const before = udpSocket(port);
    process.kill(c.pid, 'SIGSTOP');
    await waitStopped(c.pid);
    const s = send(port, count, size, warm.per, sessions, batch);
    const after = udpSocket(port);
    const kernelDrops = after.drops - before.drops;
    const expected = warm.total - warmDrops + s.sent - kernelDrops;
    c.write(`target ${expected}`);
    let perfProc = null;
    if (process.env.MG_PERF) {
      perfProc = spawn('perf', ['record', '-g', '-F', '4999', ...perfTarget(c.pid), '-o', `${process.env.MG_PERF}.${kind}.${size}.${Date.now()}`], { stdio: 'ignore' });
      await sleep(500);
    }
    const machine = machineWindow();
    const cpu0 = cpuNs(c.pid);
    const t0 = now();
    process.kill(c.pid, 'SIGCONT');
    const done = await c.expect('done', 300_000);
    const tDrained = now();
    let settled = { complete: true };
    if (isRef) {
      c.write('flush');
      await c.expect('flushed');
    } else if (timerFlushed) settled = await waitFiles(dir, expected * (16 + size), sessions > 100 ? 100 : 20);
    const tSettled = now();
    if (perfProc !== null) {
      perfProc.kill('SIGINT');
      await new Promise((r) => perfProc.on('exit', r));
    }
    const idleNs = (idleNsPerSec * Number(tSettled - tDrained)) / 1e9;
    // The Collector children run a full GC after the drain for their heap numbers: not the receiver's work.
    const gcNs = done.cpuAfterHeapUs != null ? (done.cpuAfterHeapUs - done.cpuUs) * 1000 : 0;
    const cpu = cpuNs(c.pid) - cpu0 - idleNs - gcNs;
    const machineNs = machine.end(idleNs + gcNs);
    const rss = vmHwmBytes(c.pid);
    c.write('quit');
    const closed = await c.expect('closed', 120_000);
    await c.exited;
    const drained = s.sent - kernelDrops;
    const drainNs = Number(BigInt(done.monoNs) - t0);
    const sentPer = perSession(s.sent, sessions, batch).map((n) => n + warm.per);
    const check = verify(pcapFiles(dir), size, sentPer, 0);
    // Datagrams the receiver took but counted as dropped (decode errors, pcap.write.queue_full ...).
    const countedDrops = isRef ? closed.decodeDrops + closed.truncated : kind === 'plain' ? closed.processed - closed.written : closed.drops.slice(1).reduce((a, b) => a + b, 0);
    return {
      ...drainRecord({ receiver: kind, size, sessions, s, after, kernelDrops, drainNs, drained, cpu, idleNsPerSec, idleNs, settled, rss, countedDrops, warmDrops, check }),
      machineNsPerPacket: machineNs / drained,
      selfCpuNsPerPacket: ((done.cpuUs - mark.cpuUs) * 1000) / drained,
      heap: done.heap ?? null,
      dropsByReason: null,
      counters: closed,
    };
  } finally {
    c.kill();
    rmSync(dir, { recursive: true, force: true });
  }
}

// ---- mirrorguard serve, as deployed ----------------------------------------------------------------------
/** A TCP port nobody listens on now (for serve's API). */
function freeTcpPort() {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

/** serve's counters from GET /metrics (public in the bench's config): written, and drops and events by name. */
async function scrape(apiPort) {
  const text = await (await fetch(`http://127.0.0.1:${apiPort}/metrics`)).text();
  const out = { written: 0, drops: {}, events: {}, sessionsLive: null };
  for (const line of text.split('\n')) {
    let m = /^mirrorguard_frames_written_total (\S+)/.exec(line);
    if (m) out.written = Number(m[1]);
    m = /^mirrorguard_dropped_packets_total\{reason="([^"]+)"\} (\S+)/.exec(line);
    if (m && Number(m[2]) !== 0) out.drops[m[1]] = Number(m[2]);
    m = /^mirrorguard_events_total\{[a-z]+="([^"]+)"\} (\S+)/.exec(line);
    if (m && Number(m[2]) !== 0) out.events[m[1]] = Number(m[2]);
    m = /^mirrorguard_sessions_live(?:\{[^}]*\})? (\S+)/.exec(line);
    if (m) out.sessionsLive = (out.sessionsLive ?? 0) + Number(m[1]);
  }
  out.processed = out.written + Object.values(out.drops).reduce((a, b) => a + b, 0);
  return out;
}

/**
 * `mirrorguard serve` with its defaults (native receiver, one worker, API, catalog, detector, no manifest),
 * started as an operator would, except: a 1 GiB receive buffer, the API on a free port with public
 * /metrics (read only outside the measured window), and a data directory of its own.
 */
async function runServe(size, count, sessions = SESSIONS, batch = SEND_BATCH, profile = false, variant = 'serve') {
  const variantEnv = { ...process.env };
  for (const kv of (variant === 'serve' ? '' : process.env[`MG_${variant.toUpperCase()}_ENV`] ?? '').split(' ').filter(Boolean)) variantEnv[kv.slice(0, kv.indexOf('='))] = kv.slice(kv.indexOf('=') + 1);
  const dir = mkdtempSync(join(tmpdir(), 'mg-bench-serve-'));
  const dataDir = join(dir, 'data');
  const cfg = join(dir, 'bench.yaml');
  writeFileSync(cfg, 'api:\n  publicMetrics: true\n' + (variant === 'serve' ? '' : (process.env[`MG_${variant.toUpperCase()}_YAML`] ?? '').replace(/\\n/g, '\n')));
  const port = freePort();
  const apiPort = await freeTcpPort();
  const logFd = openSync(join(dir, 'serve.log'), 'w');
  const profDir = join(OUT_DIR, 'profiles');
  const nodeArgs = profile ? [...SERVE_NODE_ARGS, '--cpu-prof', '--cpu-prof-dir', profDir] : [...SERVE_NODE_ARGS];
  if (process.env.MG_PERF) nodeArgs.push('--perf-basic-prof-only-functions');
  const proc = spawn(
    process.execPath,
    [...nodeArgs, join(ROOT, 'bin', 'mirrorguard.js'), 'serve', '--config', cfg, '--listen', `127.0.0.1:${port}`, '--recv-buffer', String(RCVBUF), '--data-dir', dataDir, '--api', `127.0.0.1:${apiPort}`, '--receiver', 'native'],
    { stdio: ['ignore', logFd, logFd], env: variantEnv },
  );
  closeSync(logFd);
  const pid = proc.pid;
  const exited = new Promise((r) => proc.on('exit', (code, sig) => r({ code, sig })));
  let gone = false;
  void exited.then(() => (gone = true));
  const serveLog = () => readFileSync(join(dir, 'serve.log'), 'utf8').slice(-3000);
  try {
    for (let i = 0; ; i++) {
      if (gone) throw new Error(`serve exited while starting:\n${serveLog()}`);
      if (udpSocket(port).found) {
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
    // serve picks its receiver (auto: native when the addon is built); say so when it is not native.
    const receiverKind = /"receiver":"(\w+)"/.exec(serveLog())?.[1] ?? 'unknown';
    if (receiverKind !== 'native') log(`  serve runs with the ${receiverKind} receiver, not native: the serve row measures that`);
    const warm = warmPlan(sessions, batch);
    const warmDrops = await warmUp(port, size, sessions, warm);
    for (let i = 0; (await scrape(apiPort)).processed < warm.total - warmDrops; i++) {
      if (i > 600) throw new Error(`serve did not take the warm-up in 60 s:\n${serveLog()}`);
      await sleep(100);
    }
    await sleep(1200); // the flush timer writes the warm-up's partly filled buffers
    const idleNsPerSec = await idleRate(pid);
    const before = udpSocket(port);
    process.kill(pid, 'SIGSTOP');
    await waitStopped(pid);
    const s = send(port, count, size, warm.per, sessions, batch);
    const after = udpSocket(port);
    const kernelDrops = after.drops - before.drops;
    const drained = s.sent - kernelDrops;
    let perfProc = null;
    if (process.env.MG_PERF) {
      perfProc = spawn('perf', ['record', '-g', '-F', '4999', ...perfTarget(pid), '-o', `${process.env.MG_PERF}.${variant}.${size}.${Date.now()}`], { stdio: 'ignore' });
      await sleep(500);
    }
    const machine = machineWindow();
    const cpu0 = cpuNs(pid);
    const t0 = now();
    process.kill(pid, 'SIGCONT');
    // Drained when the socket's queue is empty: the native receiver hands each batch to the pipeline
    // as soon as recvmmsg returns it, so at most one batch is in flight at that moment.
    for (;;) {
      if (udpSocket(port).rxQueue === 0) break;
      if (gone) throw new Error(`serve exited during the drain:\n${serveLog()}`);
      if (Number(now() - t0) > 300e9) throw new Error('serve did not drain in 300 s');
      await sleep(1);
    }
    const tDrained = now();
    const settled = await waitFiles(dataDir, (warm.total - warmDrops + drained) * (16 + size), sessions > 100 ? 100 : 20);
    const tSettled = now();
    if (perfProc !== null) {
      perfProc.kill('SIGINT');
      await new Promise((r) => perfProc.on('exit', r));
    }
    const idleNs = (idleNsPerSec * Number(tSettled - tDrained)) / 1e9;
    const cpu = cpuNs(pid) - cpu0 - idleNs;
    const machineNs = machine.end(idleNs);
    const rss = vmHwmBytes(pid);
    const counters = await scrape(apiPort);
    process.kill(pid, 'SIGTERM');
    const ex = await Promise.race([exited, deadline(120_000).then(() => null)]);
    if (!ex) throw new Error('serve did not exit in 120 s after SIGTERM');
    const drainNs = Number(tDrained - t0);
    const sentPer = perSession(s.sent, sessions, batch).map((n) => n + warm.per);
    const check = verify(pcapFiles(dataDir), size, sentPer, 0);
    const countedDrops = Object.values(counters.drops).reduce((a, b) => a + b, 0);
    let profileSummary = null;
    if (profile) {
      const files = readdirSync(profDir).filter((f) => f.endsWith('.cpuprofile') && f.includes(`.${pid}.`));
      if (files.length) {
        const file = join(profDir, files[0]);
        const fromUs = Number(t0 / 1000n);
        const toUs = Number(tDrained / 1000n);
        profileSummary = { file, window: 'resume to drained', fromUs, toUs, ...selfTimeTable(readProfile(file), fromUs, toUs) };
      }
    }
    return {
      ...drainRecord({ receiver: variant, size, sessions, s, after, kernelDrops, drainNs, drained, cpu, idleNsPerSec, idleNs, settled, rss, countedDrops, warmDrops, check }),
      machineNsPerPacket: machineNs / drained,
      serveReceiver: receiverKind,
      heap: null,
      dropsByReason: counters.drops,
      counters,
      exit: ex,
      profile: profileSummary,
    };
  } finally {
    try {
      process.kill(pid, 'SIGCONT');
      if (!gone) process.kill(pid, 'SIGKILL');
    } catch {
      /* gone */
    }
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

/** The fields every drain row records, from what each receiver's run measured (socket rows and serve alike). */
function drainRecord({ receiver, size, sessions, s, after, kernelDrops, drainNs, drained, cpu, idleNsPerSec, idleNs, settled, rss, countedDrops, warmDrops, check }) {
  return {
    receiver,
    size,
    sessions,
    sent: s.sent,
    sendNs: s.elapsedNs,
    queuedBytes: after.rxQueue,
    kernelDrops,
    drainNs,
    drainPps: drained / (drainNs / 1e9),
    cpuNsPerPacket: cpu / drained,
    idleNsPerSec,
    idleNsSubtracted: idleNs,
    settled,
    peakRssBytes: rss,
    countedDrops,
    warmKernelDrops: warmDrops,
    lost: check.missing - kernelDrops - warmDrops,
    check,
  };
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
const fmtRange = (xs) => {
  const v = xs.filter((x) => Number.isFinite(x));
  return v.length ? `${fmtRatio(Math.min(...v))}-${fmtRatio(Math.max(...v))}` : '-';
};
const fmtDrops = (d) =>
  d && Object.keys(d).length
    ? Object.entries(d)
        .map(([k, v]) => `${k} ${fmtInt(v)}`)
        .join(', ')
    : '0';

/**
 * One row per (size or session count, receiver). Ratios pair each run with the hashing C reference of
 * the same repetition (they ran minutes apart at most), so the spread of the per-repetition ratios is
 * the noise of the comparison; the median of those ratios is the headline.
 */
function summarize(runs, groupKey) {
  const out = [];
  const groups = [...new Set(runs.map((r) => r[groupKey]))];
  for (const g of groups) {
    const ofGroup = runs.filter((r) => r[groupKey] === g);
    const refOf = (rep) => ofGroup.find((r) => r.receiver === 'ref' && r.rep === rep);
    const refPps = median(ofGroup.filter((r) => r.receiver === 'ref').map((r) => r.drainPps));
    for (const kind of Object.keys(LABEL)) {
      const rs = ofGroup.filter((r) => r.receiver === kind);
      if (!rs.length) continue;
      const ratios = rs.map((r) => (refOf(r.rep) ? refOf(r.rep).cpuNsPerPacket / r.cpuNsPerPacket : NaN));
      const machineRatios = rs.map((r) => (refOf(r.rep)?.machineNsPerPacket != null && r.machineNsPerPacket != null ? refOf(r.rep).machineNsPerPacket / r.machineNsPerPacket : NaN));
      const heapRuns = rs.filter((r) => r.heap && r.heap.gcAvailable);
      // Drops by reason: the mean of one run (the sessions rows drop most of what they are sent).
      const drops = {};
      for (const r of rs) for (const [k, v] of Object.entries(r.dropsByReason ?? {})) drops[k] = (drops[k] ?? 0) + v / rs.length;
      out.push({
        size: rs[0].size,
        sessions: rs[0].sessions,
        receiver: kind,
        label: LABEL[kind],
        runs: rs.length,
        packetsPerRun: rs[0].sent,
        drainPps: median(rs.map((r) => r.drainPps)),
        drainRatio: median(rs.map((r) => r.drainPps)) / refPps,
        cpuNsPerPacket: median(rs.map((r) => r.cpuNsPerPacket)),
        cpuNsPerPacketEach: rs.map((r) => r.cpuNsPerPacket),
        cpuRatio: median(ratios),
        cpuRatioEach: ratios,
        machineNsPerPacket: rs.every((r) => r.machineNsPerPacket != null) ? median(rs.map((r) => r.machineNsPerPacket)) : null,
        machineRatio: machineRatios.every(Number.isFinite) ? median(machineRatios) : null,
        machineRatioEach: machineRatios,
        peakRssBytes: Math.max(...rs.map((r) => r.peakRssBytes ?? 0)),
        peakRssEach: rs.map((r) => r.peakRssBytes),
        lost: rs.reduce((a, r) => a + Math.max(0, r.lost), 0),
        missingEach: rs.map((r) => r.check.missing),
        unaccounted: rs.reduce((a, r) => a + Math.max(0, r.lost - r.countedDrops), 0),
        countedDrops: rs.reduce((a, r) => a + r.countedDrops, 0),
        dropsByReason: drops,
        kernelDrops: rs.reduce((a, r) => a + r.kernelDrops, 0),
        dups: rs.reduce((a, r) => a + r.check.dups + r.check.bad, 0),
        files: median(rs.map((r) => r.check.files)),
        heapGrowthPerMillion: heapRuns.length ? median(heapRuns.map((r) => (r.heap.heapGrowthBytes / (r.sent - r.kernelDrops)) * 1e6)) : null,
        minorGcsPerMillion: heapRuns.length ? median(heapRuns.map((r) => (r.heap.minorGcs / (r.sent - r.kernelDrops)) * 1e6)) : null,
      });
    }
  }
  return out;
}

function mdTable(head, rows) {
  const lines = [`| ${head.join(' | ')} |`, `|${head.map((h, i) => (i < 2 ? '---' : '---:')).join('|')}|`];
  for (const r of rows) lines.push(`| ${r.join(' | ')} |`);
  return lines.join('\n');
}

function table(summary) {
  const head = ['inner', 'receiver', 'CPU ns/pkt (each run)', 'C/it: median (range)', 'machine-wide ns/pkt, C/it: median (range)', 'drain pkt/s', 'vs C', 'peak RSS (each run)', 'lost (all runs)', 'kernel drops', 'counted drops (per run)', 'heap growth/M pkts', 'scavenges/M pkts'];
  return mdTable(
    head,
    summary.map((s) => [
      `${s.size} B`,
      s.label,
      s.cpuNsPerPacketEach.map(fmtInt).join(', '),
      `**${fmtRatio(s.cpuRatio)}** (${fmtRange(s.cpuRatioEach)})`,
      s.machineRatio == null ? '-' : `${fmtInt(s.machineNsPerPacket)}, ${fmtRatio(s.machineRatio)} (${fmtRange(s.machineRatioEach)})`,
      fmtInt(s.drainPps),
      fmtRatio(s.drainRatio),
      s.peakRssEach.map(fmtMB).join(', '),
      String(s.lost + s.dups),
      String(s.kernelDrops),
      fmtDrops(s.dropsByReason) === '0' ? fmtInt(s.countedDrops / s.runs) : fmtDrops(s.dropsByReason),
      s.heapGrowthPerMillion == null ? '-' : `${fmtInt(s.heapGrowthPerMillion / 1024)} KiB`,
      s.minorGcsPerMillion == null ? '-' : fmtRatio(s.minorGcsPerMillion),
    ]),
  );
}

function sessionsTable(summary) {
  const head = ['sessions', 'receiver', 'CPU ns/datagram (each run)', 'C/it: median (range)', 'peak RSS (each run)', 'files', 'missing from files (each run)', 'kernel drops (all runs)', 'counted drops by reason (per run)', 'unaccounted (all runs)'];
  return mdTable(
    head,
    summary.map((s) => [
      fmtInt(s.sessions),
      s.label,
      s.cpuNsPerPacketEach.map(fmtInt).join(', '),
      `**${fmtRatio(s.cpuRatio)}** (${fmtRange(s.cpuRatioEach)})`,
      s.peakRssEach.map(fmtMB).join(', '),
      fmtInt(s.files),
      s.missingEach.map(fmtInt).join(', '),
      fmtInt(s.kernelDrops),
      fmtDrops(s.dropsByReason),
      fmtInt(s.unaccounted),
    ]),
  );
}

/** Issue 11's goals for default serve, and the older ones for the Collector rows. */
function targets(summary, soak) {
  const get = (size, kind) => summary.find((s) => s.size === size && s.receiver === kind);
  const out = [];
  for (const s of summary.filter((x) => x.receiver === 'serve')) {
    out.push({ target: `serve CPU/packet at least 0.8 of the hashing C reference's at ${s.size} B (C/serve, median)`, value: s.cpuRatio, pass: s.cpuRatio >= 0.8 });
    out.push({ target: `serve peak RSS at most 200 MB at ${s.size} B (worst run)`, value: Math.round(s.peakRssBytes / 1048576), pass: s.peakRssBytes <= 200 * 1048576 });
    out.push({ target: `serve lost nothing that reached the socket at ${s.size} B`, value: s.lost + s.dups, pass: s.lost + s.dups === 0 });
  }
  for (const size of [64, 512]) {
    const n = get(size, 'native');
    const d = get(size, 'dgram');
    if (n && d) {
      out.push({ target: `native drains >= 5x dgram at ${size} B`, value: n.drainPps / d.drainPps, pass: n.drainPps / d.drainPps >= 5 });
      out.push({ target: `native CPU/packet <= 1/5 of dgram at ${size} B`, value: d.cpuNsPerPacket / n.cpuNsPerPacket, pass: d.cpuNsPerPacket / n.cpuNsPerPacket >= 5 });
    }
  }
  for (const n of summary.filter((s) => s.receiver === 'native')) {
    out.push({ target: `native (Collector) lost nothing that reached the socket at ${n.size} B`, value: n.lost + n.dups, pass: n.lost + n.dups === 0 });
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
let rmemRaised = false;
/** Another process (a test, another benchmark) may lower the shared setting during the run: raise it again. */
function ensureRmemMax() {
  if (!rmemRaised) return;
  try {
    const cur = Number(readFileSync(RMEM_MAX, 'utf8').trim());
    if (cur < RCVBUF) {
      writeFileSync(RMEM_MAX, String(RCVBUF));
      log(`  net.core.rmem_max was lowered to ${cur} by another process during the run; raised it again`);
    }
  } catch {
    /* not root any more? the receiver's warning says what it got */
  }
}
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
  rmemRaised = true;
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
  if (args.live) {
    const r = spawnSync(process.execPath, [join(ROOT, 'bench', 'live.mjs'), ...process.argv.slice(2)], { stdio: 'inherit' });
    process.exitCode = r.status ?? 1;
    return;
  }
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
  for (const [k, why] of Object.entries(skipped)) log(`skipping ${LABEL[k]}: ${why}`);
  if (args['extract-only']) kinds = [];

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
    // Issue 11's drain: the same 300,000 datagrams queued at every size (1450 B: ~0.7 GB of kernel memory).
    const want = args.count ? Number(args.count) : args.quick ? 20_000 : 300_000;
    plan[size] = { truesize, recvBufferBytes, count: Math.max(1000, Math.min(want, fits)) };
    if (plan[size].count < want) log(`inner ${size} B: the receive buffer (${recvBufferBytes} bytes) holds only ${fits} datagrams of ${truesize} bytes; sending ${plan[size].count}`);
  }
  meta.plan = plan;
  const once = async (kind, size, count, sessions, batch) => {
    if (kind === 'tcpdump') return { ...(await runTcpdump(size, count)), sessions };
    if (kind === 'serve' || kind === 'serveA' || kind === 'serveB') return runServe(size, count, sessions, batch, false, kind);
    return runSocketReceiver(kind, size, count, sessions, batch);
  };
  const report = (rep, what, kind, r, t) =>
    log(
      `rep ${rep + 1}/${REPS} ${what.padStart(7)} ${LABEL[kind].padEnd(24)} ${fmtInt(r.drainPps).padStart(10)} pkt/s ${fmtInt(r.cpuNsPerPacket).padStart(6)} ns/pkt` +
        (r.machineNsPerPacket != null ? ` (machine ${fmtInt(r.machineNsPerPacket)})` : '') +
        `  rss ${fmtMB(r.peakRssBytes)}  lost ${r.lost}  kdrops ${r.kernelDrops}  counted ${r.countedDrops}${r.settled?.complete === false ? ' (files incomplete)' : ''}  (${((Date.now() - t) / 1000).toFixed(1)} s)`,
    );
  // Many sessions (issue 16): distinct VNIs, one datagram per session in turn, at one frame size.
  const sessionCounts = args['no-sessions'] || !kinds.length ? [] : args['session-counts'].split(',').map(Number);
  const sessionKinds = kinds.filter((k) => k === 'ref' || k === 'serve');
  const sessionSize = Number(args['session-size']);
  if (sessionCounts.length && !plan[sessionSize]) {
    const { truesize, recvBufferBytes } = await measureTruesize(sessionSize);
    plan[sessionSize] = { truesize, recvBufferBytes, count: Math.max(1000, Math.min(args.quick ? 20_000 : 300_000, Math.floor((recvBufferBytes * 0.6) / truesize))) };
  }
  const sessionRuns = [];
  // Many sessions, steady (issue 16): serve with a manifest, a source per session, RATE/s each plus heavy sessions.
  const steadyCounts = args['no-steady'] || !kinds.includes('serve') ? [] : args['steady-counts'].split(',').map(Number);
  if (steadyCounts.length) compileSteady(BIN_DIR, ROOT);
  const steadyRuns = [];
  // Interleaved: each repetition runs every receiver at every size, so a slow spell of the shared
  // machine hits all of them, and each ratio pairs runs minutes apart at most.
  for (let rep = 0; rep < REPS; rep++) {
    for (const size of kinds.length ? SIZES : []) {
      for (const kind of kinds) {
        const t = Date.now();
        const r = await once(kind, size, plan[size].count, SESSIONS, SEND_BATCH);
        r.rep = rep;
        runs.push(r);
        report(rep, `${size} B`, kind, r, t);
      }
    }
    for (const n of sessionCounts) {
      for (const kind of sessionKinds) {
        const t = Date.now();
        const r = await once(kind, sessionSize, plan[sessionSize].count, n, n > SESSIONS ? 1 : SEND_BATCH);
        r.rep = rep;
        sessionRuns.push(r);
        report(rep, `${n} ses`, kind, r, t);
      }
    }
    for (const n of steadyCounts) {
      const seconds = args.quick ? 5 : Number(args['steady-seconds']);
      const r = await runSteady({ root: ROOT, binDir: BIN_DIR, sessions: n, rate: Number(args['steady-rate']), seconds, heavy: Number(args['steady-heavy']), heavyRate: Number(args['steady-heavy-rate']), size: Number(args['steady-size']), ramp: Number(args['steady-ramp']), log: (l) => log(`rep ${rep + 1}/${REPS} ${l}`) });
      r.rep = rep;
      delete r.logTail;
      steadyRuns.push(r);
    }
  }
  // Extraction through the API against mergecap and mergecap | tcpdump (issue 11; bench/extract.mjs).
  let extraction = null;
  if (!args['no-extract']) {
    extraction = await runExtraction({ reps: args.quick ? 1 : Number(args['extract-reps']), ...(args.quick ? { frames: 5000 } : {}), jsMerge: args['extract-js-merge'], log });
    if (extraction.skipped) log(`skipping extraction: ${extraction.skipped}`);
  }
  // A profile of serve's main thread over one 512 B drain (profiling slows it: not in the table).
  let profile = null;
  if (args['cpu-prof']) {
    const size = SIZES.includes(512) ? 512 : SIZES[0];
    const r = await runServe(size, plan[size].count, SESSIONS, SEND_BATCH, true);
    profile = { size, cpuNsPerPacket: r.cpuNsPerPacket, ...r.profile };
    log(`profile of serve at ${size} B: ${profile.file}`);
  }
  let soak = null;
  if (!args['no-soak'] && kinds.includes('native')) {
    const n = args.quick ? 100_000 : 1_000_000;
    const s = await runSoak(n);
    soak = { ...s, heapGrowthPerMillion: (s.heap.heapGrowthBytes / s.packets) * 1e6, minorGcsPerMillion: (s.heap.minorGcs / s.packets) * 1e6 };
    log(`soak: ${fmtInt(s.packets)} packets live through the native path: heap growth ${fmtInt(soak.heapGrowthPerMillion)} bytes per million, ${fmtRatio(soak.minorGcsPerMillion)} scavenges per million`);
  }
  restoreRmem();
  const summary = summarize(runs, 'size');
  const sessionSummary = summarize(sessionRuns, 'sessions');
  const checks = targets(summary, soak);
  for (const r of extraction?.rows ?? []) {
    checks.push({ target: `extraction (${r.scenario}, ${r.filtered ? 'filtered' : 'whole window'}${r.sink === 'null' ? ', to /dev/null' : ''}) at least as fast as ${r.tool} (tool time / ours >= 1)`, value: r.ratio, pass: r.ratio >= 1 });
  }
  meta.elapsedSeconds = Math.round((Date.now() - started) / 1000);
  mkdirSync(OUT_DIR, { recursive: true });
  const file = join(OUT_DIR, `results-${meta.date.replace(/[:.]/g, '-')}.json`);
  for (const r of steadyRuns) checks.push({ target: `steady ${r.sessions} sessions + ${r.heavy} heavy: nothing lost (kernel drops included), peak RSS under 300 MB`, value: `${r.check.missing} missing (${r.kernelDrops} kernel drops), ${r.check.dups} dups, ${Math.round(r.peakRssBytes / 1e6)} MB`, pass: r.check.missing === 0 && r.check.dups === 0 && r.countedDrops === 0 && r.peakRssBytes < 300e6 });
  writeFileSync(file, `${JSON.stringify({ meta, summary, sessionSummary, checks, soak, profile, extraction, runs, sessionRuns, steadyRuns }, null, 2)}\n`);

  const out = [];
  out.push(`mirrorguard bench ${meta.date}: ${meta.cpus} x ${meta.cpu}, Linux ${meta.kernel}, Node ${meta.node}`);
  if (runs.length) {
    out.push(`${SESSIONS} sessions, ${REPS} interleaved repetition(s); packets per run: ${SIZES.map((s) => `${s} B: ${fmtInt(plan[s].count)}`).join(', ')}`);
    out.push('C/it = the hashing C reference\'s CPU per packet / this row\'s, paired within each repetition (1.0 = as cheap as C)');
  }
  out.push('');
  if (runs.length) out.push(table(summary));
  if (sessionSummary.length) {
    out.push('');
    out.push(`Many sessions, ${sessionSize} B inner frames, ${fmtInt(plan[sessionSize].count)} packets per run, one per session in turn:`);
    out.push('');
    out.push(sessionsTable(sessionSummary));
  }
  if (steadyRuns.length) {
    const r0 = steadyRuns[0];
    out.push('');
    out.push(`Many sessions, steady: serve with a manifest, one source per session, ${r0.size} B inner frames, ${r0.seconds} s per run (CPU: all threads, over the run and its drain):`);
    out.push('');
    out.push(steadyTable(steadyRuns));
  }
  if (extraction?.rows?.length) {
    out.push('');
    out.push(`Extraction: ${extraction.files} files x ${fmtInt(extraction.frames)} frames of ${extraction.frameBytes} B, median of ${extraction.reps} interleaved runs`);
    out.push('');
    out.push(extractionTable(extraction));
  }
  if (profile) {
    out.push('');
    out.push(`serve's main thread during one ${profile.size} B drain (node --cpu-prof; ${fmtInt(profile.cpuNsPerPacket)} ns/pkt with the profiler on):`);
    out.push('');
    out.push(formatTable(profile));
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
