/**
 * The main thread's side of `--workers N` (the worker thread's is src/receive-worker.ts). Wiring, like
 * src/app.ts: it composes ingest/, collector/ and store/, which do not know of each other's threads.
 *
 * `--workers N`: N native receivers on one port, one per worker thread, each with its own Collector and
 * its own PCAP files (CollectorOptions.workerId = 1..N, in every file name and catalog row).
 *
 * How the work is split: every worker binds the same address with SO_REUSEPORT and the kernel picks the
 * socket for each datagram by a hash of its 4-tuple (socket(7), SO_REUSEPORT). AWS sends all of one
 * mirror session from one source IP to the target's 4789, so the spread comes from the outer UDP source
 * port, which VXLAN senders vary per inner flow for ECMP entropy (RFC 7348 section 5: "it is
 * recommended that the UDP source port number be calculated using a hash of fields from the inner
 * packet"). One session's packets can therefore land in several workers' files: each file is in order,
 * and `mergecap` (or the API's merged download) interleaves them by timestamp.
 *
 * What stays in the main thread: the detector (onNewPair and the findings in SQLite). A worker's first
 * packet of a new (source IP, VNI) pair is written at once with status 'pending' and reported here; the
 * verdict goes back to every worker, which sets it on its session and catalog rows (Collector.reassess).
 * Each worker opens its own better-sqlite3 connection to the same WAL database for its catalog rows.
 *
 * Counters: each worker copies its Collector's drop/weird counters and its receiver's stats into a
 * SharedArrayBuffer every counterIntervalMs (and once more when it closes); counters() sums them.
 */
