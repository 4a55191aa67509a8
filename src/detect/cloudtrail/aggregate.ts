/**
 * De-duplication for stateless use (`cloudtrail scan`): the same (kind, key) is one incident, as in the
 * findings store, with the same id (finding-id.ts). Inputs may come in any time order (files of a tree
 * are not sorted by time), so firstSeen/lastSeen are the min/max of `at`, the summary and evidence are
 * those of the earliest occurrence, and the severity is the highest seen.
 */
import { FINDING_KINDS, severityRank, type Finding, type FindingInput } from '../finding.js';
import { findingId } from '../finding-id.js';
import { isoTime } from './values.js';

interface Entry {
  first: FindingInput;
  firstAt: number;
  lastAt: number;
  count: number;
  severity: Finding['severity'];
}

export class FindingAggregator {
  private readonly byId = new Map<string, Entry>();

  add(f: FindingInput): void {
    const id = findingId(f.kind, f.key);
    const severity = f.severity ?? FINDING_KINDS[f.kind];
    const e = this.byId.get(id);
    if (e === undefined) {
      this.byId.set(id, { first: f, firstAt: f.at, lastAt: f.at, count: 1, severity });
      return;
    }
    e.count++;
    if (f.at < e.firstAt) {
      e.first = f;
      e.firstAt = f.at;
    }
    if (f.at > e.lastAt) e.lastAt = f.at;
    if (severityRank(severity) > severityRank(e.severity)) e.severity = severity;
  }

  get size(): number {
    return this.byId.size;
  }

  /** Findings by first occurrence, the most severe first at the same time, then id (stable between runs). */
  findings(): Finding[] {
    const rows: { at: number; f: Finding }[] = [];
    for (const [id, e] of this.byId) {
      const f: Finding = {
        id,
        kind: e.first.kind,
        severity: e.severity,
        status: 'open',
        firstSeen: isoTime(e.firstAt),
        lastSeen: isoTime(e.lastAt),
        count: e.count,
        summary: e.first.summary,
        evidence: e.first.evidence,
      };
      if (e.first.vni !== undefined) f.vni = e.first.vni;
      if (e.first.sourceIp !== undefined) f.sourceIp = e.first.sourceIp;
      if (e.first.sessionId !== undefined) f.sessionId = e.first.sessionId;
      if (e.first.correlated !== undefined) f.correlated = e.first.correlated;
      rows.push({ at: e.firstAt, f });
    }
    rows.sort((a, b) => a.at - b.at || severityRank(b.f.severity) - severityRank(a.f.severity) || (a.f.id < b.f.id ? -1 : a.f.id > b.f.id ? 1 : 0));
    return rows.map((r) => r.f);
  }
}
