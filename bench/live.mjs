#!/usr/bin/env node
// npm run bench -- --live: every receiver at a fixed packet rate, as a mirror target sees continuous
// traffic (the drain mode of bench/run.mjs measures a queued burst instead).
//
// Method (docs/performance.md, "Live"):
//   1. Compile the sender (test/bench/vxlan_blast.c, paced with BLAST_PPS) and the two C references:
//      ref_receiver.c (recvmmsg) and ref_ring.c (AF_PACKET TPACKET_V3), both doing the same work
//      (decapsulate, session table, pcap records, SHA-256 per 1 MiB buffer, write).
//   2. For each inner size, rate and repetition, each receiver in turn: start it pinned to core 1
//      (taskset -c 1; every thread it makes inherits that), warm it with WARM packets at the rate, wait,
//      measure its idle CPU rate, then send COUNT packets at RATE from 16 sessions with the sender pinned
//      to core 0 (bursts of --batch datagrams), and read the receiver's CPU (all its threads,
//      /proc/PID/task/*/schedstat) from the sender's start to SETTLE_MS after its end, minus its idle
//      rate over that window. CPU per packet = that / COUNT.
//   3. Stop it and account for every packet: written, or counted as a drop where it happened (the
//      receiver's counters: ring drops, socket drops, decode drops). lost = sent - written - counted.
//      Peak RSS is VmHWM.
//   4. Print medians per (size, rate, receiver) with the ratio to the C recvmmsg reference of the same
//      repetition, and write .bench/live-<date>.json.
//
// Rows: ref (C recvmmsg), refring (C TPACKET_V3), af-packet / native / dgram (`mirrorguard serve
// --receiver X`, defaults otherwise; native-eager: native with recvCoalesceMs 0, reading at every
// readiness), tcpdump (tcpdump -w, its own TPACKET_V3 ring).
//
// The kernel's receive work for loopback (the softirq that copies into the socket or the ring) runs on
// the sender's core, so it is not in any row: every row is the receiver's own CPU.
//
// Options: --sizes 64,512  --rates 100000,400000  --count 500000  --reps 3  --batch 8
//          --receivers ref,refring,af-packet,native,dgram,tcpdump  --quick
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { cpus, release, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { helpFromHeader } from './help.mjs';
import { cpuNs } from './proc.mjs';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const OUT_DIR = join(ROOT, '.bench');
const BIN_DIR = join(OUT_DIR, 'bin');
const SESSIONS = 16;
/** After the sender: the last block retires (10 ms; tcpdump: its 1 s timeout), serve's flush timer runs. */
const SETTLE_MS = 1200;

helpFromHeader(import.meta.url);
const { values: args } = parseArgs({
  options: {
    live: { type: 'boolean', default: true },
    sizes: { type: 'string', default: '64,512' },
    rates: { type: 'string', default: '100000,400000' },
    count: { type: 'string', default: '500000' },
    reps: { type: 'string', default: '3' },
    batch: { type: 'string', default: '8' },
    receivers: { type: 'string', default: 'ref,refring,af-packet,native,dgram,tcpdump' },
    quick: { type: 'boolean', default: false },
  },
  strict: false,
});
const SIZES = String(args.sizes).split(',').map(Number);
const RATES = String(args.rates).split(',').map(Number);
const COUNT = args.quick ? 50_000 : Number(args.count);
const REPS = args.quick ? 1 : Number(args.reps);
const BATCH = Number(args.batch);
const RECEIVERS = String(args.receivers).split(',');
const WARM = Math.min(20_000, COUNT / 5);
const LABEL = {
  ref: 'C recvmmsg reference (SHA-256)',
  refring: 'C TPACKET_V3 reference (SHA-256)',
  'af-packet': 'serve --receiver af-packet',
  native: 'serve --receiver native',
  'native-eager': 'serve --receiver native, recvCoalesceMs 0',
  dgram: 'serve --receiver dgram',
  tcpdump: 'tcpdump -w',
};

const log = (line) => process.stderr.write(`${line}\n`);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const now = () => Number(process.hrtime.bigint());

function compile() {
  mkdirSync(BIN_DIR, { recursive: true });
  const gcc = (name, libs) => spawnSync('gcc', ['-O2', '-Wall', '-o', join(BIN_DIR, name), join(ROOT, 'test', 'bench', `${name}.c`), ...libs], { encoding: 'utf8' });
  let r = gcc('vxlan_blast', []);
  if (r.status !== 0) throw new Error(`gcc vxlan_blast.c failed:\n${r.stderr}`);
  for (const name of ['ref_receiver', 'ref_ring']) {
    r = gcc(name, ['-lcrypto']);
    if (r.status !== 0) r = gcc(name, ['-l:libcrypto.so.3']);
    if (r.status !== 0) throw new Error(`gcc ${name}.c failed (OpenSSL 3's libcrypto):\n${r.stderr}`);
  }
}

function vmHwm(pid) {
  const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) * 1024 : null;
}

