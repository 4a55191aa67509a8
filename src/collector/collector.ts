/**
 * The data path, left to right, once per packet:
 *
 *   [GENEVE payload -> decode (geneve -> ip -> udp), the source IP becomes the VXLAN packet's]
 *   VXLAN payload -> decode (vxlan -> ethernet/vlan -> ip -> l4) into one reused PacketState
 *     -> session table keyed by (source IP of the VXLAN packet, VNI)  --first packet of a new pair-->  detector
 *     -> the session's PCAP writer (buffer; the disk queue does the I/O)
 *
 * Everything else (SQLite, the detector, rotation by idle time, retention) sits behind the first-packet
 * edge or a timer. The ingest* methods never throw and allocate nothing for a packet of a known pair:
 * every outcome is one increment of a counter in `drops` (index DROP.OK counts written frames).
 */
import { mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { DROP, DROP_COUNT, DROP_NAMES, WEIRD_COUNT, WEIRD_NAMES } from '../outcomes.js';
import { GENEVE_PORT } from '../decode/constants.js';
import { decodeGeneve, gwlbAttachmentIdString, gwlbEndpointIdString } from '../decode/geneve.js';
import { decodeCapturedFrame } from '../decode/outer.js';
import { PacketState } from '../decode/packet-state.js';
import { decodeVxlan } from '../decode/vxlan.js';
import { BufferPool } from '../pcap/buffer-pool.js';
import type { BytesCopy } from '../pcap/copy.js';
import { DiskQueue, type DiskErrorReport } from '../pcap/disk-queue.js';
import { PcapFileWriter } from '../pcap/file-writer.js';
import { GLOBAL_HEADER_BYTES, RECORD_HEADER_BYTES } from '../pcap/format.js';
import { receiveClock, toMicros, type ReceiveClock } from '../util/clock.js';
import { RateLimiter, type Logger } from '../util/log.js';
import { Catalog } from './catalog.js';
import { captureRelPath } from './layout.js';
import { Session, SessionTable } from './session-table.js';

export interface PairVerdict {
  sessionId: string | null;
  status: string;
}

export interface CollectorOptions {
  dataDir: string;
  catalog: Catalog;
  logger: Logger;
  /** Which receiver this is when several share the port (file names and catalog rows carry it). */
  workerId?: number;
  strictVxlan: boolean;
  vxlanPort: number;
  /** GENEVE port in captured frames (ingestFrame) and inside GENEVE; 0 turns GENEVE in captures off. Default 6081. */
  genevePort?: number;
  maxSessions: number;
  rotateBytes: number;
  rotateSeconds: number;
  idleCloseSeconds: number;
  flushIntervalMs: number;
  bufferBytes: number;
  queueBytes: number;
  /** The first packet of a new (source IP, VNI) pair: the detector's hook. Must be quick and must not throw. */
  onNewPair?: (sourceIp: string, vni: number, atMs: number) => PairVerdict;
  /**
   * A pair's packets arrived through a GWLB endpoint other than the last one seen (or the first time
   * through one): the detector's hook for manifest `gwlbEndpointId`. Not per packet; must not throw.
   */
  onGwlbEndpoint?: (sourceIp: string, vni: number, endpointId: string, attachmentId: string | null, atMs: number) => void;
  /** Wall clock in seconds, replaceable in tests. */
  nowSec?: () => number;
  /** The receivers' clock, re-anchored to the wall clock on every flush tick (default: the process's). */
  clock?: ReceiveClock;
  /** Copies frames above 128 bytes into the write buffers (the native addon's copyBytes); default Buffer#copy. */
  copyBytes?: BytesCopy | null;
}

export class Collector {
  /** Outcome counters indexed by DropCode; DROP.OK counts frames written. */
  readonly drops = new Float64Array(DROP_COUNT);
  /** Weird counters indexed by WEIRD code. */
  readonly weird = new Float64Array(WEIRD_COUNT);
  readonly sessions: SessionTable;

  private readonly st = new PacketState();
  private readonly pool: BufferPool;
  private readonly queue: DiskQueue;
  private readonly pending = new Set<Promise<void>>();
  private readonly logLimit = new RateLimiter(60_000);
  private readonly workerId: number;
  private readonly nowSec: () => number;
  private readonly halfQueue: number;
  private readonly genevePort: number;
  private timer: NodeJS.Timeout | null = null;
  private fileSeq = 0;
  private closed = false;

  constructor(private readonly opts: CollectorOptions) {
    this.workerId = opts.workerId ?? 0;
    this.sessions = new SessionTable(opts.maxSessions);
    this.pool = new BufferPool({ bufferBytes: opts.bufferBytes, maxBytes: opts.queueBytes });
    // Every write outcome (a failed create, write, truncate, sync or close; a full queue) reaches the log
    // through this one hook, which the queue rate-limits to one line per (operation, errno) a minute.
    // The queue counts written and lost packets into the same outcome counters (src/outcomes.ts).
    this.queue = new DiskQueue({ maxQueuedBytes: opts.queueBytes, counts: this.drops, onError: (report) => this.onDiskReport(report) });
    this.nowSec = opts.nowSec ?? (() => Date.now() / 1000);
    this.halfQueue = opts.queueBytes / 2;
    this.genevePort = opts.genevePort ?? GENEVE_PORT;
  }

  /** Start the flush/rotation timer (serve). Capture-file replays drive time from packets instead. */
  start(): void {
    if (this.timer) return;
    this.timer = setInterval(() => this.tick(), this.opts.flushIntervalMs);
    this.timer.unref();
  }

  // ---- per-packet entry points (hot path) --------------------------------------------------------

  /** A VXLAN payload (UDP payload) from an IPv4 source. */
  ingest4(buf: Uint8Array, off: number, end: number, src4: number, tsSec: number, tsNsec: number): void {
    this.st.resetGeneve();
    this.deliver4(buf, off, end, src4, tsSec, tsNsec, 0);
  }

  /** A VXLAN payload from an IPv6 source whose 16 address bytes are at src6[src6Off]. */
  ingest6(buf: Uint8Array, off: number, end: number, src6: Uint8Array, src6Off: number, tsSec: number, tsNsec: number): void {
    this.st.resetGeneve();
    this.deliver6(buf, off, end, src6, src6Off, tsSec, tsNsec, 0);
  }

  /**
   * A GENEVE payload (UDP 6081 from a Gateway Load Balancer). The GWLB's own address is not the
   * session: the source of the IP/UDP/VXLAN packet inside is, so the pair is the one a direct mirror
   * target would see.
   */
  ingestGeneve(buf: Uint8Array, off: number, end: number, tsSec: number, tsNsec: number): void {
    const st = this.st;
    st.resetGeneve();
    st.weird = 0;
    const code = decodeGeneve(buf, off, end, st, this.opts.vxlanPort, this.genevePort);
    if (code !== DROP.OK) {
      this.drops[code]!++;
      return;
    }
    if (st.mirrorFamily === 4) this.deliver4(buf, st.vxlanOff, st.vxlanEnd, st.mirrorSrc4, tsSec, tsNsec, st.weird);
    else this.deliver6(buf, st.vxlanOff, st.vxlanEnd, buf, st.mirrorSrc6Off, tsSec, tsNsec, st.weird);
  }

  /** VXLAN, then the session: `weird` carries what a GENEVE header said (decodeVxlan's reset() clears it). */
  private deliver4(buf: Uint8Array, off: number, end: number, src4: number, tsSec: number, tsNsec: number, weird: number): void {
    const st = this.st;
    st.reset();
    const code = decodeVxlan(buf, off, end, st, this.opts.strictVxlan);
    if (code !== DROP.OK) {
      this.drops[code]!++;
      return;
    }
    st.weird |= weird;
    this.accept4(buf, src4, tsSec, tsNsec);
  }

  private deliver6(buf: Uint8Array, off: number, end: number, src6: Uint8Array, src6Off: number, tsSec: number, tsNsec: number, weird: number): void {
    const st = this.st;
    st.reset();
    const code = decodeVxlan(buf, off, end, st, this.opts.strictVxlan);
    if (code !== DROP.OK) {
      this.drops[code]!++;
      return;
    }
    st.weird |= weird;
    this.accept6(buf, src6, src6Off, tsSec, tsNsec);
  }

  /** node:dgram: the source comes as a string (rinfo.address); resolved through a bounded cache. */
  ingestAddress(buf: Uint8Array, off: number, end: number, address: string, tsSec: number, tsNsec: number): void {
    const a = this.sessions.resolveAddress(address);
    if (a === null) {
      this.drops[DROP.OUTER_NOT_IP]!++;
      return;
    }
    if (a.family === 4) this.ingest4(buf, off, end, a.v4, tsSec, tsNsec);
    else this.ingest6(buf, off, end, a.v6, 0, tsSec, tsNsec);
  }

  /**
   * A whole captured frame (capture files, libpcap): outer IP/UDP, then VXLAN (or GENEVE and the VXLAN
   * inside it), in one chain. Through GENEVE the session's source is the VXLAN packet's, not the outer one.
   */
  ingestFrame(buf: Uint8Array, off: number, end: number, linktype: number, tsSec: number, tsNsec: number): void {
    const st = this.st;
    const code = decodeCapturedFrame(buf, off, end, linktype, st, this.opts.strictVxlan, this.opts.vxlanPort, this.genevePort);
    if (code !== DROP.OK) {
      this.drops[code]!++;
      return;
    }
    if (st.geneveDepth > 0) {
      if (st.mirrorFamily === 4) this.accept4(buf, st.mirrorSrc4, tsSec, tsNsec);
      else this.accept6(buf, buf, st.mirrorSrc6Off, tsSec, tsNsec);
    } else if (st.outerFamily === 4) this.accept4(buf, st.outerSrc4, tsSec, tsNsec);
    else this.accept6(buf, buf, st.outerSrc6Off, tsSec, tsNsec);
  }

  /** A decoded packet from an IPv4 source: its session, then its file. */
  private accept4(buf: Uint8Array, src4: number, tsSec: number, tsNsec: number): void {
    const st = this.st;
    if (st.weird !== 0) this.countWeird(st.weird);
    let s = this.sessions.get4(src4, st.vni);
    if (s === undefined) {
      const n = this.newSession(this.sessions.add4(src4, st.vni, tsSec), tsSec, tsNsec);
      if (n === null) return;
      s = n;
    }
    if (st.gwlbEndpointOff >= 0 && !s.sameGwlbEndpoint(buf, st.gwlbEndpointOff)) this.gwlbEndpointChanged(s, buf, tsSec, tsNsec);
    this.write(s, buf, tsSec, tsNsec);
  }

  private accept6(buf: Uint8Array, src6: Uint8Array, src6Off: number, tsSec: number, tsNsec: number): void {
    const st = this.st;
    if (st.weird !== 0) this.countWeird(st.weird);
    let s = this.sessions.get6(src6, src6Off, st.vni);
    if (s === undefined) {
      const n = this.newSession(this.sessions.add6(src6, src6Off, st.vni, tsSec), tsSec, tsNsec);
      if (n === null) return;
      s = n;
    }
    if (st.gwlbEndpointOff >= 0 && !s.sameGwlbEndpoint(buf, st.gwlbEndpointOff)) this.gwlbEndpointChanged(s, buf, tsSec, tsNsec);
    this.write(s, buf, tsSec, tsNsec);
  }

  private write(s: Session, buf: Uint8Array, tsSec: number, tsNsec: number): void {
    const st = this.st;
    const caplen = st.innerEnd - st.innerOff;
    const rec = RECORD_HEADER_BYTES + caplen;
    if (s.writer === null) this.openFile(s, tsSec, tsNsec);
    else if (
      (s.fileBytes + rec > this.opts.rotateBytes && s.fileBytes > GLOBAL_HEADER_BYTES) ||
      tsSec - s.fileOpenedSec >= this.opts.rotateSeconds
    ) {
      this.closeFile(s, s.fileBytes + rec > this.opts.rotateBytes ? 'size' : 'age');
      this.openFile(s, tsSec, tsNsec);
    }
    const code = s.writer!.append(buf, st.innerOff, st.innerEnd, st.origLen, tsSec, tsNsec);
    // A refusal is final now; an accepted frame is counted (written or lost) by the disk queue.
    if (code !== DROP.OK) this.drops[code]!++;
    else {
      s.fileBytes += rec;
      s.packets++;
      s.bytes += caplen;
      s.lastSec = tsSec;
      s.dirty = true;
    }
  }

  private countWeird(bits: number): void {
    for (let i = 0; bits !== 0; i++, bits >>>= 1) if (bits & 1) this.weird[i]!++;
  }

  // ---- the first-packet edge and files (not per packet) ------------------------------------------

  /**
   * The first packet of a pair through a GWLB endpoint, or through another one than before: remember the
   * ids, tell the detector, and start a new file so each catalog row names one endpoint.
   */
  private gwlbEndpointChanged(s: Session, buf: Uint8Array, tsSec: number, tsNsec: number): void {
    const st = this.st;
    const first = s.gwlbEndpoint === null;
    s.setGwlbEndpoint(buf, st.gwlbEndpointOff);
    s.gwlbEndpointId = gwlbEndpointIdString(buf, st.gwlbEndpointOff);
    s.gwlbAttachmentId = st.gwlbAttachmentOff >= 0 ? gwlbAttachmentIdString(buf, st.gwlbAttachmentOff) : null;
    const atMs = tsSec * 1000 + Math.floor(tsNsec / 1e6);
    this.opts.logger.info(
      { sourceIp: s.sourceIp, vni: s.vni, gwlbEndpointId: s.gwlbEndpointId, gwlbAttachmentId: s.gwlbAttachmentId },
      first ? 'mirror session arrives through a GWLB endpoint' : 'mirror session moved to another GWLB endpoint',
    );
    if (this.opts.onGwlbEndpoint) {
      try {
        this.opts.onGwlbEndpoint(s.sourceIp, s.vni, s.gwlbEndpointId, s.gwlbAttachmentId, atMs);
      } catch (e) {
        this.opts.logger.error({ err: e, sourceIp: s.sourceIp, vni: s.vni }, 'detector failed on a GWLB endpoint; capture continues');
      }
    }
    if (!first) this.closeFile(s, 'gwlb-endpoint');
    s.dirty = true;
  }

  private newSession(s: Session | null, tsSec: number, tsNsec: number): Session | null {
    if (s === null) {
      this.drops[DROP.SESSION_LIMIT]!++;
      const n = this.logLimit.allow('session-limit');
      if (n >= 0) this.opts.logger.warn({ maxSessions: this.opts.maxSessions, suppressed: n }, 'session table full: packets of new (source IP, VNI) pairs are dropped');
      return null;
    }
    const atMs = tsSec * 1000 + Math.floor(tsNsec / 1e6);
    if (this.opts.onNewPair) {
      try {
        const v = this.opts.onNewPair(s.sourceIp, s.vni, atMs);
        s.sessionId = v.sessionId;
        s.status = v.status;
      } catch (e) {
        this.opts.logger.error({ err: e, sourceIp: s.sourceIp, vni: s.vni }, 'detector failed on a new pair; capture continues');
      }
    }
    this.opts.logger.info({ sourceIp: s.sourceIp, vni: s.vni, sessionId: s.sessionId, status: s.status }, 'new mirror session seen');
    this.syncObserved(s, atMs);
    return s;
  }

  private openFile(s: Session, tsSec: number, tsNsec: number): void {
    const rel = captureRelPath(s.vni, s.sourceIp, tsSec, tsNsec, this.workerId, ++this.fileSeq);
    const abs = join(this.opts.dataDir, rel);
    const firstUs = toMicros(tsSec, tsNsec);
    try {
      s.catalogId = this.opts.catalog.open({
        path: rel,
        vni: s.vni,
        sourceIp: s.sourceIp,
        sessionId: s.sessionId,
        gwlbEndpointId: s.gwlbEndpointId,
        gwlbAttachmentId: s.gwlbAttachmentId,
        worker: this.workerId,
        createdUs: Math.floor(this.nowSec() * 1e6),
        firstUs,
      });
    } catch (e) {
      // The catalog is on the same disk; if it cannot take a row the file is still written and the
      // recovery scan adopts it on the next start.
      s.catalogId = 0;
      const n = this.logLimit.allow('catalog-open');
      if (n >= 0) this.opts.logger.error({ err: e, path: rel, suppressed: n }, 'catalog insert failed');
    }
    s.relPath = rel;
    this.ensureDir(dirname(abs));
    s.writer = new PcapFileWriter(abs, {
      pool: this.pool,
      queue: this.queue,
      copy: this.opts.copyBytes ?? null,
    });
    s.fileOpenedSec = tsSec;
    s.fileBytes = GLOBAL_HEADER_BYTES;
    s.syncedBytes = 0;
  }

  private readonly madeDirs = new Set<string>();

  /** Create a session's day folder once; if it fails, the writer's create fails and is counted and retried. */
  private ensureDir(dir: string): void {
    if (this.madeDirs.has(dir)) return;
    try {
      mkdirSync(dir, { recursive: true });
      if (this.madeDirs.size > 10_000) this.madeDirs.clear();
      this.madeDirs.add(dir);
    } catch {
      /* reported by the writer when it cannot create the file */
    }
  }

  /** The disk queue's hook: already rate-limited (one report per operation and errno a minute, with the count suppressed). */
  private onDiskReport(report: DiskErrorReport): void {
    if (report.op === 'queue') this.opts.logger.warn(report, 'disk queue full: packets dropped (pcap.write.queue_full); the disk is slower than the capture');
    else this.opts.logger.error(report, 'PCAP write failed; capture continues and retries on the next flush');
  }

  /** Close a session's current file (rotation, idle, shutdown). The catalog row is finalized when the close completes. */
  private closeFile(s: Session, reason: string): void {
    const w = s.writer;
    if (w === null) return;
    s.writer = null;
    const id = s.catalogId;
    const p: Promise<void> = w
      .close()
      .then((info) => {
        if (id === 0) return;
        if (!info.created) {
          this.opts.catalog.delete(id);
          return;
        }
        this.opts.catalog.close(id, {
          closedUs: Math.floor(this.nowSec() * 1e6),
          firstUs: info.packets > 0 ? toMicros(info.firstSec, info.firstNsec) : null,
          lastUs: info.packets > 0 ? toMicros(info.lastSec, info.lastNsec) : null,
          packets: info.packets,
          bytes: info.bytes,
          sha256: info.sha256 ?? '',
          reason,
        });
      })
      .catch((e: unknown) => {
        this.opts.logger.error({ err: e, path: s.relPath }, 'closing a PCAP file failed; it is repaired on the next start');
      })
      .finally(() => this.pending.delete(p));
    this.pending.add(p);
  }

  /** Timer: hand buffered records to the disk, sync the catalog, rotate by age, close idle files. */
  tick(): void {
    this.reanchorClock();
    const now = this.nowSec();
    const nowMs = Math.floor(now * 1000);
    const idle = this.opts.idleCloseSeconds;
    try {
      this.opts.catalog.batch(() => {
        for (const s of this.sessions) {
          if (s.dirty) this.syncObserved(s, nowMs);
          s.dirty = false;
          if (now - s.lastSec >= idle && s.lastSec > 0) {
            this.closeFile(s, 'idle');
            this.sessions.remove(s);
            continue;
          }
          const w = s.writer;
          if (w !== null) {
            w.flush();
            // Disk writes complete after the flush: sync what is committed now, on this tick or the next.
            this.syncFileRow(s);
            if (now - s.fileOpenedSec >= this.opts.rotateSeconds) this.closeFile(s, 'age');
          }
        }
      });
    } catch (e) {
      const n = this.logLimit.allow('tick');
      if (n >= 0) this.opts.logger.error({ err: e, suppressed: n }, 'catalog sync failed; retrying on the next tick');
    }
  }

  /** An NTP step or a paused VM moved the wall clock: later receive timestamps follow it (src/util/clock.ts). */
  private reanchorClock(): void {
    const stepMs = (this.opts.clock ?? receiveClock).reanchor();
    if (stepMs === 0) return;
    const n = this.logLimit.allow('clock-step');
    if (n >= 0) this.opts.logger.warn({ stepMs: Math.round(stepMs), suppressed: n }, 'the wall clock moved against the monotonic clock; receive timestamps re-anchored');
  }

  /** Bring an open file's catalog row up to what is committed on disk (packets, bytes, last time). */
  private syncFileRow(s: Session): void {
    const w = s.writer;
    if (w === null || s.catalogId === 0 || w.committedBytes === s.syncedBytes) return;
    this.opts.catalog.sync(s.catalogId, w.committedPackets, w.committedBytes, toMicros(w.lastSec, w.lastNsec));
    s.syncedBytes = w.committedBytes;
  }

  /**
   * For a live download: hand every buffer to the disk, wait for the writes, and update the open files'
   * catalog rows, so the file being written can be served up to its last record.
   */
  async flushLive(): Promise<void> {
    this.flushAll();
    await this.drain();
    this.opts.catalog.batch(() => {
      for (const s of this.sessions) this.syncFileRow(s);
    });
  }

  private readonly observedMark = new WeakMap<Session, { packets: number; bytes: number }>();

  private syncObserved(s: Session, lastSeenMs: number): void {
    const mark = this.observedMark.get(s) ?? { packets: 0, bytes: 0 };
    try {
      this.opts.catalog.observe(s.sourceIp, s.vni, s.sessionId, s.firstSec * 1000, lastSeenMs, s.packets - mark.packets, s.bytes - mark.bytes, s.gwlbEndpointId, s.gwlbAttachmentId);
      mark.packets = s.packets;
      mark.bytes = s.bytes;
      this.observedMark.set(s, mark);
    } catch (e) {
      const n = this.logLimit.allow('observe');
      if (n >= 0) this.opts.logger.error({ err: e, suppressed: n }, 'observed-session update failed');
    }
  }

  /** Re-run the detector's verdict for every known pair (after a manifest reload). */
  reassess(verdict: (sourceIp: string, vni: number) => PairVerdict): void {
    for (const s of this.sessions) {
      const v = verdict(s.sourceIp, s.vni);
      if (v.sessionId !== s.sessionId && s.catalogId !== 0) this.opts.catalog.setSessionId(s.catalogId, v.sessionId);
      s.sessionId = v.sessionId;
      s.status = v.status;
    }
  }

  /** Hand every buffer to the disk now (a live API download wants the last records). */
  flushAll(): void {
    for (const s of this.sessions) s.writer?.flush();
  }

  /** Wait until everything handed to the disk is written (capture-file replays pace themselves on this). */
  async drain(): Promise<void> {
    const ws: Promise<void>[] = [];
    for (const s of this.sessions) if (s.writer) ws.push(s.writer.drain());
    await Promise.all(ws);
  }

  /** Outcome counters by name (docs/counters.md): `written`, every drop reason, every weird. */
  counters(): Record<string, number> {
    const out: Record<string, number> = {};
    this.drops.forEach((v, i) => (out[DROP_NAMES[i]!] = v));
    this.weird.forEach((v, i) => (out[WEIRD_NAMES[i]!] = v));
    return out;
  }

  /** Flush and close every file and wait for the disk; the catalog is final when this resolves. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    const nowMs = Math.floor(this.nowSec() * 1000);
    for (const s of this.sessions) {
      this.closeFile(s, 'shutdown');
      if (s.dirty) this.syncObserved(s, nowMs);
    }
    while (this.pending.size) await Promise.allSettled([...this.pending]);
  }

  /**
   * Backpressure for receivers that can leave a burst in the socket buffer (native): true while more
   * than half the disk queue's bytes are in flight. Cheap; allocates nothing.
   */
  backlogged(): boolean {
    return this.queue.queuedBytes > this.halfQueue;
  }

  /** Counters for logs and the API. */
  stats(): { drops: Float64Array; weird: Float64Array; sessions: number; queuedBytes: number } {
    return { drops: this.drops, weird: this.weird, sessions: this.sessions.size, queuedBytes: this.queue.queuedBytes };
  }
}
