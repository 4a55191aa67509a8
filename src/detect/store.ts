/**
 * Findings in SQLite (table `findings`, src/store/db.ts). One row per incident: the id is a hash of the
 * finding's kind and incident key, so the same incident seen again (after a restart too) updates its
 * row, bumps `count` and `last_seen`, and merges new correlation evidence. A resolved incident that
 * recurs is reopened under the same id.
 *
 * `onChange` runs inside the transaction that wrote the row: the webhook outbox inserts its rows there,
 * so a finding and its alert are committed together or not at all. If `onChange` throws, the finding
 * is rolled back and the error propagates.
 *
 * Events: `finding.created` for a new incident and for a resolved one that recurs; `finding.updated`
 * when an open finding gains correlation evidence or a higher severity; `finding.resolved`. A plain
 * repeat only bumps the count (visible through the API), so a periodic check that sees the same
 * unmanaged session every five minutes does not page anyone every five minutes.
 */
import { MgError } from '../errors.js';
import { findingId } from './finding-id.js';
import { prepared } from './sql.js';
import type { Db } from '../store/db.js';
import {
  FINDING_KINDS,
  SEVERITIES,
  severityRank,
  type ControlEvidence,
  type Finding,
  type FindingEvent,
  type FindingInput,
  type FindingKind,
  type Severity,
  type TrafficEvidence,
} from './finding.js';

/** Correlated evidence lists are capped so a noisy VNI cannot grow a row without bound. */
export const MAX_CORRELATED = 20;
export const DEFAULT_LIST_LIMIT = 100;
export const MAX_LIST_LIMIT = 1000;

export type Correlated = NonNullable<Finding['correlated']>;

export interface FindingStoreOptions {
  db: Db;
  /** Called inside the transaction that wrote the finding; throwing rolls the write back. */
  onChange?: (e: FindingEvent) => void;
}

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

interface Row {
  id: string;
  kind: string;
  severity: string;
  status: 'open' | 'resolved';
  first_seen: number;
  last_seen: number;
  count: number;
  vni: number | null;
  source_ip: string | null;
  session_id: string | null;
  summary: string;
  evidence: string;
  correlated: string | null;
  updated_at: number;
}

export { findingId };

export class FindingStore {
  readonly db: Db;
  private readonly onChange: ((e: FindingEvent) => void) | undefined;
  private readonly getStmt;
  private readonly insertStmt;
  private readonly updateStmt;
  private readonly resolveStmt;
  private readonly correlateStmt;
  private readonly evidenceStmt;

  constructor(opts: FindingStoreOptions) {
    this.db = opts.db;
    this.onChange = opts.onChange;
    this.getStmt = this.db.prepare<[string], Row>('SELECT * FROM findings WHERE id = ?');
    this.insertStmt = this.db.prepare(
      `INSERT INTO findings (id, kind, severity, status, first_seen, last_seen, count, vni, source_ip, session_id, summary, evidence, correlated, updated_at)
       VALUES (@id, @kind, @severity, 'open', @at, @at, @count, @vni, @source_ip, @session_id, @summary, @evidence, @correlated, @now)`,
    );
    this.updateStmt = this.db.prepare(
      `UPDATE findings SET severity = @severity, status = 'open', first_seen = @first_seen, last_seen = @last_seen, count = count + @count,
         vni = @vni, source_ip = @source_ip, session_id = @session_id, summary = @summary, evidence = @evidence,
         correlated = @correlated, updated_at = @now
       WHERE id = @id`,
    );
    this.resolveStmt = this.db.prepare(`UPDATE findings SET status = 'resolved', evidence = ?, updated_at = ? WHERE id = ?`);
    this.correlateStmt = this.db.prepare(`UPDATE findings SET correlated = ?, updated_at = ? WHERE id = ?`);
    this.evidenceStmt = this.db.prepare(`UPDATE findings SET evidence = ?, updated_at = ? WHERE id = ?`);
  }

