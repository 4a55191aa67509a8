/**
 * The capture-ring receiver (`--receiver af-packet`): an AF_PACKET socket with a TPACKET_V3 ring mapped
 * into the process (native/src/ring.cc), filtered in the kernel (src/ingest/ring-filter.ts). The kernel
 * hands over a block of packets at a time, when it is full or when `ring.retireMs` has passed, and this
 * file walks the block in place, as src/ingest/native.ts walks a recvmmsg batch: outer Ethernet, IPv4
 * and UDP are read once here, and the UDP payload goes to the same sink (ingest4, or ingestGeneve for
 * the GENEVE port) with offsets into the one ring Buffer and the kernel's timestamp (nanoseconds).
 * Nothing is allocated per packet or per block.
 *
 * The UDP port stays bound by a socket that is never read (holdUdpPort in the addon, the smallest
 * receive buffer): without it the kernel would answer every mirrored datagram with ICMP port unreachable.
 * The kernel's drop counter on that socket counts nearly every datagram and is not a loss.
 *
 * Backpressure: when the writer is backlogged after a block, the ring is paused: the blocks not yet
 * walked stay ours, the kernel fills the free ones and past them drops and counts (ingest.ring.drops,
 * ingest.ring.freezes). What reached the ring is never lost uncounted.
 *
 * IPv4 only: AWS Traffic Mirroring and Gateway Load Balancers send to the target's IPv4 address.
 */
import { networkInterfaces } from 'node:os';
import { readFileSync } from 'node:fs';
import { MgError } from '../errors.js';
import type { Logger } from '../util/log.js';
import { loadNativeAddon } from './native-addon.js';
import { ipv4Number, ringFilter, type BpfInsn, type RingTarget } from './ring-filter.js';
import type { GeneveSink, PacketSink } from './sink.js';
import type { BoundReceiver } from './udp.js';

const MiB = 1024 * 1024;

/**
 * Ring defaults, the same as the config's `ring` (src/config/schema.ts says why; a test holds them equal):
 * 384 blocks of 128 KiB (48 MiB, mapped and counted in RSS), a block retired after 100 ms at the latest.
 */
export const RING_DEFAULTS = { blockBytes: 128 * 1024, blockCount: 384, retireMs: 100 } as const;

/** The addon's ring (native/src/ring.cc). */
interface RingLayout {
  BLOCK_NUM_PKTS: number;
  BLOCK_FIRST: number;
  PKT_NEXT: number;
  PKT_SEC: number;
  PKT_NSEC: number;
  PKT_SNAPLEN: number;
  PKT_LEN: number;
  PKT_MAC: number;
  PKT_NET: number;
  MIN_BLOCK_BYTES: number;
  MAX_BLOCK_BYTES: number;
  MIN_BLOCKS: number;
  MAX_BLOCKS: number;
}

export interface RingNativeStats {
  wakeups: number;
  blocks: number;
  packets: number;
  maxBlockPackets: number;
  /** Frames the filter passed (PACKET_STATISTICS tp_packets), ring drops included. */
  kernelPackets: number;
  /** tp_drops: frames the filter passed that found no free block. */
  ringDrops: number;
  /** tp_freeze_q_cnt: times the kernel found every block ours and froze the queue. */
  freezes: number;
  heldBlocks: number;
  errors: number;
  lastError: string | null;
  paused: boolean;
  closed: boolean;
}

interface RingHandle {
  start(onBlock: (offset: number, packets: number) => void): void;
  pause(): void;
  resume(): void;
  close(onClosed: () => void): boolean;
  stats(): RingNativeStats;
  info(): { ring: ArrayBuffer; blockBytes: number; blockCount: number; ifindex: number; ignoreOutgoing: boolean };
}

interface RingAddon {
  Ring: new (opts: { interface: string | null; filter: number[]; blockBytes: number; blockCount: number; retireMs: number; fanoutGroup?: number }) => RingHandle;
  holdUdpPort(host: string, port: number): { fd: number; port: number };
  closeFd(fd: number): void;
  ringLayout: RingLayout;
}

function ringAddon(): { ok: true; addon: RingAddon } | { ok: false; reason: string } {
  const a = loadNativeAddon();
  if (!a.ok) return { ok: false, reason: a.reason };
  const r = a.addon as unknown as Partial<RingAddon>;
  if (typeof r.Ring !== 'function' || typeof r.holdUdpPort !== 'function' || !r.ringLayout) {
    return { ok: false, reason: `${a.path} has no capture ring (a build older than native/src/ring.cc); run npm rebuild` };
  }
  return { ok: true, addon: r as RingAddon };
}

