/**
 * Transport headers: ports for TCP, UDP, UDP-Lite, SCTP and DCCP; type and code for ICMP and ICMPv6.
 * Only the fixed part of each header is read; a header cut short leaves the ports at -1 and sets
 * WEIRD.L4_TRUNCATED.
 *
 * TCP (RFC 9293 section 3.1), 20 octets plus options:
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * |          Source Port          |       Destination Port        |
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * |                        Sequence Number                        |
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * |                    Acknowledgment Number                      |
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * |  Data |       |C|E|U|A|P|R|S|F|                               |
 * | Offset| Rsrvd |W|C|R|C|S|S|Y|I|            Window             |
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * |           Checksum            |         Urgent Pointer        |
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *
 * UDP (RFC 768) and UDP-Lite (RFC 3828), 8 octets:
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * |          Source Port          |       Destination Port        |
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * |     Length (UDP-Lite: Checksum Coverage)  |     Checksum      |
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *
 * SCTP common header (RFC 9260 section 3.1), 12 octets; DCCP generic header (RFC 4340 section 5.1),
 * at least 12 octets; both start with the two ports:
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * |          Source Port          |       Destination Port        |
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * |        SCTP: Verification Tag; DCCP: Data Offset, CCVal ...   |
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *
 * ICMP (RFC 792) and ICMPv6 (RFC 4443 section 2.1), 4 octets common to every message:
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * |     Type      |     Code      |          Checksum             |
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 */
import {
  IPPROTO_DCCP,
  IPPROTO_ICMP,
  IPPROTO_ICMPV6,
  IPPROTO_SCTP,
  IPPROTO_TCP,
  IPPROTO_UDP,
  IPPROTO_UDPLITE,
  UDP_HEADER_BYTES,
} from './constants.js';
import { WEIRD } from '../outcomes.js';
import type { PacketState } from './packet-state.js';

const TCP_MIN_HEADER_BYTES = 20;
const SCTP_COMMON_HEADER_BYTES = 12;
const DCCP_MIN_HEADER_BYTES = 12;
const ICMP_HEADER_BYTES = 4;

/**
 * Decode the transport header of protocol `proto` at `off`, inside [off, end). Sets l4Off and the ports
 * or ICMP type/code. Returns the offset of the transport payload (after the TCP options, the UDP header,
 * the SCTP common header or the 4 ICMP bytes), or -1 when there is none to point at (an unknown
 * protocol, a header cut short, a TCP data offset that does not fit).
 */
export function decodeL4(buf: Uint8Array, off: number, end: number, st: PacketState, proto: number): number {
  st.l4Off = off;
  const cap = end - off;
  switch (proto) {
    case IPPROTO_TCP: {
      if (cap < TCP_MIN_HEADER_BYTES) return truncated(st);
      setPorts(buf, off, st);
      const dataOff = (buf[off + 12] >> 4) << 2;
      return dataOff < TCP_MIN_HEADER_BYTES || dataOff > cap ? -1 : off + dataOff;
    }
    case IPPROTO_UDP:
    case IPPROTO_UDPLITE:
      if (cap < UDP_HEADER_BYTES) return truncated(st);
      setPorts(buf, off, st);
      return off + UDP_HEADER_BYTES;
    case IPPROTO_SCTP:
      if (cap < SCTP_COMMON_HEADER_BYTES) return truncated(st);
      setPorts(buf, off, st);
      return off + SCTP_COMMON_HEADER_BYTES;
    case IPPROTO_DCCP: {
      if (cap < DCCP_MIN_HEADER_BYTES) return truncated(st);
      setPorts(buf, off, st);
      const dataOff = buf[off + 4] << 2;
      return dataOff < DCCP_MIN_HEADER_BYTES || dataOff > cap ? -1 : off + dataOff;
    }
    case IPPROTO_ICMP:
    case IPPROTO_ICMPV6:
      if (cap < ICMP_HEADER_BYTES) return truncated(st);
      st.icmpType = buf[off];
      st.icmpCode = buf[off + 1];
      return off + ICMP_HEADER_BYTES;
    default:
      return -1;
  }
}

function setPorts(buf: Uint8Array, off: number, st: PacketState): void {
  st.srcPort = (buf[off] << 8) | buf[off + 1];
  st.dstPort = (buf[off + 2] << 8) | buf[off + 3];
}

function truncated(st: PacketState): number {
  st.weird |= 1 << WEIRD.L4_TRUNCATED;
  return -1;
}