  /** Record an occurrence of an incident: insert, bump, or reopen. */
  record(input: FindingInput): RecordResult {
    return this.db.transaction((): RecordResult => {
      const id = findingId(input.kind, input.key);
      const now = Date.now();
      const severity = input.severity ?? FINDING_KINDS[input.kind];
      const old = this.getStmt.get(id);
      if (old === undefined) {
        const correlated = mergeCorrelated(undefined, input.correlated).merged;
        this.insertStmt.run({
          id,
          kind: input.kind,
          severity,
          at: input.at,
          count: input.occurrences ?? 1,
          vni: input.vni ?? null,
          source_ip: input.sourceIp ?? null,
          session_id: input.sessionId ?? null,
          summary: input.summary,
          evidence: JSON.stringify(input.evidence),
          correlated: correlated ? JSON.stringify(correlated) : null,
          now,
        });
        const finding = this.get(id)!;
        return { finding, created: true, event: this.emit('finding.created', finding, input.at) };
      }

      const reopened = old.status === 'resolved';
      const oldSeverity = old.severity as Severity;
      // An open incident never silently loses severity; a reopened one takes the new assessment.
      const newSeverity = reopened || severityRank(severity) > severityRank(oldSeverity) ? severity : oldSeverity;
      const { merged, changed } = mergeCorrelated(parseJson<Correlated>(old.correlated), input.correlated);
      const oldEvidence = parseJson<Record<string, unknown>>(old.evidence) ?? {};
      if (reopened) {
        delete oldEvidence.resolution;
        // An acknowledgement was of the incident as it was; a recurrence needs a new look.
        delete oldEvidence.acknowledgement;
      }
      this.updateStmt.run({
        id,
        severity: newSeverity,
        first_seen: Math.min(old.first_seen, input.at),
        last_seen: Math.max(old.last_seen, input.at),
        count: input.occurrences ?? 1,
        vni: input.vni ?? old.vni,
        source_ip: input.sourceIp ?? old.source_ip,
        session_id: input.sessionId ?? old.session_id,
        summary: input.summary,
        evidence: JSON.stringify({ ...oldEvidence, ...input.evidence }),
        correlated: merged ? JSON.stringify(merged) : null,
        now,
      });
      const finding = this.get(id)!;
      let event: FindingEvent | null = null;
      if (reopened) event = this.emit('finding.created', finding, input.at, 'reopened');
      else if (changed) event = this.emit('finding.updated', finding, input.at, 'correlated');
      else if (newSeverity !== oldSeverity) event = this.emit('finding.updated', finding, input.at, 'escalated');
      return { finding, created: false, event };
    })();
  }

  /** Resolve an open finding; a no-op (returning it unchanged) when it is already resolved. */
  resolve(id: string, at: number, reason?: string, by?: { actor: string; note?: string }): Finding | undefined {
    return this.db.transaction((): Finding | undefined => {
      const old = this.getStmt.get(id);
      if (old === undefined) return undefined;
      if (old.status === 'resolved') return toFinding(old);
      const evidence = parseJson<Record<string, unknown>>(old.evidence) ?? {};
      evidence.resolution = { at: new Date(at).toISOString(), ...(reason ? { reason } : {}), ...(by ? { by: by.actor, ...(by.note ? { note: by.note } : {}) } : {}) };
      this.resolveStmt.run(JSON.stringify(evidence), Date.now(), id);
      const finding = this.get(id)!;
      this.emit('finding.resolved', finding, at);
      return finding;
    })();
  }

  /**
   * Record that someone looked at an open finding (`evidence.acknowledgement`: when, who, a note). It
   * stays open and keeps alerting on escalation; no event is emitted. Undefined when there is no such
   * finding; the finding unchanged when it is resolved (the caller decides what to answer).
   */
  acknowledge(id: string, at: number, by: string, note?: string): Finding | undefined {
    return this.db.transaction((): Finding | undefined => {
      const old = this.getStmt.get(id);
      if (old === undefined) return undefined;
      if (old.status === 'resolved') return toFinding(old);
      const evidence = parseJson<Record<string, unknown>>(old.evidence) ?? {};
      evidence.acknowledgement = { at: new Date(at).toISOString(), by, ...(note ? { note } : {}) };
      this.evidenceStmt.run(JSON.stringify(evidence), Date.now(), id);
      return this.get(id)!;
    })();
  }

  /** Resolve when open; returns the finding only when this call resolved it. */
  resolveIfOpen(id: string, at: number, reason?: string): Finding | undefined {
    const cur = this.getStmt.get(id);
    if (cur === undefined || cur.status !== 'open') return undefined;
    return this.resolve(id, at, reason);
  }

  /**
   * Add correlation evidence to an existing finding without counting an occurrence (the other plane
   * explained an incident we already have). Emits finding.updated when anything new was added.
   */
  attachCorrelation(id: string, add: Correlated, at: number): Finding | undefined {
    return this.db.transaction((): Finding | undefined => {
      const old = this.getStmt.get(id);
      if (old === undefined) return undefined;
      const { merged, changed } = mergeCorrelated(parseJson<Correlated>(old.correlated), add);
      if (!changed) return toFinding(old);
      this.correlateStmt.run(JSON.stringify(merged), Date.now(), id);
      const finding = this.get(id)!;
      this.emit('finding.updated', finding, at, 'correlated');
      return finding;
    })();
  }

