/**
 * The one list of packet outcomes, below every room that produces one: the decoders (src/decode/), the
 * collector (src/collector/) and the PCAP writer and its disk queue (src/pcap/) all return or count these
 * codes, and none of them imports another for it. Every packet ends in exactly one outcome: OK (written:
 * its record reached the disk) or a named drop. Each outcome is counted once, where it becomes final:
 *   - decode drops, the session limit and what PcapFileWriter.append() refuses: by the collector, on the
 *     packet path, at the moment the packet is refused;
 *   - written, and the losses of a failed write (WRITE_ENOSPC, WRITE_ERROR): by the disk queue, per
 *     buffer, when the write completes or fails (src/pcap/disk-queue.ts). A count never goes down.
 * The name is the counter exposed in logs, the API and Prometheus (docs/counters.md lists them all).
 * Decoders return a code; they never throw and never build strings on the hot path.
 *
 * Weird (odd but ours, still written) is a separate family in WEIRD below, after Zeek's "weird" vs
 * "violation" split: a drop means "this is not a mirrored frame we can store", a weird means "stored,
 * but worth a look".
 */
export const DROP = {
  OK: 0,
  /** Capture files only: the outer frame is not IPv4/IPv6 (ARP, LLDP, ...). */
  OUTER_NOT_IP: 1,
  /** Capture files only: the outer IP packet is not UDP. */
  OUTER_NOT_UDP: 2,
  /** Capture files only: UDP, but not to a VXLAN port (4789 by default). */
  OUTER_NOT_VXLAN_PORT: 3,
  /** Capture files only: the outer headers are cut short by the capture's snaplen or are malformed. */
  OUTER_TRUNCATED: 4,
  /** Capture files only: a non-first IP fragment (no UDP header to read). */
  OUTER_FRAGMENT: 5,
  /** Fewer than 8 bytes of VXLAN header. */
  VXLAN_TOO_SHORT: 6,
  /** The I flag (RFC 7348 section 5) is clear, so the VNI is not valid. */
  VXLAN_NO_I_FLAG: 7,
  /** Strict mode only: flag bits other than I, or reserved fields, are non-zero. */
  VXLAN_RESERVED_BITS: 8,
  /** After the VXLAN header there is less than an Ethernet header (14 bytes). */
  INNER_TOO_SHORT: 9,
  /** The capture file's link type is not one we can find an IP header in. */
  CAPTURE_LINKTYPE: 10,
  /** The session writer's disk queue is full; the frame could not be buffered. */
  WRITE_QUEUE_FULL: 11,
  /** The write failed because the disk is full (ENOSPC) or over quota (EDQUOT). */
  WRITE_ENOSPC: 12,
  /** The write failed for another reason (EACCES, EIO, a missing directory ...). */
  WRITE_ERROR: 13,
  /** The inner frame is larger than the PCAP snap length we write (262144 bytes). */
  INNER_TOO_LONG: 14,
  /** A new (source IP, VNI) pair arrived while the session table was at its limit (collector.maxSessions). */
  SESSION_LIMIT: 15,
  /** GENEVE (RFC 8926): fewer than 8 bytes of GENEVE header. */
  GENEVE_TOO_SHORT: 16,
  /** GENEVE: a version other than 0 (RFC 8926 section 3.4: "packets with an unknown version MUST be dropped"). */
  GENEVE_VERSION: 17,
  /** GENEVE: the option length runs past the datagram, or an option's length runs past the option area. */
  GENEVE_OPTIONS_TRUNCATED: 18,
  /** GENEVE: an option we do not know has the critical bit set (RFC 8926 section 3.5: MUST drop). */
  GENEVE_CRITICAL_OPTION: 19,
  /** GENEVE: the O bit is set: a control message between tunnel endpoints, not a packet to store. */
  GENEVE_CONTROL: 20,
  /** GENEVE: a protocol type other than IPv4, IPv6 or Ethernet (0x6558), e.g. ARP (0x0806). */
  GENEVE_PROTOCOL: 21,
  /** GENEVE: the IP or UDP header inside GENEVE is cut short or malformed. */
  GENEVE_INNER_TRUNCATED: 22,
  /** GENEVE: the packet inside GENEVE is a non-first IP fragment (no UDP header to read). */
  GENEVE_INNER_FRAGMENT: 23,
  /** GENEVE: the packet inside is not UDP to the VXLAN port: GENEVE traffic, but not a mirrored copy. */
  GENEVE_NOT_MIRROR: 24,
  /** GENEVE inside GENEVE deeper than MAX_GENEVE_DEPTH. */
  GENEVE_NESTING_DEPTH: 25,
} as const;

