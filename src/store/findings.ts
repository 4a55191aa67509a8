/**
 * Findings (table `findings`), row by row. The domain rules (what a repeat changes, which event it
 * emits) live in src/detect/store.ts; this is how a row is read, created once and changed.
 *
 * Fleet semantics: the id is a hash of (kind, incident key), the primary key. `create` is
 * `INSERT ... ON CONFLICT (id) DO NOTHING`: of several nodes raising the same incident at the same
 * moment, exactly one creates the row (and so emits `finding.created`, whose outbox rows are written
 * in the same transaction); the others see `false` and update it under `lock` (SELECT ... FOR UPDATE
 * on PostgreSQL; SQLite's write transaction already serializes), so counts add up.
 */
import type { Param, Sql } from './engine.js';

export interface FindingRow {
  id: string;
  kind: string;
  severity: string;
  status: 'open' | 'resolved';
  first_seen: number;
  last_seen: number;
  count: number;
  vni: number | null;
  source_ip: string | null;
  session_id: string | null;
  summary: string;
  evidence: string;
  correlated: string | null;
  updated_at: number;
}

export interface FindingFilter {
  kinds?: readonly string[];
  severities?: readonly string[];
  status?: 'open' | 'resolved';
  /** last_seen at or after (ms). */
  since?: number;
  /** first_seen at or before (ms). */
  until?: number;
  vni?: number;
  sessionId?: string;
  /** Keyset: rows strictly after (last_seen, id) in (last_seen DESC, id DESC) order. */
  after?: { lastSeen: number; id: string };
  limit: number;
}

export interface FindingCountRow {
  kind: string;
  severity: string;
  status: 'open' | 'resolved';
  findings: number;
  occurrences: number;
}

export class FindingsRepo {
  constructor(private readonly q: Sql) {}

  /** Whether any open finding is about VNI `vni` (one indexed row at most: a new pair's quick check). */
  async anyOpenOnVni(vni: number, q: Sql = this.q): Promise<boolean> {
    return (await q.get<{ one: number }>(`SELECT 1 AS one FROM findings WHERE vni = ? AND status = 'open' LIMIT 1`, [vni])) !== undefined;
  }

  get(id: string, q: Sql = this.q): Promise<FindingRow | undefined> {
    return q.get<FindingRow>(`SELECT * FROM findings WHERE id = ?`, [id]);
  }

  /** The row, locked for the rest of the transaction `q` (PostgreSQL); SQLite's transaction is already exclusive. */
  lock(id: string, q: Sql): Promise<FindingRow | undefined> {
    return q.get<FindingRow>(`SELECT * FROM findings WHERE id = ?${q.engine === 'postgres' ? ' FOR UPDATE' : ''}`, [id]);
  }

  /** Which of `ids` are open findings (one query; a new pair usually has none). */
  async openAmong(ids: readonly string[], q: Sql = this.q): Promise<string[]> {
    if (ids.length === 0) return [];
    const rows = await q.all<{ id: string }>(`SELECT id FROM findings WHERE status = 'open' AND id IN (${ids.map(() => '?').join(', ')})`, [...ids]);
    return rows.map((r) => r.id);
  }

  /** Insert the row unless its id exists; true when this call created it. */
  async create(r: FindingRow, q: Sql = this.q): Promise<boolean> {
    const res = await q.run(
      `INSERT INTO findings (id, kind, severity, status, first_seen, last_seen, count, vni, source_ip, session_id, summary, evidence, correlated, updated_at)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING`,
      [r.id, r.kind, r.severity, r.status, r.first_seen, r.last_seen, r.count, r.vni, r.source_ip, r.session_id, r.summary, r.evidence, r.correlated, r.updated_at],
    );
    return res.changes === 1;
  }

