import { describe, expect, it } from 'vitest';
import { DROP, WEIRD } from '../../src/outcomes.js';
import { decodeInnerFrame, MAX_FRAME_BYTES } from '../../src/decode/inner.js';
import { AF_INET, AF_INET6, AF_NONE, MAX_TUNNEL_DEPTH, PacketState } from '../../src/decode/packet-state.js';
import { cat, embed, hex } from './bytes.js';
import { INNER_TCP4_PADDED, INNER_TCP6, INNER_UDP4, MAC_HEADER, vxlan } from './frames.js';

function decode(bytes: Uint8Array): { code: number; st: PacketState; off: number; end: number } {
  const { buf, off, end } = embed(bytes);
  const st = new PacketState();
  st.reset();
  return { code: decodeInnerFrame(buf, off, end, st), st, off, end };
}

const bit = (w: number): number => 1 << w;

/**
 * Ethernet / IPv4 / UDP around `payload`, with correct IP and UDP lengths: the building block for
 * nested VXLAN, where each level is this frame around VXLAN around the next level.
 */
function ethIpv4Udp(src: number, dst: number, sport: number, dport: number, payload: Uint8Array, tags: number[] = []): Buffer {
  const tagBytes = tags.map((id) => Buffer.from([0x81, 0x00, id >> 8, id & 255]));
  const ip = Buffer.alloc(28);
  ip[0] = 0x45; // version 4, IHL 5
  ip.writeUInt16BE(28 + payload.length, 2); // total length
  ip[8] = 64; // TTL
  ip[9] = 17; // UDP
  ip.writeUInt32BE(src, 12);
  ip.writeUInt32BE(dst, 16);
  ip.writeUInt16BE(sport, 20);
  ip.writeUInt16BE(dport, 22);
  ip.writeUInt16BE(8 + payload.length, 24); // UDP length
  return cat(hex(MAC_HEADER), ...tagBytes, hex('08 00'), ip, payload);
}

/** A 1514-byte frame: Ethernet / IPv4 total length 1500 / TCP 443 -> 50000. */
const FULL_TCP4 = (() => {
  const b = Buffer.alloc(1514);
  hex(`${MAC_HEADER} 08 00
    45 00 05 dc       # IPv4, total length 1500
    00 00 40 00 40 06 00 00
    ac 10 00 05       # 172.16.0.5
    ac 10 00 06       # 172.16.0.6
    01 bb c3 50       # TCP 443 -> 50000
    00 00 00 00 00 00 00 00 50 10 01 00 00 00 00 00`).copy(b);
  return b;
})();