function udpBound(port) {
  const hex = `:${port.toString(16).toUpperCase().padStart(4, '0')}`;
  return readFileSync('/proc/net/udp', 'utf8').split('\n').slice(1).some((l) => l.trim().split(/\s+/)[1]?.endsWith(hex));
}

function freePort() {
  for (;;) {
    const p = 20000 + Math.floor(Math.random() * 30000);
    if (!udpBound(p)) return p;
  }
}

/** The sender, pinned to core 0, paced. Resolves with its JSON line. */
function send(port, count, size, seqStart, rate) {
  return new Promise((resolve, reject) => {
    const p = spawn('taskset', ['-c', '0', join(BIN_DIR, 'vxlan_blast'), '127.0.0.1', String(port), String(count), String(SESSIONS), String(size), String(seqStart), String(BATCH)], {
      env: { ...process.env, BLAST_PPS: String(rate) },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    p.stdout.on('data', (d) => (out += d));
    p.stderr.on('data', (d) => (err += d));
    p.on('exit', (code) => (code === 0 ? resolve(JSON.parse(out)) : reject(new Error(`vxlan_blast: ${code} ${err}`))));
  });
}

/** A process with a line protocol on stdout (the C references) or JSON logs on stderr (serve). */
class Proc {
  constructor(cmd, argv, env = {}) {
    this.proc = spawn('taskset', ['-c', '1', cmd, ...argv], { stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, ...env } });
    this.pid = this.proc.pid;
    this.out = [];
    this.stderr = '';
    this.exited = new Promise((r) => this.proc.on('exit', (code, sig) => r({ code, sig })));
    this.proc.stderr.setEncoding('utf8');
    this.proc.stderr.on('data', (d) => (this.stderr += d));
    createInterface({ input: this.proc.stdout }).on('line', (l) => this.out.push(l));
  }
  async waitFor(pred, what, ms = 30_000) {
    const until = Date.now() + ms;
    for (;;) {
      const hit = pred(this);
      if (hit) return hit;
      if (Date.now() > until) throw new Error(`${what}: timed out; stderr:\n${this.stderr.slice(-2000)}`);
      await sleep(10);
    }
  }
  jsonLog(msg) {
    for (const line of this.stderr.split('\n')) {
      if (!line.includes(`"msg":"${msg}"`)) continue;
      try {
        return JSON.parse(line);
      } catch {
        /* partial */
      }
    }
    return null;
  }
  outLine(kind) {
    const l = this.out.find((x) => x.startsWith(`${kind} `));
    return l ? JSON.parse(l.slice(kind.length + 1)) : null;
  }
}

/** Holds a UDP port with a socket nobody reads (tcpdump's row): no ICMP port unreachable back to the sender. */
function holdPort(port) {
  const addon = createRequire(import.meta.url)(join(ROOT, 'native', 'build', 'Release', 'mirrorguard_native.node'));
  const h = addon.holdUdpPort('127.0.0.1', port);
  return () => addon.closeFd(h.fd);
}

async function start(kind, port, dir) {
  if (kind === 'ref' || kind === 'refring') {
    const p =
      kind === 'ref'
        ? new Proc(join(BIN_DIR, 'ref_receiver'), ['127.0.0.1', String(port), dir, String(64 * 1024 * 1024), '64'])
        : new Proc(join(BIN_DIR, 'ref_ring'), ['127.0.0.1', String(port), dir]);
    await p.waitFor((x) => x.outLine('ready'), `${kind} ready`);
    return {
      p,
      async stop() {
        p.proc.stdin.write('quit\n');
        const c = await p.waitFor((x) => x.outLine('closed'), `${kind} closed`);
        await p.exited;
        return { written: c.written, counted: c.kernelDrops + c.decodeDrops + c.truncated, detail: c };
      },
    };
  }
  if (kind === 'tcpdump') {
    const release = holdPort(port);
    const file = join(dir, 'tcpdump.pcap');
    const p = new Proc('tcpdump', ['-i', 'lo', '-n', '-s', '262144', '-B', '65536', '-Z', 'root', '-w', file, `udp dst port ${port} and dst host 127.0.0.1`]);
    await p.waitFor((x) => x.stderr.includes('listening on'), 'tcpdump listening');
    return {
      p,
      async stop() {
        p.proc.kill('SIGINT');
        await p.exited;
        release();
        const captured = Number(/(\d+) packets? captured/.exec(p.stderr)?.[1] ?? NaN);
        const dropped = Number(/(\d+) packets? dropped by kernel/.exec(p.stderr)?.[1] ?? 0);
        return { written: captured, counted: dropped, detail: { captured, dropped } };
      },
    };
  }
  // native-eager: the native receiver reading at every readiness (no receive coalescing), for comparison.
  const eager = kind === 'native-eager';
  const extra = [];
  if (eager) {
    writeFileSync(join(dir, 'eager.yaml'), 'recvCoalesceMs: 0\n');
    extra.push('--config', join(dir, 'eager.yaml'));
  }
  const receiver = eager ? 'native' : kind;
  const p = new Proc(process.execPath, [join(ROOT, 'bin', 'mirrorguard.js'), 'serve', ...extra, '--listen', `127.0.0.1:${port}`, '--api', 'off', '--data-dir', join(dir, 'data'), '--receiver', receiver, '--log-format', 'json', '--log-level', 'info']);
  await p.waitFor((x) => x.jsonLog('receiving VXLAN'), `serve --receiver ${kind}`);
  return {
    p,
    async stop() {
      p.proc.kill('SIGTERM');
      await p.exited;
      const c = p.jsonLog('stopped; final counters')?.counters ?? {};
      const ring = p.jsonLog('capture ring closed')?.counters ?? {};
      const kernel = p.jsonLog('stopped; final counters')?.kernel;
      let counted = 0;
      // The drop outcomes only (src/outcomes.ts): the final counters also carry gauges and events under
      // pcap.* (pcap.buffers.pool_bytes, pcap.files.closed_early), which are not packets.
      for (const [k, v] of Object.entries(c)) if (/^(decode\.|pcap\.write\.|session\.table_full$)/.test(k)) counted += v;
      counted += ring['ingest.ring.drops'] ?? 0;
      counted += kind !== 'af-packet' && kernel ? kernel.drops : 0;
      return { written: c.written ?? 0, counted, detail: { ...ring, kernelDrops: kernel?.drops ?? null } };
    },
  };
}

async function runOne(kind, size, rate) {
  const dir = mkdtempSync(join(tmpdir(), `mg-live-${kind}-`));
  const port = freePort();
  let r = null;
  try {
    r = await start(kind, port, dir);
    const pid = r.p.pid;
    await send(port, WARM, size, 0, rate);
    await sleep(1500); // serve's flush timer writes the warm-up; the JIT settles
    const i0 = cpuNs(pid);
    const it0 = now();
    await sleep(500);
    const idleNsPerNs = (cpuNs(pid) - i0) / (now() - it0);
    const c0 = cpuNs(pid);
    const t0 = now();
    const s = await send(port, COUNT, size, WARM, rate);
    await sleep(SETTLE_MS);
    const c1 = cpuNs(pid);
    const t1 = now();
    const rss = vmHwm(pid);
    const busy = c1 - c0 - idleNsPerNs * (t1 - t0);
    const acct = await r.stop();
    r = null;
    const sent = WARM + s.sent;
    return {
      receiver: kind,
      size,
      rate,
      sent,
      sendSeconds: s.elapsedNs / 1e9,
      achievedPps: s.sent / (s.elapsedNs / 1e9),
      cpuNsPerPacket: busy / s.sent,
      cpuShare: (c1 - c0) / (t1 - t0),
      idleShare: idleNsPerNs,
      peakRssBytes: rss,
      written: acct.written,
      counted: acct.counted,
      lost: sent - acct.written - acct.counted,
      detail: acct.detail,
    };
  } finally {
    if (r) {
      try {
        r.p.proc.kill('SIGKILL');
      } catch {
        /* gone */
      }
    }
    rmSync(dir, { recursive: true, force: true });
  }
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? (s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2) : NaN;
};

async function main() {
  if (process.platform !== 'linux') throw new Error('the live bench needs Linux (taskset, AF_PACKET)');
  if (cpus().length < 2) throw new Error('the live bench pins the sender and the receiver to two cores');
  if (!existsSync(join(ROOT, 'dist', 'app.js'))) throw new Error('dist/ is missing: npm run build');
  compile();
  const runs = [];
  for (const size of SIZES) {
    for (const rate of RATES) {
      for (let rep = 0; rep < REPS; rep++) {
        for (const kind of RECEIVERS) {
          const res = await runOne(kind, size, rate);
          res.rep = rep;
          runs.push(res);
          log(
            `${String(size).padStart(4)} B ${String(rate).padStart(6)} pps rep ${rep} ${kind.padEnd(10)} ${res.cpuNsPerPacket.toFixed(0).padStart(6)} ns/pkt  cpu ${(res.cpuShare * 100).toFixed(0)}%  rss ${(res.peakRssBytes / 1048576).toFixed(0)} MiB  written ${res.written}/${res.sent} counted ${res.counted} lost ${res.lost}`,
          );
        }
      }
    }
  }
  // Ratios pair each run with the C recvmmsg reference of the same repetition.
  const refOf = (r) => runs.find((x) => x.receiver === 'ref' && x.size === r.size && x.rate === r.rate && x.rep === r.rep);
  for (const r of runs) {
    const ref = refOf(r);
    r.ratioToRef = ref ? r.cpuNsPerPacket / ref.cpuNsPerPacket : null;
  }
  const rows = [];
  for (const size of SIZES) {
    for (const rate of RATES) {
      for (const kind of RECEIVERS) {
        const rs = runs.filter((x) => x.receiver === kind && x.size === size && x.rate === rate);
        if (!rs.length) continue;
        rows.push({
          size,
          rate,
          receiver: kind,
          label: LABEL[kind] ?? kind,
          achievedPps: median(rs.map((x) => x.achievedPps)),
          cpuNsPerPacket: median(rs.map((x) => x.cpuNsPerPacket)),
          cpuNsRange: [Math.min(...rs.map((x) => x.cpuNsPerPacket)), Math.max(...rs.map((x) => x.cpuNsPerPacket))],
          ratioToRef: median(rs.map((x) => x.ratioToRef ?? NaN)),
          peakRssBytes: Math.max(...rs.map((x) => x.peakRssBytes ?? 0)),
          lost: Math.max(...rs.map((x) => x.lost)),
          counted: Math.max(...rs.map((x) => x.counted)),
        });
      }
    }
  }
  // The rate asked for, and what the sender achieved (a busy sender core falls behind its schedule).
  const md = ['| inner | rate (achieved) | receiver | CPU ns/packet (median, range) | x C recvmmsg ref | peak RSS | counted drops | lost |', '|---:|---:|---|---:|---:|---:|---:|---:|'];
  for (const r of rows) {
    md.push(
      `| ${r.size} B | ${r.rate / 1000}k (${(r.achievedPps / 1000).toFixed(0)}k) | ${r.label} | ${r.cpuNsPerPacket.toFixed(0)} (${r.cpuNsRange[0].toFixed(0)}-${r.cpuNsRange[1].toFixed(0)}) | ${r.ratioToRef.toFixed(2)} | ${(r.peakRssBytes / 1048576).toFixed(0)} MiB | ${r.counted} | ${r.lost} |`,
    );
  }
  process.stdout.write(`\nLive: ${COUNT} packets at a fixed rate, ${SESSIONS} sessions, bursts of ${BATCH}; receiver pinned to core 1, sender to core 0; ${REPS} reps, medians. ${cpus()[0]?.model ?? ''}, Linux ${release()}\n\n${md.join('\n')}\n`);
  mkdirSync(OUT_DIR, { recursive: true });
  const file = join(OUT_DIR, `live-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
  writeFileSync(file, JSON.stringify({ count: COUNT, batch: BATCH, sessions: SESSIONS, reps: REPS, runs, rows }, null, 2));
  log(`wrote ${file}`);
}

main().catch((e) => {
  log(e.stack ?? String(e));
  process.exitCode = 1;
});
