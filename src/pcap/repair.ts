/**
 * Crash repair for the PCAP files we write. A file left open by a crash or kill -9 ends wherever the
 * last write stopped: usually on a record boundary (the writer only writes whole buffers of whole
 * records), but a write cut by the kernel, a power loss or a full disk can leave a partial record or a
 * zero-filled tail. Repair keeps the longest prefix of whole, plausible records and cuts the rest:
 *
 * 1. Header: a file shorter than 24 bytes (created, header not yet on disk) or whose first 24 bytes are
 *    all zero (a power loss on some filesystems) gets a complete header (nanosecond magic, the given
 *    link type, snaplen 262144). Otherwise the file must start with a classic pcap header; anything else
 *    is refused (MG_ERR_CAPTURE_FORMAT) rather than clobbered.
 * 2. Records are walked in order. The walk stops at a record cut by the end of the file, or at an
 *    impossible header: caplen above the header's snaplen or 262144, caplen above the wire length,
 *    a wire length of 0 (what a zero-filled tail reads as), or a fraction of a second >= 1 s. Those
 *    checks are stricter than a general reader's, on purpose: our writer never writes such a record.
 * 3. The file is truncated after the last good record and fsynced; the result carries its packet count,
 *    size, time range and SHA-256 (computed during the walk), ready for the catalog.
 *
 * Every repaired file opens in tshark without an error (test/pcap/repair.test.ts cuts files at every byte).
 */
import { createHash, type Hash } from 'node:crypto';
import { open, type FileHandle } from 'node:fs/promises';
import { MgError } from '../errors.js';
import { GLOBAL_HEADER_BYTES, globalHeader, LINKTYPE_ETHERNET, PCAP_MAGIC_NSEC, PCAP_MAGIC_USEC, RECORD_HEADER_BYTES, SNAPLEN } from './format.js';

const CHUNK_BYTES = 1024 * 1024;
const MAGICS_LE = [PCAP_MAGIC_USEC, PCAP_MAGIC_NSEC];
const MAGICS_BE = [0xd4c3b2a1, 0x4d3cb2a1];

export interface RepairOptions {
  /** Link type for a header that has to be rewritten (a file shorter than 24 bytes). Default Ethernet. */
  linktype?: number;
}

export interface RepairResult {
  path: string;
  /** Records kept. */
  packets: number;
  /** File size after repair. */
  bytes: number;
  /** Bytes cut from the end (0 when the file was already whole). */
  truncatedBytes: number;
  /** The header was missing, cut short or zero-filled, and was written afresh. */
  headerRewritten: boolean;
  /** Why the walk stopped before the end of the file, or null. */
  reason: string | null;
  linktype: number;
  /** Earliest and latest record timestamps (0 when packets is 0). */
  firstSec: number;
  firstNsec: number;
  lastSec: number;
  lastNsec: number;
  /** Hex SHA-256 of the repaired file. */
  sha256: string;
}

/** The record walk over buffered bytes. */
class Walk {
  buf = Buffer.allocUnsafeSlow(CHUNK_BYTES + SNAPLEN + RECORD_HEADER_BYTES);
  /** Buffered bytes are buf[0, end), starting at file offset fileOff. */
  end = 0;
  fileOff = 0;
  packets = 0;
  reason: string | null = null;
  readonly hash: Hash = createHash('sha256');
  minSec = 0;
  minNsec = 0;
  maxSec = 0;
  maxNsec = 0;
  le = true;
  fracLimit = 1e9;
  maxCaplen = SNAPLEN;
  linktype = LINKTYPE_ETHERNET;

  /** Check the 24-byte header in buf[0, 24). Returns a problem or null. */
  header(): string | null {
    const m = this.buf.readUInt32LE(0);
    if (MAGICS_LE.includes(m)) this.le = true;
    else if (MAGICS_BE.includes(m)) this.le = false;
    else return `not a pcap file (magic 0x${m.toString(16).padStart(8, '0')})`;
    this.fracLimit = m === PCAP_MAGIC_NSEC || m === 0x4d3cb2a1 ? 1e9 : 1e6;
    const major = this.u16(4);
    if (major !== 2) return `pcap version ${major} (expected 2)`;
    const snaplen = this.u32(16);
    this.maxCaplen = snaplen > 0 ? Math.min(snaplen, SNAPLEN) : SNAPLEN;
    this.linktype = this.u32(20) & 0xffff;
    return null;
  }

  private u16(o: number): number {
    return this.le ? this.buf.readUInt16LE(o) : this.buf.readUInt16BE(o);
  }

  private u32(o: number): number {
    return this.le ? this.buf.readUInt32LE(o) : this.buf.readUInt32BE(o);
  }

