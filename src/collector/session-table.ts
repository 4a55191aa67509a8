/**
 * Sessions as the data plane sees them: one entry per (outer source IP, VNI) pair, since mirrored
 * packets carry no session ID (AWS identifies the source by the ENI's IP and the session by the VNI
 * it assigned). Lookups are by a small-integer hash of the pair, so the per-packet path allocates
 * nothing (a 56-bit key would be a heap number in V8 on every lookup); a hit compares the address and
 * VNI, and entries that share a hash are chained.
 * node:dgram hands us the source as a string; a bounded cache maps that string to its parsed form.
 *
 * Admission (issue 16): a pair that cannot simply take a free slot (the table is full, or its source
 * has added more than `admitPerSource` pairs this interval) is judged first through `judge` (the
 * detector), so a flood of forged pairs cannot hide a rogue one, and is remembered in a bounded
 * "recently judged" cache so its later packets are neither judged again nor allocate anything. An
 * authorized pair always gets a slot when one can be freed; an unauthorized one only takes a free slot
 * within its source's admission budget, or an idle pair's slot. Eviction prefers unauthorized idle
 * pairs, then unauthorized ones, then authorized idle ones, and never takes an authorized pair with
 * traffic in the last EVICT_RECENT_SECONDS. It looks at a bounded window of the oldest entries (a CLOCK
 * sweep), so a flood costs a constant amount of work per new pair, not a scan of the table.
 */
import { ipv4ToString, ipv6ToString, parseIp } from '../decode/addr.js';
import { flatString } from '../util/strings.js';
import type { SessionWriter } from './session-writer.js';

/** Keys stay within V8's small-integer range (31 bits with pointer compression). */
const KEY_MASK = 0x3fff_ffff;

function key4(src4: number, vni: number): number {
  return (Math.imul(src4 ^ Math.imul(vni, 0x9e3779b1), 0x85ebca6b) >>> 2) & KEY_MASK;
}

export class Session {
  /** Manifest session ID when the pair is authorized, else null. */
  sessionId: string | null = null;
  /** Authorization status from the detector: authorized, unauthorized-vni, unexpected-source, expired. */
  status = 'unknown';
  packets = 0;
  bytes = 0;
  lastSec = 0;
  /** Packets written since the catalog was last synced (drives the periodic sync). */
  dirty = false;
  /** Where the pair's frames go: its files (set at the first-packet edge). */
  sink: SessionWriter | null = null;
  /** Collision chain for IPv6 keys. */
  next: Session | null = null;
  /** The 8 bytes of the GWLB endpoint id the pair last arrived through (GENEVE option), null if never. */
  gwlbEndpoint: Uint8Array | null = null;
  /** The same as text (`vpce-...`) and the attachment id, for the catalog and the detector. */
  gwlbEndpointId: string | null = null;
  gwlbAttachmentId: string | null = null;

  /** Per packet through a GWLB: compare in place, allocate nothing. */
  sameGwlbEndpoint(buf: Uint8Array, off: number): boolean {
    const e = this.gwlbEndpoint;
    if (e === null) return false;
    for (let i = 0; i < 8; i++) if (e[i] !== buf[off + i]) return false;
    return true;
  }

  setGwlbEndpoint(buf: Uint8Array, off: number): void {
    if (this.gwlbEndpoint === null) this.gwlbEndpoint = new Uint8Array(8);
    for (let i = 0; i < 8; i++) this.gwlbEndpoint[i] = buf[off + i]!;
  }

  /** The source address as text, kept flat for as long as the pair lives (src/util/strings.ts). */
  readonly sourceIp: string;

  constructor(
    readonly key: number,
    sourceIp: string,
    readonly vni: number,
    /** The IPv4 source as an unsigned 32-bit number (0 for IPv6). */
    readonly src4: number,
    /** The 16 address bytes for IPv6 sources (compared on lookup), null for IPv4. */
    readonly src6: Uint8Array | null,
    readonly firstSec: number,
  ) {
    this.sourceIp = flatString(sourceIp);
  }
}

interface AddrEntry {
  family: 4 | 6;
  v4: number;
  v6: Uint8Array;
}

const ADDR_CACHE_MAX = 4096;

