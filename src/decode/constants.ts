/**
 * Protocol numbers shared by the decoders. Kept in one leaf module so the layer files import it without
 * importing each other in a cycle.
 */

// --- Ethernet (IEEE 802.3, EtherTypes from the IEEE registry) ---
export const ETHERNET_HEADER_BYTES = 14;
/** A tag is a 2-byte TPID plus a 2-byte TCI (IEEE 802.1Q clause 9.6). */
export const VLAN_TAG_BYTES = 4;
/** Frames shorter than this (without FCS) are padded on the wire (IEEE 802.3 clause 3.2.8). */
export const MIN_ETHERNET_FRAME_BYTES = 60;
export const ETHERTYPE_IPV4 = 0x0800;
export const ETHERTYPE_ARP = 0x0806;
export const ETHERTYPE_IPV6 = 0x86dd;
/** C-tag (IEEE 802.1Q). */
export const ETHERTYPE_VLAN = 0x8100;
/** S-tag (IEEE 802.1ad QinQ). */
export const ETHERTYPE_QINQ = 0x88a8;
/** The pre-standard QinQ TPID some switches still send. */
export const ETHERTYPE_QINQ_9100 = 0x9100;

/** True for the TPIDs we follow as VLAN tags. */
export function isVlanTpid(type: number): boolean {
  return type === ETHERTYPE_VLAN || type === ETHERTYPE_QINQ || type === ETHERTYPE_QINQ_9100;
}

// --- IP protocol numbers (IANA "Assigned Internet Protocol Numbers") ---
export const IPPROTO_HOPOPTS = 0;
export const IPPROTO_ICMP = 1;
export const IPPROTO_IGMP = 2;
export const IPPROTO_TCP = 6;
export const IPPROTO_UDP = 17;
export const IPPROTO_DCCP = 33;
export const IPPROTO_ROUTING = 43;
export const IPPROTO_FRAGMENT = 44;
export const IPPROTO_GRE = 47;
export const IPPROTO_ESP = 50;
export const IPPROTO_AH = 51;
export const IPPROTO_ICMPV6 = 58;
export const IPPROTO_NONE = 59;
export const IPPROTO_DSTOPTS = 60;
export const IPPROTO_SCTP = 132;
export const IPPROTO_MH = 135;
export const IPPROTO_UDPLITE = 136;
export const IPPROTO_HIP = 139;
export const IPPROTO_SHIM6 = 140;

// --- VXLAN (RFC 7348) ---
/** IANA-assigned VXLAN port (RFC 7348 section 5). AWS Traffic Mirroring sends to it. */
export const VXLAN_PORT = 4789;
export const VXLAN_HEADER_BYTES = 8;
/** The I flag: "MUST be set to 1 for a valid VXLAN Network ID" (RFC 7348 section 5). */
export const VXLAN_FLAG_I = 0x08;

// --- GENEVE (RFC 8926) ---
/** IANA-assigned GENEVE port (RFC 8926 section 3.3). A Gateway Load Balancer sends to it. */
export const GENEVE_PORT = 6081;
export const GENEVE_HEADER_BYTES = 8;
/** Protocol type of an Ethernet payload: Transparent Ethernet Bridging (RFC 8926 section 3.4). */
export const ETHERTYPE_TEB = 0x6558;
/** AWS's option class for Gateway Load Balancer metadata (AWS GWLB docs, "GENEVE TLV options"). */
export const GENEVE_CLASS_AWS = 0x0108;
export const GWLB_OPT_ENDPOINT_ID = 1;
export const GWLB_OPT_ATTACHMENT_ID = 2;
export const GWLB_OPT_FLOW_COOKIE = 3;

export const IPV4_MIN_HEADER_BYTES = 20;
export const IPV6_HEADER_BYTES = 40;
export const UDP_HEADER_BYTES = 8;
