import { describe, expect, it } from 'vitest';
import { DROP, WEIRD } from '../../src/outcomes.js';
import { decodeOuter, decodeCapturedFrame, isSupportedLinktype, LINKTYPE, SUPPORTED_LINKTYPES } from '../../src/decode/outer.js';
import { AF_INET, AF_INET6, AF_NONE, PacketState } from '../../src/decode/packet-state.js';
import { cat, embed, hex, slice16 } from './bytes.js';
import { INNER_UDP4, VXLAN_AWS, vxlan } from './frames.js';

const u16 = (n: number): string => n.toString(16).padStart(4, '0');
const VXLAN_PAYLOAD = cat(VXLAN_AWS, INNER_UDP4); // 68 bytes

/** Outer IPv4 / UDP 65408 -> dport around `payload`, lengths overridable to test the GSO cases. */
function ipv4Udp(payload: Uint8Array, o: { dport?: number; totalLen?: number; udpLen?: number; proto?: number; frag?: string } = {}): Buffer {
  return cat(
    hex(`
      45 00                               # version 4, IHL 5
      ${u16(o.totalLen ?? 28 + payload.length)}   # total length
      00 01 ${o.frag ?? '00 00'}          # identification, flags / fragment offset
      40 ${(o.proto ?? 17).toString(16).padStart(2, '0')} 00 00   # TTL 64, protocol, checksum
      ac 1f 00 ee                         # source 172.31.0.238 (the AWS capture's mirror source)
      ac 1f 11 bc                         # destination 172.31.17.188
      ff 80                               # UDP source port 65408
      ${u16(o.dport ?? 4789)}             # UDP destination port
      ${u16(o.udpLen ?? 8 + payload.length)}      # UDP length
      00 00                               # UDP checksum 0 (AWS sends none)
    `),
    payload,
  );
}

/** Outer IPv6 2600:1f18::1 -> 2600:1f18::2 / UDP -> 4789 around `payload`, with optional extension bytes. */
function ipv6Udp(payload: Uint8Array, ext: Buffer = Buffer.alloc(0), firstNext = 17, payloadLen?: number): Buffer {
  return cat(
    hex(`
      60 00 00 00                         # version 6
      ${u16(payloadLen ?? ext.length + 8 + payload.length)}   # payload length
      ${firstNext.toString(16).padStart(2, '0')} 40           # next header, hop limit
      26 00 1f 18 00 00 00 00 00 00 00 00 00 00 00 01         # source 2600:1f18::1
      26 00 1f 18 00 00 00 00 00 00 00 00 00 00 00 02         # destination 2600:1f18::2
    `),
    ext,
    hex(`c0 01 12 b5 ${u16(8 + payload.length)} 00 00  # UDP 49153 -> 4789, length, checksum`),
    payload,
  );
}

const ETH = (type: string): Buffer => hex(`02 00 00 00 00 0b 02 00 00 00 00 0a  # MACs
  ${type}  # EtherType`);

function run(bytes: Uint8Array, linktype: number, port?: number): { code: number; st: PacketState; off: number; end: number } {
  const { buf, off, end } = embed(bytes);
  const st = new PacketState();
  st.reset();
  const code = port === undefined ? decodeOuter(buf, off, end, linktype, st) : decodeOuter(buf, off, end, linktype, st, port);
  return { code, st, off, end };
}

