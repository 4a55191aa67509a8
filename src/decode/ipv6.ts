/**
 * The inner IPv6 header and its extension-header chain (RFC 8200 sections 3 and 4).
 *
 *  0                   1                   2                   3
 *  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * |Version| Traffic Class |           Flow Label                  |
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * |         Payload Length        |  Next Header  |   Hop Limit   |
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * |                  Source Address (16 octets)                   |
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * |               Destination Address (16 octets)                 |
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *
 * Extension headers, walked until a transport protocol, each in one of three shapes:
 *
 *  Hop-by-Hop (0), Routing (43), Destination Options (60), and Mobility (135), HIP (139), Shim6 (140),
 *  which RFC 6564 / RFC 7045 give the same layout (RFC 8200 section 4.3-4.6):
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * |  Next Header  |  Hdr Ext Len  |  (Hdr Ext Len + 1) * 8 octets in all
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *
 *  Fragment (44), 8 octets (RFC 8200 section 4.5):
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * |  Next Header  |   Reserved    |      Fragment Offset    |Res|M|
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * |                         Identification                        |
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *
 *  Authentication Header (51), (Payload Len + 2) * 4 octets (RFC 4302 section 2.2):
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * | Next Header   |  Payload Len  |          RESERVED             |
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *
 * ESP (50) and No Next Header (59) end the walk like a transport protocol: nothing after them is
 * readable, so ipProto is 50 or 59 with no ports.
 */
import {
  IPPROTO_AH,
  IPPROTO_DSTOPTS,
  IPPROTO_FRAGMENT,
  IPPROTO_HIP,
  IPPROTO_HOPOPTS,
  IPPROTO_MH,
  IPPROTO_ROUTING,
  IPPROTO_SHIM6,
  IPV6_HEADER_BYTES,
} from './constants.js';
import { WEIRD } from '../outcomes.js';
import { AF_INET6, MAX_IPV6_EXT_HEADERS, type PacketState } from './packet-state.js';

export const IPV6_WALK_OK = 0;
/** An extension header runs past the captured (or declared) end. */
export const IPV6_WALK_TRUNCATED = 1;
/** More than MAX_IPV6_EXT_HEADERS extension headers. */
export const IPV6_WALK_TOO_LONG = 2;

/**
 * The result of walkIpv6Extensions. One preallocated object, overwritten by every call (JavaScript runs
 * the decoders on one thread, and nobody holds on to it between packets), so a walk allocates nothing.
 */
export const ipv6Walk = {
  /** The protocol after the extension headers (for a non-first fragment: the fragment's Next Header). */
  proto: -1,
  /** Offset of that protocol's header. */
  off: -1,
  /** A Fragment header with a non-zero offset was seen: what follows is not a transport header. */
  nonFirstFragment: false,
};

/**
 * Walk the extension headers starting at `off` with Next Header `nextHeader`, inside [off, end). Returns
 * IPV6_WALK_OK (ipv6Walk holds the result), IPV6_WALK_TRUNCATED or IPV6_WALK_TOO_LONG. Every step moves
 * forward by at least 8 bytes and the count is capped, so hostile chains cannot loop.
 */
export function walkIpv6Extensions(buf: Uint8Array, off: number, end: number, nextHeader: number): number {
  let nh = nextHeader;
  let p = off;
  ipv6Walk.nonFirstFragment = false;
  for (let count = 0; ; count++) {
    let len: number;
    switch (nh) {
      case IPPROTO_HOPOPTS:
      case IPPROTO_ROUTING:
      case IPPROTO_DSTOPTS:
      case IPPROTO_MH:
      case IPPROTO_HIP:
      case IPPROTO_SHIM6:
        if (end - p < 2) return IPV6_WALK_TRUNCATED;
        len = (buf[p + 1] + 1) << 3;
        break;
      case IPPROTO_FRAGMENT:
        if (end - p < 8) return IPV6_WALK_TRUNCATED;
        len = 8;
        break;
      case IPPROTO_AH:
        if (end - p < 2) return IPV6_WALK_TRUNCATED;
        len = (buf[p + 1] + 2) << 2;
        break;
      default:
        ipv6Walk.proto = nh;
        ipv6Walk.off = p;
        return IPV6_WALK_OK;
    }
    if (count === MAX_IPV6_EXT_HEADERS) return IPV6_WALK_TOO_LONG;
    if (len > end - p) return IPV6_WALK_TRUNCATED;
    if (nh === IPPROTO_FRAGMENT && (((buf[p + 2] << 8) | buf[p + 3]) & 0xfff8) !== 0) {
      ipv6Walk.nonFirstFragment = true;
      ipv6Walk.proto = buf[p];
      ipv6Walk.off = p + len;
      return IPV6_WALK_OK;
    }
    nh = buf[p];
    p += len;
  }
}

/**
 * 40 + Payload Length when captured and usable, else -1. Needs only the first 6 bytes, so it works on a
 * header AWS cut short. A payload length of 0 (a jumbogram, RFC 2675, or a GSO capture) counts as unknown.
 */
export function ipv6DeclaredLength(buf: Uint8Array, off: number, end: number): number {
  if (end - off < 6 || buf[off] >> 4 !== 6) return -1;
  const pl = (buf[off + 4] << 8) | buf[off + 5];
  return pl === 0 ? -1 : IPV6_HEADER_BYTES + pl;
}

/**
 * Decode the IPv6 header at `off` and its extension headers. Sets l3Family, l3Off, src6Off, dst6Off,
 * ipProto and, when the transport header is reachable, l4Off. Returns the end of the IP payload inside
 * the captured bytes, or -1 when there is no transport header to decode: a bad or short header
 * (WEIRD.IPV6_BAD_HEADER), an extension chain cut short (WEIRD.L4_TRUNCATED, ipProto -1) or too long
 * (WEIRD.IPV6_EXT_CHAIN, ipProto -1), or a non-first fragment (fragment = true, WEIRD.INNER_FRAGMENT).
 */
export function decodeIpv6(buf: Uint8Array, off: number, end: number, st: PacketState): number {
  if (end - off < IPV6_HEADER_BYTES || buf[off] >> 4 !== 6) {
    st.weird |= 1 << WEIRD.IPV6_BAD_HEADER;
    return -1;
  }
  st.l3Family = AF_INET6;
  st.l3Off = off;
  st.src6Off = off + 8;
  st.dst6Off = off + 24;
  const pl = (buf[off + 4] << 8) | buf[off + 5];
  let ipEnd = pl === 0 ? end : off + IPV6_HEADER_BYTES + pl;
  if (ipEnd > end) ipEnd = end;

  const status = walkIpv6Extensions(buf, off + IPV6_HEADER_BYTES, ipEnd, buf[off + 6]);
  if (status !== IPV6_WALK_OK) {
    st.weird |= 1 << (status === IPV6_WALK_TOO_LONG ? WEIRD.IPV6_EXT_CHAIN : WEIRD.L4_TRUNCATED);
    return -1;
  }
  st.ipProto = ipv6Walk.proto;
  if (ipv6Walk.nonFirstFragment) {
    st.fragment = true;
    st.weird |= 1 << WEIRD.INNER_FRAGMENT;
    return -1;
  }
  st.l4Off = ipv6Walk.off;
  return ipEnd;
}
