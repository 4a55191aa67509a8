/**
 * The one per-packet state the decoders fill in place (gopacket's DecodingLayerParser idea): allocated
 * once per receiver, reset by reset() for every packet, never copied. Addresses are kept as offsets into
 * the packet buffer, or as numbers for IPv4, so nothing is allocated per packet; turn them into strings
 * only when someone asks (a finding, a file name, a log line).
 *
 * Offsets are absolute indexes into the buffer that was decoded; the state is valid only while that
 * buffer is.
 */
export const MAX_VLAN_DEPTH = 4;
export const MAX_TUNNEL_DEPTH = 3;
export const MAX_IPV6_EXT_HEADERS = 8;
/** GENEVE headers followed, outermost first; a GWLB sends one. */
export const MAX_GENEVE_DEPTH = 2;

/** Address family values used in the state (0 = none). */
export const AF_NONE = 0;
export const AF_INET = 4;
export const AF_INET6 = 6;

export class PacketState {
  // --- outer (capture files and the native receiver fill these; node:dgram gives them as rinfo) ---
  /** 4 or 6 when the outer source address is known from the frame, else 0. */
  outerFamily = AF_NONE;
  /** Outer IPv4 source as an unsigned 32-bit number. */
  outerSrc4 = 0;
  /** Offset of the 16-byte outer IPv6 source address in the buffer. */
  outerSrc6Off = -1;
  outerDstPort = 0;
  outerSrcPort = 0;
  /** Offset of the VXLAN header (start of the UDP payload). */
  vxlanOff = 0;
  /** End (exclusive) of the UDP payload: the UDP length when it fits the capture, else the captured end. */
  vxlanEnd = 0;

  // --- GENEVE (RFC 8926), when the VXLAN packet arrived through a Gateway Load Balancer ---
  /** GENEVE headers decoded (0: the VXLAN packet arrived directly). */
  geneveDepth = 0;
  /** VNI and protocol type of the outermost GENEVE header. */
  geneveVni = 0;
  geneveProto = 0;
  /** Offset of the 8-byte GWLB endpoint id (AWS option class 0x0108 type 1) in the buffer, -1 if absent. */
  gwlbEndpointOff = -1;
  /** Offset of the 8-byte GWLB attachment id (type 2), -1 if absent. */
  gwlbAttachmentOff = -1;
  /** The 4-byte flow cookie (type 3) as an unsigned number, -1 if absent. */
  gwlbFlowCookie = -1;
  /** The source of the IP/UDP/VXLAN packet GENEVE carried (the source ENI's primary IP): 4 or 6. */
  mirrorFamily = AF_NONE;
  mirrorSrc4 = 0;
  mirrorSrc6Off = -1;

  // --- VXLAN (RFC 7348 section 5) ---
  vxlanFlags = 0;
  vni = 0;

  // --- the inner frame we write ---
  /** Offset of the inner Ethernet header. */
  innerOff = 0;
  /** End (exclusive) of the captured inner frame. */
  innerEnd = 0;
  /** The frame's original length: innerEnd - innerOff, or more when the inner IP length says it was truncated. */
  origLen = 0;

  // --- inner layers (of the innermost decoded frame when VXLAN is nested) ---
  /** Nesting depth reached: 1 for plain VXLAN, 2 when the inner frame carried VXLAN, ... */
  tunnelDepth = 0;
  /** EtherType after the VLAN tags (0x0800, 0x86dd, 0x0806 ...). */
  etherType = 0;
  vlanCount = 0;
  /** The VLAN IDs (12 bits) of the tags, outermost first. */
  readonly vlanIds = new Uint16Array(MAX_VLAN_DEPTH);
  /** 4, 6 or 0 when the inner frame is not IP or its header is bad. */
  l3Family = AF_NONE;
  l3Off = -1;
  src4 = 0;
  dst4 = 0;
  /** Offsets of the 16-byte inner IPv6 source and destination in the buffer. */
  src6Off = -1;
  dst6Off = -1;
  /** IP protocol / IPv6 next header of the transport (6 TCP, 17 UDP, 1 ICMP, 58 ICMPv6), -1 if unknown. */
  ipProto = -1;
  /** True for a non-first fragment (no transport header). */
  fragment = false;
  l4Off = -1;
  /** -1 when the protocol has no ports or the header is cut short. */
  srcPort = -1;
  dstPort = -1;
  /** ICMP/ICMPv6 type and code, -1 otherwise. */
  icmpType = -1;
  icmpCode = -1;
  /** True when the captured frame is shorter than the IP length says (AWS PacketLength truncation). */
  truncated = false;
  /** Bit set of WEIRD codes seen in this packet (bit n = WEIRD code n). */
  weird = 0;

  /** Reset everything the inner decoders set; outer fields are reset by the outer decoder. */
  reset(): void {
    this.vxlanFlags = 0;
    this.vni = 0;
    this.innerOff = 0;
    this.innerEnd = 0;
    this.origLen = 0;
    this.tunnelDepth = 0;
    this.truncated = false;
    this.weird = 0;
    this.resetLayers();
  }

  /** Clear the layer fields (Ethernet to L4); a nested frame's decode starts here, keeping frame and weird fields. */
  resetLayers(): void {
    this.etherType = 0;
    this.vlanCount = 0;
    this.l3Family = AF_NONE;
    this.l3Off = -1;
    this.src4 = 0;
    this.dst4 = 0;
    this.src6Off = -1;
    this.dst6Off = -1;
    this.ipProto = -1;
    this.fragment = false;
    this.l4Off = -1;
    this.srcPort = -1;
    this.dstPort = -1;
    this.icmpType = -1;
    this.icmpCode = -1;
  }

  /** Clear what decodeGeneve sets (a VXLAN packet that arrives directly has none of it). */
  resetGeneve(): void {
    this.geneveDepth = 0;
    this.geneveVni = 0;
    this.geneveProto = 0;
    this.gwlbEndpointOff = -1;
    this.gwlbAttachmentOff = -1;
    this.gwlbFlowCookie = -1;
    this.mirrorFamily = AF_NONE;
    this.mirrorSrc4 = 0;
    this.mirrorSrc6Off = -1;
  }

  resetOuter(): void {
    this.outerFamily = AF_NONE;
    this.outerSrc4 = 0;
    this.outerSrc6Off = -1;
    this.outerDstPort = 0;
    this.outerSrcPort = 0;
    this.vxlanOff = 0;
    this.vxlanEnd = 0;
  }
}
