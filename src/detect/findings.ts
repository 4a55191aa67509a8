/**
 * Findings on the store's repositories (either engine): what a repeat changes, which event it emits
 * (src/detect/store.ts has the shared shapes and the evidence merge), with fleet semantics:
 *
 * - `record` tries `findings.create` (INSERT ... ON CONFLICT DO NOTHING). Only the call whose INSERT
 *   created the row emits `finding.created`, so of several nodes raising one incident at once exactly
 *   one writes the `finding.created` outbox rows. The others `lock` the row (SELECT ... FOR UPDATE on
 *   PostgreSQL) and repeat it, so counts add up.
 * - `onChange` runs with the transaction handle that wrote the finding: the outbox rows it inserts
 *   commit with the finding or not at all. If it throws, the finding is rolled back.
 *
 * Every method takes an optional transaction handle as its last argument; without one it opens its own
 * transaction (`store.tx`).
 */
import type { Sql } from '../store/engine.js';
import type { FindingRow } from '../store/findings.js';
import type { Store } from '../store/store.js';
import { findingId } from './finding-id.js';
import { FINDING_KINDS, SEVERITIES, severityRank, type Finding, type FindingEvent, type FindingInput, type FindingKind } from './finding.js';
import {
  DEFAULT_LIST_LIMIT,
  MAX_LIST_LIMIT,
  decodeCursor,
  encodeCursor,
  mergeCorrelated,
  parseJson,
  toFinding,
  type Correlated,
  type FindingCount,
  type ListQuery,
  type ListResult,
  type RecordResult,
} from './store.js';

export type AsyncFindingListener = (e: FindingEvent, q: Sql) => Promise<void> | void;

export class Findings {
  private readonly listeners: AsyncFindingListener[] = [];

  constructor(readonly store: Store, onChange?: AsyncFindingListener) {
    if (onChange) this.listeners.push(onChange);
  }

  /** Add a listener run inside each finding's transaction (the webhook outbox). */
  onChange(fn: AsyncFindingListener): void {
    this.listeners.push(fn);
  }

  private inTx<T>(q: Sql | undefined, fn: (q: Sql) => Promise<T>): Promise<T> {
    return q === undefined ? this.store.tx(fn) : fn(q);
  }

  /** Record an occurrence of an incident: insert, bump, or reopen. */
  record(input: FindingInput, tx?: Sql): Promise<RecordResult> {
    return this.inTx(tx, async (q): Promise<RecordResult> => {
      const repo = this.store.findings;
      const id = findingId(input.kind, input.key);
      const now = Date.now();
      const severity = input.severity ?? FINDING_KINDS[input.kind];
      let old = await repo.lock(id, q);
      if (old === undefined) {
        const correlated = mergeCorrelated(undefined, input.correlated).merged;
        const row: FindingRow = {
          id,
          kind: input.kind,
          severity,
          status: 'open',
          first_seen: input.at,
          last_seen: input.at,
          count: input.occurrences ?? 1,
          vni: input.vni ?? null,
          source_ip: input.sourceIp ?? null,
          session_id: input.sessionId ?? null,
          summary: input.summary,
          evidence: JSON.stringify(input.evidence),
          correlated: correlated ? JSON.stringify(correlated) : null,
          updated_at: now,
        };
        if (await repo.create(row, q)) {
          const finding = toFinding((await repo.get(id, q))!);
          return { finding, created: true, event: await this.emit(q, 'finding.created', finding, input.at) };
        }
        // Another node created it between our read and our insert: repeat it under its lock.
        old = (await repo.lock(id, q))!;
      }

      const reopened = old.status === 'resolved';
      const oldSeverity = old.severity as typeof severity;
      // An open incident never silently loses severity; a reopened one takes the new assessment.
      const newSeverity = reopened || severityRank(severity) > severityRank(oldSeverity) ? severity : oldSeverity;
      const { merged, changed } = mergeCorrelated(parseJson<Correlated>(old.correlated), input.correlated);
      const oldEvidence = parseJson<Record<string, unknown>>(old.evidence) ?? {};
      if (reopened) {
        delete oldEvidence.resolution;
        // An acknowledgement was of the incident as it was; a recurrence needs a new look.
        delete oldEvidence.acknowledgement;
      }
      await repo.repeat(
        {
          id,
          kind: old.kind,
          severity: newSeverity,
          status: 'open',
          first_seen: input.at,
          last_seen: input.at,
          count: old.count,
          vni: input.vni ?? old.vni,
          source_ip: input.sourceIp ?? old.source_ip,
          session_id: input.sessionId ?? old.session_id,
          summary: input.summary,
          evidence: JSON.stringify({ ...oldEvidence, ...input.evidence }),
          correlated: merged ? JSON.stringify(merged) : null,
          updated_at: now,
        },
        input.occurrences ?? 1,
        q,
      );
      const finding = toFinding((await repo.get(id, q))!);
      let event: FindingEvent | null = null;
      if (reopened) event = await this.emit(q, 'finding.created', finding, input.at, 'reopened');
      else if (changed) event = await this.emit(q, 'finding.updated', finding, input.at, 'correlated');
      else if (newSeverity !== oldSeverity) event = await this.emit(q, 'finding.updated', finding, input.at, 'escalated');
      return { finding, created: false, event };
    });
  }

