/**
 * Inner frames for tests, built in TypeScript: Ethernet (with 802.1Q / 802.1ad tags), IPv4, IPv6, TCP,
 * UDP, ICMP, ICMPv6 echo and a DNS query, with correct lengths and checksums. Each layer takes its
 * payload, scapy style but nested: `ether({}, ipv4({ dst: '10.0.0.2' }, tcp({ dport: 22 }, raw('q', 50))))`.
 * Defaults follow scapy's where a test could care (IP 127.0.0.1 -> 127.0.0.1, TTL 64, TCP 20 -> 80 SYN,
 * UDP 53 -> 53), so the frames the tests used to ask scapy for keep their shape. test/helpers/packets.test.ts
 * checks these bytes against scapy's where scapy is installed.
 */
import { isIPv4, isIPv6 } from 'node:net';

/** A transport segment waiting for its IP header (its checksum covers the pseudo-header). */
export interface L4 {
  proto: number;
  /** The segment's bytes, checksummed over the pseudo-header built from `src` and `dst` (4 or 16 bytes each). */
  bytes(src: Buffer, dst: Buffer): Buffer;
}

/** A network-layer packet waiting for its link header. */
export interface L3 {
  etherType: number;
  bytes: Buffer;
}

export function ipv4Bytes(addr: string): Buffer {
  if (!isIPv4(addr)) throw new Error(`not an IPv4 address: ${addr}`);
  return Buffer.from(addr.split('.').map(Number));
}

export function ipv6Bytes(addr: string): Buffer {
  if (!isIPv6(addr)) throw new Error(`not an IPv6 address: ${addr}`);
  const [head, tail] = addr.includes('::') ? addr.split('::') : [addr, undefined];
  const words = (s: string | undefined) => (s ? s.split(':') : []);
  const h = words(head);
  const t = words(tail);
  const all = tail === undefined ? h : [...h, ...Array<string>(8 - h.length - t.length).fill('0'), ...t];
  const out = Buffer.alloc(16);
  all.forEach((w, i) => out.writeUInt16BE(parseInt(w, 16), i * 2));
  return out;
}

export function macBytes(mac: string): Buffer {
  return Buffer.from(mac.split(':').map((b) => parseInt(b, 16)));
}

