/**
 * The audit log (table `audit_log`): the chain of custody. A row is written before a download's first
 * byte and completed when it ends (src/api/audit.ts says what goes in it). Rows carry the node.
 */
import type { Param, Sql } from './engine.js';

export interface AuditRow {
  id: number;
  at: number;
  actor: string;
  role: string;
  remote_ip: string | null;
  action: string;
  target: string;
  status: number;
  bytes: number | null;
  sha256: string | null;
  detail: string | null;
  node: string;
}

export interface NewAuditRow {
  at: number;
  actor: string;
  role: string;
  remoteIp: string | null;
  action: string;
  target: string;
  status: number;
  bytes: number | null;
  sha256: string | null;
  /** JSON. */
  detail: string | null;
}

export interface AuditFilter {
  actor?: string;
  action?: string;
  target?: string;
  sinceMs?: number;
  untilMs?: number;
  beforeId?: number;
  limit: number;
}

export class AuditRepo {
  constructor(
    private readonly q: Sql,
    private readonly node: string,
  ) {}

  async write(r: NewAuditRow): Promise<number> {
    const row = await this.q.get<{ id: number }>(
      `INSERT INTO audit_log (at, actor, role, remote_ip, action, target, status, bytes, sha256, detail, node) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`,
      [r.at, r.actor, r.role, r.remoteIp, r.action, r.target, r.status, r.bytes, r.sha256, r.detail, this.node],
    );
    return row!.id;
  }

  async finish(id: number, f: { status: number; bytes: number | null; sha256: string | null; detail: string | null }): Promise<void> {
    await this.q.run(`UPDATE audit_log SET status = ?, bytes = ?, sha256 = ?, detail = ? WHERE id = ?`, [f.status, f.bytes, f.sha256, f.detail, id]);
  }

  get(id: number): Promise<AuditRow | undefined> {
    return this.q.get<AuditRow>(`SELECT * FROM audit_log WHERE id = ?`, [id]);
  }

  /** Newest first; `limit + 1` rows. */
  list(f: AuditFilter): Promise<AuditRow[]> {
    const where: string[] = [];
    const args: Param[] = [];
    if (f.actor !== undefined) (where.push('actor = ?'), args.push(f.actor));
    if (f.action !== undefined) (where.push('action = ?'), args.push(f.action));
    if (f.target !== undefined) (where.push('target = ?'), args.push(f.target));
    if (f.sinceMs !== undefined) (where.push('at >= ?'), args.push(f.sinceMs));
    if (f.untilMs !== undefined) (where.push('at < ?'), args.push(f.untilMs));
    if (f.beforeId !== undefined) (where.push('id < ?'), args.push(f.beforeId));
    args.push(f.limit + 1);
    return this.q.all<AuditRow>(`SELECT * FROM audit_log ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY id DESC LIMIT ?`, args);
  }
}
