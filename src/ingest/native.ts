/**
 * The native fast path: the addon (native/src/receiver.cc) owns the UDP socket and reads it with
 * recvmmsg(2) into one preallocated buffer shared with JavaScript; this file walks each batch in place
 * and hands every datagram to the sink's ingest4/ingest6 (src/ingest/sink.ts) with offsets into that ONE Buffer and the
 * kernel's receive timestamp (SO_TIMESTAMPNS). Per packet, nothing is allocated here: the Buffer and the
 * metadata views are made once, the batch handler is one closure made once.
 *
 * node:dgram (src/ingest/udp.ts) stays the fallback: `auto` uses this receiver when the addon is built
 * (nativeAvailable()) and logs one line when it is not.
 */
import { MgError } from '../errors.js';
import type { Logger } from '../util/log.js';
import { loadNativeAddon, type NativeSocket, type NativeSocketStats } from './native-addon.js';
import type { PacketSink } from './sink.js';
import type { BoundReceiver } from './udp.js';

/** Datagrams per recvmmsg call. More amortises the system call and the JS call; 256 slots of 9 KiB = 2.3 MiB. */
export const DEFAULT_BATCH = 256;
/**
 * Bytes per slot: the largest datagram taken whole. AWS mirror targets see packets up to the 9001-byte
 * jumbo MTU of the source plus the VXLAN encapsulation (AWS Traffic Mirroring, "Packet format"), so 9216
 * never truncates a mirrored packet; a longer datagram is counted (ingest.native.truncated) and dropped.
 */
export const DEFAULT_SLOT_BYTES = 9216;
/** Batches read per readiness wakeup before yielding to the event loop (timers, the API, disk completions). */
export const DEFAULT_MAX_BATCHES_PER_WAKEUP = 16;

export interface NativeReceiverOptions {
  host: string;
  port: number;
  /** Asked for with SO_RCVBUF, then SO_RCVBUFFORCE when the process may (CAP_NET_ADMIN). */
  recvBufferBytes: number;
  logger: Logger;
  /** SO_REUSEPORT: several receivers (workers) share the port and the kernel spreads datagrams by flow hash. */
  reusePort?: boolean;
  batch?: number;
  slotBytes?: number;
  maxBatchesPerWakeup?: number;
  /**
   * Backpressure: asked after every batch; while it returns true the receiver stops reading and lets the
   * kernel's receive buffer hold the backlog (checked again every BACKPRESSURE_POLL_MS). Wire it to the
   * PCAP writer's disk queue so a burst faster than the disk waits in the socket buffer instead of being
   * dropped as pcap.write.queue_full. It must be cheap and allocate nothing.
   */
  backlogged?: () => boolean;
  /** For the log line: what the datagrams carry. */
  payload?: 'vxlan' | 'geneve';
  /**
   * After a batch shorter than `batch` (the socket was empty), stop reading for this many ms so the next
   * read takes what arrived meanwhile in one batch (0: read at every readiness). Default
   * DEFAULT_COALESCE_MS.
   */
  coalesceMs?: number;
}

/**
 * Receive coalescing, ms. At a live rate a socket reader wakes for every few datagrams, and each wake-up
 * (epoll, recvmmsg, the call into JavaScript, the loop's other phases) costs more than the packets it
 * brings; waiting 1 ms after a short batch lets the kernel gather ~1 ms of traffic into the next one, as
 * TPACKET_V3's block timeout does for af-packet. Timestamps are the kernel's (SO_TIMESTAMPNS), so they do
 * not move; the socket buffer holds the millisecond (recvBufferBytes, 128 MiB by default: ~100 ms at 10 Gb/s).
 */
export const DEFAULT_COALESCE_MS = 1;

/** How often a receiver paused by backpressure looks again. */
export const BACKPRESSURE_POLL_MS = 2;

export interface NativeReceiverStats extends NativeSocketStats {
  /** Datagrams longer than a slot: counted and dropped. */
  truncated: number;
  /** Times reading stopped because the pipeline was backlogged (see NativeReceiverOptions.backlogged). */
  backpressurePauses: number;
}

export interface NativeBoundReceiver extends BoundReceiver {
  readonly kind: 'native';
  /** SO_RCVBUFFORCE took the buffer past net.core.rmem_max. */
  readonly recvBufferForced: boolean;
  /** Kernel receive timestamps are on (SO_TIMESTAMPNS); otherwise the clock is read once per batch. */
  readonly kernelTimestamps: boolean;
  /** Stop reading: datagrams wait in the socket buffer (the benchmark fills it this way). */
  pause(): void;
  resume(): void;
  stats(): NativeReceiverStats;
}

