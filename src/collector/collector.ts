/**
 * The data path, left to right, once per packet:
 *
 *   [GENEVE payload -> decode (geneve -> ip -> udp), the source IP becomes the VXLAN packet's]
 *   VXLAN payload -> decode (vxlan -> ethernet/vlan -> ip -> l4) into one reused PacketState
 *     -> session table keyed by (source IP of the VXLAN packet, VNI)  --first packet of a new pair-->  detector
 *     -> the session's sink: its SessionWriter (src/collector/session-writer.ts), which owns the pair's
 *        files (open, append, rotate, close, catalog rows); the disk queue does the I/O
 *
 * Everything else (SQLite, the detector, idle eviction, retention) sits behind the first-packet edge or
 * a timer. The ingest* methods never throw and allocate nothing for a packet of a known pair. Outcomes
 * (src/outcomes.ts) are counted in one array, `drops`: every refusal here, at the moment of refusal;
 * `written` and the write losses by the disk queue, when the write completes or fails.
 */
import { DROP, DROP_NAMES, WEIRD_COUNT, WEIRD_NAMES } from '../outcomes.js';
import { GENEVE_PORT } from '../decode/constants.js';
import { decodeGeneve, gwlbAttachmentIdString, gwlbEndpointIdString } from '../decode/geneve.js';
import { decodeCapturedFrame } from '../decode/outer.js';
import { PacketState } from '../decode/packet-state.js';
import { decodeVxlan } from '../decode/vxlan.js';
import type { BytesCopy, PlannedCopy } from '../pcap/copy.js';
import { receiveClock, type ReceiveClock } from '../util/clock.js';
import { RateLimiter, type Logger } from '../util/log.js';
import { Catalog } from './catalog.js';
import { Session, SessionTable } from './session-table.js';
import { SessionWriters } from './session-writer.js';

/** Above this many pairs, the timer syncs each pair's catalog rows on one tick in SYNC_EVERY_TICKS. */
const SPREAD_SYNC_ABOVE = 1000;
const SYNC_EVERY_TICKS = 10;

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
  /** Per-source admission of unauthorized pairs to the session table (src/collector/session-table.ts). */
  admission?: { admitPerSource: number; admitIntervalSeconds: number };
  rotateBytes: number;
  rotateSeconds: number;
  idleCloseSeconds: number;
  flushIntervalMs: number;
  bufferBytes: number;
  /** A session's first write buffer; it grows to bufferBytes with the session's rate. Default 4 KiB. */
  minBufferBytes?: number;
  queueBytes: number;
  /** Capture files open at once, at most (when the collector makes its writers); default no limit. */
  maxOpenFiles?: number;
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
  /** Frame copies from a receiver's batch buffer, one native call per batch (src/pcap/copy.ts PlannedCopy). */
  plannedCopy?: PlannedCopy | null;
  /**
   * The session writers (files, pool, disk queue, outcome counters), built by the composition (app.ts,
   * receive-worker.ts), which also takes the backpressure signal from them. When absent (tests, decap)
   * the collector makes them from dataDir, rotate*, bufferBytes, queueBytes and copyBytes above.
   */
  writers?: SessionWriters;
}

/** 'new mirror session seen' lines a minute, at most; the rest are counted in one line a minute. */
export const NEW_SESSION_LINES = 100;

export class Collector {
  /**
   * Outcome counters indexed by DropCode (src/outcomes.ts): the collector counts refusals, the session
   * writers' disk queue counts DROP.OK (written) and the write losses, into this same array.
   */
  readonly drops: Float64Array;
  /** Weird counters indexed by WEIRD code. */
  readonly weird = new Float64Array(WEIRD_COUNT);
  readonly sessions: SessionTable;
  /** Where each session's frames go: its SessionWriter, and what they share (pool, disk queue, backpressure). */
  readonly writers: SessionWriters;

  private readonly st = new PacketState();
  private readonly logLimit = new RateLimiter(60_000);
  /** The new-session log's minute (logNewSession). */
  private readonly newLog = { since: 0, lines: 0, suppressed: 0 };
  private readonly nowSec: () => number;
  private readonly genevePort: number;
  private timer: NodeJS.Timeout | null = null;
  private closed = false;
  private ticks = 0;

  constructor(private readonly opts: CollectorOptions) {
    // A pair the table cannot simply admit is judged there, and an evicted pair's file closed here.
    this.sessions = new SessionTable(opts.maxSessions, { ...opts.admission, judge: opts.onNewPair, onEvict: (s) => this.evicted(s) });
    this.nowSec = opts.nowSec ?? (() => Date.now() / 1000);
    this.writers =
      opts.writers ??
      new SessionWriters({
        dataDir: opts.dataDir,
        catalog: opts.catalog,
        logger: opts.logger,
        workerId: opts.workerId ?? 0,
        rotateBytes: opts.rotateBytes,
        rotateSeconds: opts.rotateSeconds,
        bufferBytes: opts.bufferBytes,
        minBufferBytes: opts.minBufferBytes,
        queueBytes: opts.queueBytes,
        copyBytes: opts.copyBytes ?? null,
        plannedCopy: opts.plannedCopy ?? null,
        nowSec: this.nowSec,
        maxOpenFiles: opts.maxOpenFiles,
      });
    this.drops = this.writers.counts;
    this.genevePort = opts.genevePort ?? GENEVE_PORT;
  }

