/**
 * Annotated frames shared by the decoder tests. Checksums are zero: the decoders do not verify them (a
 * mirror copies what was sent, bad checksums included).
 */
import { hex } from './bytes.js';

export const MAC_HEADER = `
  02 00 00 00 00 02   # destination MAC
  02 00 00 00 00 01   # source MAC
`;

/** Ethernet / IPv4 10.0.0.1 -> 10.0.0.2 / UDP 50000 -> 53 with 18 payload bytes: exactly 60 bytes. */
export const INNER_UDP4 = hex(`
  ${MAC_HEADER}
  08 00               # EtherType IPv4
  45                  # version 4, IHL 5 (20 bytes)
  00                  # DSCP / ECN
  00 2e               # total length 46 = 20 + 8 + 18
  12 34               # identification
  40 00               # flags DF, fragment offset 0
  40                  # TTL 64
  11                  # protocol 17 UDP
  00 00               # header checksum
  0a 00 00 01         # source 10.0.0.1
  0a 00 00 02         # destination 10.0.0.2
  c3 50               # UDP source port 50000
  00 35               # UDP destination port 53
  00 1a               # UDP length 26 = 8 + 18
  00 00               # UDP checksum
  00 01 02 03 04 05 06 07 08 09 0a 0b 0c 0d 0e 0f 10 11   # payload (18 bytes)
`);

/** Ethernet / IPv4 10.1.1.1 -> 10.2.2.2 / TCP 22 -> 51515, SYN-ACK with no payload, padded to 60. */
export const INNER_TCP4_PADDED = hex(`
  ${MAC_HEADER}
  08 00               # EtherType IPv4
  45 00               # version 4, IHL 5, DSCP / ECN
  00 28               # total length 40 = 20 + 20
  00 01 40 00         # identification, DF
  40 06 00 00         # TTL 64, protocol 6 TCP, checksum
  0a 01 01 01         # source 10.1.1.1
  0a 02 02 02         # destination 10.2.2.2
  00 16               # TCP source port 22
  c9 3b               # TCP destination port 51515
  00 00 00 01         # sequence number
  00 00 00 02         # acknowledgment number
  50 12               # data offset 5 (20 bytes), flags SYN ACK
  ff ff 00 00 00 00   # window, checksum, urgent pointer
  00 00 00 00 00 00   # Ethernet padding to 60 bytes
`);

/** Ethernet / IPv6 2001:db8::1 -> 2001:db8::2 / TCP 443 -> 40000, no payload (74 bytes). */
export const INNER_TCP6 = hex(`
  ${MAC_HEADER}
  86 dd               # EtherType IPv6
  60 00 00 00         # version 6, traffic class 0, flow label 0
  00 14               # payload length 20
  06                  # next header 6 TCP
  40                  # hop limit 64
  20 01 0d b8 00 00 00 00 00 00 00 00 00 00 00 01   # source 2001:db8::1
  20 01 0d b8 00 00 00 00 00 00 00 00 00 00 00 02   # destination 2001:db8::2
  01 bb               # TCP source port 443
  9c 40               # TCP destination port 40000
  00 00 00 01 00 00 00 00   # sequence, acknowledgment
  50 02 ff ff 00 00 00 00   # data offset 5, SYN, window, checksum, urgent
`);

/** The AWS VXLAN header: I flag only, VNI 5569041 (0x54fa11), as in the suricata-verify AWS capture. */
export const VXLAN_AWS = hex(`
  08                  # flags: I (VNI valid) only
  00 00 00            # reserved
  54 fa 11            # VNI 5569041
  00                  # reserved
`);

/** Wrap an inner frame in a VXLAN header with the given VNI and flags (reserved bytes zero). */
export function vxlan(vni: number, inner: Uint8Array, flags = 0x08): Buffer {
  const h = Buffer.from([flags, 0, 0, 0, (vni >> 16) & 255, (vni >> 8) & 255, vni & 255, 0]);
  return Buffer.concat([h, inner]);
}