/** The receiver's counters as the app reports them (docs/counters.md, "Native receiver"). */
export interface NativeCounterSource {
  packets: number;
  batches: number;
  truncated: number;
  kernelDrops: number;
  unstamped: number;
  errors: number;
  /** Times reading stopped because the PCAP writer was backlogged (the burst waits in the socket buffer). */
  backpressurePauses: number;
}

export function nativeCounters(s: NativeCounterSource, prefix: 'ingest.native' | 'ingest.geneve' = 'ingest.native'): Record<string, number> {
  return {
    [`${prefix}.packets`]: s.packets,
    [`${prefix}.batches`]: s.batches,
    [`${prefix}.truncated`]: s.truncated,
    [`${prefix}.kernel_drops`]: s.kernelDrops,
    [`${prefix}.unstamped`]: s.unstamped,
    [`${prefix}.errors`]: s.errors,
    [`${prefix}.backpressure_pauses`]: s.backpressurePauses,
  };
}

export function nativeAvailable(): { ok: true } | { ok: false; reason: string } {
  const r = loadNativeAddon();
  return r.ok ? { ok: true } : { ok: false, reason: r.reason };
}

export async function startNativeReceiver(sink: PacketSink, opts: NativeReceiverOptions): Promise<NativeBoundReceiver> {
  const loaded = loadNativeAddon();
  if (!loaded.ok) throw new MgError('MG_ERR_INGEST_NATIVE_UNAVAILABLE', loaded.reason);
  const { addon } = loaded;
  const L = addon.layout;
  const batch = opts.batch ?? DEFAULT_BATCH;
  const slotBytes = opts.slotBytes ?? DEFAULT_SLOT_BYTES;
  const maxBatchesPerWakeup = opts.maxBatchesPerWakeup ?? DEFAULT_MAX_BATCHES_PER_WAKEUP;
  const problems = [];
  if (!Number.isInteger(batch) || batch < 1 || batch > L.MAX_BATCH) problems.push({ field: 'batch', message: `must be an integer 1..${L.MAX_BATCH}` });
  if (!Number.isInteger(slotBytes) || slotBytes < L.MIN_SLOT_BYTES || slotBytes > L.MAX_SLOT_BYTES) {
    problems.push({ field: 'slotBytes', message: `must be an integer ${L.MIN_SLOT_BYTES}..${L.MAX_SLOT_BYTES}` });
  }
  if (!Number.isInteger(maxBatchesPerWakeup) || maxBatchesPerWakeup < 1) problems.push({ field: 'maxBatchesPerWakeup', message: 'must be a positive integer' });
  const coalesceMs = opts.coalesceMs ?? DEFAULT_COALESCE_MS;
  if (!Number.isInteger(coalesceMs) || coalesceMs < 0 || coalesceMs > 1000) problems.push({ field: 'coalesceMs', message: 'must be an integer 0..1000' });
  if (!(opts.recvBufferBytes >= 0 && opts.recvBufferBytes <= 0x7fffffff)) problems.push({ field: 'recvBufferBytes', message: 'must be 0..2147483647' });
  if (problems.length) throw new MgError('MG_ERR_CONFIG_INVALID', 'native receiver options', { problems });

  let sock: NativeSocket;
  try {
    sock = new addon.Receiver({
      host: opts.host,
      port: opts.port,
      recvBufferBytes: opts.recvBufferBytes,
      reusePort: opts.reusePort === true,
      batch,
      slotBytes,
      maxBatchesPerWakeup,
    });
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code ?? (e as Error).message;
    throw new MgError('MG_ERR_INGEST_BIND', `${opts.host}:${opts.port}: ${code}`, { cause: e });
  }
  const info = sock.info();

  // The views JavaScript reads, made once over the addon's memory.
  const data = Buffer.from(info.data);
  const meta = new Uint32Array(info.meta);
  const metaBytes = new Uint8Array(info.meta);
  const W = L.META_WORDS;
  const M_LEN = L.M_LEN;
  const M_FLAGS = L.M_FLAGS;
  const M_FAMILY = L.M_FAMILY;
  const M_SRC4 = L.M_SRC4;
  const M_TS_SEC = L.M_TS_SEC;
  const M_TS_NSEC = L.M_TS_NSEC;
  const M_SRC6_BYTE = L.M_SRC6 * 4;
  const FLAG_TRUNC = L.FLAG_TRUNC;

  // Backpressure: paused by the pipeline (not by the user) until backlogged() says it has room again.
  const backlogged = opts.backlogged;
  let userPaused = false;
  let heldBack = false;
  let backpressurePauses = 0;
  let closed = false;
  const retry = (): void => {
    if (closed || !heldBack) return;
    if (backlogged!()) {
      setTimeout(retry, BACKPRESSURE_POLL_MS);
      return;
    }
    heldBack = false;
    if (!userPaused) sock.resume();
  };

  // Receive coalescing (DEFAULT_COALESCE_MS): paused after a short batch until this one timer, reused, fires.
  // (Armed once here, a no-op then: refresh() re-arms a timer that has fired, not one that was cleared.)
  let coalescing = false;
  const coalesced = setTimeout(() => {
    if (!coalescing) return;
    coalescing = false;
    if (!closed && !heldBack && !userPaused) sock.resume();
  }, coalesceMs);

  // The sink may defer reading the batch's frames until endBatch() (one copy call per batch, issue 11).
  sink.batchBuffer?.(data);
  const endBatch = sink.endBatch === undefined ? null : (): void => sink.endBatch!();

  // One call per recvmmsg batch. Slot i's bytes are data[i * slotBytes, + LEN).
  const onBatch = (n: number): void => {
    for (let i = 0, m = 0, off = 0; i < n; i++, m += W, off += slotBytes) {
      if ((meta[m + M_FLAGS]! & FLAG_TRUNC) !== 0) continue; // counted by the addon (stats().truncated)
      const end = off + meta[m + M_LEN]!;
      // `| 0`: the address as a signed 32-bit number, a small integer, so it crosses the call unboxed (sink.ts).
      if (meta[m + M_FAMILY] === 4) sink.ingest4(data, off, end, meta[m + M_SRC4]! | 0, meta[m + M_TS_SEC]!, meta[m + M_TS_NSEC]!);
      else sink.ingest6(data, off, end, metaBytes, m * 4 + M_SRC6_BYTE, meta[m + M_TS_SEC]!, meta[m + M_TS_NSEC]!);
    }
    // Before the next recvmmsg overwrites `data`.
    if (endBatch !== null) endBatch();
    if (backlogged !== undefined && !heldBack && backlogged()) {
      heldBack = true;
      backpressurePauses++;
      sock.pause();
      setTimeout(retry, BACKPRESSURE_POLL_MS);
    } else if (n < batch && coalesceMs > 0 && !coalescing && !userPaused) {
      coalescing = true;
      sock.pause();
      coalesced.refresh();
    }
  };
  sock.start(onBatch);

  const granted = info.recvBufferBytes;
  // Linux doubles SO_RCVBUF for bookkeeping and caps it at net.core.rmem_max unless SO_RCVBUFFORCE
  // (CAP_NET_ADMIN) was allowed; compare half the reported value with what was asked for.
  if (opts.recvBufferBytes > 0 && granted / 2 < opts.recvBufferBytes * 0.99) {
    opts.logger.warn(
      { requested: opts.recvBufferBytes, granted: Math.floor(granted / 2) },
      `the kernel capped the receive buffer; raise it with: sysctl -w net.core.rmem_max=${opts.recvBufferBytes} (deploy/sysctl.d/60-mirrorguard.conf), or run with CAP_NET_ADMIN`,
    );
  }
  if (!info.kernelTimestamps) opts.logger.warn('SO_TIMESTAMPNS is not available: packets are stamped with the clock when read, once per batch');
  const host = info.family === 6 && opts.host === '::' ? '::' : opts.host;
  opts.logger.info(
    { receiver: 'native', address: host, port: info.port, recvBufferBytes: granted, recvBufferForced: info.recvBufferForced, batch, slotBytes, reusePort: opts.reusePort === true },
    opts.payload === 'geneve' ? 'receiving GENEVE from a Gateway Load Balancer' : 'receiving VXLAN',
  );

  let closing: Promise<void> | null = null;
  return {
    kind: 'native',
    address: { host, port: info.port },
    recvBufferBytes: granted,
    recvBufferForced: info.recvBufferForced,
    kernelTimestamps: info.kernelTimestamps,
    pause() {
      userPaused = true;
      sock.pause();
    },
    resume() {
      userPaused = false;
      if (!heldBack) sock.resume();
    },
    stats: () => ({ ...sock.stats(), backpressurePauses }),
    close(): Promise<void> {
      closed = true;
      clearTimeout(coalesced);
      if (closing === null) {
        closing = new Promise<void>((resolve) => {
          if (sock.close(resolve)) resolve();
        });
      }
      return closing;
    },
  };
}