/** An authorized pair with traffic this recent is never evicted. */
export const EVICT_RECENT_SECONDS = 60;
/** A pair with no traffic for this long is idle: the first choice for eviction. */
export const EVICT_IDLE_SECONDS = 5;
/** Entries an eviction looks at, oldest first; those passed over move to the back (CLOCK). */
export const EVICT_SCAN = 32;
/** Slots of the recently-judged cache (direct-mapped; a colliding pair replaces the older one). */
export const JUDGED_SLOTS = 65_536;
/** A pair refused a slot is judged again after this long (its finding's count and last-seen advance). */
export const JUDGED_TTL_SECONDS = 60;
/** Slots of the per-source admission counters (direct-mapped by source). */
const ADMIT_SLOTS = 4096;

export interface PairJudgement {
  sessionId: string | null;
  status: string;
}

export interface AdmissionOptions {
  /**
   * The detector, for a pair that cannot simply take a free slot: it sees every new pair, kept or not.
   * Must not throw. Without it such pairs are refused unjudged (and counted).
   */
  judge?: (sourceIp: string, vni: number, atMs: number) => PairJudgement;
  /** A pair was evicted to make room: close its file. The table has already removed it. */
  onEvict?: (s: Session) => void;
  /** New unauthorized pairs one source may add to the table per interval (0: no limit). Default 64. */
  admitPerSource?: number;
  /** The admission interval in seconds. Default 10. */
  admitIntervalSeconds?: number;
}

/** The table's own counters (docs/counters.md, "Session table"). */
export interface SessionTableCounters {
  'session.evicted': number;
  'session.admission_limited': number;
  'session.judged_untracked': number;
}

export function newSessionTableCounters(): SessionTableCounters {
  return { 'session.evicted': 0, 'session.admission_limited': 0, 'session.judged_untracked': 0 };
}

const UNJUDGED: PairJudgement = Object.freeze({ sessionId: null, status: 'unknown' });

export class SessionTable {
  private readonly byKey = new Map<number, Session>();
  private readonly addrCache = new Map<string, AddrEntry | null>();
  private count = 0;
  /** Every entry, oldest first (the eviction sweep's order). */
  private readonly order = new Set<Session>();
  readonly counters: SessionTableCounters = newSessionTableCounters();
  private readonly judge: ((sourceIp: string, vni: number, atMs: number) => PairJudgement) | undefined;
  private readonly onEvict: ((s: Session) => void) | undefined;
  private readonly admitPerSource: number;
  private readonly admitIntervalSec: number;
  // Recently judged pairs refused a slot: the source (4 words; family in judgedFam), VNI, and when judged.
  private readonly judgedFam = new Uint8Array(JUDGED_SLOTS);
  private readonly judgedAddr = new Int32Array(JUDGED_SLOTS * 4);
  private readonly judgedVni = new Int32Array(JUDGED_SLOTS);
  private readonly judgedSec = new Float64Array(JUDGED_SLOTS);
  // Per-source admissions this interval, by a hash of the source; a slot changes hands on mismatch.
  private readonly admitKey = new Int32Array(ADMIT_SLOTS);
  private readonly admitWindow = new Float64Array(ADMIT_SLOTS);
  private readonly admitCount = new Int32Array(ADMIT_SLOTS);

  constructor(
    readonly maxSessions: number,
    opts: AdmissionOptions = {},
  ) {
    this.judge = opts.judge;
    this.onEvict = opts.onEvict;
    this.admitPerSource = opts.admitPerSource ?? 64;
    this.admitIntervalSec = opts.admitIntervalSeconds ?? 10;
  }

  get size(): number {
    return this.count;
  }

  /** src4 as an unsigned or a signed 32-bit number: the same address either way (see Collector.ingestGeneve). */
  get4(src4: number, vni: number): Session | undefined {
    let s: Session | null | undefined = this.byKey.get(key4(src4, vni));
    src4 >>>= 0;
    while (s) {
      if (s.src4 === src4 && s.vni === vni && s.src6 === null) return s;
      s = s.next;
    }
    return undefined;
  }

  get6(buf: Uint8Array, off: number, vni: number): Session | undefined {
    let s: Session | null | undefined = this.byKey.get(key4(fnv1a32(buf, off), vni));
    while (s) {
      if (s.vni === vni && s.src6 !== null && equal16(s.src6, buf, off)) return s;
      s = s.next;
    }
    return undefined;
  }