  /**
   * Write a repeat: every column from `r` except `count`, which grows by `addCount` (so concurrent
   * repeats from several nodes add up), and `last_seen`/`first_seen`, which only move outwards.
   */
  async repeat(r: FindingRow, addCount: number, q: Sql = this.q): Promise<void> {
    const [max, min] = q.engine === 'postgres' ? ['GREATEST', 'LEAST'] : ['MAX', 'MIN'];
    await q.run(
      `UPDATE findings SET severity = ?, status = ?, first_seen = ${min}(first_seen, ?), last_seen = ${max}(last_seen, ?), count = count + ?,
         vni = ?, source_ip = ?, session_id = ?, summary = ?, evidence = ?, correlated = ?, updated_at = ?
       WHERE id = ?`,
      [r.severity, r.status, r.first_seen, r.last_seen, addCount, r.vni, r.source_ip, r.session_id, r.summary, r.evidence, r.correlated, r.updated_at, r.id],
    );
  }

  async setResolved(id: string, evidence: string, updatedAt: number, q: Sql = this.q): Promise<void> {
    await q.run(`UPDATE findings SET status = 'resolved', evidence = ?, updated_at = ? WHERE id = ?`, [evidence, updatedAt, id]);
  }

  async setEvidence(id: string, evidence: string, updatedAt: number, q: Sql = this.q): Promise<void> {
    await q.run(`UPDATE findings SET evidence = ?, updated_at = ? WHERE id = ?`, [evidence, updatedAt, id]);
  }

  async setCorrelated(id: string, correlated: string, updatedAt: number, q: Sql = this.q): Promise<void> {
    await q.run(`UPDATE findings SET correlated = ?, updated_at = ? WHERE id = ?`, [correlated, updatedAt, id]);
  }

  /** Newest last_seen first; `limit + 1` rows so the caller knows whether there is a next page. */
  list(f: FindingFilter, q: Sql = this.q): Promise<FindingRow[]> {
    const where: string[] = [];
    const args: Param[] = [];
    if (f.kinds !== undefined) (where.push(`kind IN (${f.kinds.map(() => '?').join(', ')})`), args.push(...f.kinds));
    if (f.severities !== undefined) (where.push(`severity IN (${f.severities.map(() => '?').join(', ')})`), args.push(...f.severities));
    if (f.status !== undefined) (where.push('status = ?'), args.push(f.status));
    if (f.since !== undefined) (where.push('last_seen >= ?'), args.push(f.since));
    if (f.until !== undefined) (where.push('first_seen <= ?'), args.push(f.until));
    if (f.vni !== undefined) (where.push('vni = ?'), args.push(f.vni));
    if (f.sessionId !== undefined) (where.push('session_id = ?'), args.push(f.sessionId));
    if (f.after !== undefined) (where.push('(last_seen < ? OR (last_seen = ? AND id < ?))'), args.push(f.after.lastSeen, f.after.lastSeen, f.after.id));
    args.push(f.limit + 1);
    return q.all<FindingRow>(`SELECT * FROM findings ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY last_seen DESC, id DESC LIMIT ?`, args);
  }

  /** Open findings of `kinds` on a VNI or labelled with a session, oldest first. */
  async open(kinds: readonly string[], by: { vni?: number; sessionId?: string }, q: Sql = this.q): Promise<FindingRow[]> {
    if (kinds.length === 0) return [];
    const inKinds = `status = 'open' AND kind IN (${kinds.map(() => '?').join(', ')})`;
    const out = new Map<string, FindingRow>();
    if (by.vni !== undefined) for (const r of await q.all<FindingRow>(`SELECT * FROM findings WHERE vni = ? AND ${inKinds}`, [by.vni, ...kinds])) out.set(r.id, r);
    if (by.sessionId !== undefined) for (const r of await q.all<FindingRow>(`SELECT * FROM findings WHERE session_id = ? AND ${inKinds}`, [by.sessionId, ...kinds])) out.set(r.id, r);
    return [...out.values()].sort((a, b) => a.first_seen - b.first_seen || (a.id < b.id ? -1 : 1));
  }

  counts(): Promise<FindingCountRow[]> {
    return this.q.all<FindingCountRow>(
      `SELECT kind, severity, status, COUNT(*) AS findings, SUM(count) AS occurrences FROM findings GROUP BY kind, severity, status ORDER BY kind, severity, status`,
    );
  }
}
