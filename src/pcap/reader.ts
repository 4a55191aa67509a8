/**
 * A streaming reader for capture files: classic pcap (both byte orders, microsecond and nanosecond
 * magic) and pcapng (draft-ietf-opsawg-pcapng: sections in either byte order, per-interface link type,
 * if_tsresol and if_tsoffset, Enhanced / Simple / obsolete Packet Blocks; other blocks are skipped).
 *
 * The file is read in large chunks into one reused buffer; every record is handed out through one reused
 * CaptureRecord whose `buf` is that chunk buffer, so its bytes are valid until the next call. A record
 * that spans two chunks is moved to the front of the buffer before the next read, and a record larger than
 * the buffer grows it (up to a hostile-length ceiling). Nothing is allocated per record.
 *
 * Errors: a file whose header is missing, cut short or not pcap/pcapng throws MG_ERR_CAPTURE_FORMAT; an
 * I/O failure throws MG_ERR_CAPTURE_READ. A corrupt or cut record further on is not thrown: iteration
 * stops and `truncated` / `problem` say why, the way tshark reports "cut short in the middle of a packet"
 * after printing every good packet before it.
 *
 * Two front ends share the parser: openCapture() reads with fs.readSync (the CLI), openCaptureAsync()
 * with a FileHandle on the libuv threadpool (the API, which must not block the event loop), or with any
 * ReadHandle it is given (an archived object read from S3 by ranged GETs). Both take a byte limit so the
 * API can read a file still being written up to its last flushed record.
 */
