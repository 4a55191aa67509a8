/**
 * The configuration schema: every key, its default and its unit in one place (docs/operations.md is
 * its user-facing twin). Keys carry their units. A config file, then flags, override these defaults;
 * the loader validates the merged result, reports every problem with file, line and key, and freezes it.
 */
import { isIP } from 'node:net';
import { z } from 'zod';
import { apiConfigSchema } from '../api/config.js';
import { archiveConfigSchema } from '../archive/config.js';
import { detectConfigSchema } from '../detect/config.js';
import { parseBytes, parseHostPort } from '../util/units.js';

const KiB = 1024;
const MiB = 1024 * 1024;
const GiB = 1024 * MiB;

/** Embedded defaults. `npm start` runs on exactly these. */
export const DEFAULTS = {
  /** UDP address the VXLAN receiver binds. AWS sends mirrored traffic to UDP 4789 (RFC 7348 port). */
  listen: '0.0.0.0:4789',
  /** Where packets come from: `udp` (the socket above) or `pcap:IFACE` (libpcap via the `cap` package). */
  source: 'udp',
  /**
   * UDP receiver implementation: `af-packet` (a TPACKET_V3 capture ring, needs CAP_NET_RAW), `native`
   * (the recvmmsg addon), `dgram` (node:dgram). `auto` takes the first that can run here, in that order.
   */
  receiver: 'auto',
  /** Interface the af-packet ring reads. null: from `listen` (127.x: lo; 0.0.0.0: every interface; else the one with the address). */
  interface: null as string | null,
  /** The af-packet ring, per serve process (split across --workers): blockCount blocks of blockBytes, mapped memory counted in RSS. */
  ring: {
    /** Bytes per block (a power of two, 64 KiB..64 MiB); a packet larger than a block is counted truncated. */
    blockBytes: 128 * KiB,
    /**
     * Blocks in the ring (48 MiB in all by default). A burst beyond them is held back by the writer's backpressure
     * or counted as ring drops. Many small blocks rather than few big ones: at a low rate a block retires
     * part-empty, so what a held ring absorbs is about blockCount x retireMs of traffic (384 x 100 ms: the
     * ramp of 10,000 new sessions, test/e2e/many-sessions.test.ts; 64 x 10 ms lost 62% of it), at a high
     * rate its bytes (a slow disk's stalls, once the write buffers are at their backpressure threshold).
     * 48 MiB rather than 64 (issue 16): with the writer waiting at 7/8 of its pool (session-writer.ts
     * POOL_PRESSURE_SHARE) it waits out the same stalls, and serve's RSS at 10,000 sessions is 16 MB lower.
     */
    blockCount: 384,
    /** A block that is not full is handed over after this many milliseconds: the most a packet waits in the kernel (well under pcap.flushIntervalMs). */
    retireMs: 100,
  },
  /** Receivers on the port (SO_REUSEPORT), each with its own files. */
  workers: 1,
  /**
   * Socket receive buffer in bytes (the native and dgram receivers). The kernel caps it at net.core.rmem_max
   * unless privileged (deploy/sysctl.d/60-mirrorguard.conf sets 128 MiB). Kernel memory, not in serve's
   * RSS, used only while a burst waits: 128 MiB since issue 16, where 10,000 sessions at 10 packets/s and
   * four at 5,000/s lost 1.6-5.5 % with 32 MiB and 0.2 % with 64 MiB when the disk stalled, and nothing
   * with 128 MiB (docs/performance.md "A smaller ring, and the pool's last eighth").
   */
  recvBufferBytes: 128 * MiB,
  /**
   * The native receiver's receive coalescing, ms: after a read that emptied the socket, wait this long
   * before the next, so what arrives meanwhile comes in one batch (as ring.retireMs does for af-packet).
   * At a live rate each wake-up costs more than the few packets it brings: 1 ms halves serve's CPU per
   * packet at 64 and 512 B (docs/performance.md, "Live"). 0: read at every readiness.
   */
  recvCoalesceMs: 1,
  /** Data directory: PCAP files and the SQLite catalog. */
  dataDir: './data',
  /** VXLAN port for capture files and libpcap (the UDP socket's port is in `listen`). */
  vxlanPort: 4789,
  /** This collector's name in the store's rows (captures, observed sessions, audit); null: the host name. */
  node: { id: null as string | null },
  store: {
    /** `sqlite:PATH` or `postgres://USER@HOST:PORT/DATABASE`; null: the SQLite file in the data directory. */
    url: null as string | null,
    /** A file holding the PostgreSQL password (when the URL and PGPASSWORD have none). */
    passwordFile: null as string | null,
    /** PEM CA bundle for the PostgreSQL server certificate: TLS on, verify-full. */
    tls: { ca: null as string | null },
  },
  /** Most (source IP, VNI) pairs tracked at once; beyond it new pairs are dropped and counted. */
  maxSessions: 16_384,
  /** Reject VXLAN headers with reserved bits set instead of counting them as weird (RFC 7348 section 5). */
  strictVxlan: false,
  geneve: {
    /**
     * UDP address for GENEVE from a Gateway Load Balancer (RFC 8926 port 6081), e.g. 0.0.0.0:6081, when
     * a GWLB endpoint is the mirror target (docs/install.md, "GWLB mode"). null: no GENEVE socket.
     */
    listen: null as string | null,
    /** GENEVE UDP port in capture files and libpcap mode. 0: GENEVE in captures is not decoded. */
    port: 6081,
  },
  pcap: {
    /** Close a file and start the next when it would grow past this many bytes. */
    rotateBytes: 256 * MiB,
    /** ... or when it has been open this long. */
    rotateSeconds: 900,
    /** Close a session's file after this long without a packet (a new one opens with the next packet). */
    idleCloseSeconds: 300,
    /** Buffered records are handed to the disk at least this often: the most a crash can lose. */
    flushIntervalMs: 1000,
    /**
     * Size of the largest write buffer; it must hold the largest record (16 + 262144 bytes). A session
     * with traffic in the last flush interval holds one buffer: 1 KiB at first, twice as large each
     * time one fills within a flush interval (within its fair share unless busy), up to this (src/pcap/buffer-pool.ts).
     */
    bufferBytes: 512 * 1024,
    /**
     * Write buffers handed to the disk and not yet written. Past half of it the receiver waits (the burst
     * stays in the socket buffer or the ring); when it is full, frames are dropped and counted
     * (pcap.write.queue_full). 64 MiB (issue 11): more only lets a burst sit in memory instead of in the
     * socket buffer (256 MiB put serve's peak RSS at 226-264 MB at 1450 B, and faulting fresh buffers in
     * cost CPU).
     */
    queueBytes: 64 * MiB,
    /**
     * Memory for write buffers in all, being filled or queued for disk (allocated as needed). A session
     * with traffic holds one buffer (4 KiB at first, growing with its rate), so this follows the number of
     * busy sessions: 10,000 at 10 packets/s hold 30-45 MiB. Past seven eighths of it the receiver waits
     * (src/collector/session-writer.ts POOL_PRESSURE_SHARE).
     * 64 MiB by default, as the queue: 256 MiB lost less of a 10,000-session steady run (30% against 73%,
     * both far from the goal) but put the 10,000-session ramp over 350 MB of RSS (docs/performance.md).
     */
    bufferPoolBytes: 64 * MiB,
    /**
     * Drop-behind: as a capture file grows past each window of this many bytes, the window is sent to
     * disk and the windows before it leave the page cache; a closed file's pages leave after its fsync.
     * Captures are written once and read rarely, so they should not crowd the page cache (10,000 sessions
     * write gigabytes a minute). 0 keeps them cached (the kernel's default). Needs the native addon.
     */
    dropBehindBytes: 32 * 1024,
    /**
     * Direct writes: a batched write with at least this many bytes of whole pages inside it writes them
     * with O_DIRECT, past the page cache; its partial first and last pages, and every smaller write, go
     * through the cache (and drop-behind). A busy session's large buffers skip the kernel's copy into
     * fresh cache pages and their writeback and freeing. 0: off. Needs the native addon; a file system
     * without O_DIRECT is written through the cache.
     */
    directWriteBytes: 256 * 1024,
    /**
     * Capture files one receiver keeps open at once; opening one more closes those idle longest first
     * (pcap.files.closed_early). 0: derived from the process's open-file limit (RLIMIT_NOFILE, read
     * from /proc/self/limits) less 256, shared by the receivers (src/collector/open-files.ts).
     */
    maxOpenFiles: 0,
  },
  retention: {
    /** Delete the oldest closed files while the total exceeds this. 0 disables the bound. */
    maxBytes: 20 * GiB,
    /** Delete closed files older than this. 0 disables the bound. */
    maxAgeHours: 24 * 7,
    /** Delete the oldest closed files while the file system has less free space than this. */
    minFreeBytes: 1 * GiB,
    /** How often retention runs. */
    intervalSeconds: 60,
  },
  /** Authorized-session manifest (docs/manifest.md). Without one, every session is unauthorized. */
  manifest: null as string | null,
  // api: the auditor API's keys and defaults live in src/api/config.ts (API_DEFAULTS).
  // archive: S3 archive, Object Lock, encryption and the ledger's signing key live in src/archive/config.ts (ARCHIVE_DEFAULTS).
  log: {
    level: 'info' as 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent',
    /** `json` (one JSON object a line, for journald and log shippers), `pretty` (for a person), or `auto`: pretty when stderr is a terminal. */
    format: 'auto' as 'auto' | 'json' | 'pretty',
  },
};

