/**
 * The TypeScript frame builder (test/helpers/packets.ts) against scapy, byte for byte: the builder
 * replaced scapy at test time, and scapy stays the oracle that says the builder's bytes are right.
 * Where a test leaves the IPv4 source out, scapy would pick one from the routing table; the scapy side
 * names 127.0.0.1, our default.
 */
import { describe, expect, it } from 'vitest';
import { describeNeeds } from './needs.js';
import { scapy } from './oracles.js';
import { API_FRAMES, arp, dnsQuery, ether, gre, icmp, icmp6Echo, inetChecksum, ipv4, ipv6, ipv6Bytes, raw, tcp, udp, vxlanHeader } from './packets.js';

const E = "Ether(src='02:00:00:00:00:01', dst='02:00:00:00:00:02')";

/** [name, our bytes, the scapy expression for the same frame]. */
function cases(): [string, Buffer, string][] {
  const api = API_FRAMES();
  return [
    ['tcp syn defaults', ether({}, ipv4({}, tcp())), `${E}/IP()/TCP()`],
    ['tcp PA payload', ether({}, ipv4({ src: '172.31.0.238', dst: '18.196.145.224' }, tcp({ sport: 40000, dport: 22, flags: 'PA' }, raw('x', 200)))), `${E}/IP(src='172.31.0.238',dst='18.196.145.224')/TCP(sport=40000,dport=22,flags='PA')/Raw(b'x'*200)`],
    ['udp dns', ether({}, ipv4({ src: '10.0.0.3', dst: '8.8.8.8' }, udp({ sport: 5353, dport: 53 }, dnsQuery('example.com')))), `${E}/IP(src='10.0.0.3',dst='8.8.8.8')/UDP(sport=5353,dport=53)/DNS(rd=1,qd=DNSQR(qname='example.com'))`],
    ['udp defaults', ether({}, ipv4({}, udp())), `${E}/IP()/UDP()`],
    ['icmp in 802.1Q', ether({ vlans: [100] }, ipv4({ dst: '10.1.1.1' }, icmp())), `${E}/Dot1Q(vlan=100)/IP(src='127.0.0.1',dst='10.1.1.1')/ICMP()`],
    ['QinQ', ether({ vlans: [{ vid: 7, tpid: 0x88a8 }, 8] }, ipv4({ dst: '10.1.1.2' }, udp({ dport: 514 }))), `${E}/Dot1AD(vlan=7)/Dot1Q(vlan=8)/IP(src='127.0.0.1',dst='10.1.1.2')/UDP(dport=514)`],
    ['ipv6 tcp', ether({}, ipv6({ src: '2001:db8::1', dst: '2001:db8::2' }, tcp({ dport: 443 }, raw('y', 64)))), `${E}/IPv6(src='2001:db8::1',dst='2001:db8::2')/TCP(dport=443)/Raw(b'y'*64)`],
    ['icmpv6 echo', ether({}, ipv6({ src: 'fe80::1', dst: 'ff02::1' }, icmp6Echo({ id: 7, seq: 1 }))), `${E}/IPv6(src='fe80::1',dst='ff02::1')/ICMPv6EchoRequest(id=7,seq=1)`],
    ['arp', ether({}, arp({ psrc: '10.0.0.1', pdst: '10.0.0.2' })), `${E}/ARP(op=1,hwsrc='02:00:00:00:00:01',psrc='10.0.0.1',hwdst='00:00:00:00:00:00',pdst='10.0.0.2')`],
    ['fragment', ether({}, ipv4({ src: '10.0.0.1', dst: '10.0.0.2', frag: 100, proto: 17 }, raw('f', 40))), `${E}/IP(src='10.0.0.1',dst='10.0.0.2',frag=100,proto=17)/Raw(b'f'*40)`],
    ['gre', ether({}, ipv4({ src: '10.0.0.1', dst: '10.0.0.2' }, gre(ipv4({ src: '10.5.5.5', dst: '10.6.6.6' }, icmp())))), `${E}/IP(src='10.0.0.1',dst='10.0.0.2')/GRE()/IP(src='10.5.5.5',dst='10.6.6.6')/ICMP()`],
    [
      'nested vxlan',
      ether({}, ipv4({ src: '192.168.9.1', dst: '192.168.9.2' }, udp({ sport: 1234, dport: 4789 }, Buffer.concat([vxlanHeader(9), ether({}, ipv4({ src: '10.7.7.7', dst: '10.8.8.8' }, tcp({ sport: 1234, dport: 80 })))])))),
      `${E}/IP(src='192.168.9.1',dst='192.168.9.2')/UDP(sport=1234,dport=4789)/VXLAN(flags=0x08,vni=9)/${E}/IP(src='10.7.7.7',dst='10.8.8.8')/TCP(sport=1234,dport=80)`,
    ],
    ['api tcp443', api.tcp443!, "Ether(src='02:00:00:00:00:01', dst='02:00:00:00:00:02')/IP(src='10.0.0.1', dst='10.0.0.2')/TCP(sport=40000, dport=443, flags='S', seq=1000)"],
    ['api tcp443r', api.tcp443r!, "Ether(src='02:00:00:00:00:02', dst='02:00:00:00:00:01')/IP(src='10.0.0.2', dst='10.0.0.1')/TCP(sport=443, dport=40000, flags='SA', seq=5000, ack=1001)"],
    ['api dns', api.dns!, "Ether(src='02:00:00:00:00:03', dst='02:00:00:00:00:04')/IP(src='10.0.0.3', dst='8.8.8.8')/UDP(sport=5353, dport=53)/DNS(rd=1, qd=DNSQR(qname='example.com'))"],
    ['api icmp6', api.icmp6!, "Ether(src='02:00:00:00:00:05', dst='02:00:00:00:00:06')/IPv6(src='fd00::1', dst='fd00::2')/ICMPv6EchoRequest(id=7, seq=1)"],
    ['api ssh_vlan', api.ssh_vlan!, "Ether(src='02:00:00:00:00:07', dst='02:00:00:00:00:08')/Dot1Q(vlan=7)/IP(src='10.1.0.1', dst='10.0.0.2')/TCP(sport=50000, dport=22, flags='PA')/Raw(b'SSH-2.0-OpenSSH_9.6' + b'x' * 400)"],
  ];
}