/** CAP_NET_RAW (capability 13) in this process's effective set, from /proc/self/status. */
export function hasNetRaw(): boolean {
  try {
    const m = /^CapEff:\s*([0-9a-f]+)$/m.exec(readFileSync('/proc/self/status', 'utf8'));
    return m !== null && (BigInt(`0x${m[1]}`) & (1n << 13n)) !== 0n;
  } catch {
    return false;
  }
}

/** Whether af-packet can run here: the addon with the ring, and CAP_NET_RAW. */
export function ringAvailable(): { ok: true } | { ok: false; reason: string } {
  const a = ringAddon();
  if (!a.ok) return a;
  if (!hasNetRaw()) return { ok: false, reason: 'the process lacks CAP_NET_RAW (AF_PACKET sockets need it; deploy/systemd grants it for receiver: af-packet)' };
  return { ok: true };
}

/**
 * Which interface the ring reads, from the listen address: a loopback address reads `lo`; 0.0.0.0 reads
 * every interface (ifindex 0), where the filter keeps only frames addressed to this host; any other
 * address reads the interface that has it. `iface` (--interface) wins.
 */
export function ringInterface(host: string, iface: string | null): string | null {
  if (iface !== null) return iface;
  if (host === '0.0.0.0') return null;
  if (host.startsWith('127.')) return 'lo';
  for (const [name, addrs] of Object.entries(networkInterfaces())) {
    if (addrs?.some((a) => a.family === 'IPv4' && a.address === host)) return name;
  }
  throw new MgError('MG_ERR_INGEST_BIND', `${host}: no interface has this address (set --interface)`);
}

export interface RingReceiverOptions {
  host: string;
  port: number;
  /** GENEVE (a Gateway Load Balancer) into the same ring: its address; port 0 is not allowed here. */
  geneve?: { host: string; port: number } | null;
  /** --interface; null: chosen from host (ringInterface). */
  interface?: string | null;
  blockBytes?: number;
  blockCount?: number;
  retireMs?: number;
  /** PACKET_FANOUT group id (0..65535) shared by every worker's ring; absent: no fanout. */
  fanoutGroup?: number;
  /** Bind the UDP port(s) with a socket that is never read. Default true; workers after the first join a port already held. */
  holdPort?: boolean;
  logger: Logger;
  /** As NativeReceiverOptions.backlogged: after every block; while true, blocks are held. */
  backlogged?: () => boolean;
}

/** How often a ring held by backpressure looks again. */
export const RING_BACKPRESSURE_POLL_MS = 2;

export interface RingReceiverStats extends RingNativeStats {
  /** IPv4 fragments (the filter keeps them to count them): dropped, not reassembled. */
  fragments: number;
  /** Frames cut by the ring (snaplen < length): a frame larger than a block. Dropped. */
  truncated: number;
  /** Frames whose IPv4 or UDP header did not add up. Dropped. */
  malformed: number;
  /** Times the ring was paused because the writer was backlogged. */
  backpressurePauses: number;
}

export interface RingBoundReceiver extends BoundReceiver {
  readonly kind: 'af-packet';
  /** The interface read, or null for all. */
  readonly interface: string | null;
  readonly ringBytes: number;
  readonly genevePort: number | null;
  pause(): void;
  resume(): void;
  stats(): RingReceiverStats;
}

/** The ring's counters as the app reports them (docs/counters.md, "Capture ring"). */
export function ringCounters(s: RingReceiverStats): Record<string, number> {
  return {
    'ingest.ring.packets': s.packets,
    'ingest.ring.blocks': s.blocks,
    'ingest.ring.kernel_packets': s.kernelPackets,
    'ingest.ring.drops': s.ringDrops,
    'ingest.ring.freezes': s.freezes,
    'ingest.ring.fragments': s.fragments,
    'ingest.ring.truncated': s.truncated,
    'ingest.ring.malformed': s.malformed,
    'ingest.ring.backpressure_pauses': s.backpressurePauses,
    'ingest.ring.errors': s.errors,
  };
}

