/**
 * Object keys: `PREFIX/vni=N/src=IP/YYYY/MM/DD/HH/NODE-FILE`, the hour being the first packet's (UTC).
 * (the file's opening time for an empty file). A time-window query for one pair is a handful of ListObjectsV2 calls on hour prefixes, no scan; the
 * `name=value` segments are Hive-style partitions, so Athena or S3 Select can read the layout as is.
 * IPv6 colons become hyphens (S3 lists ':' among characters that may need special handling in keys:
 * https://docs.aws.amazon.com/AmazonS3/latest/userguide/object-keys.html). The node name is part of the
 * file name because two collectors write files with the same local name for the same pair.
 */
import { basename } from 'node:path';
import type { ArchiveFile } from './types.js';

const pad = (n: number, w = 2) => String(n).padStart(w, '0');

/** A node name as it may stand in a key: letters, digits, `.`, `_`, `-`; anything else becomes `_`. */
export function keySafe(s: string): string {
  return s.replace(/[^A-Za-z0-9._-]/g, '_');
}

export function sourceSegment(ip: string): string {
  return ip.replace(/:/g, '-');
}

/** The hour prefix (without a trailing slash) of one pair's files whose first packet falls in the hour of `ms`. */
export function hourPrefix(prefix: string, vni: number, sourceIp: string, ms: number): string {
  const d = new Date(ms);
  const parts = [`vni=${vni}`, `src=${sourceSegment(sourceIp)}`, String(d.getUTCFullYear()), pad(d.getUTCMonth() + 1), pad(d.getUTCDate()), pad(d.getUTCHours())];
  return prefix === '' ? parts.join('/') : `${prefix}/${parts.join('/')}`;
}

/** The key is a function of the file alone, so a retry (after a crash too) writes to the same key. */
export function objectKey(prefix: string, file: Pick<ArchiveFile, 'vni' | 'sourceIp' | 'firstUs' | 'createdUs' | 'node' | 'path'>): string {
  const ms = Math.floor((file.firstUs ?? file.createdUs) / 1000);
  return `${hourPrefix(prefix, file.vni, file.sourceIp, ms)}/${keySafe(file.node)}-${basename(file.path)}`;
}

/** Hour prefixes covering [fromMs, toMs] for one pair: what a window query lists. */
export function hourPrefixes(prefix: string, vni: number, sourceIp: string, fromMs: number, toMs: number): string[] {
  const out: string[] = [];
  const HOUR = 3600_000;
  for (let t = Math.floor(fromMs / HOUR) * HOUR; t <= toMs; t += HOUR) out.push(`${hourPrefix(prefix, vni, sourceIp, t)}/`);
  return out;
}
