/**
 * Correlation between the two planes. A data-plane finding says "traffic on VNI V from 10.0.0.5 that
 * no session authorizes"; a CloudTrail event says "alice created tms-X on eni-Y with VNI V from
 * 203.0.113.9". Either can come first (CloudTrail delivers events minutes after the call), so both
 * directions are handled:
 *  - traffic first seen: look up stored control events for V (or the session ID) and attach them;
 *  - control event arrives: look up observed traffic for V (or the session ID) in `observed_sessions`,
 *    attach it to the control-plane finding, and attach the event to open data-plane findings on V.
 *
 * Only successful CreateTrafficMirrorSession / ModifyTrafficMirrorSession calls tie a session to a
 * VNI. A session whose latest known event before the traffic is a DeleteTrafficMirrorSession, or a
 * Modify that moved it to another VNI, is not cited: VNIs are reused, and an old session that used V
 * last year explains nothing about traffic on V today.
 */
import type { Db } from '../store/db.js';
import type { ControlEvent } from './cloudtrail/types.js';
import type { ControlEvidence, Finding, FindingKind, TrafficEvidence } from './finding.js';
import { prepared } from './sql.js';
import { MAX_CORRELATED, type FindingStore } from './store.js';

/** CloudTrail eventTime and our receive clock are different clocks; tolerate this much disagreement. */
export const CLOCK_SKEW_MS = 5 * 60_000;

export const DATA_PLANE_KINDS: readonly FindingKind[] = ['unauthorized-vni', 'unexpected-source', 'expired-session'];

/** Findings about one mirror session that observed traffic on its VNI confirms (or explains). */
export const SESSION_FINDING_KINDS: readonly FindingKind[] = ['mirror-session-created', 'mirror-session-modified', 'unmanaged-session', 'session-drift'];

const SESSION_EVENTS = ['CreateTrafficMirrorSession', 'ModifyTrafficMirrorSession'] as const;

interface ControlRow {
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
}

/** Store a control-plane event for later correlation. Idempotent on eventId: returns false for a repeat. */
export function recordControlEvent(db: Db, ev: ControlEvent): boolean {
  const r = prepared(
    db,
    `INSERT INTO control_events (event_id, event_name, event_time, actor_arn, source_ip, session_id, eni, vni, target_id, filter_id, error_code, record)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (event_id) DO NOTHING`,
  ).run(
      ev.eventId,
      ev.eventName,
      ev.eventTime,
      ev.actorArn ?? null,
      ev.callerIp ?? null,
      ev.sessionId ?? null,
      ev.eni ?? null,
      ev.vni ?? null,
      ev.targetId ?? null,
      ev.filterId ?? null,
      ev.errorCode ?? null,
      JSON.stringify(ev.record),
    );
  return r.changes > 0;
}

/** The evidence a finding carries about a control-plane event. */
export function controlEvidence(ev: ControlEvent): ControlEvidence {
  return compact({
    eventId: ev.eventId,
    eventName: ev.eventName,
    eventTime: new Date(ev.eventTime).toISOString(),
    actorArn: ev.actorArn,
    callerIp: ev.callerIp,
    sessionId: ev.sessionId,
    eni: ev.eni,
    vni: ev.vni,
    targetId: ev.targetId,
    filterId: ev.filterId,
    errorCode: ev.errorCode,
  });
}

function rowEvidence(r: ControlRow): ControlEvidence {
  return compact({
    eventId: r.event_id,
    eventName: r.event_name,
    eventTime: new Date(r.event_time).toISOString(),
    actorArn: r.actor_arn ?? undefined,
    callerIp: r.source_ip ?? undefined,
    sessionId: r.session_id ?? undefined,
    eni: r.eni ?? undefined,
    vni: r.vni ?? undefined,
    targetId: r.target_id ?? undefined,
    filterId: r.filter_id ?? undefined,
    errorCode: r.error_code ?? undefined,
  });
}