export function ringOptionProblems(o: { blockBytes: number; blockCount: number; retireMs: number }): { field: string; message: string }[] {
  const p: { field: string; message: string }[] = [];
  if (!Number.isInteger(o.blockBytes) || o.blockBytes < 64 * 1024 || o.blockBytes > 64 * MiB || (o.blockBytes & (o.blockBytes - 1)) !== 0) {
    p.push({ field: 'ring.blockBytes', message: 'must be a power of two from 64KiB to 64MiB' });
  }
  if (!Number.isInteger(o.blockCount) || o.blockCount < 2 || o.blockCount > 65536) p.push({ field: 'ring.blockCount', message: 'must be an integer 2..65536' });
  if (o.blockBytes * o.blockCount > 1024 * MiB) p.push({ field: 'ring.blockCount', message: 'blockBytes * blockCount must be at most 1GiB' });
  if (!Number.isInteger(o.retireMs) || o.retireMs < 1 || o.retireMs > 60_000) p.push({ field: 'ring.retireMs', message: 'must be an integer 1..60000' });
  return p;
}

export async function startRingReceiver(sink: PacketSink, geneveSink: GeneveSink | null, opts: RingReceiverOptions): Promise<RingBoundReceiver> {
  const loaded = ringAddon();
  if (!loaded.ok) throw new MgError('MG_ERR_INGEST_NATIVE_UNAVAILABLE', loaded.reason);
  const { addon } = loaded;
  const L = addon.ringLayout;
  const blockBytes = opts.blockBytes ?? RING_DEFAULTS.blockBytes;
  const blockCount = opts.blockCount ?? RING_DEFAULTS.blockCount;
  const retireMs = opts.retireMs ?? RING_DEFAULTS.retireMs;
  const problems = ringOptionProblems({ blockBytes, blockCount, retireMs });
  if (opts.host.includes(':') || (opts.geneve && opts.geneve.host.includes(':'))) problems.push({ field: 'listen', message: 'receiver af-packet takes an IPv4 listen address' });
  if (opts.geneve && opts.geneve.port === 0) problems.push({ field: 'geneve.listen', message: 'receiver af-packet needs a fixed GENEVE port' });
  if (problems.length) throw new MgError('MG_ERR_CONFIG_INVALID', 'capture ring options', { problems });
  const iface = ringInterface(opts.host, opts.interface ?? null);

  // Hold the port(s) first: port 0 becomes a real one, which the filter then names.
  const held: number[] = [];
  const release = () => {
    for (const fd of held.splice(0)) addon.closeFd(fd);
  };
  const hold = (host: string, port: number): number => {
    if (opts.holdPort === false) return port;
    try {
      const h = addon.holdUdpPort(host, port);
      held.push(h.fd);
      return h.port;
    } catch (e) {
      release();
      const code = (e as NodeJS.ErrnoException).code ?? (e as Error).message;
      throw new MgError('MG_ERR_INGEST_BIND', `${host}:${port}: ${code}`, { cause: e });
    }
  };
  const port = hold(opts.host, opts.port);
  const genevePort = opts.geneve ? hold(opts.geneve.host, opts.geneve.port) : null;
  if (genevePort !== null && genevePort === port) {
    release();
    throw new MgError('MG_ERR_CONFIG_INVALID', 'capture ring options', { problems: [{ field: 'geneve.listen', message: 'receiver af-packet needs a GENEVE port other than the VXLAN port' }] });
  }
  const target = (host: string, p: number): RingTarget => ({ host: host === '0.0.0.0' ? null : ipv4Number(host), port: p });
  const targets = [target(opts.host, port)];
  if (opts.geneve && genevePort !== null) targets.push(target(opts.geneve.host, genevePort));
  const filter: BpfInsn[] = ringFilter(targets);

  let ring: RingHandle;
  try {
    ring = new addon.Ring({
      interface: iface,
      filter: filter.flat(),
      blockBytes,
      blockCount,
      retireMs,
      ...(opts.fanoutGroup !== undefined ? { fanoutGroup: opts.fanoutGroup } : {}),
    });
  } catch (e) {
    release();
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'EPERM' || code === 'EACCES') {
      throw new MgError('MG_ERR_INGEST_RING', `AF_PACKET needs CAP_NET_RAW (${(e as Error).message}); run as the systemd unit's af-packet drop-in, or use --receiver native`, { cause: e });
    }
    throw new MgError('MG_ERR_INGEST_RING', `${iface ?? 'all interfaces'}: ${(e as Error).message}`, { cause: e });
  }
  const info = ring.info();

  // Views over the mapping, made once. Packet headers are 16-byte aligned (TPACKET_ALIGNMENT).
  const buf = Buffer.from(info.ring);
  const u32 = new Uint32Array(info.ring);
  const u16 = new Uint16Array(info.ring);
  const B_FIRST = L.BLOCK_FIRST >>> 2;
  const P_NEXT = L.PKT_NEXT >>> 2;
  const P_SEC = L.PKT_SEC >>> 2;
  const P_NSEC = L.PKT_NSEC >>> 2;
  const P_SNAP = L.PKT_SNAPLEN >>> 2;
  const P_LEN = L.PKT_LEN >>> 2;
  const P_MAC = L.PKT_MAC >>> 1;
  const P_NET = L.PKT_NET >>> 1;
  const vxlanPort = port;
  const gPort = genevePort ?? -1;
  const gSink = geneveSink;

  let fragments = 0;
  let truncated = 0;
  let malformed = 0;
  let backpressurePauses = 0;
  const backlogged = opts.backlogged;
  let userPaused = false;
  let heldBack = false;
  let closed = false;
  const retry = (): void => {
    if (closed || !heldBack) return;
    if (backlogged!()) {
      setTimeout(retry, RING_BACKPRESSURE_POLL_MS);
      return;
    }
    heldBack = false;
    if (!userPaused) ring.resume();
  };

  const onBlock = (off: number, n: number): void => {
    let p = off + u32[(off >>> 2) + B_FIRST]!;
    for (let i = 0; i < n; i++) {
      const w = p >>> 2;
      const h = p >>> 1;
      const next = u32[w + P_NEXT]!;
      const snap = u32[w + P_SNAP]!;
      const ip = p + u16[h + P_NET]!;
      const frameEnd = p + u16[h + P_MAC]! + snap;
      if (snap < u32[w + P_LEN]!) truncated++;
      else if ((buf[ip + 6]! & 0x3f) !== 0 || buf[ip + 7] !== 0) fragments++;
      else {
        const vihl = buf[ip]!;
        const ihl = (vihl & 15) << 2;
        const udp = ip + ihl;
        const total = (buf[ip + 2]! << 8) | buf[ip + 3]!;
        const udpLen = (buf[udp + 4]! << 8) | buf[udp + 5]!;
        const end = udp + udpLen;
        if (vihl >> 4 !== 4 || ihl < 20 || udpLen < 8 || end > ip + total || ip + total > frameEnd) malformed++;
        else {
          const dport = (buf[udp + 2]! << 8) | buf[udp + 3]!;
          if (dport === vxlanPort) {
            // Signed 32-bit source: a small integer across the call (sink.ts).
            sink.ingest4(buf, udp + 8, end, (buf[ip + 12]! << 24) | (buf[ip + 13]! << 16) | (buf[ip + 14]! << 8) | buf[ip + 15]!, u32[w + P_SEC]!, u32[w + P_NSEC]!);
          } else if (dport === gPort && gSink !== null) gSink.ingestGeneve(buf, udp + 8, end, u32[w + P_SEC]!, u32[w + P_NSEC]!);
          else malformed++;
        }
      }
      p += next;
    }
    if (backlogged !== undefined && !heldBack && backlogged()) {
      heldBack = true;
      backpressurePauses++;
      ring.pause();
      setTimeout(retry, RING_BACKPRESSURE_POLL_MS);
    }
  };
  ring.start(onBlock);

  const ringBytes = blockBytes * blockCount;
  opts.logger.info(
    {
      receiver: 'af-packet',
      address: opts.host,
      port,
      ...(genevePort !== null ? { genevePort } : {}),
      interface: iface ?? 'all',
      ringBytes,
      blockBytes,
      blockCount,
      retireMs,
      ignoreOutgoing: info.ignoreOutgoing,
      ...(opts.fanoutGroup !== undefined ? { fanoutGroup: opts.fanoutGroup } : {}),
    },
    'receiving VXLAN',
  );
  if (genevePort !== null && opts.geneve) {
    opts.logger.info({ receiver: 'af-packet', address: opts.geneve.host, port: genevePort, interface: iface ?? 'all' }, 'receiving GENEVE from a Gateway Load Balancer');
  }

  let closing: Promise<void> | null = null;
  return {
    kind: 'af-packet',
    address: { host: opts.host, port },
    recvBufferBytes: 0,
    interface: iface,
    ringBytes,
    genevePort,
    pause() {
      userPaused = true;
      ring.pause();
    },
    resume() {
      userPaused = false;
      if (!heldBack) ring.resume();
    },
    stats: () => ({ ...ring.stats(), fragments, truncated, malformed, backpressurePauses }),
    close(): Promise<void> {
      closed = true;
      if (closing === null) {
        closing = new Promise<void>((resolve) => {
          if (ring.close(resolve)) resolve();
        }).then(() => {
          release();
          const s = ringCounters({ ...ring.stats(), fragments, truncated, malformed, backpressurePauses });
          opts.logger.info({ counters: s }, 'capture ring closed');
        });
      }
      return closing;
    },
  };
}
