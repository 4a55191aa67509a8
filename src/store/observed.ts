/**
 * Sessions observed on the data plane (table `observed_sessions`): one row per (source IP, VNI) pair,
 * fleet-wide. Collectors add their packet and byte deltas; `node` is the last node that reported the
 * pair. Times are ms since the epoch.
 */
import type { EngineName, Param, Sql } from './engine.js';

export interface ObservedRow {
  source_ip: string;
  vni: number;
  session_id: string | null;
  first_seen: number;
  last_seen: number;
  packets: number;
  bytes: number;
  gwlb_endpoint_id: string | null;
  gwlb_attachment_id: string | null;
  node: string;
}

export interface ObserveDelta {
  sourceIp: string;
  vni: number;
  sessionId: string | null;
  firstSeenMs: number;
  lastSeenMs: number;
  packets: number;
  bytes: number;
  gwlbEndpointId?: string | null;
  gwlbAttachmentId?: string | null;
}

/** Add a pair's deltas; the two dialects differ only in the names of MIN/MAX of two values. */
function upsert(least: string, greatest: string): string {
  return `INSERT INTO observed_sessions (source_ip, vni, session_id, first_seen, last_seen, packets, bytes, gwlb_endpoint_id, gwlb_attachment_id, node)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT (source_ip, vni) DO UPDATE SET
         session_id = excluded.session_id,
         gwlb_endpoint_id = COALESCE(excluded.gwlb_endpoint_id, observed_sessions.gwlb_endpoint_id),
         gwlb_attachment_id = COALESCE(excluded.gwlb_attachment_id, observed_sessions.gwlb_attachment_id),
         first_seen = ${least}(observed_sessions.first_seen, excluded.first_seen),
         last_seen = ${greatest}(observed_sessions.last_seen, excluded.last_seen),
         packets = observed_sessions.packets + excluded.packets,
         bytes = observed_sessions.bytes + excluded.bytes,
         node = excluded.node`;
}

/** The upsert's text per engine, made once (it runs for every new pair and every flush). */
const UPSERT: Record<EngineName, string> = { sqlite: upsert('MIN', 'MAX'), postgres: upsert('LEAST', 'GREATEST') };

export class ObservedRepo {
  constructor(
    private readonly q: Sql,
    private readonly node: string,
  ) {}

  /** Add a pair's deltas (the collector's timer). */
  async observe(d: ObserveDelta, q: Sql = this.q): Promise<void> {
    await q.run(UPSERT[q.engine], [d.sourceIp, d.vni, d.sessionId, d.firstSeenMs, d.lastSeenMs, d.packets, d.bytes, d.gwlbEndpointId ?? null, d.gwlbAttachmentId ?? null, this.node]);
  }

  /** A pair's first packet, noted at once so that a control event before the next flush finds it. */
  async note(sourceIp: string, vni: number, sessionId: string | null, atMs: number, q: Sql = this.q): Promise<void> {
    await this.observe({ sourceIp, vni, sessionId, firstSeenMs: atMs, lastSeenMs: atMs, packets: 0, bytes: 0 }, q);
  }

  all(q: Sql = this.q): Promise<ObservedRow[]> {
    return q.all<ObservedRow>(`SELECT * FROM observed_sessions ORDER BY vni, source_ip`);
  }

  get(sourceIp: string, vni: number): Promise<ObservedRow | undefined> {
    return this.q.get<ObservedRow>(`SELECT * FROM observed_sessions WHERE source_ip = ? AND vni = ?`, [sourceIp, vni]);
  }

  /** Pairs on `vni` (or labelled `sessionId`) still flowing at or after `sinceMs` (correlation evidence). */
  flowing(f: { vni?: number; sessionId?: string; sinceMs: number; unattributedOnly?: boolean; limit: number }, q: Sql = this.q): Promise<ObservedRow[]> {
    const args: Param[] = [f.vni ?? null, f.sessionId ?? null, f.sinceMs];
    return q.all<ObservedRow>(
      `SELECT * FROM observed_sessions
       WHERE (vni = ? OR session_id = ?) AND last_seen >= ? ${f.unattributedOnly ? 'AND session_id IS NULL' : ''}
       ORDER BY first_seen LIMIT ?`,
      [...args, f.limit],
    );
  }

  /** Packets and bytes per VNI (metrics). */
  byVni(): Promise<{ vni: number; packets: number; bytes: number }[]> {
    return this.q.all(`SELECT vni, SUM(packets) AS packets, SUM(bytes) AS bytes FROM observed_sessions GROUP BY vni ORDER BY bytes DESC, vni`);
  }
}
