/**
 * The chain of custody (table `audit_log`, src/store/db.ts): who took which evidence, when, how many
 * bytes, with which SHA-256. A download or extraction inserts its row before the first byte goes out
 * (so a crash mid-transfer still leaves a trace, and the response can name its row in `X-Audit-Id`)
 * and completes it when the response ends, with the bytes handed to the connection and the SHA-256 of
 * exactly those bytes. Admin actions (manifest reloads, CloudTrail ingests) are recorded the same way.
 *
 * The API writes nothing else to the store. Rows carry the node that served the request (`node`).
 */
import type { AuditRepo, AuditRow as Row } from '../store/audit.js';
import { badRequest } from './errors.js';

export const AUDIT_ACTIONS = ['capture.download', 'pcap.extract', 'manifest.reload', 'cloudtrail.ingest', 'finding.acknowledge', 'finding.resolve', 'capture.legal_hold'] as const;
export type AuditAction = (typeof AUDIT_ACTIONS)[number];

export interface AuditEntry {
  actor: string;
  role: string;
  remoteIp: string | null;
  action: AuditAction;
  /** What was acted on: `capture:12`, `session:tms-...`, `vni:123/10.0.0.1`, `finding:f_...`, a manifest path. */
  target: string;
  status: number;
  bytes?: number | null;
  sha256?: string | null;
  detail?: Record<string, unknown>;
}

export interface AuditRecord {
  id: number;
  at: string;
  actor: string;
  role: string;
  remoteIp: string | null;
  action: string;
  target: string;
  status: number;
  bytes: number | null;
  sha256: string | null;
  detail: Record<string, unknown> | null;
}

export interface AuditQuery {
  actor?: string;
  action?: string;
  target?: string;
  sinceMs?: number;
  untilMs?: number;
  limit?: number;
  /** Rows with an id below this (the previous page's nextCursor). */
  beforeId?: number;
}

export class AuditLog {
  constructor(
    private readonly repo: AuditRepo,
    private readonly now: () => number = Date.now,
  ) {}

  /** Write a row; returns its id. */
  write(e: AuditEntry): Promise<number> {
    return this.repo.write({
      at: this.now(),
      actor: e.actor,
      role: e.role,
      remoteIp: e.remoteIp,
      action: e.action,
      target: e.target,
      status: e.status,
      bytes: e.bytes ?? null,
      sha256: e.sha256 ?? null,
      detail: e.detail === undefined ? null : JSON.stringify(e.detail),
    });
  }

  /** Complete a row written at the start of a transfer. */
  finish(id: number, f: { status: number; bytes: number | null; sha256: string | null; detail?: Record<string, unknown> }): Promise<void> {
    return this.repo.finish(id, { status: f.status, bytes: f.bytes, sha256: f.sha256, detail: f.detail === undefined ? null : JSON.stringify(f.detail) });
  }

  async get(id: number): Promise<AuditRecord | undefined> {
    const r = await this.repo.get(id);
    return r === undefined ? undefined : toRecord(r);
  }

  /** Newest first. */
  async list(q: AuditQuery = {}): Promise<{ items: AuditRecord[]; nextCursor: string | null }> {
    const limit = Math.min(Math.max(1, q.limit ?? 100), 1000);
    const rows = await this.repo.list({ ...q, limit });
    const more = rows.length > limit;
    const page = more ? rows.slice(0, limit) : rows;
    return { items: page.map(toRecord), nextCursor: more ? encodeIdCursor(page[page.length - 1]!.id) : null };
  }
}

function toRecord(r: Row): AuditRecord {
  let detail: Record<string, unknown> | null = null;
  if (r.detail !== null) {
    try {
      detail = JSON.parse(r.detail) as Record<string, unknown>;
    } catch {
      detail = { unparsed: r.detail };
    }
  }
  return {
    id: r.id,
    at: new Date(r.at).toISOString(),
    actor: r.actor,
    role: r.role,
    remoteIp: r.remote_ip,
    action: r.action,
    target: r.target,
    status: r.status,
    bytes: r.bytes,
    sha256: r.sha256,
    detail,
  };
}

/** Opaque page cursors over integer ids (captures, audit rows). */
export function encodeIdCursor(id: number): string {
  return Buffer.from(`id:${id}`, 'utf8').toString('base64url');
}

export function decodeIdCursor(cursor: string, param = 'cursor'): number {
  const m = /^id:(\d{1,15})$/.exec(Buffer.from(cursor, 'base64url').toString('utf8'));
  if (!m) throw badRequest(param, 'not a cursor this server returned');
  return Number(m[1]);
}