/** The Internet checksum (RFC 1071) over the concatenation of `parts`. */
export function inetChecksum(...parts: Uint8Array[]): number {
  let sum = 0;
  let odd: number | null = null;
  for (const p of parts) {
    for (const b of p) {
      if (odd === null) odd = b;
      else {
        sum += (odd << 8) | b;
        odd = null;
      }
    }
  }
  if (odd !== null) sum += odd << 8;
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

/** `count` bytes of `fill` (a character or a byte value), like scapy's Raw(b'x'*count). */
export function raw(fill: string | number, count: number): Buffer {
  return Buffer.alloc(count, typeof fill === 'string' ? fill.charCodeAt(0) : fill);
}

function pseudo(src: Buffer, dst: Buffer, proto: number, length: number): Buffer {
  if (src.length === 4) {
    const p = Buffer.alloc(12);
    src.copy(p, 0);
    dst.copy(p, 4);
    p[9] = proto;
    p.writeUInt16BE(length, 10);
    return p;
  }
  const p = Buffer.alloc(40);
  src.copy(p, 0);
  dst.copy(p, 16);
  p.writeUInt32BE(length, 32);
  p[39] = proto;
  return p;
}

const TCP_FLAGS: Record<string, number> = { F: 0x01, S: 0x02, R: 0x04, P: 0x08, A: 0x10, U: 0x20, E: 0x40, C: 0x80 };

export function tcp(
  o: { sport?: number; dport?: number; seq?: number; ack?: number; flags?: string; window?: number } = {},
  payload: Uint8Array = Buffer.alloc(0),
): L4 {
  return {
    proto: 6,
    bytes(src, dst) {
      const h = Buffer.alloc(20);
      h.writeUInt16BE(o.sport ?? 20, 0);
      h.writeUInt16BE(o.dport ?? 80, 2);
      h.writeUInt32BE(o.seq ?? 0, 4);
      h.writeUInt32BE(o.ack ?? 0, 8);
      h[12] = 5 << 4; // data offset: 5 words, no options
      h[13] = [...(o.flags ?? 'S')].reduce((f, c) => f | (TCP_FLAGS[c] ?? 0), 0);
      h.writeUInt16BE(o.window ?? 8192, 14);
      const seg = Buffer.concat([h, payload]);
      seg.writeUInt16BE(inetChecksum(pseudo(src, dst, 6, seg.length), seg), 16);
      return seg;
    },
  };
}

export function udp(o: { sport?: number; dport?: number } = {}, payload: Uint8Array = Buffer.alloc(0)): L4 {
  return {
    proto: 17,
    bytes(src, dst) {
      const seg = Buffer.concat([Buffer.alloc(8), payload]);
      seg.writeUInt16BE(o.sport ?? 53, 0);
      seg.writeUInt16BE(o.dport ?? 53, 2);
      seg.writeUInt16BE(seg.length, 4);
      // A computed checksum of 0 is sent as 0xffff (RFC 768); 0 would mean "none".
      seg.writeUInt16BE(inetChecksum(pseudo(src, dst, 17, seg.length), seg) || 0xffff, 6);
      return seg;
    },
  };
}

/** ICMP echo request (type 8) by default. */
export function icmp(o: { type?: number; code?: number; id?: number; seq?: number } = {}, payload: Uint8Array = Buffer.alloc(0)): L4 {
  return {
    proto: 1,
    bytes() {
      const m = Buffer.concat([Buffer.alloc(8), payload]);
      m[0] = o.type ?? 8;
      m[1] = o.code ?? 0;
      m.writeUInt16BE(o.id ?? 0, 4);
      m.writeUInt16BE(o.seq ?? 0, 6);
      m.writeUInt16BE(inetChecksum(m), 2);
      return m;
    },
  };
}

/** ICMPv6 echo request (type 128); its checksum covers the IPv6 pseudo-header (RFC 4443 section 2.3). */
export function icmp6Echo(o: { id?: number; seq?: number } = {}, payload: Uint8Array = Buffer.alloc(0)): L4 {
  return {
    proto: 58,
    bytes(src, dst) {
      const m = Buffer.concat([Buffer.alloc(8), payload]);
      m[0] = 128;
      m.writeUInt16BE(o.id ?? 0, 4);
      m.writeUInt16BE(o.seq ?? 0, 6);
      m.writeUInt16BE(inetChecksum(pseudo(src, dst, 58, m.length), m), 2);
      return m;
    },
  };
}

/** A DNS query for one name, type A, class IN (RFC 1035 section 4.1). */
export function dnsQuery(name: string, o: { id?: number; rd?: boolean } = {}): Buffer {
  const h = Buffer.alloc(12);
  h.writeUInt16BE(o.id ?? 0, 0);
  h.writeUInt16BE((o.rd ?? true) ? 0x0100 : 0, 2);
  h.writeUInt16BE(1, 4); // QDCOUNT
  const labels = name.split('.').filter((l) => l.length > 0).map((l) => Buffer.concat([Buffer.from([l.length]), Buffer.from(l, 'ascii')]));
  return Buffer.concat([h, ...labels, Buffer.from([0, 0, 1, 0, 1])]);
}

/** IPv4 (no options). `body` is a transport segment or raw bytes with `proto`. */
export function ipv4(
  o: { src?: string; dst?: string; ttl?: number; id?: number; proto?: number; df?: boolean; /** Fragment offset, 8-byte units. */ frag?: number } = {},
  body: L4 | Uint8Array = Buffer.alloc(0),
): L3 {
  const src = ipv4Bytes(o.src ?? '127.0.0.1');
  const dst = ipv4Bytes(o.dst ?? '127.0.0.1');
  const payload = body instanceof Uint8Array ? body : body.bytes(src, dst);
  const h = Buffer.alloc(20);
  h[0] = 0x45;
  h.writeUInt16BE(20 + payload.length, 2);
  h.writeUInt16BE(o.id ?? 1, 4);
  h.writeUInt16BE((o.df ? 0x4000 : 0) | ((o.frag ?? 0) & 0x1fff), 6);
  h[8] = o.ttl ?? 64;
  h[9] = body instanceof Uint8Array ? (o.proto ?? 0) : body.proto;
  src.copy(h, 12);
  dst.copy(h, 16);
  h.writeUInt16BE(inetChecksum(h), 10);
  return { etherType: 0x0800, bytes: Buffer.concat([h, payload]) };
}

/** GRE (RFC 2784) with no options, carrying an IPv4 or IPv6 packet. */
export function gre(inner: L3): L4 {
  return {
    proto: 47,
    bytes() {
      const h = Buffer.alloc(4);
      h.writeUInt16BE(inner.etherType, 2);
      return Buffer.concat([h, inner.bytes]);
    },
  };
}

/**
 * SCTP (RFC 9260) with one INIT chunk. The CRC32c checksum is left 0: nothing in the tests verifies it
 * (a filter or a decoder looks at ports only).
 */
export function sctpInit(o: { sport: number; dport: number }): L4 {
  return {
    proto: 132,
    bytes() {
      const b = Buffer.alloc(12 + 20);
      b.writeUInt16BE(o.sport, 0);
      b.writeUInt16BE(o.dport, 2);
      b[12] = 1; // chunk type INIT
      b.writeUInt16BE(20, 14); // chunk length
      b.writeUInt32BE(1, 16); // initiate tag
      b.writeUInt32BE(65535, 20); // a_rwnd
      b.writeUInt16BE(1, 24); // outbound streams
      b.writeUInt16BE(1, 26); // inbound streams
      b.writeUInt32BE(1, 28); // initial TSN
      return b;
    },
  };
}

/** An ARP request over Ethernet/IPv4 (RFC 826): who has `pdst`, tell `psrc`. */
export function arp(o: { psrc: string; pdst: string; hwsrc?: string; op?: number }): L3 {
  const b = Buffer.alloc(28);
  b.writeUInt16BE(1, 0); // hardware type Ethernet
  b.writeUInt16BE(0x0800, 2); // protocol type IPv4
  b[4] = 6;
  b[5] = 4;
  b.writeUInt16BE(o.op ?? 1, 6);
  macBytes(o.hwsrc ?? '02:00:00:00:00:01').copy(b, 8);
  ipv4Bytes(o.psrc).copy(b, 14);
  ipv4Bytes(o.pdst).copy(b, 24);
  return { etherType: 0x0806, bytes: b };
}

/** IPv6 with no extension headers. Default addresses ::1 -> ::1, hop limit 64, as scapy. */
export function ipv6(o: { src?: string; dst?: string; hlim?: number; nh?: number } = {}, body: L4 | Uint8Array = Buffer.alloc(0)): L3 {
  const src = ipv6Bytes(o.src ?? '::1');
  const dst = ipv6Bytes(o.dst ?? '::1');
  const payload = body instanceof Uint8Array ? body : body.bytes(src, dst);
  const h = Buffer.alloc(40);
  h[0] = 0x60;
  h.writeUInt16BE(payload.length, 4);
  h[6] = body instanceof Uint8Array ? (o.nh ?? 59) : body.proto; // 59: no next header
  h[7] = o.hlim ?? 64;
  src.copy(h, 8);
  dst.copy(h, 24);
  return { etherType: 0x86dd, bytes: Buffer.concat([h, payload]) };
}

/** A VLAN tag: 802.1Q (TPID 0x8100) unless `tpid` says otherwise (0x88a8 for an 802.1ad service tag). */
export interface VlanTag {
  vid: number;
  pcp?: number;
  tpid?: number;
}

/**
 * Ethernet II, with VLAN tags outermost first. Not padded to 60 bytes: a mirror copies the frame as sent,
 * and the tests compare what they sent with what was written, byte for byte.
 */
export function ether(o: { src?: string; dst?: string; vlans?: (number | VlanTag)[] } = {}, l3: L3 | { etherType: number; bytes: Uint8Array }): Buffer {
  const tags = (o.vlans ?? []).map((v) => (typeof v === 'number' ? { vid: v } : v));
  const h = Buffer.alloc(12 + tags.length * 4 + 2);
  macBytes(o.dst ?? '02:00:00:00:00:02').copy(h, 0);
  macBytes(o.src ?? '02:00:00:00:00:01').copy(h, 6);
  tags.forEach((t, i) => {
    h.writeUInt16BE(t.tpid ?? 0x8100, 12 + i * 4);
    h.writeUInt16BE(((t.pcp ?? 0) << 13) | (t.vid & 0x0fff), 14 + i * 4);
  });
  h.writeUInt16BE(l3.etherType, h.length - 2);
  return Buffer.concat([h, l3.bytes]);
}

/** The 8-byte VXLAN header (RFC 7348 section 5): flags (0x08: the I flag), 24 reserved bits, the VNI, 8 reserved bits. */
export function vxlanHeader(vni: number, flags = 0x08): Buffer {
  return Buffer.from([flags, 0, 0, 0, (vni >> 16) & 255, (vni >> 8) & 255, vni & 255, 0]);
}

/** The frames the API tests write (test/api/helpers.ts craftFrames), here so packets.test.ts can hold them against scapy. */
export function API_FRAMES(): Record<string, Buffer> {
  return {
    tcp443: ether({ src: '02:00:00:00:00:01', dst: '02:00:00:00:00:02' }, ipv4({ src: '10.0.0.1', dst: '10.0.0.2' }, tcp({ sport: 40000, dport: 443, flags: 'S', seq: 1000 }))),
    tcp443r: ether({ src: '02:00:00:00:00:02', dst: '02:00:00:00:00:01' }, ipv4({ src: '10.0.0.2', dst: '10.0.0.1' }, tcp({ sport: 443, dport: 40000, flags: 'SA', seq: 5000, ack: 1001 }))),
    dns: ether({ src: '02:00:00:00:00:03', dst: '02:00:00:00:00:04' }, ipv4({ src: '10.0.0.3', dst: '8.8.8.8' }, udp({ sport: 5353, dport: 53 }, dnsQuery('example.com')))),
    icmp6: ether({ src: '02:00:00:00:00:05', dst: '02:00:00:00:00:06' }, ipv6({ src: 'fd00::1', dst: 'fd00::2' }, icmp6Echo({ id: 7, seq: 1 }))),
    ssh_vlan: ether(
      { src: '02:00:00:00:00:07', dst: '02:00:00:00:00:08', vlans: [7] },
      ipv4({ src: '10.1.0.1', dst: '10.0.0.2' }, tcp({ sport: 50000, dport: 22, flags: 'PA' }, Buffer.concat([Buffer.from('SSH-2.0-OpenSSH_9.6'), raw('x', 400)]))),
    ),
  };
}
