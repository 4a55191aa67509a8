import { describe, expect, it } from 'vitest';
import { WEIRD } from '../../src/outcomes.js';
import { decodeIpv6, ipv6DeclaredLength } from '../../src/decode/ipv6.js';
import { AF_INET6, AF_NONE, MAX_IPV6_EXT_HEADERS, PacketState } from '../../src/decode/packet-state.js';
import { cat, embed, hex, slice16 } from './bytes.js';

/** The fixed IPv6 header with the given next header and payload length. */
function ip6(nextHeader: number, payloadLength: number): Buffer {
  return hex(`
    60 00 00 00         # version 6, traffic class 0, flow label 0
    ${payloadLength.toString(16).padStart(4, '0')}   # payload length
    ${nextHeader.toString(16).padStart(2, '0')}      # next header
    40                  # hop limit 64
    fe 80 00 00 00 00 00 00 00 00 00 00 00 00 00 01   # source fe80::1
    ff 02 00 00 00 00 00 00 00 00 00 00 00 00 00 02   # destination ff02::2
  `);
}

const UDP = hex(`
  02 22 02 23         # UDP 546 -> 547 (DHCPv6)
  00 0c 00 00         # length 12, checksum
  01 00 00 00         # payload
`);

const HOP_BY_HOP_TO_ROUTING = hex(`
  2b                  # next header 43 Routing
  00                  # hdr ext len 0 (8 bytes)
  05 02 00 00         # option: Router Alert (RFC 2711)
  01 00               # option: PadN, 0 bytes
`);
const ROUTING_TO_DSTOPTS = hex(`
  3c                  # next header 60 Destination Options
  00                  # hdr ext len 0 (8 bytes)
  04 00               # routing type 4 (SRH), segments left 0
  00 00 00 00         # type-specific data
`);
const DSTOPTS_TO_UDP = hex(`
  11                  # next header 17 UDP
  01                  # hdr ext len 1 (16 bytes)
  01 0c 00 00 00 00 00 00 00 00 00 00 00 00  # PadN, 12 bytes
`);

function decode(bytes: Uint8Array): { ret: number; st: PacketState; off: number; end: number } {
  const { buf, off, end } = embed(bytes);
  const st = new PacketState();
  st.reset();
  return { ret: decodeIpv6(buf, off, end, st), st, off, end };
}

