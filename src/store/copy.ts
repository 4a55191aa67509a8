/**
 * `mirrorguard store copy --from sqlite:PATH --to postgres://...`: a single target's history into a
 * fleet store. Idempotent: every row is inserted only when its natural key is not there yet, so a copy
 * interrupted half way, or run twice, ends with each row once. Rows without a node (written before
 * the store layer) take `nodeId`. Capture and audit rows get new ids in the destination (audit rows
 * keep their text, which names the source's capture ids).
 *
 * Archived captures keep their S3 location, legal hold and ledger seq; the evidence ledger is copied
 * record for record with its seq, so those seqs still point at their records and the chain verifies as
 * before. A destination that already holds a different chain (another deployment's, or a fleet that
 * started signing first) cannot take a second one: the copy refuses before it writes anything
 * (MG_ERR_STORE_COPY_LEDGER). Upload jobs are not copied: the archive's sweep re-queues every closed,
 * not yet archived file of its node when `serve` starts on the new store.
 */
import { MgError } from '../errors.js';
import type { Engine, Param, Sql } from './engine.js';

const PAGE = 1000;

export interface CopyReport {
  /** Per table: rows read from the source, rows inserted into the destination. */
  tables: Record<string, { read: number; inserted: number }>;
}

interface TablePlan {
  table: string;
  /** Column to page by (ascending) in the source. */
  order: string;
  /** Columns copied (the destination makes its own id). */
  columns: string[];
  /** The WHERE NOT EXISTS condition on the destination (its ? taken from the row by `keyOf`). */
  exists: string;
  keyOf: (r: Record<string, unknown>) => Param[];
}

const PLANS: TablePlan[] = [
  {
    table: 'captures',
    order: 'id',
    columns: ['path', 'vni', 'source_ip', 'session_id', 'worker', 'state', 'created_us', 'closed_us', 'first_us', 'last_us', 'packets', 'bytes', 'sha256', 'close_reason', 'gwlb_endpoint_id', 'gwlb_attachment_id', 'node', 's3_bucket', 's3_key', 's3_version_id', 'archived_us', 'ledger_seq', 'local_removed_us', 'legal_hold'],
    exists: 'node = ? AND path = ?',
    keyOf: (r) => [r.node as string, r.path as string],
  },
  {
    table: 'observed_sessions',
    order: 'source_ip, vni',
    columns: ['source_ip', 'vni', 'session_id', 'first_seen', 'last_seen', 'packets', 'bytes', 'gwlb_endpoint_id', 'gwlb_attachment_id', 'node'],
    exists: 'source_ip = ? AND vni = ?',
    keyOf: (r) => [r.source_ip as string, r.vni as number],
  },
  {
    table: 'findings',
    order: 'id',
    columns: ['id', 'kind', 'severity', 'status', 'first_seen', 'last_seen', 'count', 'vni', 'source_ip', 'session_id', 'summary', 'evidence', 'correlated', 'updated_at'],
    exists: 'id = ?',
    keyOf: (r) => [r.id as string],
  },
  {
    table: 'control_events',
    order: 'event_id',
    columns: ['event_id', 'event_name', 'event_time', 'actor_arn', 'source_ip', 'session_id', 'eni', 'vni', 'target_id', 'filter_id', 'error_code', 'record'],
    exists: 'event_id = ?',
    keyOf: (r) => [r.event_id as string],
  },
  {
    table: 'webhook_endpoints',
    order: 'name',
    columns: ['name', 'disabled_at', 'reason'],
    exists: 'name = ?',
    keyOf: (r) => [r.name as string],
  },
  {
    table: 'outbox',
    order: 'id',
    columns: ['msg_id', 'endpoint', 'event_type', 'finding_id', 'payload', 'created_at', 'next_attempt_at', 'attempts', 'state', 'last_status', 'last_error', 'delivered_at'],
    exists: 'msg_id = ? AND endpoint = ?',
    keyOf: (r) => [r.msg_id as string, r.endpoint as string],
  },
  {
    table: 'audit_log',
    order: 'id',
    columns: ['at', 'actor', 'role', 'remote_ip', 'action', 'target', 'status', 'bytes', 'sha256', 'detail', 'node'],
    exists: 'node = ? AND at = ? AND actor = ? AND action = ? AND target = ?',
    keyOf: (r) => [r.node as string, r.at as number, r.actor as string, r.action as string, r.target as string],
  },
  {
    table: 'ledger',
    order: 'seq',
    columns: ['seq', 'hash', 'kind', 'sha256', 'line'],
    exists: 'seq = ?',
    keyOf: (r) => [r.seq as number],
  },
];

