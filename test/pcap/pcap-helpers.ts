/**
 * Builders for the PCAP tests: deterministic Ethernet frames, classic pcap files in either byte order
 * and resolution, and pcapng files block by block (so byte orders, if_tsresol and the rarer block types
 * can be produced exactly), plus small digest helpers to compare with tshark.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { tsharkFields } from '../helpers/oracles.js';

/** An Ethernet II frame of `len` bytes whose payload encodes `seq`, so every frame differs. */
export function frame(seq: number, len = 64): Buffer {
  const b = Buffer.alloc(len);
  // dst 02:00:00:00:00:01, src 02:00:00:00:00:02 (locally administered), EtherType 0x88b5 (local experimental).
  Buffer.from([0x02, 0, 0, 0, 0, 0x01, 0x02, 0, 0, 0, 0, 0x02, 0x88, 0xb5]).copy(b, 0, 0, Math.min(14, len));
  for (let i = 14; i < len; i++) b[i] = (seq * 31 + i * 7) & 0xff;
  if (len >= 18) b.writeUInt32BE(seq >>> 0, 14);
  return b;
}

export function md5(b: Buffer): string {
  return createHash('md5').update(b).digest('hex');
}

export function sha256File(path: string): string {
  return createHash('sha256').update(readFileSync(path)).digest('hex');
}

export interface Rec {
  tsSec: number;
  tsNsec: number;
  data: Buffer;
  /** Wire length; defaults to data.length. */
  origLen?: number;
}

/** A classic pcap file. resolution 'ns' or 'us' (nanoseconds are rounded down for 'us'). */
export function buildPcap(recs: Rec[], opts: { bigEndian?: boolean; resolution?: 'ns' | 'us'; linktype?: number; snaplen?: number } = {}): Buffer {
  const be = opts.bigEndian ?? false;
  const us = opts.resolution === 'us';
  const parts: Buffer[] = [];
  const h = Buffer.alloc(24);
  const w32 = (b: Buffer, v: number, o: number) => (be ? b.writeUInt32BE(v >>> 0, o) : b.writeUInt32LE(v >>> 0, o));
  const w16 = (b: Buffer, v: number, o: number) => (be ? b.writeUInt16BE(v, o) : b.writeUInt16LE(v, o));
  w32(h, us ? 0xa1b2c3d4 : 0xa1b23c4d, 0);
  w16(h, 2, 4);
  w16(h, 4, 6);
  w32(h, opts.snaplen ?? 262144, 16);
  w32(h, opts.linktype ?? 1, 20);
  parts.push(h);
  for (const r of recs) {
    const rh = Buffer.alloc(16);
    w32(rh, r.tsSec, 0);
    w32(rh, us ? Math.floor(r.tsNsec / 1000) : r.tsNsec, 4);
    w32(rh, r.data.length, 8);
    w32(rh, r.origLen ?? r.data.length, 12);
    parts.push(rh, r.data);
  }
  return Buffer.concat(parts);
}

/** pcapng, one block at a time. */
export class PcapngBuilder {
  private readonly parts: Buffer[] = [];
  private be = false;

  private u32(v: number): Buffer {
    const b = Buffer.alloc(4);
    if (this.be) b.writeUInt32BE(v >>> 0);
    else b.writeUInt32LE(v >>> 0);
    return b;
  }

  private u16(v: number): Buffer {
    const b = Buffer.alloc(2);
    if (this.be) b.writeUInt16BE(v);
    else b.writeUInt16LE(v);
    return b;
  }

  private pad(b: Buffer): Buffer {
    const n = (4 - (b.length % 4)) % 4;
    return n === 0 ? b : Buffer.concat([b, Buffer.alloc(n)]);
  }

  private option(code: number, value: Buffer): Buffer {
    return Buffer.concat([this.u16(code), this.u16(value.length), this.pad(value)]);
  }

  /** A block of `type` with `body` (already padded), its two length fields around it. */
  block(type: number, body: Buffer, opts: { lengthOverride?: number; trailerOverride?: number } = {}): this {
    const len = 12 + body.length;
    this.parts.push(this.u32(type), this.u32(opts.lengthOverride ?? len), body, this.u32(opts.trailerOverride ?? len));
    return this;
  }

  /** Section Header Block; sets the byte order of the following blocks. */
  shb(bigEndian = false): this {
    this.be = bigEndian;
    const body = Buffer.concat([this.u32(0x1a2b3c4d), this.u16(1), this.u16(0), Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff])]);
    // The SHB type is a palindrome, so it reads the same in both orders.
    return this.block(0x0a0d0d0a, body);
  }

  /** Interface Description Block. tsresol: the raw if_tsresol byte (omit for the default microseconds). */
  idb(linktype = 1, snaplen = 262144, opt: { tsresol?: number; tsoffset?: bigint } = {}): this {
    const opts: Buffer[] = [];
    if (opt.tsresol !== undefined) opts.push(this.option(9, Buffer.from([opt.tsresol])));
    if (opt.tsoffset !== undefined) {
      const v = Buffer.alloc(8);
      if (this.be) v.writeBigInt64BE(opt.tsoffset);
      else v.writeBigInt64LE(opt.tsoffset);
      opts.push(this.option(14, v));
    }
    if (opts.length > 0) opts.push(this.u32(0));
    return this.block(1, Buffer.concat([this.u16(linktype), this.u16(0), this.u32(snaplen), ...opts]));
  }

  /** Enhanced Packet Block with a raw 64-bit timestamp in the interface's units. */
  epb(iface: number, ts: bigint, data: Buffer, origLen = data.length, caplen = data.length): this {
    return this.block(
      6,
      Buffer.concat([this.u32(iface), this.u32(Number(ts >> 32n)), this.u32(Number(ts & 0xffffffffn)), this.u32(caplen), this.u32(origLen), this.pad(data)]),
    );
  }

  /** Simple Packet Block (no timestamp, interface 0). */
  spb(data: Buffer, origLen = data.length): this {
    return this.block(3, Buffer.concat([this.u32(origLen), this.pad(data)]));
  }

  /** The obsolete Packet Block (appendix A of the pcapng draft). */
  pb(iface: number, ts: bigint, data: Buffer, origLen = data.length): this {
    return this.block(
      2,
      Buffer.concat([this.u16(iface), this.u16(0), this.u32(Number(ts >> 32n)), this.u32(Number(ts & 0xffffffffn)), this.u32(data.length), this.u32(origLen), this.pad(data)]),
    );
  }

  /** Append raw bytes (for corrupt-file tests). */
  raw(b: Buffer): this {
    this.parts.push(b);
    return this;
  }

  build(): Buffer {
    return Buffer.concat(this.parts);
  }
}

export interface TsharkFrame {
  md5: string;
  len: number;
  capLen: number;
  /** frame.time_epoch as tshark prints it: seconds, a dot, 9 digits. */
  epoch: string;
}

/** One tshark run: per-frame MD5, wire and captured lengths, and the epoch timestamp. */
export function tsharkFrames(file: string): TsharkFrame[] {
  return tsharkFields(file, ['frame.md5_hash', 'frame.len', 'frame.cap_len', 'frame.time_epoch'], ['-o', 'frame.generate_md5_hash:TRUE']).map(
    ([m, len, cap, epoch]) => ({ md5: m!, len: Number(len), capLen: Number(cap), epoch: epoch! }),
  );
}

/** tshark's frame.time_epoch format for a (sec, nsec) pair. */
export function epochString(sec: number, nsec: number): string {
  return `${sec}.${String(nsec).padStart(9, '0')}`;
}
