// One receiver under test, run by bench/run.mjs as a child process so the parent can SIGSTOP it while
// the socket buffer fills, and read its CPU time and peak RSS. Modes:
//   native  mirrorguard's full path: native receiver -> Collector (decode, session table, PCAP writer, catalog)
//   dgram   the same Collector behind node:dgram (src/ingest/udp.ts)
//   native2 the same with --workers 2: two worker threads, two sockets on the port (SO_REUSEPORT)
//   plain   the baseline the issue measured: node:dgram, minimal decapsulation, one PCAP file per
//           session written with fs.writeSync from a 1 MiB buffer; no decoding, no catalog
//
// Control protocol (same as test/bench/ref_receiver.c), one line per command on stdin:
//   -> ready {port, recvBufferBytes, pid}
//   mark       -> marked {monoNs, cpuUs, packets, heap}   (a full GC first when run with --expose-gc)
//   target N   -> done {monoNs, cpuUs, packets, heap}     once N datagrams have been handed to the pipeline
//   quit       -> closed {counters}                        after every file is closed
//
//   node --expose-gc bench/child.mjs MODE DATA_DIR RCVBUF_BYTES [BATCH]
import { createSocket } from 'node:dgram';
import { closeSync, mkdirSync, openSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { PerformanceObserver, constants as perfConstants } from 'node:perf_hooks';
import { createInterface } from 'node:readline';
import v8 from 'node:v8';

const [mode, dataDir, rcvbufArg, batchArg] = process.argv.slice(2);
const recvBufferBytes = Number(rcvbufArg);
const dist = new URL('../dist/', import.meta.url);

let processed = 0;
let target = Infinity;
let onTarget = () => {};

function reply(kind, obj) {
  process.stdout.write(`${kind} ${JSON.stringify(obj)}\n`);
}

function point() {
  const u = process.cpuUsage();
  return { monoNs: String(process.hrtime.bigint()), cpuUs: u.user + u.system, packets: processed };
}

// ---- heap accounting: is anything allocated per packet? ---------------------------------------------
const gcCounts = { minor: 0, major: 0, incremental: 0, weakcb: 0 };
new PerformanceObserver((list) => {
  for (const e of list.getEntries()) {
    const k = e.detail?.kind ?? e.kind;
    if (k === perfConstants.NODE_PERFORMANCE_GC_MINOR) gcCounts.minor++;
    else if (k === perfConstants.NODE_PERFORMANCE_GC_MAJOR) gcCounts.major++;
    else if (k === perfConstants.NODE_PERFORMANCE_GC_INCREMENTAL) gcCounts.incremental++;
    else gcCounts.weakcb++;
  }
}).observe({ entryTypes: ['gc'] });

function newSpaceUsed() {
  return v8.getHeapSpaceStatistics().find((s) => s.space_name === 'new_space')?.space_used_size ?? 0;
}

const gc = globalThis.gc;
let markHeap = null;

function heapAtMark() {
  if (gc) gc();
  gcCounts.minor = gcCounts.major = gcCounts.incremental = gcCounts.weakcb = 0;
  markHeap = { heapUsed: process.memoryUsage().heapUsed, newSpace: newSpaceUsed() };
  return markHeap;
}

/** After the drain: young-generation bytes allocated (valid when no scavenge ran) and what survived a full GC. */
async function heapAtDone() {
  const newSpace = newSpaceUsed();
  // GC performance entries are delivered asynchronously; let them arrive before reading the counts.
  await new Promise((r) => setImmediate(r));
  await new Promise((r) => setTimeout(r, 20));
  const counts = { ...gcCounts };
  if (gc) gc();
  const heapUsed = process.memoryUsage().heapUsed;
  return {
    gcAvailable: typeof gc === 'function',
    minorGcs: counts.minor,
    majorGcs: counts.major + counts.incremental,
    youngBytes: newSpace - (markHeap?.newSpace ?? 0),
    heapGrowthBytes: heapUsed - (markHeap?.heapUsed ?? heapUsed),
  };
}

// ---- the receivers -----------------------------------------------------------------------------------
async function startMirrorguard(kind) {
  const { Collector } = await import(new URL('collector/collector.js', dist));
  const { Catalog } = await import(new URL('collector/catalog.js', dist));
  const { CATALOG_FILE } = await import(new URL('collector/layout.js', dist));
  const { openDb } = await import(new URL('store/db.js', dist));
  const { silentLogger } = await import(new URL('util/log.js', dist));
  const { nativeCopyBytes, nativePlannedCopy } = await import(new URL('ingest/native-addon.js', dist));
  const logger = silentLogger();
  mkdirSync(join(dataDir, 'pcap'), { recursive: true });
  const db = openDb(join(dataDir, CATALOG_FILE));
  const catalog = new Catalog(db);

  // Counting happens after the pipeline has taken the packet: ingestAddress (dgram) ends in ingest4/6 too.
  class CountingCollector extends Collector {
    ingest4(buf, off, end, src4, sec, nsec) {
      super.ingest4(buf, off, end, src4, sec, nsec);
      if (++processed >= target) onTarget();
    }
    ingest6(buf, off, end, src6, src6Off, sec, nsec) {
      super.ingest6(buf, off, end, src6, src6Off, sec, nsec);
      if (++processed >= target) onTarget();
    }
  }
  const MiB = 1024 * 1024;
  // The serve defaults (src/config/schema.ts), with rotation out of the way of a benchmark run.
  const collector = new CountingCollector({
    dataDir,
    catalog,
    logger,
    workerId: 0,
    strictVxlan: false,
    vxlanPort: 4789,
    maxSessions: 4096,
    rotateBytes: 1024 * MiB,
    rotateSeconds: 3600,
    idleCloseSeconds: 3600,
    flushIntervalMs: 1000,
    bufferBytes: 1 * MiB,
    queueBytes: 64 * MiB,
    // As serve does: frames past the word-copy size are copied by the addon (null without it).
    copyBytes: nativeCopyBytes(),
    plannedCopy: nativePlannedCopy(),
  });
  collector.start();
  // Backpressure (src/ingest/native.ts, `backlogged`): stop reading while the session writers' disk queue
  // is over half full, so a burst faster than the disk waits in the socket buffer, as in serve.
  const backlogged = () => collector.writers.backlogged();
  let receiver;
  if (kind === 'native') {
    const { startNativeReceiver } = await import(new URL('ingest/native.js', dist));
    receiver = await startNativeReceiver(collector, {
      host: '127.0.0.1',
      port: 0,
      recvBufferBytes,
      logger,
      ...(batchArg ? { batch: Number(batchArg) } : {}),
      ...(process.env.MG_BENCH_NO_BACKPRESSURE ? {} : { backlogged }),
    });
  } else {
    const { startUdpReceiver } = await import(new URL('ingest/udp.js', dist));
    receiver = await startUdpReceiver(collector, { host: '127.0.0.1', port: 0, recvBufferBytes, logger });
  }
  return {
    port: receiver.address.port,
    recvBufferBytes: receiver.recvBufferBytes,
    async close() {
      const rstats = receiver.stats ? receiver.stats() : null;
      await receiver.close();
      await collector.close();
      const s = collector.stats();
      db.close();
      return { processed, written: s.drops[0], drops: Array.from(s.drops), sessions: s.sessions, receiver: rstats };
    },
  };
}

async function startPlain() {
  // What "a plain node:dgram receiver that writes PCAP" does: a file per (source, VNI), records built
  // by hand into a 1 MiB buffer, written synchronously when full. No decoding past the VXLAN header.
  mkdirSync(dataDir, { recursive: true });
  const sock = createSocket({ type: 'udp4', recvBufferSize: recvBufferBytes });
  const files = new Map();
  const FILE_BUF = 1024 * 1024;
  let written = 0;
  const flush = (f) => {
    if (f.len > 0) writeSync(f.fd, f.buf, 0, f.len);
    f.len = 0;
  };
  sock.on('message', (msg, rinfo) => {
    processed++;
    if (msg.length >= 22 && (msg[0] & 0x08) !== 0) {
      const vni = (msg[4] << 16) | (msg[5] << 8) | msg[6];
      const key = `${rinfo.address}-${vni}`;
      let f = files.get(key);
      if (f === undefined) {
        f = { fd: openSync(join(dataDir, `plain-${key}.pcap`), 'w'), buf: Buffer.allocUnsafe(FILE_BUF), len: 24 };
        f.buf.writeUInt32LE(0xa1b23c4d, 0);
        f.buf.writeUInt16LE(2, 4);
        f.buf.writeUInt16LE(4, 6);
        f.buf.writeUInt32LE(0, 8);
        f.buf.writeUInt32LE(0, 12);
        f.buf.writeUInt32LE(262144, 16);
        f.buf.writeUInt32LE(1, 20);
        files.set(key, f);
      }
      const caplen = msg.length - 8;
      if (f.len + 16 + caplen > FILE_BUF) flush(f);
      const ms = Date.now();
      f.buf.writeUInt32LE(Math.floor(ms / 1000), f.len);
      f.buf.writeUInt32LE((ms % 1000) * 1e6, f.len + 4);
      f.buf.writeUInt32LE(caplen, f.len + 8);
      f.buf.writeUInt32LE(caplen, f.len + 12);
      msg.copy(f.buf, f.len + 16, 8);
      f.len += 16 + caplen;
      written++;
    }
    if (processed >= target) onTarget();
  });
  await new Promise((resolve, reject) => {
    sock.once('error', reject);
    sock.bind({ address: '127.0.0.1', port: 0 }, resolve);
  });
  return {
    port: sock.address().port,
    recvBufferBytes: sock.getRecvBufferSize(),
    async close() {
      await new Promise((r) => sock.close(r));
      for (const f of files.values()) {
        flush(f);
        closeSync(f.fd);
      }
      return { processed, written, sessions: files.size };
    },
  };
}

async function startWorkers(n) {
  // --workers N: the pipeline runs in worker threads; this thread only sums their published counters.
  // Every datagram ends as exactly one outcome counter (or a truncation), so the sum is what was processed.
  const { startNativeWorkers } = await import(new URL('receive-workers.js', dist));
  const { CATALOG_FILE } = await import(new URL('collector/layout.js', dist));
  const { openDb } = await import(new URL('store/db.js', dist));
  const { silentLogger } = await import(new URL('util/log.js', dist));
  mkdirSync(join(dataDir, 'pcap'), { recursive: true });
  const dbFile = join(dataDir, CATALOG_FILE);
  openDb(dbFile).close();
  const MiB = 1024 * 1024;
  const pool = await startNativeWorkers({
    workers: n,
    host: '127.0.0.1',
    port: 0,
    recvBufferBytes,
    dbFile,
    logger: silentLogger(),
    logLevel: 'silent',
    counterIntervalMs: 2,
    collector: {
      dataDir,
      strictVxlan: false,
      vxlanPort: 4789,
      maxSessions: 4096,
      rotateBytes: 1024 * MiB,
      rotateSeconds: 3600,
      idleCloseSeconds: 3600,
      flushIntervalMs: 1000,
      bufferBytes: 1 * MiB,
      queueBytes: 64 * MiB,
    },
  });
  const poll = setInterval(() => {
    const c = pool.counters();
    processed = c.drops.reduce((a, b) => a + b, 0) + c.receiver.truncated;
    if (processed >= target) onTarget();
  }, 1);
  return {
    port: pool.address.port,
    recvBufferBytes: pool.recvBufferBytes,
    async close() {
      clearInterval(poll);
      await pool.close();
      const c = pool.counters();
      return { processed, written: c.drops[0], drops: Array.from(c.drops), sessions: c.sessions, receiver: c.receiver, perWorker: pool.perWorker().map((w) => w.receiver.packets) };
    },
  };
}

const rx = mode === 'plain' ? await startPlain() : mode === 'native2' ? await startWorkers(2) : await startMirrorguard(mode);
reply('ready', { port: rx.port, recvBufferBytes: rx.recvBufferBytes, pid: process.pid });

let doneReported = false;
onTarget = () => {
  if (doneReported) return;
  doneReported = true;
  target = Infinity;
  const p = point();
  // With workers the pipeline's heaps are in other isolates: this thread's numbers would say nothing.
  // cpuAfterHeapUs: the parent takes the heap accounting's full GC off the drain's CPU.
  void heapAtDone().then((heap) => reply('done', { ...p, heap: mode === 'native2' ? null : heap, cpuAfterHeapUs: point().cpuUs }));
};

const rl = createInterface({ input: process.stdin });
rl.on('line', async (line) => {
  const [cmd, arg] = line.trim().split(/\s+/);
  if (cmd === 'mark') {
    const heap = heapAtMark();
    reply('marked', { ...point(), heap });
  } else if (cmd === 'target') {
    doneReported = false;
    target = Number(arg);
    if (processed >= target) onTarget();
  } else if (cmd === 'quit') {
    rl.close();
    const counters = await rx.close();
    reply('closed', counters);
    process.exit(0);
  }
});
rl.on('close', () => {
  /* the parent closed stdin: quit is sent first in normal runs */
});