  get(id: string): Finding | undefined {
    const r = this.getStmt.get(id);
    return r === undefined ? undefined : toFinding(r);
  }

  /** Findings, newest `last_seen` first, paged by an opaque keyset cursor (stable under inserts). */
  list(q: ListQuery = {}): ListResult {
    const where: string[] = [];
    const args: (string | number)[] = [];
    if (q.kind !== undefined) {
      const kinds = typeof q.kind === 'string' ? [q.kind] : [...q.kind];
      if (kinds.length === 0) return { items: [], nextCursor: null };
      where.push(`kind IN (${kinds.map(() => '?').join(', ')})`);
      args.push(...kinds);
    }
    if (q.severity !== undefined) {
      const allowed = SEVERITIES.filter((s) => severityRank(s) >= severityRank(q.severity!));
      where.push(`severity IN (${allowed.map(() => '?').join(', ')})`);
      args.push(...allowed);
    }
    if (q.status !== undefined) {
      where.push('status = ?');
      args.push(q.status);
    }
    if (q.since !== undefined) {
      where.push('last_seen >= ?');
      args.push(q.since);
    }
    if (q.until !== undefined) {
      where.push('first_seen <= ?');
      args.push(q.until);
    }
    if (q.vni !== undefined) {
      where.push('vni = ?');
      args.push(q.vni);
    }
    if (q.sessionId !== undefined) {
      where.push('session_id = ?');
      args.push(q.sessionId);
    }
    if (q.cursor !== undefined) {
      const c = decodeCursor(q.cursor);
      where.push('(last_seen < ? OR (last_seen = ? AND id < ?))');
      args.push(c.lastSeen, c.lastSeen, c.id);
    }
    const limit = Math.min(Math.max(1, Math.floor(q.limit ?? DEFAULT_LIST_LIMIT)), MAX_LIST_LIMIT);
    const sql = `SELECT * FROM findings ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY last_seen DESC, id DESC LIMIT ?`;
    const rows = prepared<(string | number)[], Row>(this.db, sql).all(...args, limit + 1);
    const more = rows.length > limit;
    const page = more ? rows.slice(0, limit) : rows;
    const last = page[page.length - 1];
    return { items: page.map(toFinding), nextCursor: more && last ? encodeCursor(last.last_seen, last.id) : null };
  }

  /**
   * Open findings of the given kinds on a VNI, or labelled with a session ID, or either (for
   * correlation). The VNI lookup uses the findings_vni index; the session lookup scans, so the
   * first-packet path asks by VNI only.
   */
  openFindings(kinds: readonly FindingKind[], by: { vni?: number; sessionId?: string }): Finding[] {
    if (kinds.length === 0) return [];
    const inKinds = `status = 'open' AND kind IN (${kinds.map(() => '?').join(', ')})`;
    const out = new Map<string, Row>();
    if (by.vni !== undefined) {
      for (const r of prepared<(string | number)[], Row>(this.db, `SELECT * FROM findings WHERE vni = ? AND ${inKinds}`).all(by.vni, ...kinds)) out.set(r.id, r);
    }
    if (by.sessionId !== undefined) {
      for (const r of prepared<(string | number)[], Row>(this.db, `SELECT * FROM findings WHERE session_id = ? AND ${inKinds}`).all(by.sessionId, ...kinds)) out.set(r.id, r);
    }
    return [...out.values()].sort((a, b) => a.first_seen - b.first_seen || (a.id < b.id ? -1 : 1)).map(toFinding);
  }

  /** Findings and occurrences by kind, severity and status (for metrics). */
  counts(): FindingCount[] {
    return this.db
      .prepare<[], { kind: FindingKind; severity: Severity; status: 'open' | 'resolved'; findings: number; occurrences: number }>(
        `SELECT kind, severity, status, COUNT(*) AS findings, SUM(count) AS occurrences FROM findings GROUP BY kind, severity, status ORDER BY kind, severity, status`,
      )
      .all();
  }

  private emit(type: FindingEvent['type'], finding: Finding, at: number, reason?: FindingEvent['reason']): FindingEvent {
    const event: FindingEvent = { type, finding, at, ...(reason ? { reason } : {}) };
    this.onChange?.(event);
    return event;
  }
}

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
