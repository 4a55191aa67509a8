/**
 * The classic libpcap file format, as we write it: little-endian, version 2.4, nanosecond timestamps.
 * Layout per draft-ietf-opsawg-pcap (the "PCAP Capture File Format" Internet-Draft), sections 4 and 5:
 *
 *   File header (24 bytes)                      Packet record header (16 bytes), then caplen bytes
 *    0                   1                   2                   3
 *    0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   |                         Magic Number                          |  0   |  Timestamp (seconds)        |  0
 *   |         Major Version         |         Minor Version         |  4   |  Timestamp (ns or us)       |  4
 *   |                      Reserved1 (thiszone)                     |  8   |  Captured Packet Length     |  8
 *   |                      Reserved2 (sigfigs)                      | 12   |  Original Packet Length     | 12
 *   |                            SnapLen                            | 16
 *   | FCS |f|0 0 0 0 0 0 0 0 0 0 0 0 |         LinkType              | 20
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *
 * The magic number, written in the writer's byte order, tells a reader both the byte order and the
 * timestamp resolution: 0xA1B2C3D4 means microseconds, 0xA1B23C4D nanoseconds (section 4).
 *
 * These functions do no I/O and allocate nothing: they fill a caller's buffer and return the offset
 * after what they wrote, or -1 when they refuse (gopacket's pcapgo refuses caplen > len the same way).
 */

/** Timestamps in seconds + microseconds. */
export const PCAP_MAGIC_USEC = 0xa1b2c3d4;
/** Timestamps in seconds + nanoseconds: what we write. */
export const PCAP_MAGIC_NSEC = 0xa1b23c4d;
export const PCAP_VERSION_MAJOR = 2;
export const PCAP_VERSION_MINOR = 4;

/** LINKTYPE_ETHERNET (tcpdump.org link-layer header types): IEEE 802.3 frames, no FCS. */
export const LINKTYPE_ETHERNET = 1;
/**
 * The snap length in our file headers, and the largest frame we store. 262144 is libpcap's and
 * Wireshark's MAXIMUM_SNAPLEN / WTAP_MAX_PACKET_SIZE_STANDARD: a larger caplen makes tshark reject the file.
 */
export const SNAPLEN = 262144;
export const GLOBAL_HEADER_BYTES = 24;
export const RECORD_HEADER_BYTES = 16;

const UINT32_LIMIT = 0x1_0000_0000;
const NSEC_PER_SEC = 1_000_000_000;

/**
 * Write the 24-byte global header at `off`. Returns `off + 24`, or -1 when the link type or snap length
 * does not fit its field.
 */
export function writeGlobalHeader(buf: Buffer, off: number, linktype: number = LINKTYPE_ETHERNET, snaplen: number = SNAPLEN): number {
  if (!(linktype >= 0 && linktype <= 0xffff && Number.isInteger(linktype))) return -1;
  if (!(snaplen > 0 && snaplen < UINT32_LIMIT && Number.isInteger(snaplen))) return -1;
  if (off < 0 || off + GLOBAL_HEADER_BYTES > buf.length) return -1;
  buf.writeUInt32LE(PCAP_MAGIC_NSEC, off);
  buf.writeUInt16LE(PCAP_VERSION_MAJOR, off + 4);
  buf.writeUInt16LE(PCAP_VERSION_MINOR, off + 6);
  // thiszone and sigfigs: always 0 (timestamps are UTC; the draft says both SHOULD be 0).
  buf.writeUInt32LE(0, off + 8);
  buf.writeUInt32LE(0, off + 12);
  buf.writeUInt32LE(snaplen, off + 16);
  // FCS bits clear: our Ethernet frames carry no frame check sequence.
  buf.writeUInt32LE(linktype, off + 20);
  return off + GLOBAL_HEADER_BYTES;
}

/** A fresh 24-byte global header (for the disk queue, which writes it as the first bytes of a file). */
export function globalHeader(linktype: number = LINKTYPE_ETHERNET, snaplen: number = SNAPLEN): Buffer {
  const b = Buffer.alloc(GLOBAL_HEADER_BYTES);
  if (writeGlobalHeader(b, 0, linktype, snaplen) < 0) throw new RangeError(`bad pcap header: linktype ${linktype}, snaplen ${snaplen}`);
  return b;
}

const sharedHeaders = new Map<number, Buffer>();

/**
 * The global header for (linktype, snaplen), one Buffer per pair for the whole process: every capture
 * file's preamble (file-writer.ts). Read only: the disk queue writes and hashes it, nothing writes into it.
 * At 10,000 sessions a fresh one per file was 10,000 Buffers with their own backing stores (~4 MB).
 */
export function sharedGlobalHeader(linktype: number = LINKTYPE_ETHERNET, snaplen: number = SNAPLEN): Buffer {
  const key = linktype * 0x1_0000_0000 + snaplen;
  let h = sharedHeaders.get(key);
  if (h === undefined) {
    h = globalHeader(linktype, snaplen);
    if (sharedHeaders.size < 64) sharedHeaders.set(key, h);
  }
  return h;
}

/**
 * Write a 16-byte record header at `off`. Returns `off + 16`, or -1 when refused:
 * caplen > snaplen, caplen > origLen (the draft: "Captured Packet Length ... will be the minimum of
 * SnapLen and Original Packet Length"), origLen 0 (no frame on the wire is empty, and a zero record is
 * what a crash leaves in a sparse tail, so repair treats it as garbage), or a timestamp outside its field.
 * Callers that have a frame cut short pass its wire length as origLen; the hot path computes
 * origLen = max(caplen, origLen) before calling.
 */
export function writeRecordHeader(
  buf: Buffer,
  off: number,
  tsSec: number,
  tsNsec: number,
  caplen: number,
  origLen: number,
  snaplen: number = SNAPLEN,
): number {
  if (!(caplen >= 0 && caplen <= snaplen && caplen <= origLen && origLen > 0 && origLen < UINT32_LIMIT)) return -1;
  if (!(tsSec >= 0 && tsSec < UINT32_LIMIT && tsNsec >= 0 && tsNsec < NSEC_PER_SEC)) return -1;
  if (off < 0 || off + RECORD_HEADER_BYTES > buf.length) return -1;
  buf.writeUInt32LE(tsSec >>> 0, off);
  buf.writeUInt32LE(tsNsec >>> 0, off + 4);
  buf.writeUInt32LE(caplen >>> 0, off + 8);
  buf.writeUInt32LE(origLen >>> 0, off + 12);
  return off + RECORD_HEADER_BYTES;
}

/** Compare two (seconds, nanoseconds) timestamps: negative, zero or positive. Nanoseconds since the epoch exceed 2^53. */
export function compareTs(aSec: number, aNsec: number, bSec: number, bNsec: number): number {
  return aSec !== bSec ? aSec - bSec : aNsec - bNsec;
}