describe('packet builder, on its own', () => {
  it('computes the RFC 1071 checksum (the RFC 1071 section 3 example, and an odd length)', () => {
    // 0001 f203 f4f5 f6f7 sums to 0x220d (with end-around carry): checksum ~0xddf2 = 0x220d.
    expect(inetChecksum(Buffer.from('0001f203f4f5f6f7', 'hex'))).toBe(0x220d);
    expect(inetChecksum(Buffer.from([0xff]))).toBe(0x00ff);
  });

  it('writes IPv6 addresses with and without ::', () => {
    expect(ipv6Bytes('2001:db8::1').toString('hex')).toBe('20010db8000000000000000000000001');
    expect(ipv6Bytes('::1').toString('hex')).toBe('00000000000000000000000000000001');
    expect(ipv6Bytes('fe80::').toString('hex')).toBe('fe800000000000000000000000000000');
    expect(ipv6Bytes('1:2:3:4:5:6:7:8').toString('hex')).toBe('00010002000300040005000600070008');
  });

  it('gives a valid IPv4 header checksum and UDP checksum (both verify to zero)', () => {
    const f = ether({}, ipv4({ src: '10.0.0.1', dst: '10.0.0.2' }, udp({ sport: 1, dport: 2 }, raw('a', 3))));
    expect(inetChecksum(f.subarray(14, 34))).toBe(0);
    const pseudo = Buffer.concat([f.subarray(26, 34), Buffer.from([0, 17, 0, 11])]);
    expect(inetChecksum(pseudo, f.subarray(34))).toBe(0);
  });
});

describeNeeds(['scapy'], 'packet builder against scapy', () => {
  it('builds the same bytes as scapy for every frame the tests use', () => {
    const all = cases();
    const script = `
import json, sys
from scapy.all import *
from scapy.layers.vxlan import VXLAN
from scapy.layers.inet6 import *
print(json.dumps([bytes(eval(e)).hex() for e in json.load(sys.stdin)]))
`;
    const theirs = JSON.parse(scapy(script, [], JSON.stringify(all.map(([, , e]) => e)))) as string[];
    expect(all.map(([n, b], i) => [n, b.toString('hex'), theirs[i]])).toEqual(all.map(([n], i) => [n, theirs[i], theirs[i]]));
  });
});
