/**
 * The inner Ethernet frame: what we store in the session's PCAP. Decodes Ethernet/VLAN -> IPv4/IPv6 ->
 * transport, works out the frame's original length when AWS truncated it, and follows VXLAN nested
 * inside the inner frame up to MAX_TUNNEL_DEPTH.
 *
 * After nesting, the layer fields (etherType, VLANs, addresses, ports ...) describe the innermost decoded
 * packet, while innerOff / innerEnd / origLen (and the VNI set by decodeVxlan) keep describing the
 * outermost inner frame: that frame is what we write, and the outer VNI is what names the session.
 */
import {
  ETHERTYPE_IPV4,
  ETHERTYPE_IPV6,
  ETHERNET_HEADER_BYTES,
  IPPROTO_UDP,
  MIN_ETHERNET_FRAME_BYTES,
  VLAN_TAG_BYTES,
  VXLAN_FLAG_I,
  VXLAN_HEADER_BYTES,
  VXLAN_PORT,
} from './constants.js';
import { DROP, WEIRD, type DropCode } from '../outcomes.js';
import { decodeEthernet } from './ethernet.js';
import { decodeIpv4, ipv4DeclaredLength } from './ipv4.js';
import { decodeIpv6, ipv6DeclaredLength } from './ipv6.js';
import { decodeL4 } from './l4.js';
import { MAX_TUNNEL_DEPTH, type PacketState } from './packet-state.js';

/** The snap length of the PCAP files we write; a larger inner frame is dropped (DROP.INNER_TOO_LONG). */
export const MAX_FRAME_BYTES = 262144;

/**
 * Decode the inner Ethernet frame in [off, end). Sets innerOff, innerEnd, origLen, truncated and
 * tunnelDepth, and the layer fields of the innermost decoded packet. Returns DROP.OK, INNER_TOO_SHORT
 * (< 14 bytes) or INNER_TOO_LONG (> MAX_FRAME_BYTES); anything odd inside is a weird bit, not a drop.
 * The caller resets the state first (PacketState.reset()).
 */
export function decodeInnerFrame(buf: Uint8Array, off: number, end: number, st: PacketState): DropCode {
  st.innerOff = off;
  st.innerEnd = end;
  const len = end - off;
  if (len < ETHERNET_HEADER_BYTES) return DROP.INNER_TOO_SHORT;
  if (len > MAX_FRAME_BYTES) return DROP.INNER_TOO_LONG;
  st.origLen = len;

  // Each pass decodes one frame; a nested frame starts after this one's UDP and VXLAN headers, so the
  // offset strictly grows and the depth is capped: crafted input cannot make this loop.
  let frameOff = off;
  let frameEnd = end;
  for (let depth = 1; ; depth++) {
    st.tunnelDepth = depth;
    if (depth > 1) st.resetLayers();

    const l3 = decodeEthernet(buf, frameOff, frameEnd, st);
    if (depth === 1) accountLength(buf, off, end, l3, st);
    let payloadEnd = -1;
    if (st.etherType === ETHERTYPE_IPV4) payloadEnd = decodeIpv4(buf, l3, frameEnd, st);
    else if (st.etherType === ETHERTYPE_IPV6) payloadEnd = decodeIpv6(buf, l3, frameEnd, st);
    if (payloadEnd < 0) return DROP.OK;
    const l4 = st.l4Off;
    const payload = decodeL4(buf, l4, payloadEnd, st, st.ipProto);
    if (payload < 0 || st.ipProto !== IPPROTO_UDP || st.dstPort !== VXLAN_PORT) return DROP.OK;

    // UDP to 4789 inside the inner frame: VXLAN again only if the header is valid (I flag set) and an
    // Ethernet header follows; otherwise it is just UDP payload. Nested reserved bits are ignored, as
    // RFC 7348 section 5 asks of receivers.
    const udpLen = (buf[l4 + 4] << 8) | buf[l4 + 5];
    const nestedEnd = udpLen >= 8 && l4 + udpLen <= payloadEnd ? l4 + udpLen : payloadEnd;
    if (nestedEnd - payload < VXLAN_HEADER_BYTES + ETHERNET_HEADER_BYTES) return DROP.OK;
    if ((buf[payload] & VXLAN_FLAG_I) === 0) return DROP.OK;
    if (depth === MAX_TUNNEL_DEPTH) {
      st.weird |= 1 << WEIRD.TUNNEL_DEPTH;
      return DROP.OK;
    }
    frameOff = payload + VXLAN_HEADER_BYTES;
    frameEnd = nestedEnd;
  }
}

/**
 * Compare the captured length with the IP length. Shorter: the mirror session's PacketLength cut the
 * packet (AWS truncates mirrored packets to it), so origLen becomes the L2 header plus the IP length and
 * a PCAP reader shows "packet size limited during capture" rather than a malformed packet. Longer by more
 * than Ethernet padding (frames under 60 bytes, 4 more per VLAN tag, are padded): trailing bytes.
 */
function accountLength(buf: Uint8Array, off: number, end: number, l3: number, st: PacketState): void {
  if (l3 < 0) return;
  let ipLen = -1;
  if (st.etherType === ETHERTYPE_IPV4) ipLen = ipv4DeclaredLength(buf, l3, end);
  else if (st.etherType === ETHERTYPE_IPV6) ipLen = ipv6DeclaredLength(buf, l3, end);
  if (ipLen < 0) return;
  const ipEnd = l3 + ipLen;
  if (ipEnd > end) {
    st.truncated = true;
    st.weird |= 1 << WEIRD.INNER_TRUNCATED;
    st.origLen = ipEnd - off;
  } else if (ipEnd < end && end - off > MIN_ETHERNET_FRAME_BYTES + VLAN_TAG_BYTES * st.vlanCount) {
    st.weird |= 1 << WEIRD.INNER_TRAILING_BYTES;
  }
}

