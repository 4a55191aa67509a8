/**
 * The outer headers of a captured frame (decap, replay, libpcap): link layer -> IPv4/IPv6 -> UDP, up to
 * the VXLAN header. The UDP socket receiver never needs this (the kernel strips the outer headers); it
 * starts at decodeVxlan.
 *
 * Length fields are not trusted blindly. Linux GSO and BIG TCP captures (tcpdump's bigtcp and gso test
 * files) carry an IPv4 total length of 0, an IPv6 payload length of 0, or a UDP length of 0 or larger
 * than the frame, for super-frames the NIC segments later; all of these mean "to the end of the
 * captured data". A UDP length below 8 is malformed (OUTER_TRUNCATED).
 *
 * A first IP fragment (offset 0, more-fragments set) still carries the UDP and VXLAN headers and is
 * decoded; its inner frame is then shorter than the inner IP length says and is flagged truncated.
 */
import {
  ETHERTYPE_IPV4,
  ETHERTYPE_IPV6,
  ETHERNET_HEADER_BYTES,
  IPPROTO_UDP,
  IPV4_MIN_HEADER_BYTES,
  IPV6_HEADER_BYTES,
  UDP_HEADER_BYTES,
  VLAN_TAG_BYTES,
  VXLAN_PORT,
  isVlanTpid,
} from './constants.js';
import { DROP, type DropCode } from '../outcomes.js';
import { IPV6_WALK_OK, ipv6Walk, walkIpv6Extensions } from './ipv6.js';
import { AF_INET, AF_INET6, MAX_VLAN_DEPTH, type PacketState } from './packet-state.js';
import { decodeGeneve } from './geneve.js';
import { decodeVxlan } from './vxlan.js';

/** tcpdump.org "Link-layer header types" (LINKTYPE_*) values we can find an IP header in. */
export const LINKTYPE = {
  /** BSD loopback: a 4-byte address family in the capturing host's byte order. */
  NULL: 0,
  ETHERNET: 1,
  /** DLT_RAW as most systems number it. */
  RAW_12: 12,
  /** DLT_RAW as OpenBSD numbers it. */
  RAW_14: 14,
  /** Raw IP; the version nibble tells IPv4 from IPv6. */
  RAW: 101,
  /** OpenBSD loopback: like NULL, but the family is in network byte order. */
  LOOP: 108,
  /** Linux "cooked" capture v1 (16-byte header, protocol at bytes 14-15). */
  LINUX_SLL: 113,
  IPV4: 228,
  IPV6: 229,
  /** Linux "cooked" capture v2 (20-byte header, protocol at bytes 0-1). */
  LINUX_SLL2: 276,
} as const;

export const SUPPORTED_LINKTYPES: ReadonlySet<number> = new Set(Object.values(LINKTYPE));

export function isSupportedLinktype(linktype: number): boolean {
  return SUPPORTED_LINKTYPES.has(linktype);
}

/** AF_INET is 2 everywhere; AF_INET6 is 24 (NetBSD, OpenBSD, BSD/OS), 28 (FreeBSD, DragonFly), 30 (macOS). */
function loopbackFamily(af: number): number {
  if (af === 2) return AF_INET;
  if (af === 24 || af === 28 || af === 30) return AF_INET6;
  return 0;
}

/** Set by afterEtherType; module scratch, so the walk allocates nothing. */
let foundFamily = 0;

/**
 * `p` is the offset of an EtherType field. Follow up to MAX_VLAN_DEPTH tags; return the offset of the IP
 * header (foundFamily = 4 or 6) or a negated drop code.
 */
function afterEtherType(buf: Uint8Array, p: number, end: number): number {
  for (let tags = 0; ; tags++) {
    if (end - p < 2) return -DROP.OUTER_TRUNCATED;
    const type = (buf[p] << 8) | buf[p + 1];
    if (type === ETHERTYPE_IPV4) {
      foundFamily = AF_INET;
      return p + 2;
    }
    if (type === ETHERTYPE_IPV6) {
      foundFamily = AF_INET6;
      return p + 2;
    }
    if (!isVlanTpid(type) || tags === MAX_VLAN_DEPTH) return -DROP.OUTER_NOT_IP;
    p += VLAN_TAG_BYTES; // TPID + TCI; the next EtherType follows
  }
}