export type DropCode = (typeof DROP)[keyof typeof DROP];

/** Counter names, indexed by code. Dotted lowercase, after Suricata's decoder.vxlan.* family. */
export const DROP_NAMES: readonly string[] = [
  'written',
  'decode.outer.not_ip',
  'decode.outer.not_udp',
  'decode.outer.not_vxlan_port',
  'decode.outer.truncated',
  'decode.outer.fragment',
  'decode.vxlan.too_short',
  'decode.vxlan.no_i_flag',
  'decode.vxlan.reserved_bits',
  'decode.inner.too_short',
  'decode.capture.linktype',
  'pcap.write.queue_full',
  'pcap.write.enospc',
  'pcap.write.error',
  'decode.inner.too_long',
  'session.table_full',
  'decode.geneve.too_short',
  'decode.geneve.version',
  'decode.geneve.options_truncated',
  'decode.geneve.critical_option',
  'decode.geneve.control',
  'decode.geneve.protocol',
  'decode.geneve.inner_truncated',
  'decode.geneve.inner_fragment',
  'decode.geneve.not_mirror',
  'decode.geneve.nesting_depth',
];

export const DROP_COUNT = DROP_NAMES.length;

/** Stored but odd. Counted, never dropped. */
export const WEIRD = {
  /** VXLAN flag bits other than I, or reserved fields, are non-zero (permissive mode keeps the frame). */
  VXLAN_RESERVED_BITS: 0,
  /** More 802.1Q/802.1ad tags than MAX_VLAN_DEPTH; the rest is left as payload. */
  VLAN_DEPTH: 1,
  /** The inner IPv4 header is shorter than 20 bytes, has IHL < 5 or a version other than 4. */
  IPV4_BAD_HEADER: 2,
  /** The inner IPv6 header is cut short or has a version other than 6. */
  IPV6_BAD_HEADER: 3,
  /** The inner frame is shorter than its IP length says: truncated by the mirror session's PacketLength. */
  INNER_TRUNCATED: 4,
  /** The inner frame is longer than its IP length says (Ethernet padding is normal below 60 bytes; more is odd). */
  INNER_TRAILING_BYTES: 5,
  /** The transport header (TCP/UDP/ICMP) is cut short; ports are unknown. */
  L4_TRUNCATED: 6,
  /** VXLAN nested deeper than MAX_TUNNEL_DEPTH; the rest is left as payload. */
  TUNNEL_DEPTH: 7,
  /** IPv6 extension header chain longer than MAX_IPV6_EXT_HEADERS; the rest is left as payload. */
  IPV6_EXT_CHAIN: 8,
  /** A non-first inner IP fragment; no ports. */
  INNER_FRAGMENT: 9,
  /** GENEVE reserved bits (the 6 after O and C, the last byte) are non-zero; RFC 8926 says ignore them. */
  GENEVE_RESERVED_BITS: 10,
  /** An AWS GENEVE option (class 0x0108) of a known type with an unexpected length; it is ignored. */
  GENEVE_AWS_OPTION_LENGTH: 11,
  /** GENEVE without AWS's GWLB endpoint option: not from a Gateway Load Balancer. */
  GENEVE_NO_GWLB_OPTIONS: 12,
} as const;

export const WEIRD_NAMES: readonly string[] = [
  'weird.vxlan.reserved_bits',
  'weird.vlan.depth',
  'weird.ipv4.bad_header',
  'weird.ipv6.bad_header',
  'weird.inner.truncated',
  'weird.inner.trailing_bytes',
  'weird.l4.truncated',
  'weird.vxlan.nesting_depth',
  'weird.ipv6.ext_chain',
  'weird.inner.fragment',
  'weird.geneve.reserved_bits',
  'weird.geneve.aws_option_length',
  'weird.geneve.no_gwlb_options',
];

export const WEIRD_COUNT = WEIRD_NAMES.length;

/** A fresh set of outcome counters, indexed by DropCode (one Float64 slot per code). */
export function newOutcomeCounts(): Float64Array {
  return new Float64Array(DROP_COUNT);
}