  /** Start the flush/rotation timer (serve). Capture-file replays drive time from packets instead. */
  start(): void {
    if (this.timer) return;
    this.timer = setInterval(() => this.tick(), this.opts.flushIntervalMs);
    this.timer.unref();
  }

  // ---- per-packet entry points (hot path) --------------------------------------------------------

  /** A receiver reuses `buf` for every batch (src/ingest/sink.ts): frames from it may be copied at endBatch(). */
  batchBuffer(buf: Uint8Array): void {
    this.writers.batchBuffer(buf);
  }

  /** The receiver is about to overwrite its batch buffer: finish every copy from it. */
  endBatch(): void {
    this.writers.endBatch();
  }

  /** A VXLAN payload (UDP payload) from an IPv4 source: src4 signed or unsigned (src/ingest/sink.ts). */
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
    // `| 0`: an address above 127.255.255.255 as an unsigned number is not a small integer, and V8 boxes it
    // (16 bytes) whenever it crosses a call the optimizer did not inline; as a signed 32-bit number it is a
    // small integer on 64-bit Node (no pointer compression) and crosses calls for free. get4 takes both.
    if (st.mirrorFamily === 4) this.deliver4(buf, st.vxlanOff, st.vxlanEnd, st.mirrorSrc4 | 0, tsSec, tsNsec, st.weird);
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
      if (st.mirrorFamily === 4) this.accept4(buf, st.mirrorSrc4 | 0, tsSec, tsNsec);
      else this.accept6(buf, buf, st.mirrorSrc6Off, tsSec, tsNsec);
    } else if (st.outerFamily === 4) this.accept4(buf, st.outerSrc4 | 0, tsSec, tsNsec);
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

  /** Hand the frame to the session's sink; count a refusal here (an accepted frame is counted by the disk queue). */
  private write(s: Session, buf: Uint8Array, tsSec: number, tsNsec: number): void {
    const st = this.st;
    const code = s.sink!.append(buf, st.innerOff, st.innerEnd, st.origLen, tsSec, tsNsec);
    if (code !== DROP.OK) {
      this.drops[code]!++;
      return;
    }
    s.packets++;
    s.bytes += st.innerEnd - st.innerOff;
    s.lastSec = tsSec;
    s.dirty = true;
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
    if (!first) s.sink!.close('gwlb-endpoint');
    s.dirty = true;
  }

  /**
   * One line per new pair, up to NEW_SESSION_LINES a minute; past that one line a minute says how many
   * more came (10,000 sessions starting at once made 10,000 lines, written on the packet path's thread
   * while it should read the ring). Every pair is in GET /v1/sessions and the observed-sessions table.
   */
  private logNewSession(s: Session): void {
    const now = Date.now();
    if (now - this.newLog.since >= 60_000) {
      if (this.newLog.suppressed > 0) {
        this.opts.logger.info({ notLogged: this.newLog.suppressed, sessions: this.sessions.size, windowSeconds: Math.round((now - this.newLog.since) / 1000) }, 'more new mirror sessions seen than are logged one by one (GET /v1/sessions lists them all)');
      }
      this.newLog.since = now;
      this.newLog.lines = 0;
      this.newLog.suppressed = 0;
    }
    if (this.newLog.lines < NEW_SESSION_LINES) {
      this.newLog.lines++;
      this.opts.logger.info({ sourceIp: s.sourceIp, vni: s.vni, sessionId: s.sessionId, status: s.status }, 'new mirror session seen');
    } else this.newLog.suppressed++;
  }

  private newSession(s: Session | null, tsSec: number, tsNsec: number): Session | null {
    if (s === null) {
      // Per packet during a flood: the rate limiter (a clock read, a boxed number) only every 1024th time.
      const dropped = ++this.drops[DROP.SESSION_LIMIT]!;
      if (dropped % 1024 === 1 && this.logLimit.allow('session-limit') >= 0) {
        this.opts.logger.warn({ maxSessions: this.opts.maxSessions, dropped, ...this.sessions.counters }, 'no table slot: packets of new (source IP, VNI) pairs are dropped (table full, or the source is over its admission budget)');
      }
      return null;
    }
    const atMs = tsSec * 1000 + Math.floor(tsNsec / 1e6);
    let noted = false;
    if (this.opts.onNewPair && s.status === 'unknown') {
      try {
        const v = this.opts.onNewPair(s.sourceIp, s.vni, atMs);
        s.sessionId = v.sessionId;
        s.status = v.status;
        noted = true;
      } catch (e) {
        this.opts.logger.error({ err: e, sourceIp: s.sourceIp, vni: s.vni }, 'detector failed on a new pair; capture continues');
      }
    }
    this.logNewSession(s);
    // The detector notes the pair's observed-session row itself (at once, for correlation); its counts
    // follow on the pair's sync turn. Without a detector the row is written here. One upsert per new pair,
    // not two: 10,000 pairs starting at once paid ~100 ms of the main thread for the second.
    if (!noted) this.syncObserved(s, atMs);
    s.sink = this.writers.writer(s);
    return s;
  }

  /** The table evicted `s` to make room for a new pair (session-table.ts says which it prefers). */
  private evicted(s: Session): void {
    if (s.dirty) this.syncObserved(s, Math.floor(this.nowSec() * 1000));
    s.sink?.close('evicted');
    s.sink = null;
  }

  /**
   * Timer: hand buffered records to the disk, sync the catalog, rotate by age, close idle files. With
   * more than SPREAD_SYNC_ABOVE pairs, each pair's observed-session and file rows are synced on one tick
   * in SYNC_EVERY_TICKS (its turn), not on every tick: at 10,000 pairs the two upserts per pair cost about
   * 150 ms of the main thread every second. A live download syncs every open file's row first
   * (flushLive); an evicted or idle pair is synced when it goes.
   */
  tick(): void {
    this.reanchorClock();
    const now = this.nowSec();
    const nowMs = Math.floor(now * 1000);
    const idle = this.opts.idleCloseSeconds;
    const spread = this.sessions.size > SPREAD_SYNC_ABOVE;
    const round = this.ticks++ % SYNC_EVERY_TICKS;
    // Every quiet writer's next buffer is at most its fair share of the pool (session-writer.ts).
    const cap = this.writers.fairShare();
    this.writers.trimPool();
    this.writers.sampleGauges();
    try {
      this.opts.catalog.batch(() => {
        let i = 0;
        for (const s of this.sessions) {
          const turn = !spread || i++ % SYNC_EVERY_TICKS === round;
          if (now - s.lastSec >= idle && s.lastSec > 0) {
            if (s.dirty) this.syncObserved(s, nowMs);
            s.sink?.close('idle');
            this.sessions.remove(s);
            continue;
          }
          if (s.dirty && turn) {
            this.syncObserved(s, nowMs);
            s.dirty = false;
          }
          // Flush, sync the open file's row (on its turn), rotate by age.
          s.sink?.tick(now, turn, cap);
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

  /**
   * For a live download: hand every buffer to the disk, wait for the writes, and update the open files'
   * catalog rows, so the file being written can be served up to its last record. The same meaning with
   * receive workers (each worker runs this on its own collector; src/workers.ts).
   */
  async flushLive(): Promise<void> {
    await this.writers.flushLive();
    // The rows' updates are queued (src/store/write-queue.ts): wait for them, not forever if the store is away.
    await this.opts.catalog.flush(5_000);
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
  /**
   * One pair's verdict arrived (workers: from the main thread's detector). A pass over the table with an
   * integer compare first, no allocation: a flood's thousands of verdicts do not rebuild keys per session.
   */
  setVerdict(sourceIp: string, vni: number, v: PairVerdict): void {
    for (const s of this.sessions) {
      if (s.vni !== vni || s.sourceIp !== sourceIp) continue;
      if (v.sessionId !== s.sessionId) s.sink?.sessionIdChanged(v.sessionId);
      s.sessionId = v.sessionId;
      s.status = v.status;
      return;
    }
  }

  reassess(verdict: (sourceIp: string, vni: number) => PairVerdict): void {
    for (const s of this.sessions) {
      const v = verdict(s.sourceIp, s.vni);
      if (v.sessionId !== s.sessionId) s.sink?.sessionIdChanged(v.sessionId);
      s.sessionId = v.sessionId;
      s.status = v.status;
    }
  }

  /** Hand every buffer to the disk now (a live API download wants the last records). */
  flushAll(): void {
    this.writers.flushAll();
  }

  /** Wait until everything handed to the disk is written (capture-file replays pace themselves on this). */
  drain(): Promise<void> {
    return this.writers.drain();
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
      s.sink?.close('shutdown');
      if (s.dirty) this.syncObserved(s, nowMs);
    }
    await this.writers.close();
    // Within the 10 s shutdown budget: a store that is away keeps what is still queued (recovery adopts the files).
    await this.opts.catalog.flush(5_000);
  }

  /** Counters for logs and the API. */
  stats(): { drops: Float64Array; weird: Float64Array; sessions: number; queuedBytes: number } {
    return { drops: this.drops, weird: this.weird, sessions: this.sessions.size, queuedBytes: this.writers.queuedBytes };
  }
}