/** Does this event tie a session to a VNI (a successful create or modify)? */
export function isSessionChange(ev: Pick<ControlEvent, 'eventName' | 'errorCode' | 'dryRun'>): boolean {
  return ev.errorCode === undefined && ev.dryRun !== true && (SESSION_EVENTS as readonly string[]).includes(ev.eventName);
}

/** The create/modify calls recorded for one session ID (who made it, and who changed it). */
export function controlEvidenceForSession(db: Db, sessionId: string): ControlEvidence[] {
  return prepared<[string, number], ControlRow>(
    db,
    `SELECT * FROM control_events
     WHERE error_code IS NULL AND session_id = ? AND event_name IN ('CreateTrafficMirrorSession', 'ModifyTrafficMirrorSession')
     ORDER BY event_time DESC LIMIT ?`,
  )
    .all(sessionId, MAX_CORRELATED)
    .reverse()
    .map(rowEvidence);
}

/**
 * Control-plane events that explain traffic on `vni` (or on manifest session `sessionId`) first seen
 * at `atMs`: the create/modify calls of every session that was on that VNI at that time.
 */
export function controlEvidenceForTraffic(db: Db, q: { vni: number; sessionId?: string; atMs: number }): ControlEvidence[] {
  const horizon = q.atMs + CLOCK_SKEW_MS;
  const candidates = prepared<[number, string | null, number], ControlRow>(
    db,
    `SELECT * FROM control_events
     WHERE error_code IS NULL AND event_name IN ('CreateTrafficMirrorSession', 'ModifyTrafficMirrorSession')
       AND (vni = ? OR session_id = ?) AND event_time <= ?
     ORDER BY event_time`,
  ).all(q.vni, q.sessionId ?? null, horizon);
  if (candidates.length === 0) return [];
  const history = prepared<[string, number], ControlRow>(
    db,
    `SELECT * FROM control_events
     WHERE error_code IS NULL AND session_id = ? AND event_time <= ?
       AND event_name IN ('CreateTrafficMirrorSession', 'ModifyTrafficMirrorSession', 'DeleteTrafficMirrorSession')
     ORDER BY event_time`,
  );
  const out: ControlEvidence[] = [];
  const done = new Set<string>();
  for (const c of candidates) {
    if (c.session_id === null) {
      out.push(rowEvidence(c)); // a create whose response we never saw: still who and when
      continue;
    }
    if (done.has(c.session_id)) continue;
    done.add(c.session_id);
    const events = history.all(c.session_id, horizon);
    const last = events[events.length - 1]!;
    if (last.event_name === 'DeleteTrafficMirrorSession') continue;
    // The session's VNI as of the traffic: the latest create/modify that said.
    let vni: number | null = null;
    for (const e of events) if (e.vni !== null) vni = e.vni;
    if (vni !== q.vni && c.session_id !== q.sessionId) continue;
    for (const e of events) if (e.event_name !== 'DeleteTrafficMirrorSession') out.push(rowEvidence(e));
  }
  out.sort((a, b) => (a.eventTime < b.eventTime ? -1 : a.eventTime > b.eventTime ? 1 : 0));
  return out.slice(-MAX_CORRELATED);
}

/**
 * Traffic observed on `vni` (or labelled with manifest session `sessionId`) that was still flowing at
 * or after `sinceMs`. `unattributedOnly` keeps only pairs no manifest session claimed: traffic that an
 * authorized session on a reused VNI explains is not evidence about another session.
 */
export function trafficEvidence(db: Db, q: { vni?: number; sessionId?: string; sinceMs: number; unattributedOnly?: boolean }): TrafficEvidence[] {
  if (q.vni === undefined && q.sessionId === undefined) return [];
  const rows = prepared<
    [number | null, string | null, number, number, number],
    { source_ip: string; vni: number; first_seen: number; last_seen: number; packets: number; bytes: number }
  >(
    db,
    `SELECT source_ip, vni, first_seen, last_seen, packets, bytes FROM observed_sessions
     WHERE (vni = ? OR session_id = ?) AND last_seen >= ? AND (? = 0 OR session_id IS NULL)
     ORDER BY first_seen LIMIT ?`,
  ).all(q.vni ?? null, q.sessionId ?? null, q.sinceMs - CLOCK_SKEW_MS, q.unattributedOnly ? 1 : 0, MAX_CORRELATED);
  return rows.map((r) => trafficRow(r));
}

