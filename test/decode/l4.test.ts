import { describe, expect, it } from 'vitest';
import { WEIRD } from '../../src/outcomes.js';
import { decodeL4 } from '../../src/decode/l4.js';
import { PacketState } from '../../src/decode/packet-state.js';
import { embed, hex } from './bytes.js';

function decode(bytes: Uint8Array, proto: number): { ret: number; st: PacketState; off: number } {
  const { buf, off, end } = embed(bytes);
  const st = new PacketState();
  st.reset();
  const ret = decodeL4(buf, off, end, st, proto);
  return { ret: ret < 0 ? ret : ret - off, st, off };
}

const TCP_WITH_OPTIONS = hex(`
  c3 51               # source port 50001
  01 bb               # destination port 443
  00 00 00 00         # sequence number
  00 00 00 00         # acknowledgment number
  80 02               # data offset 8 (32 bytes), SYN
  fa f0 00 00 00 00   # window, checksum, urgent pointer
  02 04 05 b4         # MSS 1460
  01 03 03 08         # NOP, window scale 8
  01 01 04 02         # NOP, NOP, SACK permitted
  16 03 01            # payload: a TLS record header
`);

describe('decodeL4', () => {
  it('TCP: ports, and the payload after the options', () => {
    const { ret, st, off } = decode(TCP_WITH_OPTIONS, 6);
    expect(st.l4Off).toBe(off);
    expect(st.srcPort).toBe(50001);
    expect(st.dstPort).toBe(443);
    expect(ret).toBe(32);
    expect(st.weird).toBe(0);
  });

  it('TCP: fewer than 20 bytes is L4_TRUNCATED and leaves the ports unknown', () => {
    const { ret, st } = decode(TCP_WITH_OPTIONS.subarray(0, 19), 6);
    expect(ret).toBe(-1);
    expect(st.srcPort).toBe(-1);
    expect(st.dstPort).toBe(-1);
    expect(st.weird).toBe(1 << WEIRD.L4_TRUNCATED);
  });

  it('TCP: options cut by the capture keep the ports but have no payload offset', () => {
    const { ret, st } = decode(TCP_WITH_OPTIONS.subarray(0, 24), 6);
    expect(st.srcPort).toBe(50001);
    expect(ret).toBe(-1);
    expect(st.weird).toBe(0);
  });

  it('TCP: a data offset below 5 is ignored for the payload but the ports are read', () => {
    const b = Buffer.from(TCP_WITH_OPTIONS);
    b[12] = 0x40;
    const { ret, st } = decode(b, 6);
    expect(st.dstPort).toBe(443);
    expect(ret).toBe(-1);
  });

  const udp = hex(`
    00 7b               # source port 123 (NTP)
    00 7b               # destination port 123
    00 30 00 00         # length 48, checksum
    23 00 06 20         # NTP payload start
  `);

  it('UDP and UDP-Lite: ports, payload after 8 bytes', () => {
    for (const proto of [17, 136]) {
      const { ret, st } = decode(udp, proto);
      expect([proto, st.srcPort, st.dstPort, ret]).toEqual([proto, 123, 123, 8]);
    }
  });

  it('UDP: fewer than 8 bytes is L4_TRUNCATED', () => {
    const { st } = decode(udp.subarray(0, 7), 17);
    expect(st.srcPort).toBe(-1);
    expect(st.weird).toBe(1 << WEIRD.L4_TRUNCATED);
  });

  it('SCTP: ports from the 12-byte common header (RFC 9260 section 3.1)', () => {
    const sctp = hex(`
      0b 59               # source port 2905 (M3UA)
      0b 59               # destination port 2905
      00 00 00 00         # verification tag
      00 00 00 00         # checksum
      01 00 00 14         # INIT chunk
    `);
    const { ret, st } = decode(sctp, 132);
    expect([st.srcPort, st.dstPort, ret]).toEqual([2905, 2905, 12]);
    expect(decode(sctp.subarray(0, 11), 132).st.weird).toBe(1 << WEIRD.L4_TRUNCATED);
  });

  it('DCCP: ports and the data offset (RFC 4340 section 5.1)', () => {
    const dccp = hex(`
      13 88 13 89         # ports 5000 -> 5001
      04                  # data offset 4 words (16 bytes)
      00 00 00            # CCVal, CsCov, checksum
      03 00 00 00 00 00 00 01   # type, X = 1, sequence number
      00 00               # payload
    `);
    const { ret, st } = decode(dccp, 33);
    expect([st.srcPort, st.dstPort, ret]).toEqual([5000, 5001, 16]);
  });

  it('ICMP and ICMPv6: type and code, no ports', () => {
    const unreachable = hex(`
      03                  # type 3 destination unreachable
      03                  # code 3 port unreachable
      00 00 00 00 00 00   # checksum, unused
    `);
    const v4 = decode(unreachable, 1);
    expect([v4.st.icmpType, v4.st.icmpCode, v4.st.srcPort, v4.ret]).toEqual([3, 3, -1, 4]);
    const ns = hex(`
      87                  # type 135 neighbor solicitation
      00                  # code 0
      00 00 00 00 00 00   # checksum, reserved
    `);
    const v6 = decode(ns, 58);
    expect([v6.st.icmpType, v6.st.icmpCode]).toEqual([135, 0]);
    const short = decode(ns.subarray(0, 3), 58);
    expect(short.st.icmpType).toBe(-1);
    expect(short.st.weird).toBe(1 << WEIRD.L4_TRUNCATED);
  });

  it('other protocols: no ports, no weird', () => {
    const { ret, st } = decode(hex('00 00 08 00 00 00 00 00  # GRE'), 47);
    expect(ret).toBe(-1);
    expect(st.srcPort).toBe(-1);
    expect(st.weird).toBe(0);
  });
});