  /**
   * Walk the whole records in buf[from, end). Returns the offset just past the last whole record, and
   * sets `reason` when an impossible header ends the walk. Bytes before the returned offset are hashed.
   */
  records(from: number): number {
    let o = from;
    while (this.end - o >= RECORD_HEADER_BYTES) {
      const sec = this.u32(o);
      const frac = this.u32(o + 4);
      const caplen = this.u32(o + 8);
      const len = this.u32(o + 12);
      const at = this.fileOff + o;
      if (caplen > this.maxCaplen) this.reason = `record at offset ${at}: caplen ${caplen} above snaplen ${this.maxCaplen}`;
      else if (len === 0) this.reason = `record at offset ${at}: zero wire length (a zero-filled tail)`;
      else if (caplen > len) this.reason = `record at offset ${at}: caplen ${caplen} above wire length ${len}`;
      else if (frac >= this.fracLimit) this.reason = `record at offset ${at}: timestamp fraction ${frac} out of range`;
      if (this.reason !== null) break;
      if (this.end - o < RECORD_HEADER_BYTES + caplen) break;
      const nsec = this.fracLimit === 1e9 ? frac : frac * 1000;
      if (this.packets === 0 || sec < this.minSec || (sec === this.minSec && nsec < this.minNsec)) {
        this.minSec = sec;
        this.minNsec = nsec;
      }
      if (this.packets === 0 || sec > this.maxSec || (sec === this.maxSec && nsec > this.maxNsec)) {
        this.maxSec = sec;
        this.maxNsec = nsec;
      }
      this.packets++;
      o += RECORD_HEADER_BYTES + caplen;
    }
    this.hash.update(this.buf.subarray(from, o));
    return o;
  }

  /** Move buf[from, end) to the front before the next read. */
  compact(from: number): void {
    this.buf.copyWithin(0, from, this.end);
    this.fileOff += from;
    this.end -= from;
  }

  result(path: string, bytes: number, truncatedBytes: number, headerRewritten: boolean): RepairResult {
    return {
      path,
      packets: this.packets,
      bytes,
      truncatedBytes,
      headerRewritten,
      reason: this.reason,
      linktype: this.linktype,
      firstSec: this.minSec,
      firstNsec: this.minNsec,
      lastSec: this.maxSec,
      lastNsec: this.maxNsec,
      sha256: this.hash.digest('hex'),
    };
  }
}

function formatError(path: string, problem: string): MgError {
  return new MgError('MG_ERR_CAPTURE_FORMAT', `${path}: ${problem}; not repairing it`);
}

function readError(path: string, e: unknown): MgError {
  return new MgError('MG_ERR_CAPTURE_READ', `${path}: ${(e as Error).message}`, { cause: e });
}

/** The first bytes of a classic pcap file, in either byte order and resolution. */
const MAGIC_BYTES: readonly Buffer[] = [...MAGICS_LE, ...MAGICS_BE].map((m) => {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(m);
  return b;
});

/** A zero-filled header is what some filesystems leave after a power loss: no one's data, safe to rewrite. */
function isZero(b: Buffer, n: number): boolean {
  for (let i = 0; i < n; i++) if (b[i] !== 0) return false;
  return true;
}

/** A header cut short must at least start like a pcap magic, or we refuse to touch the file. */
function looksLikeShortHeader(b: Buffer, n: number): boolean {
  const k = Math.min(n, 4);
  return MAGIC_BYTES.some((m) => m.subarray(0, k).equals(b.subarray(0, k)));
}

/** Repair a PCAP file in place without blocking the event loop (reads on the libuv threadpool). */
export async function repairPcap(path: string, opts: RepairOptions = {}): Promise<RepairResult> {
  let fh: FileHandle;
  try {
    fh = await open(path, 'r+');
  } catch (e) {
    throw readError(path, e);
  }
  try {
    const size = (await fh.stat()).size;
    const w = new Walk();
    if (size < GLOBAL_HEADER_BYTES) {
      const n = size > 0 ? (await fh.read(w.buf, 0, size, 0)).bytesRead : 0;
      if (!looksLikeShortHeader(w.buf, n)) throw formatError(path, `${size}-byte file with no pcap magic`);
      const h = globalHeader(opts.linktype ?? LINKTYPE_ETHERNET);
      await fh.write(h, 0, h.length, 0);
      await fh.truncate(h.length);
      await fh.sync();
      w.linktype = opts.linktype ?? LINKTYPE_ETHERNET;
      w.hash.update(h);
      return w.result(path, h.length, 0, true);
    }
    w.end = (await fh.read(w.buf, 0, GLOBAL_HEADER_BYTES, 0)).bytesRead;
    const zeroHeader = isZero(w.buf, GLOBAL_HEADER_BYTES);
    if (zeroHeader) {
      const h = globalHeader(opts.linktype ?? LINKTYPE_ETHERNET);
      await fh.write(h, 0, h.length, 0);
      h.copy(w.buf);
    }
    const problem = w.header();
    if (problem !== null) throw formatError(path, problem);
    w.hash.update(w.buf.subarray(0, GLOBAL_HEADER_BYTES));
    w.compact(GLOBAL_HEADER_BYTES);
    let good = GLOBAL_HEADER_BYTES;
    for (;;) {
      const pos = w.fileOff + w.end;
      const n = pos < size ? (await fh.read(w.buf, w.end, Math.min(CHUNK_BYTES, size - pos), pos)).bytesRead : 0;
      w.end += n;
      const o = w.records(0);
      good = w.fileOff + o;
      if (w.reason !== null || n === 0) break;
      w.compact(o);
    }
    if (good < size) {
      await fh.truncate(good);
      if (w.reason === null) w.reason = `last record cut short at offset ${good}`;
    }
    await fh.sync();
    return w.result(path, good, size - good, zeroHeader);
  } catch (e) {
    if (e instanceof MgError) throw e;
    throw readError(path, e);
  } finally {
    await fh.close();
  }
}
