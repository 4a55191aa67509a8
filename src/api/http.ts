/**
 * HTTP details of evidence downloads: byte ranges and validators (RFC 9110 sections 13 and 14), safe
 * file names, and a pass-through stream that hashes and counts what is actually sent.
 */
import { createHash, type Hash } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';
import type { MergeDigest } from '../pcap/merge.js';

export const PCAP_MEDIA_TYPE = 'application/vnd.tcpdump.pcap';

export type RangeResult =
  | { kind: 'full' }
  | { kind: 'partial'; start: number; end: number }
  | { kind: 'unsatisfiable'; reason: string };

/**
 * A `Range` header against a representation of `size` bytes (RFC 9110 section 14.1.2). One range is
 * served as 206. A header we do not act on is ignored, which the RFC allows (section 14.2): a unit other
 * than bytes, or several ranges (multipart/byteranges is not worth its complexity for evidence files:
 * a client gets the whole file and can cut it). A malformed bytes range or one starting past the end is
 * 416, so a client learns its arithmetic is off instead of silently getting the whole file.
 */
export function parseRange(header: string | undefined, size: number): RangeResult {
  if (header === undefined) return { kind: 'full' };
  const eq = header.indexOf('=');
  if (eq < 0) return { kind: 'unsatisfiable', reason: `'${header}' is not a range (expected bytes=START-END)` };
  if (header.slice(0, eq).trim().toLowerCase() !== 'bytes') return { kind: 'full' };
  const set = header.slice(eq + 1).trim();
  if (set.includes(',')) return { kind: 'full' };
  const m = /^(\d*)-(\d*)$/.exec(set);
  if (!m || (m[1] === '' && m[2] === '')) return { kind: 'unsatisfiable', reason: `'${header}' is not a byte range (expected bytes=START-END, bytes=START- or bytes=-LENGTH)` };
  if (m[1] === '') {
    // Suffix range: the last N bytes.
    const n = Number(m[2]);
    if (n === 0 || size === 0) return { kind: 'unsatisfiable', reason: `the last ${n} bytes of a ${size}-byte file` };
    return { kind: 'partial', start: Math.max(0, size - n), end: size - 1 };
  }
  const start = Number(m[1]);
  const last = m[2] === '' ? size - 1 : Number(m[2]);
  if (last < start) return { kind: 'unsatisfiable', reason: `range end ${last} is before its start ${start}` };
  if (start >= size) return { kind: 'unsatisfiable', reason: `range starts at ${start}, past the end of the ${size}-byte file` };
  return { kind: 'partial', start, end: Math.min(last, size - 1) };
}

function etagList(header: string): string[] {
  return header
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
}

function opaque(tag: string): string {
  return tag.startsWith('W/') ? tag.slice(2) : tag;
}

/** If-None-Match uses the weak comparison (RFC 9110 section 13.1.2). */
export function noneMatch(header: string | undefined, etag: string): boolean {
  if (header === undefined) return false;
  if (header.trim() === '*') return true;
  return etagList(header).some((t) => opaque(t) === opaque(etag));
}

/**
 * If-Range (RFC 9110 section 13.1.5): the range applies only when the validator is a strong ETag that
 * matches ours exactly. A date, or a weak tag, means "send the whole file".
 */
export function ifRangeAllows(header: string | undefined, etag: string): boolean {
  if (header === undefined) return true;
  const v = header.trim();
  if (!v.startsWith('"') || etag.startsWith('W/')) return false;
  return v === etag;
}

/** A file name with nothing a browser, shell or Content-Disposition parser could misread. */
export function safeFileName(name: string): string {
  const cleaned = name.replace(/[^A-Za-z0-9._-]+/g, '_').replace(/^[._]+/, '');
  return (cleaned || 'capture').slice(0, 200);
}

export function contentDisposition(name: string): string {
  return `attachment; filename="${safeFileName(name)}"`;
}

/**
 * The SHA-256 of a body that the merge keeps itself (MergeOptions.digest): each output chunk as it is
 * pushed, on the thread that wrote it (GET /v1/pcap; issue 11). `bytes` counts what was hashed.
 */
export class BodyDigest implements MergeDigest {
  bytes = 0;
  private readonly hash: Hash = createHash('sha256');
  private hex: string | null = null;

  update(buf: Uint8Array, start: number, end: number): void {
    // After digest() nothing more may count: node:crypto refuses an update of a finished hash.
    this.hash.update(buf.subarray(start, end));
    this.bytes += end - start;
  }

  /** The hex SHA-256 of everything hashed so far; the first call ends it. */
  digest(): string {
    this.hex ??= this.hash.digest('hex');
    return this.hex;
  }
}

/** Passes bytes through unchanged, counting them and hashing them with SHA-256. */
export class HashingCounter extends Transform {
  bytes = 0;
  private readonly hash: Hash = createHash('sha256');
  private hex: string | null = null;

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    // After digest() (the response ended or was aborted) nothing more counts as sent.
    if (this.hex === null) {
      this.bytes += chunk.length;
      this.hash.update(chunk);
    }
    cb(null, chunk);
  }

  /** The hex SHA-256 of everything that passed; call once the stream is done. Later bytes are not counted. */
  digest(): string {
    this.hex ??= this.hash.digest('hex');
    return this.hex;
  }
}
