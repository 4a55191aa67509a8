/**
 * What every packet source feeds, and all a source knows of what lies beyond it: one method call per
 * packet, with offsets into the source's own buffer and the receive time. The Collector implements all
 * of them (src/collector/collector.ts); the sources import only these types, so a test or a benchmark
 * can put any object with the same methods behind a source.
 */

/** Datagram payloads whose outer source the receiver read as numbers: the native recvmmsg receiver. */
export interface PacketSink {
  /**
   * A VXLAN payload (the UDP payload) from an IPv4 source. src4 is the address's 32 bits as a signed or
   * unsigned number; sources pass it signed (`| 0`): an unsigned address of 128.0.0.0 and up (172.31/16,
   * AWS's default VPC) is not a small integer in V8 and is boxed, 16 bytes, on every call the optimizer
   * did not inline. Read it with `>>> 0` or byte shifts.
   */
  ingest4(buf: Uint8Array, off: number, end: number, src4: number, tsSec: number, tsNsec: number): void;
  /** A VXLAN payload from an IPv6 source whose 16 address bytes are at src6[src6Off]. */
  ingest6(buf: Uint8Array, off: number, end: number, src6: Uint8Array, src6Off: number, tsSec: number, tsNsec: number): void;
  /**
   * Called once by a source that reuses `buf` for every batch: the sink may defer reading the frames it
   * was handed from it (the PCAP writer's copies, src/pcap/copy.ts PlannedCopy) until endBatch().
   */
  batchBuffer?(buf: Uint8Array): void;
  /** After each batch, before the source overwrites its batch buffer: finish reading it. */
  endBatch?(): void;
}

/** GENEVE payloads (UDP 6081 from a Gateway Load Balancer): the VXLAN packet inside names the session. */
export interface GeneveSink {
  ingestGeneve(buf: Uint8Array, off: number, end: number, tsSec: number, tsNsec: number): void;
  /** As PacketSink's: a GENEVE receiver's batch buffer. */
  batchBuffer?(buf: Uint8Array): void;
  endBatch?(): void;
}

/** node:dgram: the source comes as a string (rinfo.address); GENEVE sockets use ingestGeneve. */
export interface DatagramSink extends GeneveSink {
  ingestAddress(buf: Uint8Array, off: number, end: number, address: string, tsSec: number, tsNsec: number): void;
}

/** Whole captured frames (libpcap, capture files): outer IP/UDP first, then VXLAN or GENEVE. */
export interface FrameSink {
  ingestFrame(buf: Uint8Array, off: number, end: number, linktype: number, tsSec: number, tsNsec: number): void;
}

/**
 * A PacketSink for a GENEVE socket: the GWLB's own address is not the session, the VXLAN packet inside
 * GENEVE names it, so the source the addon reports is ignored. Made once per receiver.
 */
export function geneveSink(sink: GeneveSink): PacketSink {
  return {
    ingest4: (buf, off, end, _src4, tsSec, tsNsec) => sink.ingestGeneve(buf, off, end, tsSec, tsNsec),
    ingest6: (buf, off, end, _src6, _src6Off, tsSec, tsNsec) => sink.ingestGeneve(buf, off, end, tsSec, tsNsec),
    batchBuffer: (buf) => sink.batchBuffer?.(buf),
    endBatch: () => sink.endBatch?.(),
  };
}
