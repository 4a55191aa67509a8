/**
 * The archive upload queue (table `archive_jobs`): ArchiveJobs (src/archive/types.ts) in the store, so a
 * node's queue survives kill -9 and a fleet shares one table. Each node claims only its own files (only
 * it has them on disk); claim picks the oldest due row in one statement, `FOR UPDATE SKIP LOCKED` on
 * PostgreSQL so two workers never take the same row, and leases it. test/archive/jobs-contract.ts holds
 * this implementation to the same contract as the in-memory one.
 *
 * `done` also writes the S3 location into the catalog row (captures.s3_*) in the same transaction, so a
 * reader never sees a confirmed upload without its location.
 */
import type { ArchiveFile, ArchiveJob, ArchiveJobs, ArchiveJobState, UploadResult } from '../archive/types.js';
import type { Engine, Sql } from './engine.js';

interface JobRow {
  id: number;
  node: string;
  capture_id: number;
  file: string;
  state: ArchiveJobState;
  attempts: number;
  not_before_ms: number;
  owner: string | null;
  lease_until_ms: number | null;
  last_error: string | null;
  result: string | null;
  done_ms: number | null;
}

function toJob(r: JobRow): ArchiveJob {
  let result: UploadResult | null = null;
  if (r.result !== null) {
    const o = JSON.parse(r.result) as UploadResult & { retainUntil: string | null };
    result = { ...o, retainUntil: o.retainUntil === null ? null : new Date(o.retainUntil) };
  }
  return {
    id: r.id,
    file: JSON.parse(r.file) as ArchiveFile,
    state: r.state,
    attempts: r.attempts,
    notBeforeMs: r.not_before_ms,
    owner: r.owner,
    leaseUntilMs: r.lease_until_ms,
    lastError: r.last_error,
    result,
    doneMs: r.done_ms,
  };
}

/** `%` and `_` are LIKE wildcards; an owner prefix is matched literally. */
const likePrefix = (s: string) => `${s.replace(/[\\%_]/g, (c) => `\\${c}`)}%`;

export class ArchiveRepo implements ArchiveJobs {
  constructor(private readonly q: Engine) {}

  async enqueue(file: ArchiveFile, nowMs: number, q: Sql = this.q): Promise<ArchiveJob> {
    await q.run(`INSERT INTO archive_jobs (node, capture_id, file, not_before_ms) VALUES (?, ?, ?, ?) ON CONFLICT (node, capture_id) DO NOTHING`, [
      file.node,
      file.captureId,
      JSON.stringify(file),
      nowMs,
    ]);
    const row = await q.get<JobRow>(`SELECT * FROM archive_jobs WHERE node = ? AND capture_id = ?`, [file.node, file.captureId]);
    return toJob(row!);
  }

  async claim(node: string, owner: string, nowMs: number, leaseMs: number): Promise<ArchiveJob | null> {
    const lock = this.q.engine === 'postgres' ? 'FOR UPDATE SKIP LOCKED' : '';
    const row = await this.q.get<JobRow>(
      `UPDATE archive_jobs SET state = 'claimed', owner = ?, lease_until_ms = ?
        WHERE id = (SELECT id FROM archive_jobs
                     WHERE node = ? AND ((state = 'pending' AND not_before_ms <= ?) OR (state = 'claimed' AND lease_until_ms <= ?))
                     ORDER BY id LIMIT 1 ${lock})
        RETURNING *`,
      [owner, nowMs + leaseMs, node, nowMs, nowMs],
    );
    return row ? toJob(row) : null;
  }

  async renew(id: number, owner: string, leaseUntilMs: number): Promise<boolean> {
    const r = await this.q.run(`UPDATE archive_jobs SET lease_until_ms = ? WHERE id = ? AND state = 'claimed' AND owner = ?`, [leaseUntilMs, id, owner]);
    return r.changes === 1;
  }

  done(id: number, owner: string, result: UploadResult, nowMs: number): Promise<boolean> {
    return this.q.tx(async (q) => {
      const row = await q.get<{ node: string; capture_id: number }>(
        `UPDATE archive_jobs SET state = 'done', owner = NULL, lease_until_ms = NULL, result = ?, done_ms = ?, last_error = NULL
          WHERE id = ? AND state = 'claimed' AND owner = ? RETURNING node, capture_id`,
        [JSON.stringify(result), nowMs, id, owner],
      );
      if (!row) return false;
      await q.run(`UPDATE captures SET s3_bucket = ?, s3_key = ?, s3_version_id = ?, archived_us = ? WHERE id = ? AND node IN (?, '')`, [
        result.bucket,
        result.key,
        result.versionId,
        nowMs * 1000,
        row.capture_id,
        row.node,
      ]);
      return true;
    });
  }

  async failed(id: number, owner: string, error: string, retryAtMs: number | null): Promise<boolean> {
    const r =
      retryAtMs === null
        ? await this.q.run(`UPDATE archive_jobs SET state = 'failed', attempts = attempts + 1, last_error = ?, owner = NULL, lease_until_ms = NULL WHERE id = ? AND state = 'claimed' AND owner = ?`, [
            error,
            id,
            owner,
          ])
        : await this.q.run(
            `UPDATE archive_jobs SET state = 'pending', attempts = attempts + 1, last_error = ?, not_before_ms = ?, owner = NULL, lease_until_ms = NULL WHERE id = ? AND state = 'claimed' AND owner = ?`,
            [error, retryAtMs, id, owner],
          );
    return r.changes === 1;
  }

  async releaseOwner(ownerPrefix: string): Promise<number> {
    const r = await this.q.run(`UPDATE archive_jobs SET state = 'pending', owner = NULL, lease_until_ms = NULL WHERE state = 'claimed' AND owner LIKE ? ESCAPE '\\'`, [
      likePrefix(ownerPrefix),
    ]);
    return r.changes;
  }

  async pending(): Promise<number> {
    const r = await this.q.get<{ n: number }>(`SELECT COUNT(*) AS n FROM archive_jobs WHERE state IN ('pending', 'claimed')`);
    return Number(r?.n ?? 0);
  }

  /** Jobs of one node not yet done or failed for good (a node's drain waits for these). */
  async pendingFor(node: string): Promise<number> {
    const r = await this.q.get<{ n: number }>(`SELECT COUNT(*) AS n FROM archive_jobs WHERE node = ? AND state IN ('pending', 'claimed')`, [node]);
    return Number(r?.n ?? 0);
  }

  async get(id: number): Promise<ArchiveJob | null> {
    const row = await this.q.get<JobRow>(`SELECT * FROM archive_jobs WHERE id = ?`, [id]);
    return row ? toJob(row) : null;
  }

  async byCapture(node: string, captureId: number): Promise<ArchiveJob | null> {
    const row = await this.q.get<JobRow>(`SELECT * FROM archive_jobs WHERE node = ? AND capture_id = ?`, [node, captureId]);
    return row ? toJob(row) : null;
  }

  async doneFor(node: string): Promise<ArchiveJob[]> {
    const rows = await this.q.all<JobRow>(`SELECT * FROM archive_jobs WHERE node = ? AND state = 'done' ORDER BY id`, [node]);
    return rows.map(toJob);
  }
}
