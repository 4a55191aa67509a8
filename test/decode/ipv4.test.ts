import { describe, expect, it } from 'vitest';
import { WEIRD } from '../../src/outcomes.js';
import { decodeIpv4, ipv4DeclaredLength } from '../../src/decode/ipv4.js';
import { AF_INET, AF_NONE, PacketState } from '../../src/decode/packet-state.js';
import { embed, hex } from './bytes.js';

function decode(bytes: Uint8Array): { ret: number; st: PacketState; off: number; end: number } {
  const { buf, off, end } = embed(bytes);
  const st = new PacketState();
  st.reset();
  const ret = decodeIpv4(buf, off, end, st);
  return { ret, st, off, end };
}

const UDP_DATAGRAM = hex(`
  45                  # version 4, IHL 5
  00                  # DSCP / ECN
  00 24               # total length 36 = 20 + 8 + 8
  ab cd               # identification
  00 00               # no flags, fragment offset 0
  40 11 00 00         # TTL 64, protocol 17 UDP, checksum
  c0 a8 01 0a         # source 192.168.1.10
  08 08 08 08         # destination 8.8.8.8
  d4 31 00 35 00 10 00 00   # UDP 54321 -> 53, length 16
  de ad be ef de ad be ef   # payload
`);

describe('decodeIpv4 (RFC 791 section 3.1)', () => {
  it('decodes addresses and protocol and points at the transport header', () => {
    const { ret, st, off } = decode(UDP_DATAGRAM);
    expect(st.l3Family).toBe(AF_INET);
    expect(st.l3Off).toBe(off);
    expect(st.src4).toBe(0xc0a8010a);
    expect(st.dst4).toBe(0x08080808);
    expect(st.ipProto).toBe(17);
    expect(st.l4Off).toBe(off + 20);
    expect(ret).toBe(off + 36);
    expect(st.fragment).toBe(false);
    expect(st.weird).toBe(0);
  });

  it('keeps addresses above 127.255.255.255 unsigned', () => {
    const b = Buffer.from(UDP_DATAGRAM);
    b.set([0xff, 0xff, 0xff, 0xfe], 12);
    expect(decode(b).st.src4).toBe(4294967294);
  });

  it('skips options: IHL 6 puts the transport header at 24', () => {
    const { ret, st, off } = decode(
      hex(`
        46                # version 4, IHL 6 (24 bytes)
        00 00 20          # DSCP, total length 32 = 24 + 8
        00 00 00 00       # identification, flags, offset
        40 11 00 00       # TTL, UDP, checksum
        0a 00 00 01 0a 00 00 02   # 10.0.0.1 -> 10.0.0.2
        94 04 00 00       # option: Router Alert (RFC 2113), 4 bytes
        00 07 00 08 00 08 00 00   # UDP 7 -> 8
      `),
    );
    expect(st.l4Off).toBe(off + 24);
    expect(ret).toBe(off + 32);
  });

  it('clips the payload end to the captured bytes when the packet was truncated', () => {
    const cut = UDP_DATAGRAM.subarray(0, 30);
    const { ret, end, st } = decode(cut);
    expect(ret).toBe(end);
    expect(st.l3Family).toBe(AF_INET);
  });

  it('treats total length 0 (Linux GSO / BIG TCP) as "to the end of the frame"', () => {
    const b = Buffer.from(UDP_DATAGRAM);
    b.writeUInt16BE(0, 2);
    const { ret, end, st } = decode(b);
    expect(ret).toBe(end);
    expect(st.weird).toBe(0);
    expect(ipv4DeclaredLength(b, 0, b.length)).toBe(-1);
  });

  it('flags a non-first fragment: no transport header, fragment = true', () => {
    const b = Buffer.from(UDP_DATAGRAM);
    b.set([0x00, 0xb9], 6); // fragment offset 185 (x 8 bytes = 1480)
    const { ret, st } = decode(b);
    expect(ret).toBe(-1);
    expect(st.fragment).toBe(true);
    expect(st.ipProto).toBe(17);
    expect(st.l4Off).toBe(-1);
    expect(st.weird).toBe(1 << WEIRD.INNER_FRAGMENT);
  });

  it('decodes a first fragment (more-fragments set, offset 0) normally', () => {
    const b = Buffer.from(UDP_DATAGRAM);
    b.set([0x20, 0x00], 6); // MF, offset 0
    const { ret, st, off } = decode(b);
    expect(st.fragment).toBe(false);
    expect(st.l4Off).toBe(off + 20);
    expect(ret).toBeGreaterThan(0);
    expect(st.weird).toBe(0);
  });

  const bad: [string, Buffer][] = [
    ['fewer than 20 bytes', UDP_DATAGRAM.subarray(0, 19)],
    ['version 6 in an IPv4 EtherType', Buffer.from([0x65, ...UDP_DATAGRAM.subarray(1)])],
    ['IHL 4 (16 bytes)', Buffer.from([0x44, ...UDP_DATAGRAM.subarray(1)])],
    ['total length 19 (below the header)', Buffer.from([...UDP_DATAGRAM.subarray(0, 2), 0x00, 0x13, ...UDP_DATAGRAM.subarray(4)])],
  ];
  for (const [what, bytes] of bad) {
    it(`flags WEIRD.IPV4_BAD_HEADER for ${what}`, () => {
      const { ret, st } = decode(bytes);
      expect(ret).toBe(-1);
      expect(st.l3Family).toBe(AF_NONE);
      expect(st.weird).toBe(1 << WEIRD.IPV4_BAD_HEADER);
    });
  }

  it('flags WEIRD.L4_TRUNCATED when the options run past the capture', () => {
    const b = hex(`
      4f 00 00 3c       # IHL 15 (60 bytes), total length 60
      00 00 00 00 40 06 00 00
      0a 00 00 01 0a 00 00 02
      01 01 01 01       # NOPs; the rest of the 40 option bytes were not captured
    `);
    const { ret, st } = decode(b);
    expect(ret).toBe(-1);
    expect(st.l3Family).toBe(AF_INET);
    expect(st.src4).toBe(0x0a000001);
    expect(st.l4Off).toBe(-1);
    expect(st.weird).toBe(1 << WEIRD.L4_TRUNCATED);
  });

  it('reads the total length from only 4 captured bytes (AWS PacketLength 20)', () => {
    const { buf, off } = embed(UDP_DATAGRAM.subarray(0, 6));
    expect(ipv4DeclaredLength(buf, off, off + 6)).toBe(36);
    expect(ipv4DeclaredLength(buf, off, off + 3)).toBe(-1);
    expect(ipv4DeclaredLength(Buffer.from([0x65, 0, 0, 36]), 0, 4)).toBe(-1);
  });
});
