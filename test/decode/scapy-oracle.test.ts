/**
 * scapy as an independent oracle: one Python run crafts every packet, re-dissects it with scapy's own
 * decoders and prints the bytes with scapy's field values; we decode the same bytes and compare, at
 * offset 0 and at a non-zero offset inside junk.
 */
import { beforeAll, expect, it } from 'vitest';
import { canonicalIp, innerDestinationToString, innerSourceToString, outerSourceToString } from '../../src/decode/addr.js';
import { DROP, WEIRD } from '../../src/outcomes.js';
import { LINKTYPE, decodeCapturedFrame } from '../../src/decode/outer.js';
import { AF_INET, AF_INET6, PacketState } from '../../src/decode/packet-state.js';
import { describeNeeds } from '../helpers/needs.js';
import { scapy } from '../helpers/oracles.js';
import { embed } from './bytes.js';

const SCRIPT = String.raw`
import json
from scapy.all import *
from scapy.layers.vxlan import VXLAN
from scapy.layers.inet6 import *
from scapy.layers.inet6 import _ICMPv6
from scapy.layers.sctp import SCTP, SCTPChunkInit

TUNNEL_MAX = 3   # MAX_TUNNEL_DEPTH, as documented in docs/decoding.md
EXT = (IPv6ExtHdrHopByHop, IPv6ExtHdrRouting, IPv6ExtHdrDestOpt, IPv6ExtHdrFragment, AH)

def E():
    return Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")

def describe(frame):
    """scapy's view of an inner frame, following VXLAN up to TUNNEL_MAX levels."""
    cur = Ether(frame)
    depth = 1
    while True:
        d = dict(tunnelDepth=depth, vlanIds=[], family=0, src=None, dst=None, proto=-1,
                 sport=-1, dport=-1, icmpType=-1, icmpCode=-1, fragment=False, tunnelWeird=False)
        l, et = cur.payload, cur.type
        while isinstance(l, (Dot1Q, Dot1AD)):
            d["vlanIds"].append(l.vlan)
            et, l = l.type, l.payload
        d["etherType"] = et
        l4 = None
        if isinstance(l, IP):
            d.update(family=4, src=l.src, dst=l.dst, proto=l.proto)
            if l.frag != 0:
                d["fragment"] = True
            else:
                l4 = l.payload
        elif isinstance(l, IPv6):
            d.update(family=6, src=l.src, dst=l.dst)
            x, nh = l.payload, l.nh
            while isinstance(x, EXT):
                nh = x.nh
                if isinstance(x, IPv6ExtHdrFragment) and x.offset != 0:
                    d["fragment"] = True
                    x = None
                    break
                if isinstance(x, AH) and isinstance(x.payload, Raw):
                    # scapy does not bind a transport after AH; dissect it by the AH next header
                    x = {6: TCP, 17: UDP}[x.nh](bytes(x.payload))
                    break
                x = x.payload
            d["proto"] = nh
            l4 = x
        if isinstance(l4, (TCP, UDP, SCTP)):
            d["sport"], d["dport"] = l4.sport, l4.dport
        elif isinstance(l4, (ICMP, _ICMPv6)):
            d["icmpType"], d["icmpCode"] = l4.type, l4.code
        if isinstance(l4, UDP) and l4.dport == 4789 and isinstance(l4.payload, VXLAN) and int(l4.payload.flags) & 0x08:
            if depth == TUNNEL_MAX:
                d["tunnelWeird"] = True
                return d
            cur = l4.payload.payload
            depth += 1
            continue
        return d

def outer4(inner, vni=5569041, sport=65408):
    return Ether(src="02:aa:00:00:00:01", dst="02:aa:00:00:00:02")/IP(src="172.31.0.238", dst="172.31.17.188")/UDP(sport=sport, dport=4789, chksum=0)/VXLAN(flags=0x08, vni=vni)/inner

cases = []
def add(name, inner, outer=outer4, cut=None, **kw):
    full = bytes(inner)
    captured = full if cut is None else full[:cut]
    pkt = outer(Raw(captured), **kw)
    raw = bytes(pkt)
    o = Ether(raw)
    osrc = o[VXLAN].underlayer.underlayer.src   # the outer IP header, under UDP, under VXLAN
    cases.append(dict(name=name, hex=raw.hex(), innerOff=len(raw) - len(captured), innerLen=len(captured),
                      origLen=len(full), truncated=cut is not None, vni=o[VXLAN].vni, outerSrc=osrc,
                      outerSport=o[UDP].sport, expect=describe(full)))

A4, B4 = "10.0.0.1", "10.0.0.2"
A6, B6 = "2001:db8:0:1::10", "2001:db8:0:2::20"

add("IPv4 / TCP with payload", E()/IP(src=A4, dst=B4)/TCP(sport=51000, dport=22, flags="PA")/Raw(b"x"*30))
add("IPv4 / UDP / DNS query", E()/IP(src=A4, dst="172.31.0.2")/UDP(sport=40000, dport=53)/DNS(rd=1, qd=DNSQR(qname="example.com")))
add("802.1Q VLAN 100 / IPv4 / NTP", E()/Dot1Q(vlan=100, prio=5)/IP(src=A4, dst=B4)/UDP(sport=123, dport=123)/Raw(b"\x23"+b"\x00"*47))
add("QinQ 802.1ad 10 + 802.1Q 20 / IPv6 / TCP", E()/Dot1AD(vlan=10)/Dot1Q(vlan=20)/IPv6(src=A6, dst=B6)/TCP(sport=443, dport=50000))
add("IPv6 hop-by-hop, routing, destination options / TCP",
    E()/IPv6(src=A6, dst=B6)/IPv6ExtHdrHopByHop()/IPv6ExtHdrRouting()/IPv6ExtHdrDestOpt()/TCP(sport=179, dport=33000))
add("IPv6 AH / TCP", E()/IPv6(src=A6, dst=B6)/AH(nh=6, payloadlen=4, spi=1, seq=1, icv=b"\0"*12)/TCP(sport=5060, dport=5061))
add("IPv6 first fragment / UDP", E()/IPv6(src=A6, dst=B6)/IPv6ExtHdrFragment(offset=0, m=1, id=7)/UDP(sport=1000, dport=2000)/Raw(b"a"*32))
add("IPv6 non-first fragment", E()/IPv6(src=A6, dst=B6)/IPv6ExtHdrFragment(nh=17, offset=100, m=0, id=7)/Raw(b"b"*32))
add("IPv4 options (record route) / UDP", E()/IP(src=A4, dst=B4, options=[IPOption_RR(routers=["1.2.3.4", "5.6.7.8"])])/UDP(sport=5353, dport=5353)/Raw(b"m"*20))
add("IPv4 first fragment / UDP", E()/IP(src=A4, dst=B4, flags="MF", frag=0)/UDP(sport=7000, dport=7001)/Raw(b"f"*64))
add("IPv4 non-first fragment", E()/IP(src=A4, dst=B4, frag=185, proto=17)/Raw(b"c"*40))
add("ICMP echo request", E()/IP(src=A4, dst=B4)/ICMP(type=8, code=0, id=1, seq=1)/Raw(b"ping"*8))
add("ICMP port unreachable quoting UDP", E()/IP(src=B4, dst=A4)/ICMP(type=3, code=3)/IP(src=A4, dst=B4)/UDP(sport=40000, dport=9))
add("ICMPv6 echo request", E()/IPv6(src=A6, dst=B6)/ICMPv6EchoRequest(id=1, seq=2))
add("ICMPv6 neighbor solicitation", E()/IPv6(src="fe80::1", dst="ff02::1:ff00:1")/ICMPv6ND_NS(tgt="fe80::2"))
add("SCTP INIT", E()/IP(src=A4, dst=B4)/SCTP(sport=2905, dport=2905)/SCTPChunkInit())
add("ARP request", E()/ARP(op=1, psrc=A4, pdst=B4))
add("IPv4 / TCP truncated by PacketLength 96", E()/IP(src=A4, dst=B4)/TCP(sport=443, dport=51000)/Raw(b"z"*1400), cut=96)
add("IPv6 / UDP truncated by PacketLength 80", E()/Dot1Q(vlan=7)/IPv6(src=A6, dst=B6)/UDP(sport=4500, dport=4500)/Raw(b"y"*1000), cut=80)
def nest(levels):
    f = E()/IP(src="10.%d.0.1" % levels, dst="10.%d.0.2" % levels)/TCP(sport=8080, dport=9090)
    for i in range(levels - 1, 0, -1):
        f = E()/IP(src="192.168.%d.1" % i, dst="192.168.%d.2" % i)/UDP(sport=1000 + i, dport=4789)/VXLAN(flags=0x08, vni=100 + i)/f
    return f
add("nested VXLAN, 2 levels", nest(2))
add("nested VXLAN, 3 levels", nest(3))
add("nested VXLAN, 4 levels (one past the limit)", nest(4))
def outer6(inner, vni=42):
    return Ether()/IPv6(src="2600:1f18:abcd::a", dst="2600:1f18:abcd::b")/UDP(sport=49152, dport=4789)/VXLAN(flags=0x08, vni=vni)/inner
add("IPv6 outer", E()/IP(src=A4, dst=B4)/TCP(sport=1, dport=2), outer=outer6)
def outer_tagged(inner, vni=7):
    return Ether()/Dot1Q(vlan=42)/IP(src="198.51.100.7", dst="198.51.100.8", options=[IPOption_NOP()]*4)/UDP(sport=50000, dport=4789)/VXLAN(flags=0x08, vni=vni)/inner
add("VLAN-tagged outer with IPv4 options", E()/IPv6(src=A6, dst=B6)/UDP(sport=53, dport=53)/Raw(b"q"*12), outer=outer_tagged)
print(json.dumps(cases))
`;

