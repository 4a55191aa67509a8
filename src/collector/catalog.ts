/**
 * The capture catalog: one row per PCAP file (table `captures` in src/store/db.ts). A row is inserted,
 * state 'open', before the file's first byte is written, so after a crash every file on disk either
 * has a row to repair or is adopted by the recovery scan. Rows are synced from memory on a timer
 * (packets, bytes flushed, last time) and finalized with the SHA-256 on close.
 */
import type { Db } from '../store/db.js';

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

export class Catalog {
  private readonly insertStmt;
  private readonly syncStmt;
  private readonly closeStmt;
  private readonly deleteStmt;
  private readonly sessionStmt;
  private readonly observedStmt;

  constructor(readonly db: Db) {
    this.insertStmt = db.prepare(
      `INSERT INTO captures (path, vni, source_ip, session_id, worker, state, created_us, first_us, last_us, packets, bytes, gwlb_endpoint_id, gwlb_attachment_id)
       VALUES (?, ?, ?, ?, ?, 'open', ?, ?, ?, 0, 0, ?, ?)`,
    );
    this.syncStmt = db.prepare(`UPDATE captures SET packets = ?, bytes = ?, last_us = ? WHERE id = ? AND state = 'open'`);
    this.closeStmt = db.prepare(
      `UPDATE captures SET state = 'closed', closed_us = ?, first_us = ?, last_us = ?, packets = ?, bytes = ?, sha256 = ?, close_reason = ? WHERE id = ?`,
    );
    this.deleteStmt = db.prepare(`DELETE FROM captures WHERE id = ?`);
    this.sessionStmt = db.prepare(`UPDATE captures SET session_id = ? WHERE id = ?`);
    this.observedStmt = db.prepare(
      `INSERT INTO observed_sessions (source_ip, vni, session_id, first_seen, last_seen, packets, bytes, gwlb_endpoint_id, gwlb_attachment_id)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT (source_ip, vni) DO UPDATE SET
         session_id = excluded.session_id,
         gwlb_endpoint_id = COALESCE(excluded.gwlb_endpoint_id, observed_sessions.gwlb_endpoint_id),
         gwlb_attachment_id = COALESCE(excluded.gwlb_attachment_id, observed_sessions.gwlb_attachment_id),
         last_seen = MAX(last_seen, excluded.last_seen),
         packets = observed_sessions.packets + excluded.packets,
         bytes = observed_sessions.bytes + excluded.bytes`,
    );
  }

  open(row: {
    path: string;
    vni: number;
    sourceIp: string;
    sessionId: string | null;
    worker: number;
    createdUs: number;
    firstUs: number;
    /** The GWLB endpoint and attachment the session arrives through (GENEVE), absent otherwise. */
    gwlbEndpointId?: string | null;
    gwlbAttachmentId?: string | null;
  }): number {
    const r = this.insertStmt.run(row.path, row.vni, row.sourceIp, row.sessionId, row.worker, row.createdUs, row.firstUs, row.firstUs, row.gwlbEndpointId ?? null, row.gwlbAttachmentId ?? null);
    return Number(r.lastInsertRowid);
  }

  sync(id: number, packets: number, bytes: number, lastUs: number): void {
    this.syncStmt.run(packets, bytes, lastUs, id);
  }

  close(id: number, info: CloseInfo): void {
    this.closeStmt.run(info.closedUs, info.firstUs, info.lastUs, info.packets, info.bytes, info.sha256, info.reason, id);
  }

  delete(id: number): void {
    this.deleteStmt.run(id);
  }

  setSessionId(id: number, sessionId: string | null): void {
    this.sessionStmt.run(sessionId, id);
  }

  /** Add deltas to the observed-session row of a pair. */
  observe(
    sourceIp: string,
    vni: number,
    sessionId: string | null,
    firstSeenMs: number,
    lastSeenMs: number,
    packets: number,
    bytes: number,
    gwlbEndpointId: string | null = null,
    gwlbAttachmentId: string | null = null,
  ): void {
    this.observedStmt.run(sourceIp, vni, sessionId, firstSeenMs, lastSeenMs, packets, bytes, gwlbEndpointId, gwlbAttachmentId);
  }

  openRows(worker?: number): CaptureRow[] {
    return (
      worker === undefined
        ? this.db.prepare(`SELECT * FROM captures WHERE state = 'open'`).all()
        : this.db.prepare(`SELECT * FROM captures WHERE state = 'open' AND worker = ?`).all(worker)
    ) as CaptureRow[];
  }

  byPath(path: string): CaptureRow | undefined {
    return this.db.prepare(`SELECT * FROM captures WHERE path = ?`).get(path) as CaptureRow | undefined;
  }

  /** Closed files, oldest first (retention order). */
  closedOldestFirst(): CaptureRow[] {
    return this.db.prepare(`SELECT * FROM captures WHERE state = 'closed' ORDER BY COALESCE(last_us, closed_us, created_us) ASC, id ASC`).all() as CaptureRow[];
  }

  totalBytes(): number {
    return (this.db.prepare(`SELECT COALESCE(SUM(bytes), 0) AS n FROM captures`).get() as { n: number }).n;
  }

  /** Run several writes as one transaction (one fsync instead of many). */
  batch<T>(fn: () => T): T {
    return this.db.transaction(fn)();
  }
}