  /** Resolve a node:dgram address string (cached); null when it is not an IP address. */
  resolveAddress(address: string): AddrEntry | null {
    let e = this.addrCache.get(address);
    if (e === undefined) {
      // A dual-stack socket reports IPv4 senders as ::ffff:a.b.c.d; the session is the IPv4 address.
      const p = parseIp(address.startsWith('::ffff:') && address.includes('.') ? address.slice(7) : address);
      e = p === null ? null : { family: p.family, v4: p.v4, v6: p.v6 };
      if (this.addrCache.size >= ADDR_CACHE_MAX) this.addrCache.clear();
      this.addrCache.set(address, e);
    }
    return e;
  }

  /**
   * The entry for a new pair, or null when it gets no slot (counted by the caller as session.table_full).
   * Judged here first when it cannot simply take a free slot (see the file's comment). A repeated packet
   * of a refused pair returns null from the recently-judged cache without allocating.
   */
  add4(src4: number, vni: number, sec: number): Session | null {
    const h = src4 | 0;
    if (this.count < this.maxSessions && this.admit(h, sec)) return this.insert(new Session(key4(src4, vni), ipv4ToString(src4), vni, src4 >>> 0, null, sec));
    const slot = judgedSlot4(h, vni);
    if (this.judgedRecently(slot, 4, h, 0, 0, 0, vni, sec)) return null;
    this.remember(slot, 4, h, 0, 0, 0, vni, sec);
    const ip = ipv4ToString(src4);
    return this.admitJudged(ip, vni, sec, h, () => new Session(key4(src4, vni), ip, vni, src4 >>> 0, null, sec));
  }

  add6(buf: Uint8Array, off: number, vni: number, sec: number): Session | null {
    const fnv = fnv1a32(buf, off);
    const h = fnv | 0;
    if (this.count < this.maxSessions && this.admit(h, sec)) return this.insert(this.new6(buf, off, vni, sec, fnv));
    const w0 = word(buf, off), w1 = word(buf, off + 4), w2 = word(buf, off + 8), w3 = word(buf, off + 12);
    const slot = judgedSlot4(h, vni);
    if (this.judgedRecently(slot, 6, w0, w1, w2, w3, vni, sec)) return null;
    this.remember(slot, 6, w0, w1, w2, w3, vni, sec);
    const s = this.new6(buf, off, vni, sec, fnv);
    return this.admitJudged(s.sourceIp, vni, sec, h, () => s);
  }

  private new6(buf: Uint8Array, off: number, vni: number, sec: number, fnv: number): Session {
    const src6 = Uint8Array.prototype.slice.call(buf, off, off + 16);
    return new Session(key4(fnv, vni), ipv6ToString(src6, 0), vni, 0, src6, sec);
  }

  /** A pair that could not take a free slot: judge it, then admit it if its verdict and the table allow. */
  private admitJudged(ip: string, vni: number, sec: number, h: number, make: () => Session): Session | null {
    let v = UNJUDGED;
    if (this.judge) {
      this.counters['session.judged_untracked']++;
      try {
        v = this.judge(ip, vni, Math.floor(sec * 1000));
      } catch {
        // The detector logs and counts its own failures; capture goes on as for an unjudged pair.
      }
    }
    const authorized = v.status === 'authorized';
    // An authorized pair takes any slot but an active authorized pair's; an unauthorized one a free slot
    // within its source's budget, or an idle pair's.
    if (!authorized && !this.admit(h, sec)) {
      this.counters['session.admission_limited']++;
      return null;
    }
    if (this.count >= this.maxSessions && !this.evictFor(authorized, sec)) return null;
    const s = this.insert(make());
    s.sessionId = v.sessionId;
    s.status = v.status;
    return s;
  }

  /** One more unauthorized-or-unknown pair from this source this interval, if its budget allows. */
  private admit(h: number, sec: number): boolean {
    if (this.admitPerSource <= 0) return true;
    const i = (Math.imul(h, 0x9e3779b1) >>> 20) & (ADMIT_SLOTS - 1);
    const window = Math.floor(sec / this.admitIntervalSec);
    if (this.admitKey[i] !== h || this.admitWindow[i] !== window) {
      this.admitKey[i] = h;
      this.admitWindow[i] = window;
      this.admitCount[i] = 0;
    }
    if (this.admitCount[i]! >= this.admitPerSource) return false;
    this.admitCount[i]!++;
    return true;
  }

