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
import type { Sql } from '../store/engine.js';
import type { Store } from '../store/store.js';
import type { ControlEvent } from './cloudtrail/types.js';
import type { ControlEventRow } from '../store/control-events.js';
import type { ControlEvidence, Finding, FindingKind, TrafficEvidence } from './finding.js';
import type { Findings } from './findings.js';
import { MAX_CORRELATED } from './store.js';

/** CloudTrail eventTime and our receive clock are different clocks; tolerate this much disagreement. */
export const CLOCK_SKEW_MS = 5 * 60_000;

export const DATA_PLANE_KINDS: readonly FindingKind[] = ['unauthorized-vni', 'unexpected-source', 'expired-session'];

/** Findings about one mirror session that observed traffic on its VNI confirms (or explains). */
export const SESSION_FINDING_KINDS: readonly FindingKind[] = ['mirror-session-created', 'mirror-session-modified', 'unmanaged-session', 'session-drift'];

const SESSION_EVENTS = ['CreateTrafficMirrorSession', 'ModifyTrafficMirrorSession'] as const;

type ControlRow = Omit<ControlEventRow, 'record'>;

/** Store a control-plane event for later correlation. Idempotent on eventId: returns false for a repeat. */
export function recordControlEvent(store: Store, ev: ControlEvent, q: Sql): Promise<boolean> {
  return store.controlEvents.record(
    {
      event_id: ev.eventId,
      event_name: ev.eventName,
      event_time: ev.eventTime,
      actor_arn: ev.actorArn ?? null,
      source_ip: ev.callerIp ?? null,
      session_id: ev.sessionId ?? null,
      eni: ev.eni ?? null,
      vni: ev.vni ?? null,
      target_id: ev.targetId ?? null,
      filter_id: ev.filterId ?? null,
      error_code: ev.errorCode ?? null,
      record: JSON.stringify(ev.record),
    },
    q,
  );
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
export async function controlEvidenceForSession(store: Store, sessionId: string, q: Sql): Promise<ControlEvidence[]> {
  return (await store.controlEvents.sessionChanges(sessionId, MAX_CORRELATED, q)).reverse().map(rowEvidence);
}

/**
 * Control-plane events that explain traffic on `vni` (or on manifest session `sessionId`) first seen
 * at `atMs`: the create/modify calls of every session that was on that VNI at that time.
 */
export async function controlEvidenceForTraffic(store: Store, q: { vni: number; sessionId?: string; atMs: number }, tx: Sql): Promise<ControlEvidence[]> {
  const horizon = q.atMs + CLOCK_SKEW_MS;
  const candidates = await store.controlEvents.changesOn(q.vni, q.sessionId ?? null, horizon, tx);
  if (candidates.length === 0) return [];
  const out: ControlEvidence[] = [];
  const done = new Set<string>();
  for (const c of candidates) {
    if (c.session_id === null) {
      out.push(rowEvidence(c)); // a create whose response we never saw: still who and when
      continue;
    }
    if (done.has(c.session_id)) continue;
    done.add(c.session_id);
    const events = await store.controlEvents.history(c.session_id, horizon, tx);
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
export async function trafficEvidence(store: Store, q: { vni?: number; sessionId?: string; sinceMs: number; unattributedOnly?: boolean }, tx: Sql): Promise<TrafficEvidence[]> {
  if (q.vni === undefined && q.sessionId === undefined) return [];
  const rows = await store.observed.flowing(
    { ...(q.vni !== undefined ? { vni: q.vni } : {}), ...(q.sessionId !== undefined ? { sessionId: q.sessionId } : {}), sinceMs: q.sinceMs - CLOCK_SKEW_MS, ...(q.unattributedOnly ? { unattributedOnly: true } : {}), limit: MAX_CORRELATED },
    tx,
  );
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
 * The reverse direction for one control event: attach it to the open data-plane findings on its VNI
 * (or its session ID). Returns the findings that gained the evidence.
 */
export async function attachControlToTraffic(store: Findings, ev: ControlEvent, atMs: number, q: Sql): Promise<Finding[]> {
  if (!isSessionChange(ev) || (ev.vni === undefined && ev.sessionId === undefined)) return [];
  const evidence = controlEvidence(ev);
  const out: Finding[] = [];
  for (const f of await store.openFindings(DATA_PLANE_KINDS, { ...(ev.vni !== undefined ? { vni: ev.vni } : {}), ...(ev.sessionId !== undefined ? { sessionId: ev.sessionId } : {}) }, q)) {
    // The same rule as the forward direction: a call made after the traffic began did not start it.
    if (ev.eventTime > Date.parse(f.firstSeen) + CLOCK_SKEW_MS) continue;
    const before = f.correlated?.control?.length ?? 0;
    const updated = await store.attachCorrelation(f.id, { control: [evidence] }, atMs, q);
    if (updated && (updated.correlated?.control?.length ?? 0) !== before) out.push(updated);
  }
  return out;
}

/**
 * The other half of the forward direction: traffic on `vni` was just seen; open findings about a
 * session on that VNI (created by CloudTrail, found by inventory) learn that the session carries
 * traffic.
 */
export async function attachTrafficToSessionFindings(store: Findings, traffic: TrafficEvidence, sessionId: string | null, atMs: number, q: Sql): Promise<Finding[]> {
  const out: Finding[] = [];
  for (const f of await store.openFindings(SESSION_FINDING_KINDS, { vni: traffic.vni }, q)) {
    // A session created after this traffic began did not carry it (allowing for clock skew).
    if (Date.parse(f.firstSeen) > atMs + CLOCK_SKEW_MS && f.kind.startsWith('mirror-')) continue;
    // An unmanaged session on a reused VNI does not explain traffic a manifest session claims.
    if (f.kind === 'unmanaged-session' && sessionId !== null) continue;
    const before = f.correlated?.traffic?.length ?? 0;
    const updated = await store.attachCorrelation(f.id, { traffic: [traffic] }, atMs, q);
    if (updated && (updated.correlated?.traffic?.length ?? 0) !== before) out.push(updated);
  }
  return out;
}

function compact<T extends object>(o: T): T {
  for (const k of Object.keys(o) as (keyof T)[]) if (o[k] === undefined) delete o[k];
  return o;
}