  /** Resolve an open finding; a no-op (returning it unchanged) when it is already resolved. */
  resolve(id: string, at: number, reason?: string, by?: { actor: string; note?: string }, tx?: Sql): Promise<Finding | undefined> {
    return this.inTx(tx, async (q) => {
      const repo = this.store.findings;
      const old = await repo.lock(id, q);
      if (old === undefined) return undefined;
      if (old.status === 'resolved') return toFinding(old);
      const evidence = parseJson<Record<string, unknown>>(old.evidence) ?? {};
      evidence.resolution = { at: new Date(at).toISOString(), ...(reason ? { reason } : {}), ...(by ? { by: by.actor, ...(by.note ? { note: by.note } : {}) } : {}) };
      await repo.setResolved(id, JSON.stringify(evidence), Date.now(), q);
      const finding = toFinding((await repo.get(id, q))!);
      await this.emit(q, 'finding.resolved', finding, at);
      return finding;
    });
  }

  /** Resolve when open; the finding only when this call resolved it. */
  resolveIfOpen(id: string, at: number, reason?: string, tx?: Sql): Promise<Finding | undefined> {
    return this.inTx(tx, async (q) => {
      const cur = await this.store.findings.lock(id, q);
      if (cur === undefined || cur.status !== 'open') return undefined;
      return this.resolve(id, at, reason, undefined, q);
    });
  }

  /**
   * resolveIfOpen for each of `ids`, after one query for which are open (a new pair's first packet
   * looks for three kinds of finding and usually finds none: one query instead of three). The findings
   * this call resolved.
   */
  resolveOpenAmong(ids: readonly string[], at: number, reason?: string, tx?: Sql): Promise<Finding[]> {
    return this.inTx(tx, async (q) => {
      const out: Finding[] = [];
      for (const id of await this.store.findings.openAmong(ids, q)) {
        const f = await this.resolveIfOpen(id, at, reason, q);
        if (f !== undefined) out.push(f);
      }
      return out;
    });
  }

  /** `evidence.acknowledgement` on an open finding; no event. Undefined when there is no such finding. */
  acknowledge(id: string, at: number, by: string, note?: string, tx?: Sql): Promise<Finding | undefined> {
    return this.inTx(tx, async (q) => {
      const repo = this.store.findings;
      const old = await repo.lock(id, q);
      if (old === undefined) return undefined;
      if (old.status === 'resolved') return toFinding(old);
      const evidence = parseJson<Record<string, unknown>>(old.evidence) ?? {};
      evidence.acknowledgement = { at: new Date(at).toISOString(), by, ...(note ? { note } : {}) };
      await repo.setEvidence(id, JSON.stringify(evidence), Date.now(), q);
      return toFinding((await repo.get(id, q))!);
    });
  }

  /** Add correlation evidence without counting an occurrence; finding.updated when anything is new. */
  attachCorrelation(id: string, add: Correlated, at: number, tx?: Sql): Promise<Finding | undefined> {
    return this.inTx(tx, async (q) => {
      const repo = this.store.findings;
      const old = await repo.lock(id, q);
      if (old === undefined) return undefined;
      const { merged, changed } = mergeCorrelated(parseJson<Correlated>(old.correlated), add);
      if (!changed) return toFinding(old);
      await repo.setCorrelated(id, JSON.stringify(merged), Date.now(), q);
      const finding = toFinding((await repo.get(id, q))!);
      await this.emit(q, 'finding.updated', finding, at, 'correlated');
      return finding;
    });
  }

  async get(id: string, q?: Sql): Promise<Finding | undefined> {
    const r = await this.store.findings.get(id, q);
    return r === undefined ? undefined : toFinding(r);
  }

  /** Findings, newest `last_seen` first, paged by an opaque keyset cursor. */
  async list(lq: ListQuery = {}, q?: Sql): Promise<ListResult> {
    const kinds = lq.kind === undefined ? undefined : typeof lq.kind === 'string' ? [lq.kind] : [...lq.kind];
    if (kinds !== undefined && kinds.length === 0) return { items: [], nextCursor: null };
    const limit = Math.min(Math.max(1, Math.floor(lq.limit ?? DEFAULT_LIST_LIMIT)), MAX_LIST_LIMIT);
    const rows = await this.store.findings.list(
      {
        ...(kinds !== undefined ? { kinds } : {}),
        ...(lq.severity !== undefined ? { severities: SEVERITIES.filter((s) => severityRank(s) >= severityRank(lq.severity!)) } : {}),
        ...(lq.status !== undefined ? { status: lq.status } : {}),
        ...(lq.since !== undefined ? { since: lq.since } : {}),
        ...(lq.until !== undefined ? { until: lq.until } : {}),
        ...(lq.vni !== undefined ? { vni: lq.vni } : {}),
        ...(lq.sessionId !== undefined ? { sessionId: lq.sessionId } : {}),
        ...(lq.cursor !== undefined ? { after: decodeCursor(lq.cursor) } : {}),
        limit,
      },
      q,
    );
    const more = rows.length > limit;
    const page = more ? rows.slice(0, limit) : rows;
    const last = page[page.length - 1];
    return { items: page.map(toFinding), nextCursor: more && last ? encodeCursor(last.last_seen, last.id) : null };
  }

  /** Open findings of `kinds` on a VNI or labelled with a session, oldest first (correlation). */
  async openFindings(kinds: readonly FindingKind[], by: { vni?: number; sessionId?: string }, q?: Sql): Promise<Finding[]> {
    return (await this.store.findings.open(kinds, by, q)).map(toFinding);
  }

  /** Findings and occurrences by kind, severity and status (metrics). */
  async counts(): Promise<FindingCount[]> {
    return (await this.store.findings.counts()) as FindingCount[];
  }

  private async emit(q: Sql, type: FindingEvent['type'], finding: Finding, at: number, reason?: FindingEvent['reason']): Promise<FindingEvent> {
    const event: FindingEvent = { type, finding, at, ...(reason ? { reason } : {}) };
    for (const fn of this.listeners) await fn(event, q);
    return event;
  }
}
