/**
 * Control-plane events kept for correlation (table `control_events`), idempotent on the CloudTrail
 * event id: the same record ingested by two nodes is one row.
 */
import type { Sql } from './engine.js';

export interface ControlEventRow {
  event_id: string;
  event_name: string;
  event_time: number;
  actor_arn: string | null;
  source_ip: string | null;
  session_id: string | null;
  eni: string | null;
  vni: number | null;
  target_id: string | null;
  filter_id: string | null;
  error_code: string | null;
  record: string;
}

const SESSION_CHANGES = `('CreateTrafficMirrorSession', 'ModifyTrafficMirrorSession')`;

export class ControlEventsRepo {
  constructor(private readonly q: Sql) {}

  /** False for a repeat (the event id is already stored). */
  async record(r: ControlEventRow, q: Sql = this.q): Promise<boolean> {
    const res = await q.run(
      `INSERT INTO control_events (event_id, event_name, event_time, actor_arn, source_ip, session_id, eni, vni, target_id, filter_id, error_code, record)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (event_id) DO NOTHING`,
      [r.event_id, r.event_name, r.event_time, r.actor_arn, r.source_ip, r.session_id, r.eni, r.vni, r.target_id, r.filter_id, r.error_code, r.record],
    );
    return res.changes > 0;
  }

  /** The latest successful create/modify calls of a session, newest first. */
  sessionChanges(sessionId: string, limit: number, q: Sql = this.q): Promise<ControlEventRow[]> {
    return q.all<ControlEventRow>(
      `SELECT * FROM control_events WHERE error_code IS NULL AND session_id = ? AND event_name IN ${SESSION_CHANGES} ORDER BY event_time DESC LIMIT ?`,
      [sessionId, limit],
    );
  }

  /** Successful create/modify calls on a VNI or for a session, up to a time, oldest first. */
  changesOn(vni: number, sessionId: string | null, untilMs: number, q: Sql = this.q): Promise<ControlEventRow[]> {
    return q.all<ControlEventRow>(
      `SELECT * FROM control_events WHERE error_code IS NULL AND event_name IN ${SESSION_CHANGES} AND (vni = ? OR session_id = ?) AND event_time <= ? ORDER BY event_time`,
      [vni, sessionId, untilMs],
    );
  }

  /** A session's create/modify/delete history up to a time, oldest first. */
  history(sessionId: string, untilMs: number, q: Sql = this.q): Promise<ControlEventRow[]> {
    return q.all<ControlEventRow>(
      `SELECT * FROM control_events WHERE error_code IS NULL AND session_id = ? AND event_time <= ?
         AND event_name IN ('CreateTrafficMirrorSession', 'ModifyTrafficMirrorSession', 'DeleteTrafficMirrorSession') ORDER BY event_time`,
      [sessionId, untilMs],
    );
  }

  /** The VNI CloudTrail last gave a session (PCAP extraction by a session the manifest does not name). */
  async lastVni(sessionId: string): Promise<number | undefined> {
    return (await this.q.get<{ vni: number }>(`SELECT vni FROM control_events WHERE session_id = ? AND vni IS NOT NULL ORDER BY event_time DESC LIMIT 1`, [sessionId]))?.vni;
  }
}