describe('decodeOuter', () => {
  it('Ethernet / IPv4 / UDP 4789: source, ports and the VXLAN bounds', () => {
    const { code, st, off, end } = run(cat(ETH('08 00'), ipv4Udp(VXLAN_PAYLOAD)), LINKTYPE.ETHERNET);
    expect(code).toBe(DROP.OK);
    expect(st.outerFamily).toBe(AF_INET);
    expect(st.outerSrc4).toBe(0xac1f00ee);
    expect(st.outerSrcPort).toBe(65408);
    expect(st.outerDstPort).toBe(4789);
    expect(st.vxlanOff).toBe(off + 14 + 28);
    expect(st.vxlanEnd).toBe(end);
  });

  it('follows VLAN tags on the outer Ethernet header', () => {
    const { code, st, off } = run(cat(ETH('81 00 00 0a  88 a8 00 0b  08 00'), ipv4Udp(VXLAN_PAYLOAD)), LINKTYPE.ETHERNET);
    expect(code).toBe(DROP.OK);
    expect(st.vxlanOff).toBe(off + 22 + 28);
  });

  it('Ethernet / IPv6 with a destination-options header / UDP', () => {
    const ext = hex('11 00 01 04 00 00 00 00  # destination options -> UDP, PadN');
    const { code, st, buf, off } = (() => {
      const e = embed(cat(ETH('86 dd'), ipv6Udp(VXLAN_PAYLOAD, ext, 60)));
      const s = new PacketState();
      return { code: decodeOuter(e.buf, e.off, e.end, LINKTYPE.ETHERNET, s), st: s, buf: e.buf, off: e.off };
    })();
    expect(code).toBe(DROP.OK);
    expect(st.outerFamily).toBe(AF_INET6);
    expect(slice16(buf, st.outerSrc6Off)).toBe('26001f18000000000000000000000001');
    expect(st.outerSrcPort).toBe(49153);
    expect(st.vxlanOff).toBe(off + 14 + 40 + 8 + 8);
  });

  it('raw IP link types pick the family from the version nibble', () => {
    for (const lt of [LINKTYPE.RAW, LINKTYPE.RAW_12, LINKTYPE.RAW_14]) {
      expect(run(ipv4Udp(VXLAN_PAYLOAD), lt).st.outerFamily).toBe(AF_INET);
      expect(run(ipv6Udp(VXLAN_PAYLOAD), lt).st.outerFamily).toBe(AF_INET6);
      expect(run(hex('50 00 00 00'), lt).code).toBe(DROP.OUTER_NOT_IP);
    }
    expect(run(ipv4Udp(VXLAN_PAYLOAD), LINKTYPE.IPV4).code).toBe(DROP.OK);
    expect(run(ipv6Udp(VXLAN_PAYLOAD), LINKTYPE.IPV6).code).toBe(DROP.OK);
    // LINKTYPE_IPV4 holding an IPv6 header is malformed
    expect(run(ipv6Udp(VXLAN_PAYLOAD), LINKTYPE.IPV4).code).toBe(DROP.OUTER_TRUNCATED);
  });

  it('Linux cooked capture v1 (16-byte header)', () => {
    const sll = hex(`
      00 00               # packet type: to us
      00 01               # ARPHRD_ETHER
      00 06               # address length
      02 00 00 00 00 0a 00 00   # address, padded to 8
      08 00               # protocol IPv4
    `);
    const { code, st, off } = run(cat(sll, ipv4Udp(VXLAN_PAYLOAD)), LINKTYPE.LINUX_SLL);
    expect(code).toBe(DROP.OK);
    expect(st.vxlanOff).toBe(off + 16 + 28);
    const tagged = cat(sll.subarray(0, 14), hex('81 00  00 05  08 00  # 802.1Q VLAN 5, then IPv4'), ipv4Udp(VXLAN_PAYLOAD));
    expect(run(tagged, LINKTYPE.LINUX_SLL).code).toBe(DROP.OK);
    expect(run(cat(sll.subarray(0, 14), hex('08 06')), LINKTYPE.LINUX_SLL).code).toBe(DROP.OUTER_NOT_IP);
  });

  it('Linux cooked capture v2 (20-byte header)', () => {
    const sll2 = hex(`
      86 dd               # protocol IPv6
      00 00               # reserved
      00 00 00 03         # interface index
      00 01               # ARPHRD_ETHER
      00                  # packet type
      06                  # address length
      02 00 00 00 00 0a 00 00   # address
    `);
    const { code, st, off } = run(cat(sll2, ipv6Udp(VXLAN_PAYLOAD)), LINKTYPE.LINUX_SLL2);
    expect(code).toBe(DROP.OK);
    expect(st.vxlanOff).toBe(off + 20 + 48);
    const tagged = cat(hex('81 00'), sll2.subarray(2), hex('00 05  86 dd  # TCI VLAN 5, then IPv6'), ipv6Udp(VXLAN_PAYLOAD));
    expect(run(tagged, LINKTYPE.LINUX_SLL2).code).toBe(DROP.OK);
    expect(run(cat(hex('08 06'), sll2.subarray(2)), LINKTYPE.LINUX_SLL2).code).toBe(DROP.OUTER_NOT_IP);
  });

  it('BSD loopback (NULL): the family in either byte order, AF_INET6 as 24, 28 or 30', () => {
    expect(run(cat(hex('02 00 00 00  # AF_INET, little-endian host'), ipv4Udp(VXLAN_PAYLOAD)), LINKTYPE.NULL).code).toBe(DROP.OK);
    expect(run(cat(hex('00 00 00 02  # AF_INET, big-endian host'), ipv4Udp(VXLAN_PAYLOAD)), LINKTYPE.NULL).code).toBe(DROP.OK);
    for (const af of ['18 00 00 00', '1c 00 00 00', '1e 00 00 00', '00 00 00 1e']) {
      const { code, st } = run(cat(hex(af), ipv6Udp(VXLAN_PAYLOAD)), LINKTYPE.NULL);
      expect([af, code, st.outerFamily]).toEqual([af, DROP.OK, AF_INET6]);
    }
    expect(run(cat(hex('07 00 00 00  # AF_7'), ipv4Udp(VXLAN_PAYLOAD)), LINKTYPE.NULL).code).toBe(DROP.OUTER_NOT_IP);
  });

  it('OpenBSD loopback (LOOP): the family in network byte order only', () => {
    expect(run(cat(hex('00 00 00 02'), ipv4Udp(VXLAN_PAYLOAD)), LINKTYPE.LOOP).code).toBe(DROP.OK);
    expect(run(cat(hex('00 00 00 18'), ipv6Udp(VXLAN_PAYLOAD)), LINKTYPE.LOOP).code).toBe(DROP.OK);
    expect(run(cat(hex('02 00 00 00'), ipv4Udp(VXLAN_PAYLOAD)), LINKTYPE.LOOP).code).toBe(DROP.OUTER_NOT_IP);
  });

  it('exports the supported link types', () => {
    expect([...SUPPORTED_LINKTYPES].sort((a, b) => a - b)).toEqual([0, 1, 12, 14, 101, 108, 113, 228, 229, 276]);
    expect(isSupportedLinktype(127)).toBe(false);
    expect(run(ipv4Udp(VXLAN_PAYLOAD), 127 /* IEEE 802.11 radiotap */).code).toBe(DROP.CAPTURE_LINKTYPE);
  });

  describe('drop reasons', () => {
    it('OUTER_NOT_IP: ARP, and more VLAN tags than we follow', () => {
      expect(run(cat(ETH('08 06'), Buffer.alloc(28)), LINKTYPE.ETHERNET).code).toBe(DROP.OUTER_NOT_IP);
      const fiveTags = ETH('81 00 00 01 81 00 00 02 81 00 00 03 81 00 00 04 81 00 00 05 08 00');
      expect(run(cat(fiveTags, ipv4Udp(VXLAN_PAYLOAD)), LINKTYPE.ETHERNET).code).toBe(DROP.OUTER_NOT_IP);
    });

    it('OUTER_NOT_UDP: TCP, and IPv6 ending in ESP', () => {
      const { code, st } = run(cat(ETH('08 00'), ipv4Udp(VXLAN_PAYLOAD, { proto: 6 })), LINKTYPE.ETHERNET);
      expect(code).toBe(DROP.OUTER_NOT_UDP);
      expect(st.outerSrc4).toBe(0xac1f00ee); // the source is known even so
      expect(run(cat(ETH('86 dd'), ipv6Udp(VXLAN_PAYLOAD, Buffer.alloc(0), 50)), LINKTYPE.ETHERNET).code).toBe(DROP.OUTER_NOT_UDP);
    });

    it('OUTER_NOT_VXLAN_PORT: Linux VXLAN 8472 and GENEVE 6081, unless configured', () => {
      const linux = cat(ETH('08 00'), ipv4Udp(VXLAN_PAYLOAD, { dport: 8472 }));
      const r = run(linux, LINKTYPE.ETHERNET);
      expect(r.code).toBe(DROP.OUTER_NOT_VXLAN_PORT);
      expect(r.st.outerDstPort).toBe(8472);
      expect(run(linux, LINKTYPE.ETHERNET, 8472).code).toBe(DROP.OK);
      expect(run(cat(ETH('08 00'), ipv4Udp(VXLAN_PAYLOAD, { dport: 6081 })), LINKTYPE.ETHERNET).code).toBe(DROP.OUTER_NOT_VXLAN_PORT);
    });

    it('OUTER_TRUNCATED: short link header, short IP header, IHL past the capture, short UDP', () => {
      expect(run(ETH('08 00').subarray(0, 13), LINKTYPE.ETHERNET).code).toBe(DROP.OUTER_TRUNCATED);
      expect(run(ETH('08 00'), LINKTYPE.ETHERNET).code).toBe(DROP.OUTER_TRUNCATED);
      expect(run(cat(ETH('08 00'), ipv4Udp(VXLAN_PAYLOAD).subarray(0, 19)), LINKTYPE.ETHERNET).code).toBe(DROP.OUTER_TRUNCATED);
      const ihl15 = Buffer.from(ipv4Udp(hex('')));
      ihl15[0] = 0x4f;
      expect(run(ihl15, LINKTYPE.IPV4).code).toBe(DROP.OUTER_TRUNCATED);
      const ihl4 = Buffer.from(ipv4Udp(VXLAN_PAYLOAD));
      ihl4[0] = 0x44;
      expect(run(ihl4, LINKTYPE.IPV4).code).toBe(DROP.OUTER_TRUNCATED);
      expect(run(ipv4Udp(VXLAN_PAYLOAD).subarray(0, 27), LINKTYPE.IPV4).code).toBe(DROP.OUTER_TRUNCATED);
      expect(run(ipv6Udp(VXLAN_PAYLOAD).subarray(0, 39), LINKTYPE.IPV6).code).toBe(DROP.OUTER_TRUNCATED);
      expect(run(hex(''), LINKTYPE.RAW).code).toBe(DROP.OUTER_TRUNCATED);
    });

    it('OUTER_TRUNCATED: a UDP length below 8 or an IP total length below the header is malformed', () => {
      expect(run(ipv4Udp(VXLAN_PAYLOAD, { udpLen: 7 }), LINKTYPE.IPV4).code).toBe(DROP.OUTER_TRUNCATED);
      expect(run(ipv4Udp(VXLAN_PAYLOAD, { totalLen: 19 }), LINKTYPE.IPV4).code).toBe(DROP.OUTER_TRUNCATED);
      // The IP total length says the UDP header is not inside the packet.
      expect(run(ipv4Udp(VXLAN_PAYLOAD, { totalLen: 24 }), LINKTYPE.IPV4).code).toBe(DROP.OUTER_TRUNCATED);
    });

    it('OUTER_FRAGMENT: non-first IPv4 and IPv6 fragments', () => {
      expect(run(ipv4Udp(VXLAN_PAYLOAD, { frag: '00 b9' }), LINKTYPE.IPV4).code).toBe(DROP.OUTER_FRAGMENT);
      const frag = hex('11 00 05 a8 00 00 00 01  # fragment header: UDP, offset 181');
      expect(run(ipv6Udp(VXLAN_PAYLOAD, frag, 44), LINKTYPE.IPV6).code).toBe(DROP.OUTER_FRAGMENT);
    });

    it('a first IPv4 fragment (more fragments, offset 0) is decoded', () => {
      expect(run(ipv4Udp(VXLAN_PAYLOAD, { frag: '20 00' }), LINKTYPE.IPV4).code).toBe(DROP.OK);
    });
  });

  describe('length fields are not trusted blindly', () => {
    it('IPv4 total length 0 and UDP length 0 (BIG TCP) mean "to the end of the capture"', () => {
      const { code, st, end } = run(ipv4Udp(VXLAN_PAYLOAD, { totalLen: 0, udpLen: 0 }), LINKTYPE.IPV4);
      expect(code).toBe(DROP.OK);
      expect(st.vxlanEnd).toBe(end);
    });

    it('a UDP or IP length beyond the capture (snaplen) means the same', () => {
      expect(run(ipv4Udp(VXLAN_PAYLOAD, { udpLen: 9000 }), LINKTYPE.IPV4).st.vxlanEnd).toBe(run(ipv4Udp(VXLAN_PAYLOAD), LINKTYPE.IPV4).end);
      const { code, st, end } = run(ipv4Udp(VXLAN_PAYLOAD).subarray(0, 60), LINKTYPE.IPV4);
      expect(code).toBe(DROP.OK);
      expect(st.vxlanEnd).toBe(end);
    });

    it('IPv6 payload length 0 means the same', () => {
      const { code, st, end } = run(ipv6Udp(VXLAN_PAYLOAD, Buffer.alloc(0), 17, 0), LINKTYPE.IPV6);
      expect(code).toBe(DROP.OK);
      expect(st.vxlanEnd).toBe(end);
    });

    it('bytes after the UDP datagram (an Ethernet trailer) are not VXLAN payload', () => {
      const { st, off } = run(cat(ipv4Udp(VXLAN_PAYLOAD), hex('00 00 00 00  # trailer')), LINKTYPE.IPV4);
      expect(st.vxlanEnd).toBe(off + 28 + VXLAN_PAYLOAD.length);
    });
  });
});

