/**
 * Retention: delete the oldest closed files first, never an open one, while any bound is exceeded:
 * age (retention.maxAgeHours), total bytes (retention.maxBytes) and free space on the data directory's
 * file system (retention.minFreeBytes). Runs on a timer, off the packet path. Empty day and session
 * folders left behind are removed. An archived file (S3 confirmed it) keeps its catalog row, marked as
 * no longer on the local disk; reads then come from S3.
 *
 * With an archive configured, a closed file S3 has not confirmed yet is never deleted, whatever the bound:
 * its local copy is the only copy of that evidence. Such files are passed over (counted in `awaitingUpload`,
 * and logged as a warning when a bound stays exceeded because of them); older archived files go first.
 * Without an archive, the bounds are the whole policy and the oldest file goes, as configured.
 */
import { rmdirSync, statfsSync, unlinkSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { Logger } from '../util/log.js';
import type { Catalog } from './catalog.js';

export interface RetentionPolicy {
  maxBytes: number;
  maxAgeHours: number;
  minFreeBytes: number;
}

export interface RetentionResult {
  deletedFiles: number;
  deletedBytes: number;
  reasons: Record<'age' | 'bytes' | 'free', number>;
  /** Closed files a bound would have deleted but kept, because S3 has not confirmed their upload (archive mode). */
  awaitingUpload: number;
  awaitingUploadBytes: number;
}

export interface RetentionOptions {
  /** An archive is configured: a file is deleted only once S3 confirmed its upload. */
  archive?: boolean;
  nowMs?: number;
}

export function freeBytes(dir: string): number | null {
  try {
    const s = statfsSync(dir);
    return s.bavail * s.bsize;
  } catch {
    return null;
  }
}

export async function runRetention(catalog: Catalog, dataDir: string, policy: RetentionPolicy, logger: Logger, options: RetentionOptions = {}): Promise<RetentionResult> {
  const nowMs = options.nowMs ?? Date.now();
  const result: RetentionResult = { deletedFiles: 0, deletedBytes: 0, reasons: { age: 0, bytes: 0, free: 0 }, awaitingUpload: 0, awaitingUploadBytes: 0 };
  const closed = await catalog.closedOldestFirst();
  let total = await catalog.totalBytes();
  let free = policy.minFreeBytes > 0 ? freeBytes(dataDir) : null;
  const cutoffUs = policy.maxAgeHours > 0 ? (nowMs - policy.maxAgeHours * 3_600_000) * 1000 : -Infinity;

  for (const row of closed) {
    const newest = row.last_us ?? row.closed_us ?? row.created_us;
    let reason: 'age' | 'bytes' | 'free' | null = null;
    if (newest < cutoffUs) reason = 'age';
    else if (policy.maxBytes > 0 && total > policy.maxBytes) reason = 'bytes';
    else if (free !== null && free < policy.minFreeBytes) reason = 'free';
    if (reason === null) break; // oldest first: nothing newer qualifies either
    if (options.archive === true && row.archived_us == null) {
      result.awaitingUpload++;
      result.awaitingUploadBytes += row.bytes;
      continue; // the only copy until S3 confirms it; a newer, archived file may go instead
    }
    const abs = join(dataDir, row.path);
    try {
      unlinkSync(abs);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') {
        logger.error({ path: row.path, err: (e as Error).message }, 'retention could not delete a file');
        continue;
      }
    }
    // An archived file keeps its row (its S3 location, the ledger seq): only the local copy goes.
    if (row.archived_us != null) await catalog.store.captures.markLocalRemoved(row.id, nowMs * 1000);
    else await catalog.deleteRow(row.id);
    total -= row.bytes;
    if (free !== null) free += row.bytes;
    result.deletedFiles++;
    result.deletedBytes += row.bytes;
    result.reasons[reason]++;
    removeEmptyParents(dirname(abs), join(dataDir, 'pcap'));
  }
  if (result.deletedFiles > 0) logger.info(result, 'retention deleted old captures');
  if (result.awaitingUpload > 0) {
    logger.warn(
      { awaitingUpload: result.awaitingUpload, awaitingUploadBytes: result.awaitingUploadBytes, totalBytes: total, freeBytes: free },
      'retention kept files a bound would delete: their upload to S3 is not confirmed yet (is the archive reachable?)',
    );
  }
  return result;
}

function removeEmptyParents(dir: string, stopAt: string): void {
  let d = dir;
  while (d.startsWith(stopAt) && d !== stopAt) {
    try {
      rmdirSync(d);
    } catch {
      return; // not empty (or gone): stop
    }
    d = dirname(d);
  }
}
