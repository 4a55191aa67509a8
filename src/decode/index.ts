/**
 * The decoders' public API. Per packet: decodeVxlan (UDP socket payloads) or decodeVxlanPacket
 * (captured frames); everything fills one reused PacketState and returns a DropCode. docs/decoding.md
 * describes the layers, drop reasons versus weird flags, strict mode, the nesting limits and the filter
 * language.
 */
export { DROP, DROP_COUNT, DROP_NAMES, WEIRD, WEIRD_COUNT, WEIRD_NAMES, type DropCode } from './drop-reasons.js';
export {
  AF_INET,
  AF_INET6,
  AF_NONE,
  MAX_IPV6_EXT_HEADERS,
  MAX_TUNNEL_DEPTH,
  MAX_VLAN_DEPTH,
  PacketState,
} from './packet-state.js';
export { decodeVxlan, VXLAN_FLAG_I, VXLAN_HEADER_BYTES, VXLAN_PORT } from './vxlan.js';
export { decodeInnerFrame, MAX_FRAME_BYTES } from './inner.js';
export { decodeEthernet } from './ethernet.js';
export { decodeIpv4, ipv4DeclaredLength } from './ipv4.js';
export { decodeIpv6, ipv6DeclaredLength, walkIpv6Extensions } from './ipv6.js';
export { decodeL4 } from './l4.js';
export { decodeOuter, decodeVxlanPacket, isSupportedLinktype, LINKTYPE, SUPPORTED_LINKTYPES } from './outer.js';
export {
  canonicalIp,
  cidrToString,
  innerDestinationToString,
  innerSourceToString,
  ipv4InCidr,
  ipv4ToString,
  ipv6InCidr,
  ipv6ToString,
  outerSourceToString,
  parseCidr,
  parseIp,
  type Cidr,
  type ParsedIp,
} from './addr.js';
export { compileFilter, MAX_FILTER_DEPTH, MAX_FILTER_LENGTH, type PacketFilter } from './filter.js';
