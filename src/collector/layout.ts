/**
 * Where files go under the data directory:
 *
 *   pcap/vni-<VNI>/<SOURCE-IP>/<YYYY-MM-DD>/<YYYYMMDDTHHMMSS.nnnnnnnnnZ>-w<WORKER>-<SEQ>.pcap
 *
 * One folder per (VNI, source IP) pair, the way the data plane identifies a mirror session; the manifest
 * session ID lives in the catalog, not the path, because the manifest can change while files persist.
 * IPv6 sources use '_' for ':' so paths stay portable. The date is the first packet's (UTC).
 */
import { isoNanos } from '../util/clock.js';

export const PCAP_DIR = 'pcap';
export const CATALOG_FILE = 'mirrorguard.db';

export function captureRelPath(vni: number, sourceIp: string, sec: number, nsec: number, worker: number, seq: number): string {
  const iso = isoNanos(sec, nsec); // 2026-11-28T20:40:25.123456789Z
  const day = iso.slice(0, 10);
  const stamp = iso.replace(/[-:]/g, '');
  return `${PCAP_DIR}/vni-${vni}/${sourceIp.replace(/:/g, '_')}/${day}/${stamp}-w${worker}-${seq}.pcap`;
}

const PATH_RE = /^pcap\/vni-(\d{1,8})\/([0-9a-fA-F._]+)\/\d{4}-\d{2}-\d{2}\/[0-9TZ.]+-w(\d+)-\d+\.pcap$/;

/** The (VNI, source IP, worker) a path encodes, for adopting files the catalog lost. */
export function parseCaptureRelPath(rel: string): { vni: number; sourceIp: string; worker: number } | null {
  const m = PATH_RE.exec(rel);
  if (!m) return null;
  const vni = Number(m[1]);
  if (vni > 16_777_215) return null;
  return { vni, sourceIp: m[2]!.replace(/_/g, ':'), worker: Number(m[3]) };
}