import { closeSync, openSync, readSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { MgError } from '../errors.js';
import { PCAP_MAGIC_NSEC, PCAP_MAGIC_USEC, SNAPLEN } from './format.js';

export const DEFAULT_CHUNK_BYTES = 1024 * 1024;
/**
 * The largest pcapng block we accept, bytes. Wireshark's pcapng reader uses the same 16 MiB ceiling
 * (MAX_BLOCK_SIZE) so a hostile block length cannot make us allocate gigabytes.
 */
export const MAX_BLOCK_BYTES = 16 * 1024 * 1024;

const PCAP_MAGIC_USEC_SWAPPED = 0xd4c3b2a1;
const PCAP_MAGIC_NSEC_SWAPPED = 0x4d3cb2a1;

// pcapng block types (draft-ietf-opsawg-pcapng section 4 and 11.1).
const BT_SHB = 0x0a0d0d0a;
const BT_IDB = 0x00000001;
const BT_PB = 0x00000002; // obsolete Packet Block (appendix A)
const BT_SPB = 0x00000003;
const BT_EPB = 0x00000006;
const PCAPNG_BOM = 0x1a2b3c4d;
const OPT_ENDOFOPT = 0;
const OPT_IF_TSRESOL = 9;
const OPT_IF_TSOFFSET = 14;

export type CaptureFormat = 'pcap' | 'pcapng';

/** One record, reused for every packet. buf[off, off + caplen) are the captured bytes. */
export interface CaptureRecord {
  buf: Buffer;
  off: number;
  caplen: number;
  /** Length on the wire (may exceed caplen when the capture cut the frame). */
  origLen: number;
  tsSec: number;
  tsNsec: number;
  /** LINKTYPE_* of the interface the packet was captured on. */
  linktype: number;
  /** pcapng interface index (0 for classic pcap). */
  interfaceId: number;
}

/**
 * What the asynchronous reader reads through: FileHandle's positional read (position null: go on from
 * the last read) and close. A FileHandle is one; so is an archived object read by ranged GETs.
 */
export interface ReadHandle {
  read(buffer: Buffer, offset: number, length: number, position: number | null): Promise<{ bytesRead: number }>;
  close(): Promise<void>;
}

export interface CaptureReaderOptions {
  /** Read no more than this many bytes of the file (a file still being written, served up to its last flushed record). */
  limitBytes?: number;
  /** Size of the read buffer, bytes. Default 1 MiB. */
  chunkBytes?: number;
  /**
   * Async reader only: keep the next read in flight into a second buffer of the same size while the
   * records of the first are used (memory: twice chunkBytes). A merge of files that interleave packet by
   * packet would otherwise wait for a threadpool round trip each time one of its inputs runs dry.
   */
  readAhead?: boolean;
}

/**
 * Where a capture's bytes come from, for the async reader: positional reads, as FileHandle.read does
 * (a FileHandle is one), so that a file on another node's object store can be read by ranges too.
 */

interface Iface {
  linktype: number;
  snaplen: number;
  /** Timestamp units per second (10^k or 2^k). */
  units: number;
  /** Decimal exponent k when units is 10^k, else -1. */
  dec: number;
  /** Binary exponent k when units is 2^k, else -1. */
  bin: number;
  /** if_tsoffset: seconds added to every timestamp. */
  offsetSec: number;
}

const STEP_RECORD = 1;
const STEP_NEED = 0;
const STEP_END = -1;

/** The parser proper: format state and a chunk buffer; the front ends only move bytes into it. */
class CaptureParser {
  format: CaptureFormat = 'pcap';
  /** Byte order of the file (classic) or the current section (pcapng). */
  littleEndian = true;
  /** Classic pcap: nanosecond timestamps. */
  nanosecond = false;
  /** Classic: header snaplen; pcapng: snaplen of the first interface (0 until one is seen). */
  snaplen = 0;
  /** Classic: header link type; pcapng: link type of the first interface (-1 until one is seen). */
  linktype = -1;
  sections = 0;
  private ifaces: Iface[] = [];
  private maxCaplen = SNAPLEN;

  buf: Buffer;
  start = 0;
  end = 0;
  /** File offset of buf[0]. */
  fileOff = 0;
  eof = false;
  /** Bytes wanted at `start` before the next step can finish. */
  want = 0;
  readonly limit: number;

  readonly record: CaptureRecord;
  packets = 0;
  /** File offset just past the last complete record or block. */
  goodOffset = 0;
  truncated = false;
  problem: string | null = null;
  private done = false;

  constructor(opts: CaptureReaderOptions) {
    const chunk = opts.chunkBytes ?? DEFAULT_CHUNK_BYTES;
    if (!Number.isInteger(chunk) || chunk < 64) throw new RangeError(`chunkBytes ${chunk} is below 64`);
    this.buf = Buffer.allocUnsafeSlow(chunk);
    this.limit = opts.limitBytes ?? Number.POSITIVE_INFINITY;
    this.record = { buf: this.buf, off: 0, caplen: 0, origLen: 0, tsSec: 0, tsNsec: 0, linktype: 0, interfaceId: 0 };
  }

  private u16(o: number): number {
    return this.littleEndian ? this.buf.readUInt16LE(o) : this.buf.readUInt16BE(o);
  }

  private u32(o: number): number {
    return this.littleEndian ? this.buf.readUInt32LE(o) : this.buf.readUInt32BE(o);
  }

  /** Make room so that `want` bytes from `start` fit; returns [offset, length] to read into (length 0: at the limit). */
  prepareRead(): [number, number] {
    if (this.start > 0 && (this.start === this.end || this.start + this.want > this.buf.length)) {
      this.buf.copyWithin(0, this.start, this.end);
      this.end -= this.start;
      this.fileOff += this.start;
      this.start = 0;
    }
    if (this.want > this.buf.length) {
      let size = this.buf.length * 2;
      while (size < this.want) size *= 2;
      const grown = Buffer.allocUnsafeSlow(Math.min(size, MAX_BLOCK_BYTES + 64));
      this.buf.copy(grown, 0, 0, this.end);
      this.buf = grown;
      this.record.buf = grown;
    }
    const room = Math.min(this.buf.length - this.end, this.limit - (this.fileOff + this.end));
    return [this.end, Math.max(0, room)];
  }

  /** File offset of the next byte to read (just past the buffered data). */
  get readPosition(): number {
    return this.fileOff + this.end;
  }

  /**
   * Continue in `next`, whose bytes [at, at + n) are the file's next n bytes (read ahead): the unparsed
   * rest of the current buffer is moved just before them. False (nothing changed) when it does not fit
   * there, or the step in progress would not fit in `next`.
   */
  adopt(next: Buffer, at: number, n: number): boolean {
    const rest = this.end - this.start;
    const from = at - rest;
    if (from < 0 || from + Math.max(this.want, rest + n) > next.length) return false;
    this.buf.copy(next, from, this.start, this.end);
    this.fileOff += this.start - from;
    this.buf = next;
    this.record.buf = next;
    this.start = from;
    this.end = at + n;
    if (n === 0) this.eof = true;
    return true;
  }

  /** Account for n bytes read at the offset prepareRead() gave; 0 means end of file (or of the limit). */
  commitRead(n: number): void {
    if (n === 0) this.eof = true;
    else this.end += n;
  }

  /** Whether another read is needed for the step in progress. */
  get needsData(): boolean {
    return this.end - this.start < this.want && !this.eof;
  }

  private stop(problem: string): number {
    this.done = true;
    this.truncated = true;
    this.problem = problem;
    return STEP_END;
  }

  /** The step needs n bytes at `start`. At the end of the file, nothing left is a clean end; a part of a record is a cut. */
  private need(n: number): number {
    this.want = n;
    if (!this.eof) return STEP_NEED;
    if (this.end === this.start) return this.finish();
    return this.stop(`cut short: ${this.end - this.start} bytes left at offset ${this.fileOff + this.start}, ${n} needed`);
  }

  private finish(): number {
    this.done = true;
    return STEP_END;
  }

  /** Parse the file header. Returns STEP_NEED (read more) or STEP_RECORD (done); throws on a bad header. */
  parseHeader(path: string): number {
    const avail = this.end - this.start;
    if (avail < 4) {
      if (!this.eof) return this.needHeader(4);
      throw new MgError('MG_ERR_CAPTURE_FORMAT', `${path}: ${avail === 0 ? 'empty file' : 'file header cut short'}`);
    }
    const magic = this.buf.readUInt32LE(0);
    if (magic === BT_SHB) {
      this.format = 'pcapng';
      const r = this.shbLength(path);
      if (r < 0) return this.needHeader(-r);
      if (avail < r) {
        if (!this.eof) return this.needHeader(r);
        throw new MgError('MG_ERR_CAPTURE_FORMAT', `${path}: pcapng section header block cut short`);
      }
      const problem = this.parseShb(0, r);
      if (problem !== null) throw new MgError('MG_ERR_CAPTURE_FORMAT', `${path}: ${problem}`);
      this.start = r;
      this.goodOffset = r;
      this.want = 0;
      return STEP_RECORD;
    }
    if (magic === PCAP_MAGIC_USEC || magic === PCAP_MAGIC_NSEC) this.littleEndian = true;
    else if (magic === PCAP_MAGIC_USEC_SWAPPED || magic === PCAP_MAGIC_NSEC_SWAPPED) this.littleEndian = false;
    else throw new MgError('MG_ERR_CAPTURE_FORMAT', `${path}: unknown magic 0x${magic.toString(16).padStart(8, '0')}`);
    if (avail < 24) {
      if (!this.eof) return this.needHeader(24);
      throw new MgError('MG_ERR_CAPTURE_FORMAT', `${path}: pcap file header cut short (${avail} of 24 bytes)`);
    }
    this.nanosecond = magic === PCAP_MAGIC_NSEC || magic === PCAP_MAGIC_NSEC_SWAPPED;
    const major = this.u16(4);
    if (major !== 2) throw new MgError('MG_ERR_CAPTURE_FORMAT', `${path}: pcap version ${major}.${this.u16(6)} (expected 2.x)`);
    this.snaplen = this.u32(16);
    // The low 16 bits are the link type; the top bits can carry an FCS length (draft-ietf-opsawg-pcap section 4).
    this.linktype = this.u32(20) & 0xffff;
    // Wireshark rejects classic records above 262144 bytes for most link types; a bigger header snaplen
    // (some link types allow it) raises our ceiling, never past MAX_BLOCK_BYTES.
    this.maxCaplen = Math.min(Math.max(SNAPLEN, this.snaplen), MAX_BLOCK_BYTES);
    this.start = 24;
    this.goodOffset = 24;
    this.want = 0;
    return STEP_RECORD;
  }

  private needHeader(n: number): number {
    this.want = n;
    return STEP_NEED;
  }

  /** The SHB at `start`: its total length, or -(bytes needed) when not enough is buffered. */
  private shbLength(path: string): number {
    if (this.end - this.start < 12) {
      if (this.eof) throw new MgError('MG_ERR_CAPTURE_FORMAT', `${path}: pcapng section header block cut short`);
      return -12;
    }
    const bom = this.buf.readUInt32LE(this.start + 8);
    if (bom === PCAPNG_BOM) this.littleEndian = true;
    else if (bom === 0x4d3c2b1a) this.littleEndian = false;
    else throw new MgError('MG_ERR_CAPTURE_FORMAT', `${path}: bad pcapng byte-order magic 0x${bom.toString(16)}`);
    const len = this.u32(this.start + 4);
    if (len < 28 || len % 4 !== 0 || len > MAX_BLOCK_BYTES) throw new MgError('MG_ERR_CAPTURE_FORMAT', `${path}: bad pcapng section header block length ${len}`);
    return len;
  }

  /** Check an SHB at `o` of length `len` (fully buffered) and start a new section. Returns a problem or null. */
  private parseShb(o: number, len: number): string | null {
    if (this.u32(o + len - 4) !== len) return `pcapng section header block lengths disagree at offset ${this.fileOff + o}`;
    const major = this.u16(o + 12);
    if (major !== 1) return `pcapng version ${major}.${this.u16(o + 14)} (expected 1.x)`;
    this.ifaces = [];
    this.sections++;
    return null;
  }

  /** Advance to the next record. STEP_RECORD: `record` is filled; STEP_NEED: read more; STEP_END: finished. */
  step(): number {
    if (this.done) return STEP_END;
    return this.format === 'pcap' ? this.stepPcap() : this.stepPcapng();
  }

  private stepPcap(): number {
    const s = this.start;
    const avail = this.end - s;
    if (avail < 16) return this.need(16);
    // The per-record path of every merge: the byte order is read once, not per field.
    const b = this.buf;
    const le = this.littleEndian;
    const caplen = le ? b.readUInt32LE(s + 8) : b.readUInt32BE(s + 8);
    if (caplen > this.maxCaplen) return this.stop(`record at offset ${this.fileOff + s} has caplen ${caplen}, more than ${this.maxCaplen}`);
    const total = 16 + caplen;
    if (avail < total) return this.need(total);
    const rec = this.record;
    rec.tsSec = le ? b.readUInt32LE(s) : b.readUInt32BE(s);
    const frac = le ? b.readUInt32LE(s + 4) : b.readUInt32BE(s + 4);
    rec.tsNsec = this.nanosecond ? frac : frac * 1000;
    rec.caplen = caplen;
    rec.origLen = le ? b.readUInt32LE(s + 12) : b.readUInt32BE(s + 12);
    rec.off = s + 16;
    rec.linktype = this.linktype;
    rec.interfaceId = 0;
    this.start = s + total;
    this.goodOffset = this.fileOff + this.start;
    this.want = 0;
    this.packets++;
    return STEP_RECORD;
  }

  private stepPcapng(): number {
    for (;;) {
      const s = this.start;
      const avail = this.end - s;
      if (avail < 12) return this.need(12);
      let type = this.buf.readUInt32LE(s);
      if (type === BT_SHB) {
        // A new section may switch byte order: the BOM decides how to read its length.
        const bom = this.buf.readUInt32LE(s + 8);
        if (bom === PCAPNG_BOM) this.littleEndian = true;
        else if (bom === 0x4d3c2b1a) this.littleEndian = false;
        else return this.stop(`bad pcapng byte-order magic at offset ${this.fileOff + s}`);
      } else {
        type = this.u32(s);
      }
      const len = this.u32(s + 4);
      if (len < 12 || len % 4 !== 0 || len > MAX_BLOCK_BYTES) return this.stop(`bad pcapng block length ${len} at offset ${this.fileOff + s}`);
      if (avail < len) return this.need(len);
      if (this.u32(s + len - 4) !== len) return this.stop(`pcapng block lengths disagree at offset ${this.fileOff + s}`);
      let got = false;
      let problem: string | null = null;
      switch (type) {
        case BT_SHB:
          problem = len < 28 ? `pcapng section header block too short at offset ${this.fileOff + s}` : this.parseShb(s, len);
          break;
        case BT_IDB:
          problem = this.parseIdb(s, len);
          break;
        case BT_EPB:
          problem = this.parseEpb(s, len);
          got = problem === null;
          break;
        case BT_SPB:
          problem = this.parseSpb(s, len);
          got = problem === null;
          break;
        case BT_PB:
          problem = this.parsePb(s, len);
          got = problem === null;
          break;
        default:
          // Name resolution, statistics, decryption secrets, custom blocks ...: not ours to read.
          break;
      }
      if (problem !== null) return this.stop(problem);
      this.start = s + len;
      this.goodOffset = this.fileOff + this.start;
      this.want = 0;
      if (got) {
        this.packets++;
        return STEP_RECORD;
      }
    }
  }

  private parseIdb(s: number, len: number): string | null {
    if (len < 20) return `pcapng interface description block too short at offset ${this.fileOff + s}`;
    const iface: Iface = { linktype: this.u16(s + 8), snaplen: this.u32(s + 12), units: 1e6, dec: 6, bin: -1, offsetSec: 0 };
    // Options (section 3.5): code, length, value padded to 32 bits, until opt_endofopt or the block end.
    let o = s + 16;
    const optEnd = s + len - 4;
    while (o + 4 <= optEnd) {
      const code = this.u16(o);
      const olen = this.u16(o + 2);
      if (code === OPT_ENDOFOPT) break;
      if (o + 4 + olen > optEnd) return `pcapng interface option overruns its block at offset ${this.fileOff + o}`;
      if (code === OPT_IF_TSRESOL && olen >= 1) {
        // Section 4.2: MSB clear, 10^-v seconds; MSB set, 2^-(v & 0x7f) seconds.
        const v = this.buf[o + 4]!;
        if (v & 0x80) {
          iface.bin = v & 0x7f;
          iface.dec = -1;
          iface.units = 2 ** iface.bin;
        } else {
          iface.dec = v;
          iface.bin = -1;
          iface.units = 10 ** v;
        }
        if (iface.dec > 18 || iface.bin > 63) return `pcapng if_tsresol ${v} out of range at offset ${this.fileOff + o}`;
      } else if (code === OPT_IF_TSOFFSET && olen >= 8) {
        iface.offsetSec = Number(this.littleEndian ? this.buf.readBigInt64LE(o + 4) : this.buf.readBigInt64BE(o + 4));
      }
      o += 4 + ((olen + 3) & ~3);
    }
    this.ifaces.push(iface);
    if (this.linktype < 0) {
      this.linktype = iface.linktype;
      this.snaplen = iface.snaplen;
    }
    return null;
  }

  private setTs(iface: Iface, hi: number, lo: number): void {
    const rec = this.record;
    const u = iface.units;
    let sec: number;
    let rem: number;
    if (u <= 0x1_0000_0000) {
      // Long division of the 64-bit count by u in 16-bit limbs: every intermediate stays below 2^48,
      // so it is exact in a double (the count itself can exceed 2^53 at nanosecond resolution).
      let q = 0;
      let r = 0;
      for (let i = 0; i < 4; i++) {
        const limb = i === 0 ? hi >>> 16 : i === 1 ? hi & 0xffff : i === 2 ? lo >>> 16 : lo & 0xffff;
        const x = r * 65536 + limb;
        let d = Math.floor(x / u);
        r = x - d * u;
        if (r < 0) {
          d--;
          r += u;
        } else if (r >= u) {
          d++;
          r -= u;
        }
        q = q * 65536 + d;
      }
      sec = q;
      rem = r;
      if (iface.dec >= 0) rec.tsNsec = iface.dec <= 9 ? rem * 10 ** (9 - iface.dec) : Math.floor(rem / 10 ** (iface.dec - 9));
      // 1e9 = 2^9 * 1953125, so rem * 1e9 / 2^k = rem * 1953125 / 2^(k-9) with every product below 2^53.
      else rec.tsNsec = iface.bin >= 9 ? Math.floor((rem * 1953125) / 2 ** (iface.bin - 9)) : rem * 1953125 * 2 ** (9 - iface.bin);
    } else {
      const t = (BigInt(hi) << 32n) | BigInt(lo);
      const ub = iface.dec >= 0 ? 10n ** BigInt(iface.dec) : 1n << BigInt(iface.bin);
      sec = Number(t / ub);
      rec.tsNsec = Number(((t % ub) * 1_000_000_000n) / ub);
    }
    rec.tsSec = sec + iface.offsetSec;
  }

  private iface(id: number, s: number): Iface | string {
    const f = this.ifaces[id];
    return f ?? `packet at offset ${this.fileOff + s} names interface ${id}, but the section has ${this.ifaces.length}`;
  }

  private parseEpb(s: number, len: number): string | null {
    if (len < 32) return `pcapng enhanced packet block too short at offset ${this.fileOff + s}`;
    const id = this.u32(s + 8);
    const f = this.iface(id, s);
    if (typeof f === 'string') return f;
    const caplen = this.u32(s + 20);
    if (28 + caplen + 4 > len) return `pcapng packet at offset ${this.fileOff + s} has caplen ${caplen}, more than its block holds`;
    this.setTs(f, this.u32(s + 12), this.u32(s + 16));
    this.fillRecord(s + 28, caplen, this.u32(s + 24), f, id);
    return null;
  }

  private parsePb(s: number, len: number): string | null {
    if (len < 32) return `pcapng packet block too short at offset ${this.fileOff + s}`;
    const id = this.u16(s + 8);
    const f = this.iface(id, s);
    if (typeof f === 'string') return f;
    const caplen = this.u32(s + 20);
    if (28 + caplen + 4 > len) return `pcapng packet at offset ${this.fileOff + s} has caplen ${caplen}, more than its block holds`;
    this.setTs(f, this.u32(s + 12), this.u32(s + 16));
    this.fillRecord(s + 28, caplen, this.u32(s + 24), f, id);
    return null;
  }

  private parseSpb(s: number, len: number): string | null {
    if (len < 16) return `pcapng simple packet block too short at offset ${this.fileOff + s}`;
    const f = this.iface(0, s);
    if (typeof f === 'string') return f;
    const origLen = this.u32(s + 8);
    // Section 4.4: the captured length is the smaller of the original length and the interface's
    // snaplen; the block's own size bounds it too. There is no timestamp.
    let caplen = Math.min(origLen, len - 16);
    if (f.snaplen > 0) caplen = Math.min(caplen, f.snaplen);
    this.record.tsSec = 0;
    this.record.tsNsec = 0;
    this.fillRecord(s + 12, caplen, origLen, f, 0);
    return null;
  }

  private fillRecord(off: number, caplen: number, origLen: number, f: Iface, id: number): void {
    const rec = this.record;
    rec.off = off;
    rec.caplen = caplen;
    rec.origLen = origLen;
    rec.linktype = f.linktype;
    rec.interfaceId = id;
  }
}

/** Shared read-only view of a reader's state. */
abstract class ReaderBase {
  protected readonly p: CaptureParser;
  readonly path: string;

  constructor(path: string, p: CaptureParser) {
    this.path = path;
    this.p = p;
  }

  get format(): CaptureFormat {
    return this.p.format;
  }
  /** The reused record filled by every successful next(). */
  get record(): CaptureRecord {
    return this.p.record;
  }
  /** Classic: the header link type. pcapng: the first interface's (-1 until one was read). */
  get linktype(): number {
    return this.p.linktype;
  }
  get snaplen(): number {
    return this.p.snaplen;
  }
  /** Classic pcap with the nanosecond magic. */
  get nanosecond(): boolean {
    return this.p.nanosecond;
  }
  get littleEndian(): boolean {
    return this.p.littleEndian;
  }
  /** Records returned so far. */
  get packets(): number {
    return this.p.packets;
  }
  /** True when iteration stopped at a corrupt or cut record rather than at the end of the file. */
  get truncated(): boolean {
    return this.p.truncated;
  }
  /** Why iteration stopped early, or null. */
  get problem(): string | null {
    return this.p.problem;
  }
  /** File offset just past the last complete record (or pcapng block). */
  get goodOffset(): number {
    return this.p.goodOffset;
  }
}

export class CaptureReader extends ReaderBase {
  private fd: number;

  /** @internal use openCapture() */
  constructor(path: string, fd: number, p: CaptureParser) {
    super(path, p);
    this.fd = fd;
  }

  /** @internal */
  fill(): void {
    const p = this.p;
    while (p.needsData) {
      const [off, len] = p.prepareRead();
      let n = 0;
      if (len > 0) {
        try {
          n = readSync(this.fd, p.buf, off, len, null);
        } catch (e) {
          throw new MgError('MG_ERR_CAPTURE_READ', `${this.path}: ${(e as Error).message}`, { cause: e });
        }
      }
      p.commitRead(n);
    }
  }

  /** Fill `record` with the next packet. False at the end of the file or at a corrupt record (see truncated). */
  next(): boolean {
    for (;;) {
      const r = this.p.step();
      if (r === STEP_RECORD) return true;
      if (r === STEP_END) return false;
      this.fill();
    }
  }

  close(): void {
    if (this.fd >= 0) {
      closeSync(this.fd);
      this.fd = -1;
    }
  }

  *[Symbol.iterator](): IterableIterator<CaptureRecord> {
    try {
      while (this.next()) yield this.p.record;
    } finally {
      this.close();
    }
  }
}

export class AsyncCaptureReader extends ReaderBase {
  private fh: ReadHandle | null;
  /** Read-ahead: the second buffer, and the read in flight into it at [aheadAt, ...) for file offset aheadPos. */
  private spare: Buffer | null;
  private ahead: Promise<number> | null = null;
  private aheadAt = 0;
  private aheadPos = 0;
  /** Bytes read from the source so far, read-ahead included. */
  bytesRead = 0;

  /** @internal use openCaptureAsync() */
  constructor(path: string, fh: ReadHandle, p: CaptureParser, readAhead = false) {
    super(path, p);
    this.fh = fh;
    this.spare = readAhead ? Buffer.allocUnsafeSlow(p.buf.length) : null;
  }

  private async readAt(buf: Buffer, off: number, len: number, position: number): Promise<number> {
    if (this.fh === null) throw new MgError('MG_ERR_CAPTURE_READ', `${this.path}: reader is closed`);
    try {
      const n = (await this.fh.read(buf, off, len, position)).bytesRead;
      this.bytesRead += n;
      return n;
    } catch (e) {
      throw new MgError('MG_ERR_CAPTURE_READ', `${this.path}: ${(e as Error).message}`, { cause: e });
    }
  }

  /** Read until the step in progress has its bytes (or the file ends). */
  async fill(): Promise<void> {
    const p = this.p;
    while (p.needsData) {
      const ahead = this.ahead;
      if (ahead !== null) {
        this.ahead = null;
        const n = await ahead;
        // The read ahead continues where the buffer ends; when the rest does not fit before it (a record
        // larger than the space kept for it), it is read again below, the plain way.
        if (this.aheadPos === p.readPosition && this.spare !== null) {
          const old = p.buf;
          if (p.adopt(this.spare, this.aheadAt, n)) {
            this.spare = old.length === this.spare.length ? old : null;
            continue;
          }
        }
      }
      const [off, len] = p.prepareRead();
      const n = len > 0 ? await this.readAt(p.buf, off, len, p.readPosition) : 0;
      p.commitRead(n);
    }
    this.readAhead();
  }

  /**
   * Start reading the bytes after the buffer's into the spare one, past room for the unparsed rest of
   * the current buffer (an eighth of it: a record cut at the buffer's end is usually much smaller).
   */
  private readAhead(): void {
    const p = this.p;
    const spare = this.spare;
    if (spare === null || this.ahead !== null || p.eof || this.fh === null) return;
    const at = spare.length >> 3;
    const pos = p.readPosition;
    const len = Math.min(spare.length - at, p.limit - pos);
    if (len <= 0) return;
    this.aheadAt = at;
    this.aheadPos = pos;
    const r = this.readAt(spare, at, len, pos);
    // Awaited by the next fill(); a reader closed first must not leave it unhandled.
    r.catch(() => undefined);
    this.ahead = r;
  }

  /**
   * @internal For the merge's native step (src/pcap/merge.ts MergeOptions.mergeStep): where the valid
   * bytes of the read buffer (`record.buf`) end.
   */
  get bufferEnd(): number {
    return this.p.end;
  }

  /**
   * @internal For the merge's native step: go on parsing at `at` in the read buffer, a record boundary
   * at or after the current position, `records` more records having been read (by the step) in between.
   * The next tryNext() parses the record at `at`.
   */
  resumeAt(at: number, records: number): void {
    const p = this.p;
    if (!(at >= p.start && at <= p.end)) throw new RangeError(`resumeAt(${at}) outside [${p.start}, ${p.end}]`);
    p.start = at;
    p.goodOffset = p.fileOff + at;
    p.want = 0;
    p.packets += records;
  }

  /**
   * The next packet from what is already buffered, without I/O: true (record filled), false (no more
   * packets), or null (call fill() first). Lets a merge of many files avoid a promise per record.
   */
  tryNext(): boolean | null {
    const r = this.p.step();
    return r === STEP_RECORD ? true : r === STEP_END ? false : null;
  }

  async next(): Promise<boolean> {
    for (;;) {
      const r = this.tryNext();
      if (r !== null) return r;
      await this.fill();
    }
  }

  async close(): Promise<void> {
    const fh = this.fh;
    this.fh = null;
    const ahead = this.ahead;
    this.ahead = null;
    // The source stays open until the read in flight is done with it.
    if (ahead !== null) await ahead.catch(() => undefined);
    if (fh !== null) await fh.close();
  }

  async *[Symbol.asyncIterator](): AsyncIterableIterator<CaptureRecord> {
    try {
      while (await this.next()) yield this.p.record;
    } finally {
      await this.close();
    }
  }
}

/** Open a capture file for synchronous chunked reading. Throws MG_ERR_CAPTURE_READ / MG_ERR_CAPTURE_FORMAT. */
export function openCapture(path: string, opts: CaptureReaderOptions = {}): CaptureReader {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (e) {
    throw new MgError('MG_ERR_CAPTURE_READ', `${path}: ${(e as Error).message}`, { cause: e });
  }
  const reader = new CaptureReader(path, fd, new CaptureParser(opts));
  try {
    const p = reader['p'];
    while (p.parseHeader(path) === STEP_NEED) reader.fill();
  } catch (e) {
    reader.close();
    throw e;
  }
  return reader;
}

/**
 * Open a capture file for asynchronous reading (FileHandle reads on the threadpool), or, with `openHandle`,
 * whatever it opens (`path` is then only its name in errors and stats). Rejects like openCapture throws.
 */
export async function openCaptureAsync(path: string, opts: CaptureReaderOptions = {}, openHandle?: () => Promise<ReadHandle>): Promise<AsyncCaptureReader> {
  let fh: ReadHandle;
  try {
    fh = openHandle !== undefined ? await openHandle() : await open(path, 'r');
  } catch (e) {
    if (e instanceof MgError) throw e;
    throw new MgError('MG_ERR_CAPTURE_READ', `${path}: ${(e as Error).message}`, { cause: e });
  }
  return openCaptureSource(path, fh, opts);
}

/**
 * Read a capture from any ReadHandle (a file of another node, read by ranges from the object store);
 * `name` is what errors and `path` say. Rejects like openCaptureAsync, and closes the source then.
 */
export async function openCaptureSource(name: string, source: ReadHandle, opts: CaptureReaderOptions = {}): Promise<AsyncCaptureReader> {
  const reader = new AsyncCaptureReader(name, source, new CaptureParser(opts), opts.readAhead === true);
  try {
    const p = reader['p'];
    while (p.parseHeader(name) === STEP_NEED) await reader.fill();
  } catch (e) {
    await reader.close();
    throw e;
  }
  return reader;
}