describe('decodeIpv6 (RFC 8200)', () => {
  it('decodes the fixed header with UDP directly after it', () => {
    const { ret, st, off } = decode(cat(ip6(17, 12), UDP));
    expect(st.l3Family).toBe(AF_INET6);
    expect(st.l3Off).toBe(off);
    expect(st.src6Off).toBe(off + 8);
    expect(st.dst6Off).toBe(off + 24);
    expect(st.ipProto).toBe(17);
    expect(st.l4Off).toBe(off + 40);
    expect(ret).toBe(off + 52);
    expect(st.weird).toBe(0);
  });

  it('keeps the addresses as offsets into the buffer', () => {
    const { buf, off, end } = embed(cat(ip6(17, 12), UDP));
    const st = new PacketState();
    st.reset();
    decodeIpv6(buf, off, end, st);
    expect(slice16(buf, st.src6Off)).toBe('fe800000000000000000000000000001');
    expect(slice16(buf, st.dst6Off)).toBe('ff020000000000000000000000000002');
  });

  it('walks hop-by-hop -> routing -> destination options -> UDP', () => {
    const ext = cat(HOP_BY_HOP_TO_ROUTING, ROUTING_TO_DSTOPTS, DSTOPTS_TO_UDP);
    const { ret, st, off } = decode(cat(ip6(0, ext.length + 12), ext, UDP));
    expect(st.ipProto).toBe(17);
    expect(st.l4Off).toBe(off + 40 + 32);
    expect(ret).toBe(off + 40 + 32 + 12);
    expect(st.weird).toBe(0);
  });

  it('walks an Authentication Header ((len + 2) * 4 bytes, RFC 4302)', () => {
    const ah = hex(`
      06                # next header 6 TCP
      04                # payload len 4: (4 + 2) * 4 = 24 bytes
      00 00             # reserved
      00 00 01 00       # SPI
      00 00 00 01       # sequence number
      00 00 00 00 00 00 00 00 00 00 00 00   # ICV (96 bits)
    `);
    const tcp = hex('00 50 c0 00 00 00 00 00 00 00 00 00 50 10 00 00 00 00 00 00');
    const { st, off } = decode(cat(ip6(51, 44), ah, tcp));
    expect(st.ipProto).toBe(6);
    expect(st.l4Off).toBe(off + 64);
  });

  it('decodes a first fragment (offset 0) and reads its transport header', () => {
    const frag = hex(`
      11                # next header 17 UDP
      00                # reserved
      00 01             # fragment offset 0, M = 1 (more fragments)
      00 00 00 2a       # identification
    `);
    const { ret, st, off } = decode(cat(ip6(44, 20), frag, UDP));
    expect(st.fragment).toBe(false);
    expect(st.ipProto).toBe(17);
    expect(st.l4Off).toBe(off + 48);
    expect(ret).toBe(off + 60);
  });

  it('flags a non-first fragment: protocol known, no transport header', () => {
    const frag = hex(`
      11                # next header 17 UDP
      00                # reserved
      05 a8             # fragment offset 181 (x 8 = 1448), M = 0
      00 00 00 2a       # identification
    `);
    const { ret, st } = decode(cat(ip6(44, 20), frag, hex('00 00 00 00 00 00 00 00 00 00 00 00')));
    expect(ret).toBe(-1);
    expect(st.fragment).toBe(true);
    expect(st.ipProto).toBe(17);
    expect(st.l4Off).toBe(-1);
    expect(st.weird).toBe(1 << WEIRD.INNER_FRAGMENT);
  });

  it('stops at ESP and at No Next Header with no ports', () => {
    const esp = decode(cat(ip6(50, 8), hex('00 00 01 00 00 00 00 01  # SPI, sequence')));
    expect(esp.st.ipProto).toBe(50);
    expect(esp.st.weird).toBe(0);
    const none = decode(ip6(59, 0));
    expect(none.st.ipProto).toBe(59);
    expect(none.st.srcPort).toBe(-1);
  });

  /** n destination-options headers (8 bytes each), then UDP. */
  function chain(n: number): Buffer {
    const parts: Buffer[] = [];
    for (let i = 0; i < n; i++) parts.push(hex(`${i === n - 1 ? '11' : '3c'} 00 01 04 00 00 00 00  # dst opts, PadN`));
    const ext = cat(...parts);
    return cat(ip6(n === 0 ? 17 : 60, ext.length + 12), ext, UDP);
  }

  it(`follows exactly MAX_IPV6_EXT_HEADERS (${MAX_IPV6_EXT_HEADERS}) extension headers`, () => {
    const { st, off } = decode(chain(MAX_IPV6_EXT_HEADERS));
    expect(st.ipProto).toBe(17);
    expect(st.l4Off).toBe(off + 40 + 8 * MAX_IPV6_EXT_HEADERS);
    expect(st.weird).toBe(0);
  });

  it('flags WEIRD.IPV6_EXT_CHAIN for one more, leaving the rest as payload', () => {
    const { ret, st } = decode(chain(MAX_IPV6_EXT_HEADERS + 1));
    expect(ret).toBe(-1);
    expect(st.l3Family).toBe(AF_INET6);
    expect(st.ipProto).toBe(-1);
    expect(st.weird).toBe(1 << WEIRD.IPV6_EXT_CHAIN);
  });

  it('flags WEIRD.L4_TRUNCATED for an extension header cut short', () => {
    const ext = hex('11 03 01 04 00 00 00 00  # dst opts claiming 32 bytes, 8 captured');
    const { ret, st } = decode(cat(ip6(60, 32), ext));
    expect(ret).toBe(-1);
    expect(st.ipProto).toBe(-1);
    expect(st.weird).toBe(1 << WEIRD.L4_TRUNCATED);
  });

  it('does not let an extension header run past the payload length', () => {
    // Payload length 8, but the destination options header claims 16 bytes.
    const { st } = decode(cat(ip6(60, 8), hex('11 01 01 0c 00 00 00 00 00 00 00 00 00 00 00 00'), UDP));
    expect(st.weird).toBe(1 << WEIRD.L4_TRUNCATED);
  });

  it('flags WEIRD.IPV6_BAD_HEADER for a short header or a wrong version', () => {
    const short = decode(ip6(17, 0).subarray(0, 39));
    expect(short.ret).toBe(-1);
    expect(short.st.l3Family).toBe(AF_NONE);
    expect(short.st.weird).toBe(1 << WEIRD.IPV6_BAD_HEADER);
    const v4 = Buffer.from(ip6(17, 12));
    v4[0] = 0x40;
    expect(decode(cat(v4, UDP)).st.weird).toBe(1 << WEIRD.IPV6_BAD_HEADER);
  });

  it('treats payload length 0 (jumbogram / GSO) as "to the end"', () => {
    const { ret, end } = decode(cat(ip6(17, 0), UDP));
    expect(ret).toBe(end);
  });

  it('reads the declared length from 6 captured bytes', () => {
    const h = ip6(17, 1000);
    expect(ipv6DeclaredLength(h, 0, 6)).toBe(1040);
    expect(ipv6DeclaredLength(h, 0, 5)).toBe(-1);
    expect(ipv6DeclaredLength(ip6(17, 0), 0, 40)).toBe(-1);
  });
});
