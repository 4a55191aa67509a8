/**
 * The GENEVE header (RFC 8926 section 3.4), the start of every UDP payload a Gateway Load Balancer sends
 * to its targets (UDP 6081). When a GWLB endpoint is the mirror target, the payload is the mirror packet
 * exactly as AWS sent it: IP (source = the source ENI's primary IP) / UDP 4789 / VXLAN / mirrored frame.
 *
 *  0                   1                   2                   3
 *  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * |Ver|  Opt Len  |O|C|    Rsvd.  |          Protocol Type        |
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * |        Virtual Network Identifier (VNI)       |    Reserved   |
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * |                    Variable-Length Options                    |
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *
 * Each option (section 3.5):
 * |          Option Class         |      Type     |R|R|R| Length  |  then Length * 4 bytes of data
 *
 * Opt Len and Length count 4-byte words, so the options are at most 252 bytes and one option at most
 * 124: a hostile length cannot reach past the datagram, and the walk moves at least 4 bytes per option.
 * "Packets with an unknown version MUST be dropped" (3.4); an unknown option with the critical bit (the
 * high bit of Type) MUST make the packet be dropped (3.5); O marks a control message whose payload is
 * not forwarded (3.4), so it is not a mirrored packet either. Reserved bits are ignored on receipt and
 * flagged WEIRD.GENEVE_RESERVED_BITS.
 *
 * AWS's options (class 0x0108, AWS GWLB docs "GENEVE TLV options"): type 1 the GWLB endpoint id (8
 * bytes), type 2 the attachment id (8 bytes), type 3 the flow cookie (4 bytes). They are read from the
 * outermost header only: that is the GWLB that delivered the packet to us.
 *
 * Inside, the decoder finds IPv4 or IPv6 (or Ethernet, protocol 0x6558, then IP) and UDP to the VXLAN
 * port, and leaves the VXLAN payload in vxlanOff / vxlanEnd and its IP source in mirror*; the caller
 * runs decodeVxlan on it, so a session through a GWLB is the same (source IP, VNI) session as one sent
 * directly. UDP to the GENEVE port inside GENEVE is followed up to MAX_GENEVE_DEPTH headers.
 */
import {
  ETHERNET_HEADER_BYTES,
  ETHERTYPE_IPV4,
  ETHERTYPE_IPV6,
  ETHERTYPE_TEB,
  GENEVE_CLASS_AWS,
  GENEVE_HEADER_BYTES,
  GWLB_OPT_ATTACHMENT_ID,
  GWLB_OPT_ENDPOINT_ID,
  GWLB_OPT_FLOW_COOKIE,
  IPPROTO_UDP,
  IPV4_MIN_HEADER_BYTES,
  IPV6_HEADER_BYTES,
  UDP_HEADER_BYTES,
  VLAN_TAG_BYTES,
  isVlanTpid,
} from './constants.js';
import { DROP, WEIRD, type DropCode } from '../outcomes.js';
import { IPV6_WALK_OK, ipv6Walk, walkIpv6Extensions } from './ipv6.js';
import { AF_INET, AF_INET6, MAX_GENEVE_DEPTH, MAX_VLAN_DEPTH, type PacketState } from './packet-state.js';

export { GENEVE_HEADER_BYTES, GENEVE_PORT } from './constants.js';

/**
 * Decode the GENEVE payload [off, end) of a UDP datagram down to the VXLAN header inside it. The caller
 * resets the GENEVE fields first (PacketState.resetGeneve()). Sets geneveDepth, geneveVni, geneveProto,
 * the gwlb* fields, mirrorFamily / mirrorSrc4 / mirrorSrc6Off, vxlanOff and vxlanEnd. Returns DROP.OK or
 * a DROP.GENEVE_* reason.
 */
