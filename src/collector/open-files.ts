/**
 * How many capture files a receiver may keep open at once (`pcap.maxOpenFiles`). Every open capture file
 * holds a descriptor, and a pair keeps its file open from its first packet until rotation or idle close,
 * so 10,000 active pairs need 10,000 descriptors in each receiver. Past the process's RLIMIT_NOFILE, the
 * next create fails with EMFILE and that pair's packets are lost (`pcap.write.error`); closing the files
 * idle longest first keeps capture going instead.
 *
 * Node.js has no getrlimit(2); Linux shows the limits in /proc/self/limits. Node raises its soft limit to
 * the hard limit at start, so the soft limit read after start is what the process may use.
 */
import { readFileSync } from 'node:fs';

/** Descriptors kept back for everything else: the catalog (database, WAL, shm), sockets, the API, logs, Node.js itself. */
export const RESERVED_FDS = 256;
/** The least any receiver gets, however low the limit: below this, rotation itself would thrash. */
export const MIN_OPEN_FILES = 64;

/** The soft RLIMIT_NOFILE of this process, or null when /proc is not there (not Linux) or says "unlimited". */
export function openFileLimit(limitsText?: string): number | null {
  let text = limitsText;
  if (text === undefined) {
    try {
      text = readFileSync('/proc/self/limits', 'utf8');
    } catch {
      return null;
    }
  }
  // "Max open files            20000                20000                files"
  const m = /^Max open files\s+(\d+|unlimited)\s+/m.exec(text);
  if (!m || m[1] === 'unlimited') return null;
  return Number(m[1]);
}

/**
 * The files one receiver may keep open: `configured` when set (non-zero), else the process's limit less
 * RESERVED_FDS, shared by the receivers (`--workers N`, each with its own files; the main thread's GENEVE
 * collector counts as one more), at least MIN_OPEN_FILES. Without a readable limit: 65,536 less the
 * reserve, the unit's LimitNOFILE (deploy/systemd/mirrorguard.service).
 */
export function maxOpenFilesFor(configured: number, receivers: number, limit: number | null = openFileLimit()): number {
  if (configured > 0) return configured;
  const nofile = limit ?? 65_536;
  return Math.max(MIN_OPEN_FILES, Math.floor((nofile - RESERVED_FDS) / Math.max(1, receivers)));
}