interface Expect {
  tunnelDepth: number;
  vlanIds: number[];
  etherType: number;
  family: number;
  src: string | null;
  dst: string | null;
  proto: number;
  sport: number;
  dport: number;
  icmpType: number;
  icmpCode: number;
  fragment: boolean;
  tunnelWeird: boolean;
}

interface Case {
  name: string;
  hex: string;
  innerOff: number;
  innerLen: number;
  origLen: number;
  truncated: boolean;
  vni: number;
  outerSrc: string;
  outerSport: number;
  expect: Expect;
}

let cases: Case[] = [];

/** What our decoders say, in the same shape as the scapy description. */
function ours(buf: Buffer, off: number, end: number) {
  const st = new PacketState();
  const code = decodeCapturedFrame(buf, off, end, LINKTYPE.ETHERNET, st, true);
  return {
    code,
    vni: st.vni,
    outerSrc: outerSourceToString(st, buf),
    outerSport: st.outerSrcPort,
    innerOff: st.innerOff - off,
    innerLen: st.innerEnd - st.innerOff,
    origLen: st.origLen,
    truncated: st.truncated,
    expect: {
      tunnelDepth: st.tunnelDepth,
      vlanIds: Array.from(st.vlanIds.subarray(0, st.vlanCount)),
      etherType: st.etherType,
      family: st.l3Family,
      src: innerSourceToString(st, buf),
      dst: innerDestinationToString(st, buf),
      proto: st.ipProto,
      sport: st.srcPort,
      dport: st.dstPort,
      icmpType: st.icmpType,
      icmpCode: st.icmpCode,
      fragment: st.fragment,
      tunnelWeird: (st.weird & (1 << WEIRD.TUNNEL_DEPTH)) !== 0,
    },
    weird: st.weird,
  };
}