const bytes = (what: string, min = 0) =>
  z.union([z.number(), z.string()]).transform((v, ctx) => {
    const n = parseBytes(v);
    if (Number.isNaN(n) || n < min) {
      ctx.addIssue({ code: 'custom', message: `${what} must be a byte size of at least ${min} (e.g. 33554432 or "32MiB")` });
      return z.NEVER;
    }
    return n;
  });

/**
 * The receivers bind a numeric address (the native addon uses inet_pton, which fails on a name with
 * EINVAL), so `localhost` is resolved here, once, to 127.0.0.1; any other host name is refused up front.
 */
const hostPort = z
  .string()
  .refine((s) => {
    const hp = parseHostPort(s);
    return hp !== null && (isIP(hp.host) !== 0 || hp.host === 'localhost');
  }, 'must be HOST:PORT with an IP address (localhost means 127.0.0.1), e.g. 0.0.0.0:4789 or [::]:4789')
  .transform((s) => (s.startsWith('localhost:') ? `127.0.0.1:${s.slice('localhost:'.length)}` : s));

const intIn = (min: number, max: number) => z.number().int().min(min).max(max);

export const configSchema = z
  .object({
    listen: hostPort.default(DEFAULTS.listen),
    source: z
      .string()
      .regex(/^(udp|pcap:.+)$/, 'must be "udp" or "pcap:IFACE"')
      .default(DEFAULTS.source),
    receiver: z.enum(['auto', 'af-packet', 'native', 'dgram']).default('auto'),
    interface: z.string().min(1).max(15).nullable().default(DEFAULTS.interface),
    ring: z
      .object({
        blockBytes: bytes('blockBytes', 64 * 1024).default(DEFAULTS.ring.blockBytes),
        blockCount: intIn(2, 65536).default(DEFAULTS.ring.blockCount),
        retireMs: intIn(1, 60_000).default(DEFAULTS.ring.retireMs),
      })
      .strict()
      .prefault({}),
    workers: intIn(1, 64).default(DEFAULTS.workers),
    recvBufferBytes: bytes('recvBufferBytes', 64 * 1024).default(DEFAULTS.recvBufferBytes),
    recvCoalesceMs: intIn(0, 1000).default(DEFAULTS.recvCoalesceMs),
    dataDir: z.string().min(1).default(DEFAULTS.dataDir),
    vxlanPort: intIn(1, 65535).default(DEFAULTS.vxlanPort),
    strictVxlan: z.boolean().default(DEFAULTS.strictVxlan),
    maxSessions: intIn(1, 1_000_000).default(DEFAULTS.maxSessions),
    geneve: z
      .object({
        listen: hostPort.nullable().default(DEFAULTS.geneve.listen),
        port: intIn(0, 65535).default(DEFAULTS.geneve.port),
      })
      .strict()
      .prefault({}),
    pcap: z
      .object({
        rotateBytes: bytes('rotateBytes', 64 * 1024).default(DEFAULTS.pcap.rotateBytes),
        rotateSeconds: intIn(1, 7 * 24 * 3600).default(DEFAULTS.pcap.rotateSeconds),
        idleCloseSeconds: intIn(1, 7 * 24 * 3600).default(DEFAULTS.pcap.idleCloseSeconds),
        flushIntervalMs: intIn(10, 60_000).default(DEFAULTS.pcap.flushIntervalMs),
        bufferBytes: bytes('bufferBytes', 262_160).default(DEFAULTS.pcap.bufferBytes),
        queueBytes: bytes('queueBytes', 1024 * 1024).default(DEFAULTS.pcap.queueBytes),
        bufferPoolBytes: bytes('bufferPoolBytes', 1024 * 1024).default(DEFAULTS.pcap.bufferPoolBytes),
        dropBehindBytes: bytes('dropBehindBytes').default(DEFAULTS.pcap.dropBehindBytes),
        directWriteBytes: bytes('directWriteBytes').default(DEFAULTS.pcap.directWriteBytes),
        maxOpenFiles: intIn(0, 10_000_000).default(DEFAULTS.pcap.maxOpenFiles),
      })
      .strict()
      .prefault({}),
    retention: z
      .object({
        maxBytes: bytes('maxBytes').default(DEFAULTS.retention.maxBytes),
        maxAgeHours: z.number().min(0).default(DEFAULTS.retention.maxAgeHours),
        minFreeBytes: bytes('minFreeBytes').default(DEFAULTS.retention.minFreeBytes),
        intervalSeconds: intIn(1, 86_400).default(DEFAULTS.retention.intervalSeconds),
      })
      .strict()
      .prefault({}),
    manifest: z.string().min(1).nullable().default(null),
    node: z
      .object({
        id: z
          .string()
          .regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/, 'must be 1 to 63 letters, digits, ".", "_" or "-", starting with a letter or digit')
          .nullable()
          .default(DEFAULTS.node.id),
      })
      .strict()
      .prefault({}),
    store: z
      .object({
        url: z.string().min(1).nullable().default(DEFAULTS.store.url),
        passwordFile: z.string().min(1).nullable().default(DEFAULTS.store.passwordFile),
        tls: z
          .object({ ca: z.string().min(1).nullable().default(DEFAULTS.store.tls.ca) })
          .strict()
          .prefault({}),
      })
      .strict()
      .prefault({}),
    api: apiConfigSchema,
    // Checked in depth by parseAlertsConfig (src/alert/config.ts), which resolves secrets from the environment.
    webhooks: z.array(z.unknown()).default([]),
    alerting: z.record(z.string(), z.unknown()).default({}),
    detect: detectConfigSchema,
    archive: archiveConfigSchema,
    log: z
      .object({
        level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
        format: z.enum(['auto', 'json', 'pretty']).default(DEFAULTS.log.format),
      })
      .strict()
      .prefault({}),
  })
  .strict()
  .superRefine((c, ctx) => {
    if (c.geneve.port === c.vxlanPort) {
      ctx.addIssue({ code: 'custom', path: ['geneve', 'port'], message: `must differ from vxlanPort (${c.vxlanPort}); 0 turns GENEVE decoding off` });
    }
    if (c.geneve.listen !== null && c.source !== 'udp') {
      ctx.addIssue({ code: 'custom', path: ['geneve', 'listen'], message: 'is for the UDP source; with source pcap:IFACE, libpcap already captures GENEVE on geneve.port' });
    }
    if (c.geneve.listen !== null && c.geneve.listen === c.listen && parseHostPort(c.listen)?.port !== 0) {
      ctx.addIssue({ code: 'custom', path: ['geneve', 'listen'], message: 'must differ from listen (the VXLAN socket)' });
    }
    if ((c.ring.blockBytes & (c.ring.blockBytes - 1)) !== 0 || c.ring.blockBytes > 64 * MiB) {
      ctx.addIssue({ code: 'custom', path: ['ring', 'blockBytes'], message: 'must be a power of two from 64KiB to 64MiB' });
    }
    if (c.ring.blockBytes * c.ring.blockCount > GiB) {
      ctx.addIssue({ code: 'custom', path: ['ring', 'blockCount'], message: 'ring.blockBytes * ring.blockCount must be at most 1GiB' });
    }
    if (c.pcap.dropBehindBytes % 4096 !== 0) {
      ctx.addIssue({ code: 'custom', path: ['pcap', 'dropBehindBytes'], message: 'must be 0 or a multiple of 4096 (a page)' });
    }
    if (c.pcap.directWriteBytes % 4096 !== 0) {
      ctx.addIssue({ code: 'custom', path: ['pcap', 'directWriteBytes'], message: 'must be 0 or a multiple of 4096 (a page)' });
    }
    if (c.pcap.bufferPoolBytes < c.pcap.queueBytes) {
      ctx.addIssue({ code: 'custom', path: ['pcap', 'bufferPoolBytes'], message: 'must be at least pcap.queueBytes' });
    }
    if (c.pcap.bufferBytes * 2 > c.pcap.queueBytes) {
      ctx.addIssue({ code: 'custom', path: ['pcap', 'queueBytes'], message: 'must be at least twice pcap.bufferBytes' });
    }
  });

export type Config = z.output<typeof configSchema>;