export function decodeGeneve(buf: Uint8Array, off: number, end: number, st: PacketState, vxlanPort: number, genevePort: number): DropCode {
  for (let depth = 1; ; depth++) {
    if (end - off < GENEVE_HEADER_BYTES) return DROP.GENEVE_TOO_SHORT;
    const b0 = buf[off]!;
    if (b0 >> 6 !== 0) return DROP.GENEVE_VERSION;
    const optEnd = off + GENEVE_HEADER_BYTES + ((b0 & 0x3f) << 2);
    if (optEnd > end) return DROP.GENEVE_OPTIONS_TRUNCATED;
    const b1 = buf[off + 1]!;
    if ((b1 & 0x80) !== 0) return DROP.GENEVE_CONTROL;
    if (((b1 & 0x3f) | buf[off + 7]!) !== 0) st.weird |= 1 << WEIRD.GENEVE_RESERVED_BITS;
    const proto = (buf[off + 2]! << 8) | buf[off + 3]!;
    st.geneveDepth = depth;
    if (depth === 1) {
      st.geneveProto = proto;
      st.geneveVni = (buf[off + 4]! << 16) | (buf[off + 5]! << 8) | buf[off + 6]!;
    }

    // Options: every step moves 4 + 4n bytes and must stay inside [off + 8, optEnd).
    for (let p = off + GENEVE_HEADER_BYTES; p < optEnd; ) {
      if (optEnd - p < 4) return DROP.GENEVE_OPTIONS_TRUNCATED;
      const cls = (buf[p]! << 8) | buf[p + 1]!;
      const type = buf[p + 2]!;
      const len = (buf[p + 3]! & 0x1f) << 2;
      const data = p + 4;
      if (len > optEnd - data) return DROP.GENEVE_OPTIONS_TRUNCATED;
      if (cls === GENEVE_CLASS_AWS && type >= GWLB_OPT_ENDPOINT_ID && type <= GWLB_OPT_FLOW_COOKIE) {
        const want = type === GWLB_OPT_FLOW_COOKIE ? 4 : 8;
        if (len !== want) st.weird |= 1 << WEIRD.GENEVE_AWS_OPTION_LENGTH;
        else if (depth === 1) {
          if (type === GWLB_OPT_ENDPOINT_ID) st.gwlbEndpointOff = data;
          else if (type === GWLB_OPT_ATTACHMENT_ID) st.gwlbAttachmentOff = data;
          else st.gwlbFlowCookie = ((buf[data]! << 24) | (buf[data + 1]! << 16) | (buf[data + 2]! << 8) | buf[data + 3]!) >>> 0;
        }
      } else if ((type & 0x80) !== 0) {
        return DROP.GENEVE_CRITICAL_OPTION;
      }
      p = data + len;
    }
    if (depth === 1 && st.gwlbEndpointOff < 0) st.weird |= 1 << WEIRD.GENEVE_NO_GWLB_OPTIONS;

    // The payload: IP, or Ethernet (and VLAN tags) then IP.
    let l3 = optEnd;
    let ipType = proto;
    if (proto === ETHERTYPE_TEB) {
      if (end - l3 < ETHERNET_HEADER_BYTES) return DROP.GENEVE_INNER_TRUNCATED;
      let t = l3 + 12;
      for (let tags = 0; ; tags++) {
        if (end - t < 2) return DROP.GENEVE_INNER_TRUNCATED;
        ipType = (buf[t]! << 8) | buf[t + 1]!;
        if (!isVlanTpid(ipType) || tags === MAX_VLAN_DEPTH) break;
        t += VLAN_TAG_BYTES;
      }
      l3 = t + 2;
      if (ipType !== ETHERTYPE_IPV4 && ipType !== ETHERTYPE_IPV6) return DROP.GENEVE_NOT_MIRROR;
    } else if (proto !== ETHERTYPE_IPV4 && proto !== ETHERTYPE_IPV6) {
      return DROP.GENEVE_PROTOCOL;
    }

    let udp: number;
    let ipEnd: number;
    if (ipType === ETHERTYPE_IPV4) {
      if (end - l3 < IPV4_MIN_HEADER_BYTES || buf[l3]! >> 4 !== 4) return DROP.GENEVE_INNER_TRUNCATED;
      const ihl = (buf[l3]! & 0x0f) << 2;
      const total = (buf[l3 + 2]! << 8) | buf[l3 + 3]!;
      if (ihl < IPV4_MIN_HEADER_BYTES || ihl > end - l3 || (total !== 0 && total < ihl)) return DROP.GENEVE_INNER_TRUNCATED;
      // A total length of 0 or past the datagram means "to the end" (GSO, as in decodeOuter).
      ipEnd = total === 0 || total > end - l3 ? end : l3 + total;
      if ((((buf[l3 + 6]! & 0x1f) << 8) | buf[l3 + 7]!) !== 0) return DROP.GENEVE_INNER_FRAGMENT;
      if (buf[l3 + 9] !== IPPROTO_UDP) return DROP.GENEVE_NOT_MIRROR;
      // Each level overwrites: the IP packet that finally carries the VXLAN names the session.
      st.mirrorFamily = AF_INET;
      st.mirrorSrc4 = ((buf[l3 + 12]! << 24) | (buf[l3 + 13]! << 16) | (buf[l3 + 14]! << 8) | buf[l3 + 15]!) >>> 0;
      st.mirrorSrc6Off = -1;
      udp = l3 + ihl;
    } else {
      if (end - l3 < IPV6_HEADER_BYTES || buf[l3]! >> 4 !== 6) return DROP.GENEVE_INNER_TRUNCATED;
      const pl = (buf[l3 + 4]! << 8) | buf[l3 + 5]!;
      ipEnd = pl === 0 || pl > end - l3 - IPV6_HEADER_BYTES ? end : l3 + IPV6_HEADER_BYTES + pl;
      if (walkIpv6Extensions(buf, l3 + IPV6_HEADER_BYTES, ipEnd, buf[l3 + 6]!) !== IPV6_WALK_OK) return DROP.GENEVE_INNER_TRUNCATED;
      if (ipv6Walk.nonFirstFragment) return DROP.GENEVE_INNER_FRAGMENT;
      if (ipv6Walk.proto !== IPPROTO_UDP) return DROP.GENEVE_NOT_MIRROR;
      st.mirrorFamily = AF_INET6;
      st.mirrorSrc4 = 0;
      st.mirrorSrc6Off = l3 + 8;
      udp = ipv6Walk.off;
    }

    if (ipEnd - udp < UDP_HEADER_BYTES) return DROP.GENEVE_INNER_TRUNCATED;
    const dport = (buf[udp + 2]! << 8) | buf[udp + 3]!;
    const udpLen = (buf[udp + 4]! << 8) | buf[udp + 5]!;
    if (udpLen !== 0 && udpLen < UDP_HEADER_BYTES) return DROP.GENEVE_INNER_TRUNCATED;
    const payloadEnd = udpLen === 0 || udpLen > ipEnd - udp ? ipEnd : udp + udpLen;
    if (dport === vxlanPort) {
      st.vxlanOff = udp + UDP_HEADER_BYTES;
      st.vxlanEnd = payloadEnd;
      return DROP.OK;
    }
    if (dport !== genevePort || genevePort === 0) return DROP.GENEVE_NOT_MIRROR;
    // GENEVE inside GENEVE: the next header starts strictly after this one's UDP header.
    if (depth === MAX_GENEVE_DEPTH) return DROP.GENEVE_NESTING_DEPTH;
    off = udp + UDP_HEADER_BYTES;
    end = payloadEnd;
  }
}

const HEX = '0123456789abcdef';

/** The GWLB endpoint id as AWS names it: `vpce-` and 17 hex digits (aws-gateway-load-balancer-tunnel-handler). Not per packet. */
export function gwlbEndpointIdString(buf: Uint8Array, off: number): string {
  return `vpce-0${hex8(buf, off)}`;
}

/** The attachment id, 16 hex digits. Not per packet. */
export function gwlbAttachmentIdString(buf: Uint8Array, off: number): string {
  return hex8(buf, off);
}

function hex8(buf: Uint8Array, off: number): string {
  let s = '';
  for (let i = 0; i < 8; i++) s += HEX[buf[off + i]! >> 4]! + HEX[buf[off + i]! & 15]!;
  return s;
}