  private judgedRecently(slot: number, fam: number, w0: number, w1: number, w2: number, w3: number, vni: number, sec: number): boolean {
    const a = slot * 4;
    const ja = this.judgedAddr;
    return (
      this.judgedFam[slot] === fam &&
      this.judgedVni[slot] === vni &&
      ja[a] === w0 &&
      ja[a + 1] === w1 &&
      ja[a + 2] === w2 &&
      ja[a + 3] === w3 &&
      sec - this.judgedSec[slot]! < JUDGED_TTL_SECONDS
    );
  }

  private remember(slot: number, fam: number, w0: number, w1: number, w2: number, w3: number, vni: number, sec: number): void {
    const a = slot * 4;
    this.judgedFam[slot] = fam;
    this.judgedVni[slot] = vni;
    this.judgedAddr[a] = w0;
    this.judgedAddr[a + 1] = w1;
    this.judgedAddr[a + 2] = w2;
    this.judgedAddr[a + 3] = w3;
    this.judgedSec[slot] = sec;
  }

  /**
   * Free one slot: the best candidate among the EVICT_SCAN oldest entries (unauthorized idle, then
   * unauthorized, then authorized idle; an unauthorized newcomer takes only idle pairs' slots). Entries
   * passed over go to the back, so the next sweep looks at others. False when none qualifies.
   */
  evictFor(authorizedNewcomer: boolean, sec: number): boolean {
    let best: Session | null = null;
    let bestScore = 0;
    let looked = 0;
    const passed: Session[] = [];
    for (const s of this.order) {
      if (looked++ >= EVICT_SCAN) break;
      const score = evictScore(s, sec, authorizedNewcomer);
      if (score > bestScore) {
        if (best !== null) passed.push(best);
        best = s;
        bestScore = score;
        if (score === 3) break;
      } else passed.push(s);
    }
    for (const s of passed) {
      this.order.delete(s);
      this.order.add(s);
    }
    if (best === null) return false;
    this.remove(best);
    this.counters['session.evicted']++;
    this.onEvict?.(best);
    return true;
  }

  private insert(s: Session): Session {
    const head = this.byKey.get(s.key);
    if (head) s.next = head;
    this.byKey.set(s.key, s);
    this.order.add(s);
    this.count++;
    return s;
  }

  remove(s: Session): void {
    const head = this.byKey.get(s.key);
    if (head === s) {
      if (s.next) this.byKey.set(s.key, s.next);
      else this.byKey.delete(s.key);
    } else {
      let p = head;
      while (p && p.next !== s) p = p.next ?? undefined;
      if (!p) return;
      p.next = s.next;
    }
    s.next = null;
    this.order.delete(s);
    this.count--;
  }

  *[Symbol.iterator](): IterableIterator<Session> {
    for (const head of this.byKey.values()) {
      let s: Session | null = head;
      while (s) {
        const next: Session | null = s.next; // the consumer may remove s
        yield s;
        s = next;
      }
    }
  }
}

/**
 * How much evicting `s` is preferred: 3 unauthorized and idle, 2 unauthorized, 1 authorized and idle
 * (not for an unauthorized newcomer), 0 never (an authorized pair with recent traffic; any active pair
 * for an unauthorized newcomer). A pair's last traffic is its last written packet, or its first packet.
 */
function evictScore(s: Session, sec: number, authorizedNewcomer: boolean): number {
  const quietSec = sec - (s.lastSec > s.firstSec ? s.lastSec : s.firstSec);
  const idle = quietSec >= EVICT_IDLE_SECONDS;
  if (s.status !== 'authorized') return idle ? 3 : authorizedNewcomer ? 2 : 0;
  return quietSec < EVICT_RECENT_SECONDS ? 0 : 1;
}

function word(buf: Uint8Array, off: number): number {
  return (buf[off]! << 24) | (buf[off + 1]! << 16) | (buf[off + 2]! << 8) | buf[off + 3]!;
}

function judgedSlot4(h: number, vni: number): number {
  return (Math.imul(h ^ Math.imul(vni, 0x85ebca6b), 0x9e3779b1) >>> 16) & (JUDGED_SLOTS - 1);
}

/** FNV-1a over 16 bytes: a cheap, allocation-free hash of an IPv6 address. */
function fnv1a32(buf: Uint8Array, off: number): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < 16; i++) {
    h ^= buf[off + i]!;
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

function equal16(a: Uint8Array, b: Uint8Array, off: number): boolean {
  for (let i = 0; i < 16; i++) if (a[i] !== b[off + i]) return false;
  return true;
}