/**
 * The source's ledger must be the destination's, or a prefix of it, or extend it: record for record the
 * same hash at the same seq. Anything else is two chains, and one store holds one.
 */
async function checkLedgers(from: Engine, to: Engine): Promise<void> {
  let seq = 0;
  for (;;) {
    const src = await from.all<{ seq: number; hash: string }>(`SELECT seq, hash FROM ledger WHERE seq > ? ORDER BY seq LIMIT ?`, [seq, PAGE]);
    if (src.length === 0) return;
    const last = src[src.length - 1]!.seq;
    const dst = new Map((await to.all<{ seq: number; hash: string }>(`SELECT seq, hash FROM ledger WHERE seq > ? AND seq <= ?`, [seq, last])).map((r) => [Number(r.seq), r.hash]));
    if (dst.size === 0) return; // the destination's chain ends before this page: the rest extends it
    for (const r of src) {
      const h = dst.get(Number(r.seq));
      if (h === undefined) return;
      if (h !== r.hash) {
        throw new MgError('MG_ERR_STORE_COPY_LEDGER', `seq ${r.seq} is ${h.slice(0, 16)}… in the destination and ${r.hash.slice(0, 16)}… in the source`);
      }
    }
    seq = last;
  }
}

async function insertIfAbsent(q: Sql, p: TablePlan, r: Record<string, unknown>, types: Map<string, string> | null): Promise<boolean> {
  const cols = p.columns.join(', ');
  // PostgreSQL types a bare parameter in a SELECT list as text: name each column's type.
  const marks = p.columns.map((c) => (types?.has(c) ? `CAST(? AS ${types.get(c)})` : '?')).join(', ');
  const values = p.columns.map((c) => (r[c] ?? null) as Param);
  const res = await q.run(`INSERT INTO ${p.table} (${cols}) SELECT ${marks} WHERE NOT EXISTS (SELECT 1 FROM ${p.table} WHERE ${p.exists})`, [...values, ...p.keyOf(r)]);
  return res.changes === 1;
}

/** Copy every table from `from` to `to` (both migrated to the same version). */
export async function copyStore(from: Engine, to: Engine, nodeId: string, onProgress?: (table: string, read: number) => void): Promise<CopyReport> {
  const report: CopyReport = { tables: {} };
  await checkLedgers(from, to);
  for (const p of PLANS) {
    const t = (report.tables[p.table] = { read: 0, inserted: 0 });
    const types =
      to.engine === 'postgres'
        ? new Map(
            (await to.all<{ column_name: string; data_type: string }>(`SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = ?`, [p.table])).map(
              (c) => [c.column_name, c.data_type],
            ),
          )
        : null;
    let offset = 0;
    for (;;) {
      const rows = await from.all<Record<string, unknown>>(`SELECT * FROM ${p.table} ORDER BY ${p.order} LIMIT ? OFFSET ?`, [PAGE, offset]);
      if (rows.length === 0) break;
      offset += rows.length;
      t.read += rows.length;
      for (const r of rows) if ('node' in r && (r.node === '' || r.node === null)) r.node = nodeId;
      t.inserted += await to.tx(async (q) => {
        let n = 0;
        for (const r of rows) if (await insertIfAbsent(q, p, r, types)) n++;
        return n;
      });
      onProgress?.(p.table, t.read);
    }
  }
  return report;
}