/**
 * Find the outer IP and UDP headers of a captured frame in [off, end) with the given link type. Resets
 * and sets the outer fields (outerFamily, outerSrc4 / outerSrc6Off, outerSrcPort, outerDstPort, vxlanOff,
 * vxlanEnd). Returns DROP.OK only for UDP to `vxlanPort`, or to `genevePort` when it is not 0 (the
 * caller tells them apart by outerDstPort and runs decodeGeneve on the payload); otherwise OUTER_NOT_IP,
 * OUTER_NOT_UDP, OUTER_NOT_VXLAN_PORT, OUTER_TRUNCATED, OUTER_FRAGMENT or CAPTURE_LINKTYPE.
 */
export function decodeOuter(
  buf: Uint8Array,
  off: number,
  end: number,
  linktype: number,
  st: PacketState,
  vxlanPort: number = VXLAN_PORT,
  genevePort = 0,
): DropCode {
  st.resetOuter();
  let l3: number;
  let family = 0; // 0: decide by the version nibble
  switch (linktype) {
    case LINKTYPE.ETHERNET:
      if (end - off < ETHERNET_HEADER_BYTES) return DROP.OUTER_TRUNCATED;
      l3 = afterEtherType(buf, off + 12, end);
      if (l3 < 0) return -l3 as DropCode;
      family = foundFamily;
      break;
    case LINKTYPE.LINUX_SLL:
      if (end - off < 16) return DROP.OUTER_TRUNCATED;
      l3 = afterEtherType(buf, off + 14, end);
      if (l3 < 0) return -l3 as DropCode;
      family = foundFamily;
      break;
    case LINKTYPE.LINUX_SLL2: {
      if (end - off < 20) return DROP.OUTER_TRUNCATED;
      const type = (buf[off] << 8) | buf[off + 1];
      if (type === ETHERTYPE_IPV4 || type === ETHERTYPE_IPV6) {
        l3 = off + 20;
        family = type === ETHERTYPE_IPV4 ? AF_INET : AF_INET6;
        break;
      }
      if (!isVlanTpid(type)) return DROP.OUTER_NOT_IP;
      // The protocol field is not followed by the payload here: the tag's TCI starts the payload at 20.
      l3 = afterEtherType(buf, off + 22, end);
      if (l3 < 0) return -l3 as DropCode;
      family = foundFamily;
      break;
    }
    case LINKTYPE.NULL: {
      if (end - off < 4) return DROP.OUTER_TRUNCATED;
      // Host byte order of the capturing machine: try both.
      const le = buf[off] | (buf[off + 1] << 8) | (buf[off + 2] << 16) | (buf[off + 3] << 24);
      const be = (buf[off] << 24) | (buf[off + 1] << 16) | (buf[off + 2] << 8) | buf[off + 3];
      family = loopbackFamily(le) || loopbackFamily(be);
      if (family === 0) return DROP.OUTER_NOT_IP;
      l3 = off + 4;
      break;
    }
    case LINKTYPE.LOOP: {
      if (end - off < 4) return DROP.OUTER_TRUNCATED;
      family = loopbackFamily((buf[off] << 24) | (buf[off + 1] << 16) | (buf[off + 2] << 8) | buf[off + 3]);
      if (family === 0) return DROP.OUTER_NOT_IP;
      l3 = off + 4;
      break;
    }
    case LINKTYPE.RAW:
    case LINKTYPE.RAW_12:
    case LINKTYPE.RAW_14:
      l3 = off;
      break;
    case LINKTYPE.IPV4:
      l3 = off;
      family = AF_INET;
      break;
    case LINKTYPE.IPV6:
      l3 = off;
      family = AF_INET6;
      break;
    default:
      return DROP.CAPTURE_LINKTYPE;
  }

  if (end - l3 < 1) return DROP.OUTER_TRUNCATED;
  const version = buf[l3] >> 4;
  if (family === 0) {
    if (version === 4) family = AF_INET;
    else if (version === 6) family = AF_INET6;
    else return DROP.OUTER_NOT_IP;
  } else if (version !== family) {
    // The link layer said IPv4 (or IPv6) but the header disagrees: malformed.
    return DROP.OUTER_TRUNCATED;
  }

  let udp: number;
  let ipEnd: number;
  if (family === AF_INET) {
    if (end - l3 < IPV4_MIN_HEADER_BYTES) return DROP.OUTER_TRUNCATED;
    const ihl = (buf[l3] & 0x0f) << 2;
    if (ihl < IPV4_MIN_HEADER_BYTES || ihl > end - l3) return DROP.OUTER_TRUNCATED;
    st.outerFamily = AF_INET;
    st.outerSrc4 = ((buf[l3 + 12] << 24) | (buf[l3 + 13] << 16) | (buf[l3 + 14] << 8) | buf[l3 + 15]) >>> 0;
    const total = (buf[l3 + 2] << 8) | buf[l3 + 3];
    if (total !== 0 && total < ihl) return DROP.OUTER_TRUNCATED;
    ipEnd = total === 0 || l3 + total > end ? end : l3 + total;
    if (buf[l3 + 9] !== IPPROTO_UDP) return DROP.OUTER_NOT_UDP;
    if ((((buf[l3 + 6] & 0x1f) << 8) | buf[l3 + 7]) !== 0) return DROP.OUTER_FRAGMENT;
    udp = l3 + ihl;
  } else {
    if (end - l3 < IPV6_HEADER_BYTES) return DROP.OUTER_TRUNCATED;
    st.outerFamily = AF_INET6;
    st.outerSrc6Off = l3 + 8;
    const pl = (buf[l3 + 4] << 8) | buf[l3 + 5];
    ipEnd = pl === 0 || l3 + IPV6_HEADER_BYTES + pl > end ? end : l3 + IPV6_HEADER_BYTES + pl;
    if (walkIpv6Extensions(buf, l3 + IPV6_HEADER_BYTES, ipEnd, buf[l3 + 6]) !== IPV6_WALK_OK) {
      return DROP.OUTER_TRUNCATED;
    }
    if (ipv6Walk.proto !== IPPROTO_UDP) return DROP.OUTER_NOT_UDP;
    if (ipv6Walk.nonFirstFragment) return DROP.OUTER_FRAGMENT;
    udp = ipv6Walk.off;
  }

  if (ipEnd - udp < UDP_HEADER_BYTES) return DROP.OUTER_TRUNCATED;
  st.outerSrcPort = (buf[udp] << 8) | buf[udp + 1];
  st.outerDstPort = (buf[udp + 2] << 8) | buf[udp + 3];
  if (st.outerDstPort !== vxlanPort && (genevePort === 0 || st.outerDstPort !== genevePort)) return DROP.OUTER_NOT_VXLAN_PORT;
  const udpLen = (buf[udp + 4] << 8) | buf[udp + 5];
  if (udpLen !== 0 && udpLen < UDP_HEADER_BYTES) return DROP.OUTER_TRUNCATED;
  st.vxlanOff = udp + UDP_HEADER_BYTES;
  st.vxlanEnd = udpLen === 0 || udp + udpLen > ipEnd ? ipEnd : udp + udpLen;
  return DROP.OK;
}