describeNeeds(['scapy'], 'decoders against scapy', () => {
  beforeAll(() => {
    cases = JSON.parse(scapy(SCRIPT)) as Case[];
  });

  it('scapy produced every case', () => {
    expect(cases.length).toBe(24);
  });

  it('every field agrees with scapy, at offset 0 and inside a bigger buffer', () => {
    for (const c of cases) {
      const bytes = Buffer.from(c.hex, 'hex');
      const want = {
        code: DROP.OK,
        vni: c.vni,
        outerSrc: canonicalIp(c.outerSrc),
        outerSport: c.outerSport,
        innerOff: c.innerOff,
        innerLen: c.innerLen,
        origLen: c.origLen,
        truncated: c.truncated,
        expect: {
          ...c.expect,
          family: c.expect.family === 4 ? AF_INET : c.expect.family === 6 ? AF_INET6 : 0,
          src: c.expect.src === null ? null : canonicalIp(c.expect.src),
          dst: c.expect.dst === null ? null : canonicalIp(c.expect.dst),
        },
      };
      const { weird: _w0, ...atZero } = ours(bytes, 0, bytes.length);
      expect({ name: c.name, ...atZero }).toEqual({ name: c.name, ...want });
      const e = embed(bytes, 123, 45);
      const { weird: _w1, ...inside } = ours(e.buf, e.off, e.end);
      expect({ name: c.name, ...inside }).toEqual({ name: c.name, ...want });
    }
  });

  it('flags exactly the weird conditions scapy shows', () => {
    const weirdOf = (name: string): number => {
      const c = cases.find((x) => x.name === name)!;
      const b = Buffer.from(c.hex, 'hex');
      return ours(b, 0, b.length).weird;
    };
    expect(weirdOf('IPv4 / TCP with payload')).toBe(0);
    expect(weirdOf('IPv4 / TCP truncated by PacketLength 96')).toBe(1 << WEIRD.INNER_TRUNCATED);
    expect(weirdOf('IPv6 non-first fragment')).toBe(1 << WEIRD.INNER_FRAGMENT);
    expect(weirdOf('IPv4 non-first fragment')).toBe(1 << WEIRD.INNER_FRAGMENT);
    expect(weirdOf('nested VXLAN, 4 levels (one past the limit)')).toBe(1 << WEIRD.TUNNEL_DEPTH);
    // scapy does not pad the ARP request to 60 bytes; a short frame is never "trailing".
    expect(weirdOf('ARP request')).toBe(0);
  });
});