export function trafficRow(r: { source_ip: string; vni: number; first_seen: number; last_seen: number; packets?: number; bytes?: number }): TrafficEvidence {
  const t: TrafficEvidence = {
    sourceIp: r.source_ip,
    vni: r.vni,
    firstSeen: new Date(r.first_seen).toISOString(),
    lastSeen: new Date(r.last_seen).toISOString(),
  };
  if (r.packets) t.packets = r.packets;
  if (r.bytes) t.bytes = r.bytes;
  return t;
}

/**
 * Note a pair's first packet in `observed_sessions` right away, so that a control event arriving
 * before the collector's next flush still finds the traffic. The collector's own upsert adds packet
 * and byte counts to this row.
 */
export function noteObserved(db: Db, sourceIp: string, vni: number, sessionId: string | null, atMs: number): void {
  prepared(
    db,
    `INSERT INTO observed_sessions (source_ip, vni, session_id, first_seen, last_seen, packets, bytes)
     VALUES (?, ?, ?, ?, ?, 0, 0)
     ON CONFLICT (source_ip, vni) DO UPDATE SET
       session_id = excluded.session_id,
       first_seen = MIN(observed_sessions.first_seen, excluded.first_seen),
       last_seen = MAX(observed_sessions.last_seen, excluded.last_seen)`,
  ).run(sourceIp, vni, sessionId, atMs, atMs);
}

/**
 * The reverse direction for one control event: attach it to the open data-plane findings on its VNI
 * (or its session ID). Returns the findings that gained the evidence.
 */
export function attachControlToTraffic(store: FindingStore, ev: ControlEvent, atMs: number): Finding[] {
  if (!isSessionChange(ev) || (ev.vni === undefined && ev.sessionId === undefined)) return [];
  const evidence = controlEvidence(ev);
  const out: Finding[] = [];
  for (const f of store.openFindings(DATA_PLANE_KINDS, { vni: ev.vni, sessionId: ev.sessionId })) {
    // The same rule as the forward direction: a call made after the traffic began did not start it.
    if (ev.eventTime > Date.parse(f.firstSeen) + CLOCK_SKEW_MS) continue;
    const before = f.correlated?.control?.length ?? 0;
    const updated = store.attachCorrelation(f.id, { control: [evidence] }, atMs);
    if (updated && (updated.correlated?.control?.length ?? 0) !== before) out.push(updated);
  }
  return out;
}

/**
 * The other half of the forward direction: traffic on `vni` was just seen; open findings about a
 * session on that VNI (created by CloudTrail, found by inventory) learn that the session carries
 * traffic.
 */
export function attachTrafficToSessionFindings(store: FindingStore, traffic: TrafficEvidence, sessionId: string | null, atMs: number): Finding[] {
  const out: Finding[] = [];
  for (const f of store.openFindings(SESSION_FINDING_KINDS, { vni: traffic.vni })) {
    // A session created after this traffic began did not carry it (allowing for clock skew).
    if (Date.parse(f.firstSeen) > atMs + CLOCK_SKEW_MS && f.kind.startsWith('mirror-')) continue;
    // An unmanaged session on a reused VNI does not explain traffic a manifest session claims.
    if (f.kind === 'unmanaged-session' && sessionId !== null) continue;
    const before = f.correlated?.traffic?.length ?? 0;
    const updated = store.attachCorrelation(f.id, { traffic: [traffic] }, atMs);
    if (updated && (updated.correlated?.traffic?.length ?? 0) !== before) out.push(updated);
  }
  return out;
}

function compact<T extends object>(o: T): T {
  for (const k of Object.keys(o) as (keyof T)[]) if (o[k] === undefined) delete o[k];
  return o;
}
