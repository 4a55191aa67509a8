/**
 * Sessions as the data plane sees them: one entry per (outer source IP, VNI) pair, since mirrored
 * packets carry no session ID (AWS identifies the source by the ENI's IP and the session by the VNI
 * it assigned). Lookups are by a small-integer hash of the pair, so the per-packet path allocates
 * nothing (a 56-bit key would be a heap number in V8 on every lookup); a hit compares the address and
 * VNI, and entries that share a hash are chained.
 * node:dgram hands us the source as a string; a bounded cache maps that string to its parsed form.
 */
import { ipv6ToString, parseIp } from '../decode/addr.js';
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

  constructor(
    readonly key: number,
    readonly sourceIp: string,
    readonly vni: number,
    /** The IPv4 source as an unsigned 32-bit number (0 for IPv6). */
    readonly src4: number,
    /** The 16 address bytes for IPv6 sources (compared on lookup), null for IPv4. */
    readonly src6: Uint8Array | null,
    readonly firstSec: number,
  ) {}
}

interface AddrEntry {
  family: 4 | 6;
  v4: number;
  v6: Uint8Array;
}

const ADDR_CACHE_MAX = 4096;

export class SessionTable {
  private readonly byKey = new Map<number, Session>();
  private readonly addrCache = new Map<string, AddrEntry | null>();
  private count = 0;

  constructor(readonly maxSessions: number) {}

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

  /** Create the entry for a new pair; null when the table is full. Not on the per-packet path. */
  add4(src4: number, vni: number, sec: number): Session | null {
    if (this.count >= this.maxSessions) return null;
    const key = key4(src4, vni);
    const ip = `${src4 >>> 24}.${(src4 >>> 16) & 255}.${(src4 >>> 8) & 255}.${src4 & 255}`;
    return this.insert(new Session(key, ip, vni, src4 >>> 0, null, sec));
  }

  add6(buf: Uint8Array, off: number, vni: number, sec: number): Session | null {
    if (this.count >= this.maxSessions) return null;
    const key = key4(fnv1a32(buf, off), vni);
    const src6 = Uint8Array.prototype.slice.call(buf, off, off + 16);
    return this.insert(new Session(key, ipv6ToString(src6, 0), vni, 0, src6, sec));
  }

  private insert(s: Session): Session {
    const head = this.byKey.get(s.key);
    if (head) s.next = head;
    this.byKey.set(s.key, s);
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

