/**
 * The inner IPv4 header (RFC 791 section 3.1).
 *
 *  0                   1                   2                   3
 *  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * |Version|  IHL  |Type of Service|          Total Length         |
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * |         Identification        |Flags|      Fragment Offset    |
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * |  Time to Live |    Protocol   |         Header Checksum       |
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * |                       Source Address                          |
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * |                    Destination Address                        |
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * |                    Options (IHL > 5)                          |
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *
 * The checksum is not verified: a mirror is a copy of what the source sent, bad checksums included, and
 * the PCAP we write keeps it for the analyst.
 */
import { IPV4_MIN_HEADER_BYTES } from './constants.js';
import { WEIRD } from '../outcomes.js';
import { AF_INET, type PacketState } from './packet-state.js';

/**
 * The Total Length field when it is captured and usable, else -1. Only the first 4 bytes are needed, so
 * this works on a header that AWS cut short (a session PacketLength of 20 leaves 6 bytes of IP header).
 * A total length of 0 is what Linux GSO / BIG TCP captures carry ("to the end of the data") and counts as
 * unknown, as does a length smaller than the header.
 */
export function ipv4DeclaredLength(buf: Uint8Array, off: number, end: number): number {
  if (end - off < 4) return -1;
  const vihl = buf[off];
  const ihl = (vihl & 0x0f) << 2;
  if (vihl >> 4 !== 4 || ihl < IPV4_MIN_HEADER_BYTES) return -1;
  const total = (buf[off + 2] << 8) | buf[off + 3];
  return total < ihl ? -1 : total;
}

/**
 * Decode the IPv4 header at `off`. Sets l3Family, l3Off, src4, dst4, ipProto and, when the transport
 * header is reachable, l4Off. Returns the end of the IP payload inside the captured bytes (the smaller of
 * the Total Length and `end`), or -1 when there is no transport header to decode: a bad header
 * (WEIRD.IPV4_BAD_HEADER), a non-first fragment (fragment = true, WEIRD.INNER_FRAGMENT) or options cut
 * short by the capture (WEIRD.L4_TRUNCATED).
 */
export function decodeIpv4(buf: Uint8Array, off: number, end: number, st: PacketState): number {
  if (end - off < IPV4_MIN_HEADER_BYTES) return bad(st);
  const vihl = buf[off];
  const ihl = (vihl & 0x0f) << 2;
  if (vihl >> 4 !== 4 || ihl < IPV4_MIN_HEADER_BYTES) return bad(st);
  const total = (buf[off + 2] << 8) | buf[off + 3];
  if (total !== 0 && total < ihl) return bad(st);

  st.l3Family = AF_INET;
  st.l3Off = off;
  st.src4 = ((buf[off + 12] << 24) | (buf[off + 13] << 16) | (buf[off + 14] << 8) | buf[off + 15]) >>> 0;
  st.dst4 = ((buf[off + 16] << 24) | (buf[off + 17] << 16) | (buf[off + 18] << 8) | buf[off + 19]) >>> 0;
  st.ipProto = buf[off + 9];

  // RFC 791: the fragment offset counts 8-byte units; only offset 0 carries the transport header.
  if ((((buf[off + 6] & 0x1f) << 8) | buf[off + 7]) !== 0) {
    st.fragment = true;
    st.weird |= 1 << WEIRD.INNER_FRAGMENT;
    return -1;
  }
  if (ihl > end - off) {
    st.weird |= 1 << WEIRD.L4_TRUNCATED;
    return -1;
  }
  st.l4Off = off + ihl;
  // Total length 0 (GSO / BIG TCP) means "the rest of the frame".
  const ipEnd = total === 0 ? end : off + total;
  return ipEnd < end ? ipEnd : end;
}

function bad(st: PacketState): number {
  st.weird |= 1 << WEIRD.IPV4_BAD_HEADER;
  return -1;
}