describe('decodeCapturedFrame', () => {
  it('decodes a whole captured frame down to the inner packet', () => {
    const e = embed(cat(ETH('08 00'), ipv4Udp(VXLAN_PAYLOAD)));
    const st = new PacketState();
    expect(decodeCapturedFrame(e.buf, e.off, e.end, LINKTYPE.ETHERNET, st)).toBe(DROP.OK);
    expect(st.vni).toBe(5569041);
    expect(st.outerSrc4).toBe(0xac1f00ee);
    expect(st.innerOff).toBe(e.off + 14 + 28 + 8);
    expect(st.innerEnd).toBe(e.end);
    expect(st.src4).toBe(0x0a000001);
  });

  it('resets the state itself, so a previous packet leaves nothing behind', () => {
    const st = new PacketState();
    const odd = cat(ETH('08 00'), ipv4Udp(cat(hex('ff 01 d1 f2 00 00 0b 00'), INNER_UDP4)));
    expect(decodeCapturedFrame(odd, 0, odd.length, LINKTYPE.ETHERNET, st)).toBe(DROP.OK);
    expect(st.weird).toBe(1 << WEIRD.VXLAN_RESERVED_BITS);
    expect(decodeCapturedFrame(odd, 0, odd.length, LINKTYPE.ETHERNET, st, true)).toBe(DROP.VXLAN_RESERVED_BITS);
    const good = cat(ETH('86 dd'), ipv6Udp(vxlan(7, INNER_UDP4)));
    expect(decodeCapturedFrame(good, 0, good.length, LINKTYPE.ETHERNET, st, true)).toBe(DROP.OK);
    expect(st.weird).toBe(0);
    expect(st.vni).toBe(7);
    expect(st.outerFamily).toBe(AF_INET6);
    expect(st.outerSrc4).toBe(0);
    const arp = cat(ETH('08 06'), Buffer.alloc(28));
    expect(decodeCapturedFrame(arp, 0, arp.length, LINKTYPE.ETHERNET, st)).toBe(DROP.OUTER_NOT_IP);
    expect(st.outerFamily).toBe(AF_NONE);
    expect(st.vni).toBe(0);
  });

  it('uses the UDP length as the end of the VXLAN payload', () => {
    // 4 trailer bytes after the datagram would otherwise become trailing bytes of the inner frame.
    const frame = cat(ipv4Udp(VXLAN_PAYLOAD), hex('de ad be ef'));
    const st = new PacketState();
    expect(decodeCapturedFrame(frame, 0, frame.length, LINKTYPE.IPV4, st)).toBe(DROP.OK);
    expect(st.innerEnd).toBe(frame.length - 4);
    expect(st.weird).toBe(0);
  });
});
