"""Send VXLAN-encapsulated packets to a collector on loopback, as AWS Traffic Mirroring would.

Reads a JSON spec on stdin:
  {"dst": "127.0.0.1", "port": 4789, "inter": 0,
   "packets": [{"src": "172.31.0.238", "vni": 5569041, "sport": 65408,
                "inner": "Ether()/IP()/TCP()",      # a scapy expression, or
                "innerHex": "...",                   # raw inner frame bytes
                "truncate": 128,                     # keep only the first N inner bytes (PacketLength)
                "vxlanHex": "0800000000550000",      # raw VXLAN header instead of flags/vni
                "flags": 8, "count": 1}]}
Prints a JSON list with the hex of every inner frame sent, in order (count expanded).

Scapy's L3RawSocket (IP_HDRINCL) is what lets a test set the outer source IP on loopback; plain
layer-3 sends on lo are not delivered. The outer UDP checksum is 0, as AWS sends it.
"""
import json
import sys

from scapy.all import (IP, UDP, VXLAN, Dot1AD, Dot1Q, Ether, ICMP, ICMPv6EchoRequest, IPv6,  # noqa: F401
                       IPv6ExtHdrFragment, IPv6ExtHdrHopByHop, L3RawSocket, L3RawSocket6, Raw, TCP,
                       DNS, DNSQR, conf, send)

conf.L3socket = L3RawSocket
conf.L3socket6 = L3RawSocket6

spec = json.load(sys.stdin)
dst = spec.get("dst", "127.0.0.1")
port = int(spec["port"])
v6 = ":" in dst
sent = []
v4_pkts = []
v6_pkts = []
for p in spec["packets"]:
    if "innerHex" in p:
        inner = bytes.fromhex(p["innerHex"])
    else:
        inner = bytes(eval(p["inner"]))  # test-provided scapy expression
    if "truncate" in p:
        inner = inner[: int(p["truncate"])]
    if "vxlanHex" in p:
        vx = bytes.fromhex(p["vxlanHex"])
    else:
        vx = bytes(VXLAN(flags=int(p.get("flags", 0x08)), vni=int(p["vni"])))
    src = p["src"]
    # AWS leaves the outer UDP checksum 0 (allowed for IPv4). IPv6 requires one (RFC 8200 section 8.1;
    # Linux drops zero-checksum UDP/IPv6), so scapy computes it there.
    udp = UDP(sport=int(p.get("sport", 49152)), dport=port, chksum=None if ":" in p["src"] else 0) / Raw(vx + inner)
    pkt = (IPv6(src=src, dst=dst) if ":" in src else IP(src=src, dst=dst)) / udp
    for _ in range(int(p.get("count", 1))):
        (v6_pkts if ":" in src else v4_pkts).append(pkt)
        sent.append(inner.hex())

inter = float(spec.get("inter", 0))
if v4_pkts:
    send(v4_pkts, verbose=0, inter=inter)
if v6_pkts:
    send(v6_pkts, verbose=0, inter=inter)
print(json.dumps(sent))
