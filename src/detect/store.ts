/**
 * What the findings share (src/detect/findings.ts writes them through the store's repositories): the
 * list/count shapes, the keyset cursor, the merge of correlation evidence and the row-to-finding
 * mapping. One row per incident: the id is a hash of the finding's kind and incident key, so the same
 * incident seen again (after a restart too, and on another node) updates its row.
 *
 * Events: `finding.created` for a new incident and for a resolved one that recurs; `finding.updated`
 * when an open finding gains correlation evidence or a higher severity; `finding.resolved`. A plain
 * repeat only bumps the count (visible through the API), so a periodic check that sees the same
 * unmanaged session every five minutes does not page anyone every five minutes.
 */
import { MgError } from '../errors.js';
import { findingId } from './finding-id.js';
import type { FindingRow } from '../store/findings.js';
import {
  type ControlEvidence,
  type Finding,
  type FindingEvent,
  type FindingKind,
  type Severity,
  type TrafficEvidence,
} from './finding.js';

/** Correlated evidence lists are capped so a noisy VNI cannot grow a row without bound. */
export const MAX_CORRELATED = 20;
export const DEFAULT_LIST_LIMIT = 100;
export const MAX_LIST_LIMIT = 1000;

export type Correlated = NonNullable<Finding['correlated']>;

export interface RecordResult {
  finding: Finding;
  /** True when this call inserted the row (a new incident). */
  created: boolean;
  /** The event emitted to onChange, or null for a quiet repeat. */
  event: FindingEvent | null;
}

export interface ListQuery {
  kind?: FindingKind | readonly FindingKind[];
  /** Minimum severity. */
  severity?: Severity;
  /** Findings last seen at or after (ms since the epoch). */
  since?: number;
  /** Findings first seen at or before (ms since the epoch). */
  until?: number;
  status?: 'open' | 'resolved';
  vni?: number;
  sessionId?: string;
  limit?: number;
  /** The `nextCursor` of the previous page. */
  cursor?: string;
}

export interface ListResult {
  items: Finding[];
  /** Pass back as `cursor` for the next page; null on the last page. */
  nextCursor: string | null;
}

export interface FindingCount {
  kind: FindingKind;
  severity: Severity;
  status: 'open' | 'resolved';
  /** Number of findings (incidents). */
  findings: number;
  /** Sum of their counts (occurrences). */
  occurrences: number;
}

/** A findings row as the store reads it (src/store/findings.ts). */
type Row = FindingRow;

export { findingId };

/** Merge correlation evidence: control events by eventId, traffic by (source IP, VNI). */
export function mergeCorrelated(old: Correlated | undefined, add: Correlated | undefined): { merged: Correlated | undefined; changed: boolean } {
  if (!add || ((add.control?.length ?? 0) === 0 && (add.traffic?.length ?? 0) === 0)) return { merged: old, changed: false };
  let changed = false;
  const control = [...(old?.control ?? [])];
  for (const c of add.control ?? []) {
    if (!control.some((x) => x.eventId === c.eventId)) {
      control.push(c);
      changed = true;
    }
  }
  const traffic = [...(old?.traffic ?? [])];
  for (const t of add.traffic ?? []) {
    const i = traffic.findIndex((x) => x.sourceIp === t.sourceIp && x.vni === t.vni);
    if (i < 0) {
      traffic.push(t);
      changed = true;
    } else {
      // Newer counters for a pair we already cite are not news worth an event.
      const cur = traffic[i]!;
      traffic[i] = { ...cur, ...t, firstSeen: cur.firstSeen < t.firstSeen ? cur.firstSeen : t.firstSeen };
    }
  }
  control.sort((a, b) => (a.eventTime < b.eventTime ? -1 : a.eventTime > b.eventTime ? 1 : 0));
  traffic.sort((a, b) => (a.firstSeen < b.firstSeen ? -1 : a.firstSeen > b.firstSeen ? 1 : 0));
  const merged: Correlated = {};
  // Keep the most recent when over the cap.
  if (control.length) merged.control = control.slice(-MAX_CORRELATED);
  if (traffic.length) merged.traffic = traffic.slice(-MAX_CORRELATED);
  return { merged, changed };
}

export function toFinding(r: Row): Finding {
  const f: Finding = {
    id: r.id,
    kind: r.kind as FindingKind,
    severity: r.severity as Severity,
    status: r.status,
    firstSeen: new Date(r.first_seen).toISOString(),
    lastSeen: new Date(r.last_seen).toISOString(),
    count: r.count,
    summary: r.summary,
    evidence: parseJson<Record<string, unknown>>(r.evidence) ?? {},
  };
  if (r.vni !== null) f.vni = r.vni;
  if (r.source_ip !== null) f.sourceIp = r.source_ip;
  if (r.session_id !== null) f.sessionId = r.session_id;
  const c = parseJson<Correlated>(r.correlated);
  if (c) f.correlated = c;
  return f;
}

export function parseJson<T>(s: string | null): T | undefined {
  if (s === null) return undefined;
  try {
    return JSON.parse(s) as T;
  } catch {
    return undefined;
  }
}

export function encodeCursor(lastSeen: number, id: string): string {
  return Buffer.from(`${lastSeen}:${id}`, 'utf8').toString('base64url');
}

export function decodeCursor(cursor: string): { lastSeen: number; id: string } {
  const m = /^(\d+):(f_[0-9a-f]{20})$/.exec(Buffer.from(cursor, 'base64url').toString('utf8'));
  if (!m) throw new MgError('MG_ERR_API_BAD_REQUEST', 'cursor: not a cursor this server returned');
  return { lastSeen: Number(m[1]), id: m[2]! };
}

export type { ControlEvidence, TrafficEvidence };