/**
 * A whole captured frame (capture files, libpcap): reset the state, decodeOuter, then decodeVxlan over
 * the UDP payload [vxlanOff, vxlanEnd). The one chain Collector.ingestFrame runs, and the tests with it.
 * With `genevePort` (not 0), UDP to it is GENEVE from a Gateway Load Balancer: decodeGeneve, then
 * decodeVxlan over the VXLAN payload inside (geneveDepth > 0; the session's source is mirrorFamily /
 * mirrorSrc4 / mirrorSrc6Off, not the outer source).
 */
export function decodeCapturedFrame(
  buf: Uint8Array,
  off: number,
  end: number,
  linktype: number,
  st: PacketState,
  strict = false,
  vxlanPort: number = VXLAN_PORT,
  genevePort = 0,
): DropCode {
  st.resetOuter();
  st.resetGeneve();
  st.reset();
  const code = decodeOuter(buf, off, end, linktype, st, vxlanPort, genevePort);
  if (code !== DROP.OK) return code;
  if (st.outerDstPort === vxlanPort) return decodeVxlan(buf, st.vxlanOff, st.vxlanEnd, st, strict);
  // UDP to the GENEVE port (a Gateway Load Balancer): the VXLAN packet inside, then the same chain.
  const g = decodeGeneve(buf, st.vxlanOff, st.vxlanEnd, st, vxlanPort, genevePort);
  if (g !== DROP.OK) return g;
  const weird = st.weird;
  st.reset();
  const v = decodeVxlan(buf, st.vxlanOff, st.vxlanEnd, st, strict);
  st.weird |= weird;
  return v;
}