import { newSessionWritersCounters, type SessionWritersCounters } from './collector/session-writer.js';
import { existsSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import type { CollectorOptions, PairVerdict } from './collector/collector.js';
import { DROP_COUNT, WEIRD_COUNT } from './outcomes.js';
import { ERRORS, MgError, type ErrorCode } from './errors.js';
import type { Logger, LogFormat, LogLevel } from './util/log.js';
import type { NativeCounterSource } from './ingest/native.js';
import type { RingReceiverStats } from './ingest/ring.js';
import type { BoundReceiver } from './ingest/udp.js';

/** Collector settings a worker gets (everything but the objects it makes itself). */
export type WorkerCollectorConfig = Omit<CollectorOptions, 'catalog' | 'logger' | 'onNewPair' | 'nowSec' | 'workerId'>;

/** What a worker needs to open its own connection to the store (no migration: serve did it). */
export interface WorkerStore {
  url: string;
  passwordFile?: string;
  tlsCa?: string;
}

export interface NativeWorkersOptions {
  /** native: recvmmsg sockets with SO_REUSEPORT; af-packet: one capture ring per worker in a PACKET_FANOUT group. Default native. */
  receiver?: 'native' | 'af-packet';
  /** af-packet: the ring settings for the whole process; each worker's ring gets blockCount / workers blocks (at least 2). */
  ring?: { interface: string | null; blockBytes: number; blockCount: number; retireMs: number };
  /** af-packet: the PACKET_FANOUT group id (0..65535). */
  fanoutGroup?: number;
  workers: number;
  host: string;
  port: number;
  recvBufferBytes: number;
  /** The native receivers' receive coalescing, ms (config recvCoalesceMs; src/ingest/native.ts). Default: the receiver's. */
  recvCoalesceMs?: number;
  /** The store serve opened (SQLite file in WAL mode, or PostgreSQL); each worker opens its own connection. */
  store: WorkerStore;
  /** This node's name, on the workers' catalog rows (the archive sweeps them by node). Default: the host name. */
  nodeId?: string;
  collector: WorkerCollectorConfig;
  logger: Logger;
  /** Level for the workers' own loggers (on stderr, with `worker: id`). */
  logLevel?: LogLevel;
  /** Format of the workers' own loggers (default json), as the main thread's. */
  logFormat?: LogFormat;
  /** The detector hook, run here in the main thread once per new (source IP, VNI) pair across all workers. */
  onNewPair?: (sourceIp: string, vni: number, atMs: number) => PairVerdict;
  batch?: number;
  slotBytes?: number;
  /** How often workers publish their counters. Default 500 ms. */
  counterIntervalMs?: number;
  /** The worker script; defaults to receive-worker.js beside this module (in dist/ when run from sources). */
  workerUrl?: URL;
}

/** The ring stats a worker publishes (numbers only), in slot order after COUNTER_LAYOUT.ring. */
export const RING_FIELDS = ['wakeups', 'blocks', 'packets', 'maxBlockPackets', 'kernelPackets', 'ringDrops', 'freezes', 'heldBlocks', 'errors', 'fragments', 'truncated', 'malformed', 'backpressurePauses'] as const;

/** Layout of each worker's shared counter block (Float64 slots). */
export const COUNTER_LAYOUT = {
  drops: 0,
  weird: DROP_COUNT,
  sessions: DROP_COUNT + WEIRD_COUNT,
  rxPackets: DROP_COUNT + WEIRD_COUNT + 1,
  rxBatches: DROP_COUNT + WEIRD_COUNT + 2,
  rxTruncated: DROP_COUNT + WEIRD_COUNT + 3,
  rxKernelDrops: DROP_COUNT + WEIRD_COUNT + 4,
  queuedBytes: DROP_COUNT + WEIRD_COUNT + 5,
  rxUnstamped: DROP_COUNT + WEIRD_COUNT + 6,
  rxErrors: DROP_COUNT + WEIRD_COUNT + 7,
  rxBackpressurePauses: DROP_COUNT + WEIRD_COUNT + 8,
  /** The ring's stats (af-packet), in RING_FIELDS order. */
  ring: DROP_COUNT + WEIRD_COUNT + 9,
  /** The session writers' counters (SessionWritersCounters), in WRITER_FIELDS order. */
  writers: DROP_COUNT + WEIRD_COUNT + 9 + 16,
  size: DROP_COUNT + WEIRD_COUNT + 9 + 16 + 4,
} as const;

/** The session writers' counters a worker publishes (room for 4). */
export const WRITER_FIELDS = ['pcap.files.closed_early', 'pcap.copy.refused', 'pcap.buffers.pool_bytes', 'pcap.buffers.in_use_bytes', 'pcap.buffers.region_misses', 'pcap.direct.bytes', 'pcap.direct.refused', 'pcap.direct.behind'] as const satisfies readonly (keyof SessionWritersCounters)[];

export interface WorkerCounters {
  drops: Float64Array;
  weird: Float64Array;
  sessions: number;
  queuedBytes: number;
  /** The receivers' counters, summed (nativeCounters() names them). */
  receiver: NativeCounterSource;
  /** af-packet: the rings' stats, summed (ringCounters() names them). */
  ring: RingReceiverStats;
  /** The session writers' counters (pcap.files.closed_early, pcap.copy.refused), summed. */
  writers: SessionWritersCounters;
}

function emptyRingStats(): RingReceiverStats {
  const s = { lastError: null, paused: false, closed: false } as Record<string, unknown>;
  for (const f of RING_FIELDS) s[f] = 0;
  return s as unknown as RingReceiverStats;
}

export interface NativeWorkerPool extends BoundReceiver {
  readonly kind: 'native';
  /** What each worker reads with. */
  readonly receiverKind: 'native' | 'af-packet';
  readonly workers: number;
  /** Workers still running (one that crashed is logged and no longer counted). */
  readonly alive: number;
  /** Counters summed over the workers, as of their last publication. */
  counters(): WorkerCounters;
  perWorker(): WorkerCounters[];
  /**
   * Collector.flushLive in every worker (hand the buffers to the disk, wait for the writes, sync the open
   * files' catalog rows); resolves when all have. The same meaning as for one collector.
   */
  flushLive(): Promise<void>;
  /** Re-evaluate every pair any worker has seen (after a manifest reload) and tell the workers. */
  reassess(verdict: (sourceIp: string, vni: number) => PairVerdict): void;
  close(): Promise<void>;
}

/** Messages between the main thread and a worker. */
export type ToWorker =
  | { type: 'verdict'; sourceIp: string; vni: number; verdict: PairVerdict }
  | { type: 'reassess'; verdicts: { sourceIp: string; vni: number; verdict: PairVerdict }[] }
  | { type: 'flush'; id: number }
  | { type: 'close' };

export type FromWorker =
  | { type: 'ready'; port: number; recvBufferBytes: number; recvBufferForced: boolean }
  | { type: 'failed'; code: string; message: string }
  | { type: 'newPair'; sourceIp: string; vni: number; atMs: number }
  | { type: 'flushed'; id: number }
  | { type: 'closed' };

export interface WorkerData {
  id: number;
  host: string;
  port: number;
  recvBufferBytes: number;
  recvCoalesceMs?: number;
  store: WorkerStore;
  nodeId?: string;
  collector: WorkerCollectorConfig;
  logLevel: LogLevel;
  logFormat: LogFormat;
  /** Pretty logs in color: the main thread's stderr is a terminal. */
  logColor: boolean;
  batch: number | undefined;
  slotBytes: number | undefined;
  receiver: 'native' | 'af-packet';
  /** af-packet: this worker's ring (its share of the blocks) and whether it holds the UDP port (the first worker). */
  ring: { interface: string | null; blockBytes: number; blockCount: number; retireMs: number; fanoutGroup: number; holdPort: boolean } | null;
  counters: SharedArrayBuffer;
  counterIntervalMs: number;
}

export const PENDING: PairVerdict = Object.freeze({ sessionId: null, status: 'pending' });

export function defaultWorkerUrl(): URL {
  const here = new URL('./receive-worker.js', import.meta.url);
  if (existsSync(fileURLToPath(here))) return here;
  // Running from the TypeScript sources (tests): the compiled worker lives in dist/.
  const dist = fileURLToPath(here).replace(/([/\\])src([/\\])receive-worker\.js$/, '$1dist$2receive-worker.js');
  return pathToFileURL(dist);
}

const pairKey = (sourceIp: string, vni: number) => `${sourceIp}|${vni}`;
/**
 * Verdicts the main thread (and each worker) keeps, oldest forgotten first. A pair seen again after
 * its verdict was forgotten is judged again (the detector coalesces it into its finding), so the bound
 * costs a lookup, never a missed finding; without it a flood of spoofed pairs grows the maps forever.
 */
export const MAX_VERDICTS = 65_536;

function readCounters(view: Float64Array): WorkerCounters {
  const L = COUNTER_LAYOUT;
  return {
    drops: view.slice(L.drops, L.drops + DROP_COUNT),
    weird: view.slice(L.weird, L.weird + WEIRD_COUNT),
    sessions: view[L.sessions]!,
    queuedBytes: view[L.queuedBytes]!,
    receiver: {
      packets: view[L.rxPackets]!,
      batches: view[L.rxBatches]!,
      truncated: view[L.rxTruncated]!,
      kernelDrops: view[L.rxKernelDrops]!,
      unstamped: view[L.rxUnstamped]!,
      errors: view[L.rxErrors]!,
      backpressurePauses: view[L.rxBackpressurePauses]!,
    },
    ring: (() => {
      const r = emptyRingStats() as unknown as Record<string, number>;
      RING_FIELDS.forEach((f, i) => (r[f] = view[L.ring + i]!));
      return r as unknown as RingReceiverStats;
    })(),
    writers: (() => {
      const w = newSessionWritersCounters();
      WRITER_FIELDS.forEach((f, i) => (w[f] = view[L.writers + i]!));
      return w;
    })(),
  };
}

interface Slot {
  id: number;
  worker: Worker;
  view: Float64Array;
  alive: boolean;
  closed: Promise<void>;
}

export async function startNativeWorkers(opts: NativeWorkersOptions): Promise<NativeWorkerPool> {
  if (!Number.isInteger(opts.workers) || opts.workers < 1) {
    throw new MgError('MG_ERR_CONFIG_INVALID', `workers ${opts.workers}`, { problems: [{ field: 'workers', message: 'must be a positive integer' }] });
  }
  const url = opts.workerUrl ?? defaultWorkerUrl();
  if (url.protocol === 'file:' && !existsSync(fileURLToPath(url))) {
    throw new MgError('MG_ERR_INGEST_NATIVE_UNAVAILABLE', `the worker script ${fileURLToPath(url)} is missing (run npm run build)`);
  }
  const verdicts = new Map<string, { sourceIp: string; vni: number; verdict: PairVerdict }>();
  const slots: Slot[] = [];
  const flushWaits = new Map<number, { left: number; resolve: () => void }>();
  let flushSeq = 0;

  const onNewPair = (slot: Slot, sourceIp: string, vni: number, atMs: number) => {
    const key = pairKey(sourceIp, vni);
    let known = verdicts.get(key);
    if (known === undefined) {
      let verdict: PairVerdict = PENDING;
      if (opts.onNewPair) {
        try {
          verdict = opts.onNewPair(sourceIp, vni, atMs);
        } catch (e) {
          opts.logger.error({ err: e, sourceIp, vni }, 'detector failed on a new pair; capture continues');
        }
      }
      known = { sourceIp, vni, verdict };
      if (verdicts.size >= MAX_VERDICTS) verdicts.delete(verdicts.keys().next().value!);
      verdicts.set(key, known);
    }
    const msg: ToWorker = { type: 'verdict', sourceIp, vni, verdict: known.verdict };
    slot.worker.postMessage(msg);
  };

  const spawn = (id: number, port: number) =>
    new Promise<{ slot: Slot; ready: Extract<FromWorker, { type: 'ready' }> }>((resolve, reject) => {
      const sab = new SharedArrayBuffer(COUNTER_LAYOUT.size * 8);
      const data: WorkerData = {
        id,
        host: opts.host,
        port,
        recvBufferBytes: opts.recvBufferBytes,
        ...(opts.recvCoalesceMs !== undefined ? { recvCoalesceMs: opts.recvCoalesceMs } : {}),
        store: opts.store,
        ...(opts.nodeId !== undefined ? { nodeId: opts.nodeId } : {}),
        collector: opts.collector,
        logLevel: opts.logLevel ?? 'info',
        logFormat: opts.logFormat ?? 'json',
        logColor: process.stderr.isTTY === true,
        batch: opts.batch,
        slotBytes: opts.slotBytes,
        receiver: opts.receiver ?? 'native',
        ring:
          opts.receiver === 'af-packet' && opts.ring
            ? {
                ...opts.ring,
                blockCount: Math.max(2, Math.ceil(opts.ring.blockCount / opts.workers)),
                fanoutGroup: opts.fanoutGroup ?? process.pid & 0xffff,
                holdPort: id === 1,
              }
            : null,
        counters: sab,
        counterIntervalMs: opts.counterIntervalMs ?? 500,
      };
      const worker = new Worker(url, { workerData: data, name: `mirrorguard-rx-${id}` });
      let onClosed: () => void = () => {};
      const slot: Slot = { id, worker, view: new Float64Array(sab), alive: true, closed: new Promise<void>((r) => (onClosed = r)) };
      let started = false;
      worker.on('message', (m: FromWorker) => {
        switch (m.type) {
          case 'ready':
            started = true;
            resolve({ slot, ready: m });
            break;
          case 'failed':
            // The worker's MgError, rebuilt here (errors do not cross threads with their class).
            reject(new MgError(m.code in ERRORS ? (m.code as ErrorCode) : 'MG_ERR_INGEST_BIND', `worker ${id}: ${m.message}`));
            break;
          case 'newPair':
            onNewPair(slot, m.sourceIp, m.vni, m.atMs);
            break;
          case 'flushed': {
            const w = flushWaits.get(m.id);
            if (w && --w.left === 0) {
              flushWaits.delete(m.id);
              w.resolve();
            }
            break;
          }
          case 'closed':
            break;
        }
      });
      worker.on('error', (err) => {
        slot.alive = false;
        if (!started) reject(err);
        else opts.logger.error({ err, worker: id }, 'a receive worker failed; the kernel now spreads its share over the others');
      });
      worker.on('exit', () => {
        slot.alive = false;
        for (const [fid, w] of flushWaits) {
          if (--w.left === 0) {
            flushWaits.delete(fid);
            w.resolve();
          }
        }
        onClosed();
      });
    });

  // The first worker binds (port 0 picks a port); the others join the port it got.
  const first = await spawn(1, opts.port);
  slots.push(first.slot);
  const port = first.ready.port;
  try {
    const rest = await Promise.all(Array.from({ length: opts.workers - 1 }, (_, i) => spawn(i + 2, port)));
    for (const r of rest) slots.push(r.slot);
  } catch (e) {
    for (const s of slots) s.worker.postMessage({ type: 'close' } satisfies ToWorker);
    await Promise.all(slots.map((s) => s.closed));
    throw e;
  }
  opts.logger.info(
    opts.receiver === 'af-packet'
      ? { receiver: 'af-packet', workers: opts.workers, address: opts.host, port, fanoutGroup: opts.fanoutGroup }
      : { receiver: 'native', workers: opts.workers, address: opts.host, port, recvBufferBytes: first.ready.recvBufferBytes, reusePort: true },
    'receive workers started',
  );

  let closing: Promise<void> | null = null;
  const pool: NativeWorkerPool = {
    kind: 'native',
    receiverKind: opts.receiver ?? 'native',
    workers: opts.workers,
    address: { host: opts.host, port },
    recvBufferBytes: first.ready.recvBufferBytes,
    get alive() {
      return slots.filter((s) => s.alive).length;
    },
    perWorker: () => slots.map((s) => readCounters(s.view)),
    counters() {
      const all = pool.perWorker();
      const sum: WorkerCounters = {
        drops: new Float64Array(DROP_COUNT),
        weird: new Float64Array(WEIRD_COUNT),
        sessions: 0,
        queuedBytes: 0,
        receiver: { packets: 0, batches: 0, truncated: 0, kernelDrops: 0, unstamped: 0, errors: 0, backpressurePauses: 0 },
        ring: emptyRingStats(),
        writers: newSessionWritersCounters(),
      };
      for (const c of all) {
        for (const f of WRITER_FIELDS) sum.writers[f] += c.writers[f];
        c.drops.forEach((v, i) => (sum.drops[i]! += v));
        c.weird.forEach((v, i) => (sum.weird[i]! += v));
        sum.sessions += c.sessions;
        sum.queuedBytes += c.queuedBytes;
        sum.receiver.packets += c.receiver.packets;
        sum.receiver.batches += c.receiver.batches;
        sum.receiver.truncated += c.receiver.truncated;
        sum.receiver.kernelDrops += c.receiver.kernelDrops;
        sum.receiver.unstamped += c.receiver.unstamped;
        sum.receiver.errors += c.receiver.errors;
        sum.receiver.backpressurePauses += c.receiver.backpressurePauses;
        const r = sum.ring as unknown as Record<string, number>;
        for (const f of RING_FIELDS) r[f]! += (c.ring as unknown as Record<string, number>)[f]!;
      }
      return sum;
    },
    flushLive() {
      const live = slots.filter((s) => s.alive);
      if (!live.length) return Promise.resolve();
      const id = ++flushSeq;
      return new Promise<void>((resolve) => {
        flushWaits.set(id, { left: live.length, resolve });
        for (const s of live) s.worker.postMessage({ type: 'flush', id } satisfies ToWorker);
      });
    },
    reassess(verdict) {
      for (const v of verdicts.values()) v.verdict = verdict(v.sourceIp, v.vni);
      const msg: ToWorker = { type: 'reassess', verdicts: [...verdicts.values()] };
      for (const s of slots) if (s.alive) s.worker.postMessage(msg);
    },
    close() {
      if (closing === null) {
        for (const s of slots) if (s.alive) s.worker.postMessage({ type: 'close' } satisfies ToWorker);
        closing = Promise.all(slots.map((s) => s.closed)).then(() => undefined);
      }
      return closing;
    },
  };
  return pool;
}
