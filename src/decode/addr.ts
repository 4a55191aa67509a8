/**
 * IP addresses as text, off the hot path: the decoders keep addresses as numbers (IPv4) or offsets into
 * the packet (IPv6), and these turn them into strings only when someone asks (a finding, a file name, a
 * log line), or parse what a user typed (a filter, a CIDR).
 *
 * Text forms: IPv4 is strict dotted decimal (leading zeros refused: `010.0.0.1` is octal to inet_aton(3)
 * and decimal elsewhere, so it has no single meaning). IPv6 output follows RFC 5952: lowercase, no
 * leading zeros, the longest run of two or more zero groups shortened to `::` (the first on a tie,
 * section 4.2.3), and IPv4-mapped addresses keep the dotted quad (section 5), as inet_ntop(3) and
 * src/detect/ip.ts write them, so session addresses and manifest addresses compare as strings.
 */
import { AF_INET, AF_INET6, type PacketState } from './packet-state.js';

export interface ParsedIp {
  family: 4 | 6;
  /** The IPv4 address as an unsigned 32-bit number; 0 for IPv6. */
  v4: number;
  /** 16 bytes: the IPv6 address, or for IPv4 its IPv4-mapped form ::ffff:a.b.c.d (RFC 4291 section 2.5.5.2). */
  v6: Uint8Array;
}

export interface Cidr {
  family: 4 | 6;
  /** Prefix length: 0-32 for IPv4, 0-128 for IPv6. */
  prefix: number;
  /** IPv4 network (host bits cleared), unsigned; 0 for IPv6. */
  v4: number;
  /** IPv4 netmask, unsigned; 0 for IPv6. */
  mask4: number;
  /** IPv6 network (host bits cleared), 16 bytes; for IPv4 the mapped form of the network. */
  v6: Uint8Array;
  /** True when the text had bits set past the prefix (`10.0.0.1/8`); v4/v6 are masked anyway. */
  hostBitsSet: boolean;
}

export function ipv4ToString(n: number): string {
  return `${n >>> 24}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`;
}

