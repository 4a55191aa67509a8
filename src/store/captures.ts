/**
 * The capture catalog (table `captures`): one row per PCAP file, written by the session writers
 * (through the write queue, src/store/write-queue.ts, never from the packet path) and read by the
 * API, retention and recovery. Rows carry the node that wrote the file; paths are relative to that
 * node's data directory. Recovery and retention see this node's rows and rows with no node (written
 * before the store layer, migration 9), which belong to whichever node opens the database.
 */
import type { Param, Sql } from './engine.js';

export interface CaptureRow {
  id: number;
  path: string;
  vni: number;
  source_ip: string;
  session_id: string | null;
  worker: number;
  state: 'open' | 'closed';
  created_us: number;
  closed_us: number | null;
  first_us: number | null;
  last_us: number | null;
  packets: number;
  bytes: number;
  sha256: string | null;
  close_reason: string | null;
  gwlb_endpoint_id: string | null;
  gwlb_attachment_id: string | null;
  node?: string;
  /** Where the archive put the file (migration 10); null until S3 confirmed the upload. */
  s3_bucket?: string | null;
  s3_key?: string | null;
  s3_version_id?: string | null;
  /** When S3 confirmed the upload, µs. */
  archived_us?: number | null;
  /** The ledger record (seq) of the archived file. */
  ledger_seq?: number | null;
  /** When the local copy was removed after the upload (archive.keepLocalHours), µs; null while it exists. */
  local_removed_us?: number | null;
  /** 1 while an admin legal hold is on. */
  legal_hold?: number;
}

export interface NewCapture {
  path: string;
  vni: number;
  sourceIp: string;
  sessionId: string | null;
  worker: number;
  createdUs: number;
  firstUs: number;
  gwlbEndpointId?: string | null;
  gwlbAttachmentId?: string | null;
}

export interface CloseInfo {
  closedUs: number;
  firstUs: number | null;
  lastUs: number | null;
  packets: number;
  bytes: number;
  sha256: string;
  reason: string;
}

export interface CaptureListQuery {
  vni?: number;
  sourceIp?: string;
  sessionId?: string;
  state?: 'open' | 'closed';
  /** Files with a packet before this time (µs). */
  beforeUs?: number;
  /** Files with a packet at or after this time (µs); open files always match. */
  fromUs?: number;
  /** Rows with an id below this (keyset paging). */
  beforeId?: number;
  limit: number;
}

export interface ExtractionQuery {
  /** A session: files labelled with it, and unlabelled files of its pair(s) (`vni`, `sourceIps`). */
  session?: { id: string; vni?: number; sourceIps?: readonly string[] | null };
  vni?: number;
  sourceIp?: string;
  /** Window in µs, inclusive. */
  fromUs: number;
  toUs: number;
}

export interface PairSummary {
  vni: number;
  sourceIp: string;
  sessionId: string | null;
  files: number;
  packets: number;
  bytes: number;
  gwlbEndpointId: string | null;
}

export class CapturesRepo {
  constructor(
    private readonly q: Sql,
    private readonly node: string,
  ) {}

  /** Insert an open file's row; its id. */
  async open(r: NewCapture, q: Sql = this.q): Promise<number> {
    const row = await q.get<{ id: number }>(
      `INSERT INTO captures (path, vni, source_ip, session_id, worker, state, created_us, first_us, last_us, packets, bytes, gwlb_endpoint_id, gwlb_attachment_id, node)
       VALUES (?, ?, ?, ?, ?, 'open', ?, ?, ?, 0, 0, ?, ?, ?) RETURNING id`,
      [r.path, r.vni, r.sourceIp, r.sessionId, r.worker, r.createdUs, r.firstUs, r.firstUs, r.gwlbEndpointId ?? null, r.gwlbAttachmentId ?? null, this.node],
    );
    return row!.id;
  }

  async sync(id: number, packets: number, bytes: number, lastUs: number, q: Sql = this.q): Promise<void> {
    await q.run(`UPDATE captures SET packets = ?, bytes = ?, last_us = ? WHERE id = ? AND state = 'open'`, [packets, bytes, lastUs, id]);
  }

  async close(id: number, i: CloseInfo, q: Sql = this.q): Promise<void> {
    await q.run(
      `UPDATE captures SET state = 'closed', closed_us = ?, first_us = ?, last_us = ?, packets = ?, bytes = ?, sha256 = ?, close_reason = ? WHERE id = ?`,
      [i.closedUs, i.firstUs, i.lastUs, i.packets, i.bytes, i.sha256, i.reason, id],
    );
  }

  async delete(id: number, q: Sql = this.q): Promise<void> {
    await q.run(`DELETE FROM captures WHERE id = ?`, [id]);
  }

  async setSessionId(id: number, sessionId: string | null, q: Sql = this.q): Promise<void> {
    await q.run(`UPDATE captures SET session_id = ? WHERE id = ?`, [sessionId, id]);
  }

  /** This node's open files (recovery), optionally one worker's. */
  openRows(worker?: number): Promise<CaptureRow[]> {
    return worker === undefined
      ? this.q.all<CaptureRow>(`SELECT * FROM captures WHERE state = 'open' AND node IN (?, '') ORDER BY id`, [this.node])
      : this.q.all<CaptureRow>(`SELECT * FROM captures WHERE state = 'open' AND node IN (?, '') AND worker = ? ORDER BY id`, [this.node, worker]);
  }

  byPath(path: string): Promise<CaptureRow | undefined> {
    return this.q.get<CaptureRow>(`SELECT * FROM captures WHERE node IN (?, '') AND path = ?`, [this.node, path]);
  }

  byId(id: number): Promise<CaptureRow | undefined> {
    return this.q.get<CaptureRow>(`SELECT * FROM captures WHERE id = ?`, [id]);
  }

