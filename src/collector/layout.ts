/**
 * Where files go under the data directory:
 *
 *   pcap/<YYYY-MM-DD>/<HH>/vni-<VNI>_<SOURCE-IP>_<YYYYMMDDTHHMMSS.nnnnnnnnnZ>-w<WORKER>-<SEQ>.pcap
 *
 * One folder per hour of first-packet time (UTC), shared by every session: a new (source IP, VNI) pair
 * costs one file create and no folder. Creating a folder is the expensive part of a new file on ext4
 * (about 180 us of kernel time a folder against 35 us a file on the bench VM), and the layout before this
 * one, `pcap/vni-<VNI>/<SOURCE-IP>/<YYYY-MM-DD>/...`, made three folders for every new pair: 10,000
 * sessions starting at once took 10-35 s to get their files (docs/performance.md, "Steady many
 * sessions"). An hour's folder holds one file per pair and rotation, so `ls pcap/2026-12-03/17/vni-42_*`
 * lists a pair's files of that hour. Files in the older layout stay readable and are still adopted by
 * recovery (parseCaptureRelPath takes both).
 *
 * The pair is in the file name; the manifest session ID lives in the catalog, not the path, because the
 * manifest can change while files persist. IPv6 sources use '_' for ':' so paths stay portable.
 */
import { isoNanos } from '../util/clock.js';

export const PCAP_DIR = 'pcap';
export const CATALOG_FILE = 'mirrorguard.db';

export function captureRelPath(vni: number, sourceIp: string, sec: number, nsec: number, worker: number, seq: number): string {
  const iso = isoNanos(sec, nsec); // 2026-11-28T20:40:25.123456789Z
  const day = iso.slice(0, 10);
  const hour = iso.slice(11, 13);
  const stamp = iso.replace(/[-:]/g, '');
  return `${PCAP_DIR}/${day}/${hour}/vni-${vni}_${sourceIp.replace(/:/g, '_')}_${stamp}-w${worker}-${seq}.pcap`;
}

/** The layout above. The source is matched lazily: an IPv6 source's '_' groups never look like the stamp's 8 digits and 'T'. */
const PATH_RE = /^pcap\/\d{4}-\d{2}-\d{2}\/\d{2}\/vni-(\d{1,8})_([0-9a-fA-F._]+?)_\d{8}T[0-9.]+Z-w(\d+)-\d+\.pcap$/;
/** The layout before: a folder per pair and day. */
const OLD_PATH_RE = /^pcap\/vni-(\d{1,8})\/([0-9a-fA-F._]+)\/\d{4}-\d{2}-\d{2}\/[0-9TZ.]+-w(\d+)-\d+\.pcap$/;

/** The (VNI, source IP, worker) a path encodes, for adopting files the catalog lost; null for any other path. */
export function parseCaptureRelPath(rel: string): { vni: number; sourceIp: string; worker: number } | null {
  const m = PATH_RE.exec(rel) ?? OLD_PATH_RE.exec(rel);
  if (!m) return null;
  const vni = Number(m[1]);
  if (vni > 16_777_215) return null;
  if (m[2]!.includes('..')) return null;
  return { vni, sourceIp: m[2]!.replace(/_/g, ':'), worker: Number(m[3]) };
}