/** The 16 bytes at buf[off..off+16) as RFC 5952 text. */
export function ipv6ToString(buf: Uint8Array, off: number): string {
  const g: number[] = [];
  for (let i = 0; i < 8; i++) g.push((buf[off + 2 * i] << 8) | buf[off + 2 * i + 1]);
  if (g[0] === 0 && g[1] === 0 && g[2] === 0 && g[3] === 0 && g[4] === 0 && g[5] === 0xffff) {
    return `::ffff:${buf[off + 12]}.${buf[off + 13]}.${buf[off + 14]}.${buf[off + 15]}`;
  }
  let best = -1;
  let bestLen = 1; // a single zero group is never shortened (RFC 5952 section 4.2.2)
  for (let i = 0; i < 8; ) {
    if (g[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen) {
      best = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = (a: number, b: number): string => g.slice(a, b).map((x) => x.toString(16)).join(':');
  return best < 0 ? hex(0, 8) : `${hex(0, best)}::${hex(best + bestLen, 8)}`;
}

const V4_PART = /^(?:0|[1-9][0-9]{0,2})$/;
const V6_GROUP = /^[0-9a-fA-F]{1,4}$/;

function parseV4(text: string): number {
  const parts = text.split('.');
  if (parts.length !== 4) return -1;
  let n = 0;
  for (const p of parts) {
    if (!V4_PART.test(p)) return -1;
    const b = Number(p);
    if (b > 255) return -1;
    n = n * 256 + b;
  }
  return n;
}

/** Push the groups of one side of `::` into `out`; false when a group is malformed. */
function parseGroups(text: string, out: number[], allowV4Tail: boolean): boolean {
  if (text === '') return true;
  const parts = text.split(':');
  for (let i = 0; i < parts.length; i++) {
    const p = parts[i];
    if (allowV4Tail && i === parts.length - 1 && p.includes('.')) {
      const v4 = parseV4(p);
      if (v4 < 0) return false;
      out.push(v4 >>> 16, v4 & 0xffff);
    } else if (V6_GROUP.test(p)) {
      out.push(parseInt(p, 16));
    } else {
      return false;
    }
  }
  return true;
}

function parseV6(text: string): Uint8Array | null {
  // A zone ID (RFC 4007 `%eth0`) names a link, not an address on the wire.
  if (text.includes('%')) return null;
  const halves = text.split('::');
  if (halves.length > 2) return null;
  const head: number[] = [];
  const tail: number[] = [];
  if (!parseGroups(halves[0], head, halves.length === 1)) return null;
  if (halves.length === 2 && !parseGroups(halves[1], tail, true)) return null;
  let groups: number[];
  if (halves.length === 1) {
    if (head.length !== 8) return null;
    groups = head;
  } else {
    const missing = 8 - head.length - tail.length;
    if (missing < 1) return null; // `::` stands for at least one zero group
    groups = [...head, ...new Array<number>(missing).fill(0), ...tail];
  }
  const out = new Uint8Array(16);
  for (let i = 0; i < 8; i++) {
    out[2 * i] = groups[i] >> 8;
    out[2 * i + 1] = groups[i] & 0xff;
  }
  return out;
}

function mapped(v4: number): Uint8Array {
  const b = new Uint8Array(16);
  b[10] = 0xff;
  b[11] = 0xff;
  b[12] = v4 >>> 24;
  b[13] = (v4 >>> 16) & 255;
  b[14] = (v4 >>> 8) & 255;
  b[15] = v4 & 255;
  return b;
}

/** Parse an IPv4 or IPv6 address (no zone ID, no surrounding spaces, no brackets); null if it is not one. */
export function parseIp(text: string): ParsedIp | null {
  if (text.includes(':')) {
    const v6 = parseV6(text);
    return v6 === null ? null : { family: 6, v4: 0, v6 };
  }
  const v4 = parseV4(text);
  return v4 < 0 ? null : { family: 4, v4, v6: mapped(v4) };
}

/** The canonical text of an address (see the header comment), or null when `text` is not an address. */
export function canonicalIp(text: string): string | null {
  const p = parseIp(text);
  if (p === null) return null;
  return p.family === 4 ? ipv4ToString(p.v4) : ipv6ToString(p.v6, 0);
}

/**
 * Parse `ADDR/PREFIX` or a bare address (a /32 or /128). Returns null when malformed. Bits past the
 * prefix are cleared, and reported in hostBitsSet so a caller can refuse `10.0.0.1/8` as tcpdump does.
 */
export function parseCidr(text: string): Cidr | null {
  const slash = text.indexOf('/');
  const ip = parseIp(slash < 0 ? text : text.slice(0, slash));
  if (ip === null) return null;
  const max = ip.family === 4 ? 32 : 128;
  let prefix = max;
  if (slash >= 0) {
    const p = text.slice(slash + 1);
    if (!/^(?:0|[1-9][0-9]{0,2})$/.test(p)) return null;
    prefix = Number(p);
    if (prefix > max) return null;
  }
  if (ip.family === 4) {
    const mask4 = prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
    const v4 = (ip.v4 & mask4) >>> 0;
    return { family: 4, prefix, v4, mask4, v6: mapped(v4), hostBitsSet: v4 !== ip.v4 };
  }
  const v6 = new Uint8Array(16);
  let hostBitsSet = false;
  for (let i = 0; i < 16; i++) {
    const bits = Math.max(0, Math.min(8, prefix - 8 * i));
    const m = (0xff00 >> bits) & 0xff;
    v6[i] = ip.v6[i] & m;
    if (v6[i] !== ip.v6[i]) hostBitsSet = true;
  }
  return { family: 6, prefix, v4: 0, mask4: 0, v6, hostBitsSet };
}

export function cidrToString(c: Cidr): string {
  return `${c.family === 4 ? ipv4ToString(c.v4) : ipv6ToString(c.v6, 0)}/${c.prefix}`;
}

/** True when the IPv4 address `n` is inside an IPv4 `cidr`. No allocation. */
export function ipv4InCidr(n: number, cidr: Cidr): boolean {
  return cidr.family === 4 && ((n & cidr.mask4) >>> 0) === cidr.v4;
}

/** True when the 16 bytes at buf[off..off+16) are inside an IPv6 `cidr`. No allocation. */
export function ipv6InCidr(buf: Uint8Array, off: number, cidr: Cidr): boolean {
  if (cidr.family !== 6) return false;
  let left = cidr.prefix;
  for (let i = 0; left > 0; i++, left -= 8) {
    const m = left >= 8 ? 0xff : (0xff00 >> left) & 0xff;
    if ((buf[off + i] & m) !== cidr.v6[i]) return false;
  }
  return true;
}

/** The outer source address of a decoded capture-file frame as text, or null when it is not known. */
export function outerSourceToString(st: PacketState, buf: Uint8Array): string | null {
  if (st.outerFamily === AF_INET) return ipv4ToString(st.outerSrc4);
  if (st.outerFamily === AF_INET6 && st.outerSrc6Off >= 0) return ipv6ToString(buf, st.outerSrc6Off);
  return null;
}

/** The innermost decoded packet's source address as text, or null when it is not IP. */
export function innerSourceToString(st: PacketState, buf: Uint8Array): string | null {
  if (st.l3Family === AF_INET) return ipv4ToString(st.src4);
  if (st.l3Family === AF_INET6) return ipv6ToString(buf, st.src6Off);
  return null;
}

/** The innermost decoded packet's destination address as text, or null when it is not IP. */
export function innerDestinationToString(st: PacketState, buf: Uint8Array): string | null {
  if (st.l3Family === AF_INET) return ipv4ToString(st.dst4);
  if (st.l3Family === AF_INET6) return ipv6ToString(buf, st.dst6Off);
  return null;
}