  /** This node's closed files still on its disk, oldest first (retention order). */
  closedOldestFirst(): Promise<CaptureRow[]> {
    return this.q.all<CaptureRow>(`SELECT * FROM captures WHERE state = 'closed' AND node IN (?, '') AND local_removed_us IS NULL ORDER BY COALESCE(last_us, closed_us, created_us) ASC, id ASC`, [this.node]);
  }

  async totalBytes(): Promise<number> {
    return (await this.q.get<{ n: number }>(`SELECT COALESCE(SUM(bytes), 0) AS n FROM captures WHERE node IN (?, '') AND local_removed_us IS NULL`, [this.node]))!.n;
  }

  /** Newest first, keyset-paged by id; `limit + 1` rows so the caller knows whether there is more. */
  list(f: CaptureListQuery): Promise<CaptureRow[]> {
    const where: string[] = [];
    const args: Param[] = [];
    if (f.vni !== undefined) (where.push('vni = ?'), args.push(f.vni));
    if (f.sourceIp !== undefined) (where.push('source_ip = ?'), args.push(f.sourceIp));
    if (f.sessionId !== undefined) (where.push('session_id = ?'), args.push(f.sessionId));
    if (f.state !== undefined) (where.push('state = ?'), args.push(f.state));
    if (f.beforeUs !== undefined) (where.push('COALESCE(first_us, created_us) < ?'), args.push(f.beforeUs));
    if (f.fromUs !== undefined) (where.push("(state = 'open' OR COALESCE(last_us, first_us, created_us) >= ?)"), args.push(f.fromUs));
    if (f.beforeId !== undefined) (where.push('id < ?'), args.push(f.beforeId));
    args.push(f.limit + 1);
    return this.q.all<CaptureRow>(`SELECT * FROM captures ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY id DESC LIMIT ?`, args);
  }

  /** The files a PCAP extraction reads, in packet order. */
  forExtraction(f: ExtractionQuery): Promise<CaptureRow[]> {
    const where: string[] = [];
    const args: Param[] = [];
    if (f.session !== undefined) {
      const s = f.session;
      if (s.vni === undefined) (where.push('session_id = ?'), args.push(s.id));
      else {
        const ips = s.sourceIps ?? null;
        const pair = ips === null ? 'vni = ?' : `vni = ? AND source_ip IN (${ips.map(() => '?').join(', ')})`;
        where.push(`(session_id = ? OR (session_id IS NULL AND ${pair}))`);
        args.push(s.id, s.vni, ...(ips ?? []));
      }
    } else (where.push('vni = ?'), args.push(f.vni!));
    if (f.sourceIp !== undefined) (where.push('source_ip = ?'), args.push(f.sourceIp));
    where.push('COALESCE(first_us, created_us) <= ?');
    args.push(f.toUs);
    where.push("(state = 'open' OR COALESCE(last_us, first_us, created_us) >= ?)");
    args.push(f.fromUs);
    return this.q.all<CaptureRow>(`SELECT * FROM captures WHERE ${where.join(' AND ')} ORDER BY COALESCE(first_us, created_us), id`, args);
  }

  /**
   * This node's closed files with a SHA-256 and no archive job yet, oldest first: what the archive sweep
   * enqueues (files closed by recovery after kill -9, by worker threads, or before the archive was on).
   */
  unarchived(limit: number): Promise<CaptureRow[]> {
    return this.q.all<CaptureRow>(
      `SELECT c.* FROM captures c WHERE c.state = 'closed' AND c.sha256 IS NOT NULL AND c.node IN (?, '')
          AND NOT EXISTS (SELECT 1 FROM archive_jobs j WHERE j.node = ? AND j.capture_id = c.id)
        ORDER BY c.id LIMIT ?`,
      [this.node, this.node, limit],
    );
  }

  /** This node's archived files whose local copy is still on disk (the keep-local timer). */
  archivedLocal(): Promise<CaptureRow[]> {
    return this.q.all<CaptureRow>(`SELECT * FROM captures WHERE node IN (?, '') AND archived_us IS NOT NULL AND local_removed_us IS NULL ORDER BY id`, [this.node]);
  }

  async markLocalRemoved(id: number, atUs: number): Promise<void> {
    await this.q.run(`UPDATE captures SET local_removed_us = ? WHERE id = ?`, [atUs, id]);
  }

  async setLedgerSeq(id: number, seq: number): Promise<void> {
    await this.q.run(`UPDATE captures SET ledger_seq = ? WHERE id = ?`, [seq, id]);
  }

  /** Turn a legal hold on or off; false when there is no such row. */
  async setLegalHold(id: number, on: boolean): Promise<boolean> {
    return (await this.q.run(`UPDATE captures SET legal_hold = ? WHERE id = ?`, [on ? 1 : 0, id])).changes === 1;
  }

  /** Files and bytes by state (status, metrics). */
  byState(): Promise<{ state: string; n: number; bytes: number }[]> {
    return this.q.all(`SELECT state, COUNT(*) AS n, COALESCE(SUM(bytes), 0) AS bytes FROM captures GROUP BY state ORDER BY state`);
  }

  /** Per pair: files, packets, bytes (the decap CLI's summary). */
  pairs(): Promise<PairSummary[]> {
    return this.q.all<PairSummary>(
      `SELECT vni, source_ip AS "sourceIp", MAX(session_id) AS "sessionId", COUNT(*) AS files, SUM(packets) AS packets, SUM(bytes) AS bytes,
              MAX(gwlb_endpoint_id) AS "gwlbEndpointId"
       FROM captures GROUP BY vni, source_ip ORDER BY vni, source_ip`,
    );
  }
}