describe('decodeInnerFrame', () => {
  it('decodes a plain frame: bounds, original length, no weird', () => {
    const { code, st, off, end } = decode(INNER_UDP4);
    expect(code).toBe(DROP.OK);
    expect(st.innerOff).toBe(off);
    expect(st.innerEnd).toBe(end);
    expect(st.origLen).toBe(60);
    expect(st.tunnelDepth).toBe(1);
    expect(st.l3Family).toBe(AF_INET);
    expect(st.truncated).toBe(false);
    expect(st.weird).toBe(0);
  });

  it('drops fewer than 14 bytes as INNER_TOO_SHORT', () => {
    expect(decode(INNER_UDP4.subarray(0, 13)).code).toBe(DROP.INNER_TOO_SHORT);
    expect(decode(new Uint8Array(0)).code).toBe(DROP.INNER_TOO_SHORT);
  });

  it('accepts a bare 14-byte Ethernet header (nothing after it)', () => {
    const { code, st } = decode(hex(`${MAC_HEADER} 88 cc  # LLDP`));
    expect(code).toBe(DROP.OK);
    expect(st.etherType).toBe(0x88cc);
    expect(st.l3Family).toBe(AF_NONE);
  });

  it(`accepts exactly MAX_FRAME_BYTES (${MAX_FRAME_BYTES}) and drops one more as INNER_TOO_LONG`, () => {
    const max = Buffer.alloc(MAX_FRAME_BYTES);
    hex(`${MAC_HEADER} 08 00  45 00 00 00  # IPv4, total length 0 (GSO)
      00 00 00 00 40 06 00 00 0a 00 00 01 0a 00 00 02`).copy(max);
    expect(decode(max).code).toBe(DROP.OK);
    expect(decode(Buffer.alloc(MAX_FRAME_BYTES + 1)).code).toBe(DROP.INNER_TOO_LONG);
  });

  it('does not flag Ethernet padding of a short frame', () => {
    const { st } = decode(INNER_TCP4_PADDED);
    expect(st.srcPort).toBe(22);
    expect(st.weird).toBe(0);
  });

  it('flags bytes after the IP packet beyond the padding as INNER_TRAILING_BYTES', () => {
    const { st } = decode(cat(INNER_UDP4, hex('de ad be ef  # 4 bytes after a 60-byte frame')));
    expect(st.weird).toBe(bit(WEIRD.INNER_TRAILING_BYTES));
    expect(st.origLen).toBe(64);
    // A frame that is long enough on its own, with stray bytes after the IP packet.
    const big = cat(FULL_TCP4, hex('00 00'));
    expect(decode(big).st.weird).toBe(bit(WEIRD.INNER_TRAILING_BYTES));
  });

  it('allows 4 more bytes of padding per VLAN tag', () => {
    // IPv4 of 28 bytes behind one tag: 18 + 28 = 46, padded to 64 by a switch that tagged a 60-byte frame.
    const tagged = cat(ethIpv4Udp(0x0a000001, 0x0a000002, 1, 2, new Uint8Array(0), [5]), Buffer.alloc(18));
    expect(tagged.length).toBe(64);
    expect(decode(tagged).st.weird).toBe(0);
    expect(decode(cat(tagged, hex('00'))).st.weird).toBe(bit(WEIRD.INNER_TRAILING_BYTES));
  });

  describe('AWS PacketLength truncation', () => {
    it('IPv4: origLen = Ethernet header + IP total length, truncated, ports still read', () => {
      const { code, st } = decode(FULL_TCP4.subarray(0, 128));
      expect(code).toBe(DROP.OK);
      expect(st.truncated).toBe(true);
      expect(st.origLen).toBe(1514);
      expect(st.innerEnd - st.innerOff).toBe(128);
      expect(st.weird).toBe(bit(WEIRD.INNER_TRUNCATED));
      expect(st.srcPort).toBe(443);
    });

    it('counts VLAN tags in the L2 header length', () => {
      const tagged = cat(FULL_TCP4.subarray(0, 12), hex('81 00 00 2a  # VLAN 42'), FULL_TCP4.subarray(12, 100));
      const { st } = decode(tagged);
      expect(st.origLen).toBe(18 + 1500);
      expect(st.vlanIds[0]).toBe(42);
    });

    it('PacketLength 20 leaves 6 bytes of IPv4: bad header, but the original length is known', () => {
      const { code, st } = decode(FULL_TCP4.subarray(0, 20));
      expect(code).toBe(DROP.OK);
      expect(st.truncated).toBe(true);
      expect(st.origLen).toBe(1514);
      expect(st.l3Family).toBe(AF_NONE);
      expect(st.weird).toBe(bit(WEIRD.INNER_TRUNCATED) | bit(WEIRD.IPV4_BAD_HEADER));
    });

    it('IPv6: origLen = Ethernet header + 40 + payload length', () => {
      const full = cat(INNER_TCP6.subarray(0, 18), hex('05 a0  # payload length 1440'), INNER_TCP6.subarray(20));
      const { st } = decode(full);
      expect(st.truncated).toBe(true);
      expect(st.origLen).toBe(14 + 40 + 1440);
      expect(st.l3Family).toBe(AF_INET6);
      expect(st.srcPort).toBe(443);
    });

    it('an IP total length of 0 (GSO) is neither truncated nor trailing', () => {
      const b = Buffer.from(FULL_TCP4);
      b.writeUInt16BE(0, 16);
      const { st } = decode(b);
      expect(st.truncated).toBe(false);
      expect(st.origLen).toBe(1514);
      expect(st.weird).toBe(0);
    });
  });

  describe('nested VXLAN', () => {
    const A = 0x0a000001;
    const B = 0x0a000002;
    const dns = (src: number): Buffer => ethIpv4Udp(src, 0x08080808, 40000, 53, hex('ab cd 01 00 00 01 00 00 00 00 00 00'));
    /** `levels` frames, each carrying the next in VXLAN; the last carries DNS from 10.0.0.<levels>. */
    function nest(levels: number): Buffer {
      let frame = dns(0x0a000000 + levels);
      for (let i = levels - 1; i >= 1; i--) frame = ethIpv4Udp(0x0a000000 + i, B, 50000 + i, 4789, vxlan(100 + i, frame));
      return frame;
    }

    it('describes the innermost packet but keeps the outer frame bounds (depth 2)', () => {
      const frame = nest(2);
      const { code, st, off, end } = decode(frame);
      expect(code).toBe(DROP.OK);
      expect(st.tunnelDepth).toBe(2);
      expect(st.src4).toBe(0x0a000002);
      expect(st.dstPort).toBe(53);
      expect(st.innerOff).toBe(off);
      expect(st.innerEnd).toBe(end);
      expect(st.origLen).toBe(frame.length);
      expect(st.weird).toBe(0);
    });

    it(`follows up to MAX_TUNNEL_DEPTH (${MAX_TUNNEL_DEPTH}) levels`, () => {
      const { st } = decode(nest(MAX_TUNNEL_DEPTH));
      expect(st.tunnelDepth).toBe(MAX_TUNNEL_DEPTH);
      expect(st.src4).toBe(0x0a000000 + MAX_TUNNEL_DEPTH);
      expect(st.dstPort).toBe(53);
      expect(st.weird).toBe(0);
    });

    it('leaves a deeper level as payload and flags WEIRD.TUNNEL_DEPTH', () => {
      const { code, st } = decode(nest(MAX_TUNNEL_DEPTH + 2));
      expect(code).toBe(DROP.OK);
      expect(st.tunnelDepth).toBe(MAX_TUNNEL_DEPTH);
      // the deepest decoded packet is the UDP datagram that carries the next level
      expect(st.src4).toBe(0x0a000000 + MAX_TUNNEL_DEPTH);
      expect(st.dstPort).toBe(4789);
      expect(st.weird).toBe(bit(WEIRD.TUNNEL_DEPTH));
    });

    it('does not follow UDP 4789 whose VXLAN header lacks the I flag', () => {
      const frame = ethIpv4Udp(A, B, 1234, 4789, vxlan(7, dns(0x0a000009), 0x00));
      const { st } = decode(frame);
      expect(st.tunnelDepth).toBe(1);
      expect(st.src4).toBe(A);
      expect(st.dstPort).toBe(4789);
    });

    it('does not follow UDP 4789 with less than a VXLAN and an Ethernet header after it', () => {
      const frame = ethIpv4Udp(A, B, 1234, 4789, vxlan(7, hex(MAC_HEADER)).subarray(0, 21));
      const { st } = decode(frame);
      expect(st.tunnelDepth).toBe(1);
      expect(st.dstPort).toBe(4789);
    });

    it('clears the outer layer fields when the nested frame is not IP', () => {
      const arp = hex(`${MAC_HEADER} 08 06  # ARP
        00 01 08 00 06 04 00 01  # Ethernet/IPv4, request
        02 00 00 00 00 01 0a 00 00 01 00 00 00 00 00 00 0a 00 00 02`);
      const { st } = decode(ethIpv4Udp(A, B, 1234, 4789, vxlan(7, arp)));
      expect(st.tunnelDepth).toBe(2);
      expect(st.etherType).toBe(0x0806);
      expect(st.l3Family).toBe(AF_NONE);
      expect(st.src4).toBe(0);
      expect(st.srcPort).toBe(-1);
      expect(st.dstPort).toBe(-1);
      expect(st.ipProto).toBe(-1);
    });

    it('keeps nested VLAN tags and weird bits of the inner levels', () => {
      const inner = ethIpv4Udp(A, B, 5, 6, hex('00'), [1, 2, 3, 4, 5]);
      const { st } = decode(ethIpv4Udp(A, B, 1234, 4789, vxlan(7, inner), [9]));
      expect(st.tunnelDepth).toBe(2);
      expect(Array.from(st.vlanIds.subarray(0, st.vlanCount))).toEqual([1, 2, 3, 4]);
      expect(st.weird & bit(WEIRD.VLAN_DEPTH)).not.toBe(0);
    });

    it('bounds the nested frame by the UDP length, not the outer frame end', () => {
      // The nested TCP header is cut at 19 bytes inside the UDP datagram; the 4 bytes after the datagram
      // must not complete it.
      const frame = cat(ethIpv4Udp(A, B, 1234, 4789, vxlan(7, INNER_TCP4_PADDED.subarray(0, 53))), hex('00 16 00 16'));
      const { st } = decode(frame);
      expect(st.tunnelDepth).toBe(2);
      expect(st.ipProto).toBe(6);
      expect(st.srcPort).toBe(-1);
      expect(st.weird).toBe(bit(WEIRD.INNER_TRAILING_BYTES) | bit(WEIRD.L4_TRUNCATED));
    });

    it('decodes a nested truncated frame as far as it was captured', () => {
      const full = ethIpv4Udp(A, B, 1234, 4789, vxlan(7, FULL_TCP4));
      const { st } = decode(full.subarray(0, 150));
      expect(st.truncated).toBe(true);
      expect(st.origLen).toBe(full.length);
      expect(st.tunnelDepth).toBe(2);
      expect(st.src4).toBe(0xac100005);
      expect(st.srcPort).toBe(443);
    });
  });
});
