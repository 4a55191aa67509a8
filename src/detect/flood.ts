/**
 * New-pair floods (issue 16). Anyone who can reach UDP 4789 can forge VXLAN from many (source IP, VNI)
 * pairs; each forged pair is a new unauthorized pair, so without a bound a flood would write one finding
 * row and one webhook per forged pair, and fill the session table so a real rogue mirror goes unseen.
 *
 * This counts the new pairs the manifest does not authorize, per interval, per source and in total.
 * When either count passes its threshold (`detect.newPairFlood`), an episode starts: one `session-flood`
 * finding (critical) is written at once, naming the top sources. During the episode a new unauthorized
 * pair gets its own finding only while its source stays under the per-source threshold and the
 * episode's budget of individual findings lasts (so a rogue pair from a quiet source still stands
 * out); the rest are coalesced in memory into one finding per kind per episode (key
 * `flood|<episode start>`), written at most once a second with the count of pairs it stands for and
 * the most recent ones. The episode ends after QUIET_INTERVALS intervals under both thresholds; the
 * next flood is a new episode with its own findings, so each episode alerts once.
 *
 * Nothing here runs per packet: only on the first packet of a new pair, and on a one-second timer.
 * Memory is bounded: at most MAX_SOURCES sources are counted by name per interval and per episode.
 */
import type { FindingInput, FindingKind } from './finding.js';

/** An episode ends after this many intervals in a row below both thresholds. */
export const QUIET_INTERVALS = 3;
/** Individual pair findings per episode from sources that are not flooding; the rest are coalesced. */
export const EPISODE_INDIVIDUAL_FINDINGS = 100;
/** Sources counted by name (per interval and per episode); more are counted as `otherSources`. */
export const MAX_SOURCES = 10_000;
/** Coalesced findings keep this many of the most recent pairs as evidence. */
export const RECENT_PAIRS = 20;
/** Top sources named in the session-flood finding. */
export const TOP_SOURCES = 10;
/** Coalesced counts are written at most this often. */
export const FLUSH_INTERVAL_MS = 1000;

export interface FloodThresholds {
  intervalMs: number;
  perSource: number;
  total: number;
}

interface Coalesced {
  kind: FindingKind;
  pairs: number;
  /** Pairs not yet written to the finding. */
  pending: number;
  lastAt: number;
  recent: { sourceIp: string; vni: number; at: string }[];
}

interface Episode {
  id: string;
  startMs: number;
  /** The end of the last interval that was over a threshold. */
  lastFloodMs: number;
  newPairs: number;
  /** New pairs since the session-flood finding was last written. */
  pending: number;
  peakInterval: number;
  sources: Map<string, number>;
  /** Pairs from sources past MAX_SOURCES, not counted by name. */
  unnamedPairs: number;
  individual: number;
  coalesced: Map<FindingKind, Coalesced>;
  /** Why it started: which threshold, and the counts then. */
  trigger: Record<string, unknown>;
}

export type FloodDecision = 'individual' | 'coalesce';

export class FloodMonitor {
  private windowStart = 0;
  private windowTotal = 0;
  private readonly windowSources = new Map<string, number>();
  private episode: Episode | null = null;
  private lastFlushMs = 0;

  constructor(
    readonly thresholds: FloodThresholds,
    private readonly hooks: {
      /** Write (or update) a finding; must not throw (the detector counts and logs store errors). */
      record: (input: FindingInput) => void;
      onEpisode?: (started: boolean, evidence: Record<string, unknown>) => void;
    },
  ) {}

  get inEpisode(): boolean {
    return this.episode !== null;
  }

  /**
   * A new pair the manifest does not authorize, of finding kind `kind`: count it, start an episode when
   * a threshold is passed, and say whether the pair gets its own finding or is coalesced (then it is
   * already counted here and written on the next flush).
   */
  note(sourceIp: string, vni: number, kind: FindingKind, atMs: number): FloodDecision {
    this.roll(atMs);
    this.windowTotal++;
    const fromSource = bump(this.windowSources, sourceIp);
    const t = this.thresholds;
    const sourceFlooding = fromSource > t.perSource;
    if (this.episode === null && (sourceFlooding || this.windowTotal > t.total)) this.start(atMs, sourceIp, sourceFlooding, fromSource);
    const e = this.episode;
    if (e === null) return 'individual';
    e.newPairs++;
    e.pending++;
    e.peakInterval = Math.max(e.peakInterval, this.windowTotal);
    if (sourceFlooding || this.windowTotal > t.total) e.lastFloodMs = this.windowStart + t.intervalMs;
    const inEpisode = bump(e.sources, sourceIp);
    if (inEpisode === 0) e.unnamedPairs++;
    if (!sourceFlooding && inEpisode !== 0 && inEpisode <= t.perSource && e.individual < EPISODE_INDIVIDUAL_FINDINGS) {
      e.individual++;
      return 'individual';
    }
    let c = e.coalesced.get(kind);
    if (c === undefined) {
      c = { kind, pairs: 0, pending: 0, lastAt: atMs, recent: [] };
      e.coalesced.set(kind, c);
    }
    c.pairs++;
    c.pending++;
    c.lastAt = Math.max(c.lastAt, atMs);
    c.recent.push({ sourceIp, vni, at: new Date(atMs).toISOString() });
    if (c.recent.length > RECENT_PAIRS) c.recent.shift();
    if (atMs - this.lastFlushMs >= FLUSH_INTERVAL_MS) this.flush(atMs);
    return 'coalesce';
  }

  /**
   * Write what is pending (coalesced counts, the session-flood finding's counts) and end an episode that
   * has been quiet for QUIET_INTERVALS intervals. The detector's one-second timer calls this.
   */
  flush(nowMs: number): void {
    this.lastFlushMs = nowMs;
    this.roll(nowMs);
    const e = this.episode;
    if (e === null) return;
    const ended = nowMs - e.lastFloodMs >= QUIET_INTERVALS * this.thresholds.intervalMs;
    for (const c of e.coalesced.values()) {
      if (c.pending === 0) continue;
      this.hooks.record(this.coalescedFinding(e, c));
      c.pending = 0;
    }
    if (e.pending > 0 || ended) {
      this.hooks.record(this.floodFinding(e, nowMs, ended));
      e.pending = 0;
    }
    if (ended) {
      this.hooks.onEpisode?.(false, this.summary(e));
      this.episode = null;
    }
  }

  private start(atMs: number, sourceIp: string, sourceFlooding: boolean, fromSource: number): void {
    const t = this.thresholds;
    const e: Episode = {
      id: new Date(atMs).toISOString(),
      startMs: atMs,
      lastFloodMs: this.windowStart + t.intervalMs,
      newPairs: 0,
      pending: 0,
      peakInterval: 0,
      sources: new Map(),
      unnamedPairs: 0,
      individual: 0,
      coalesced: new Map(),
      trigger:
        sourceFlooding
          ? { threshold: 'perSource', sourceIp, newPairs: fromSource, perSource: t.perSource, intervalSeconds: t.intervalMs / 1000 }
          : { threshold: 'total', newPairs: this.windowTotal, total: t.total, intervalSeconds: t.intervalMs / 1000 },
    };
    // The interval that crossed the threshold belongs to the episode; note() adds the pair being noted.
    for (const [ip, n] of this.windowSources) e.sources.set(ip, n);
    if (fromSource > 0) e.sources.set(sourceIp, fromSource - 1);
    e.newPairs = this.windowTotal - 1;
    e.pending = e.newPairs;
    this.episode = e;
    this.hooks.onEpisode?.(true, this.summary(e));
    // The alert goes out now, not on the next flush: the flood is the news.
    this.hooks.record(this.floodFinding(e, atMs, false));
    e.pending = 0;
  }

  /** Start a new interval when `atMs` is past the current one. */
  private roll(atMs: number): void {
    const len = this.thresholds.intervalMs;
    if (atMs < this.windowStart + len) return;
    this.windowStart = atMs - (atMs % len);
    this.windowTotal = 0;
    this.windowSources.clear();
  }

  private topSources(e: Episode): { sourceIp: string; newPairs: number }[] {
    return [...e.sources]
      .sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1))
      .slice(0, TOP_SOURCES)
      .map(([sourceIp, newPairs]) => ({ sourceIp, newPairs }));
  }

  private summary(e: Episode): Record<string, unknown> {
    return { episode: e.id, newPairs: e.newPairs, sources: e.sources.size, topSources: this.topSources(e).slice(0, 3) };
  }

  private floodFinding(e: Episode, atMs: number, ended: boolean): FindingInput {
    const top = this.topSources(e);
    const t = this.thresholds;
    const lead = top[0] ? `; top source ${top[0].sourceIp} (${top[0].newPairs})` : '';
    const sources = `${e.sources.size}${e.unnamedPairs > 0 ? '+' : ''}`;
    return {
      kind: 'session-flood',
      key: e.id,
      at: atMs,
      occurrences: e.pending,
      summary: `Flood of new unauthorized (source IP, VNI) pairs since ${e.id}: ${e.newPairs} from ${sources} source(s)${lead}${ended ? '; ended' : ''}`,
      evidence: {
        episode: { start: e.id, ...(ended ? { end: new Date(atMs).toISOString() } : {}) },
        trigger: e.trigger,
        thresholds: { intervalSeconds: t.intervalMs / 1000, perSource: t.perSource, total: t.total },
        newPairs: e.newPairs,
        peakPerInterval: e.peakInterval,
        sources: e.sources.size,
        unnamedPairs: e.unnamedPairs,
        topSources: top,
        individualFindings: e.individual,
        coalescedFindings: [...e.coalesced.values()].map((c) => ({ kind: c.kind, pairs: c.pairs })),
      },
    };
  }

  private coalescedFinding(e: Episode, c: Coalesced): FindingInput {
    return {
      kind: c.kind,
      key: `flood|${e.id}`,
      at: c.lastAt,
      occurrences: c.pending,
      summary: `${c.pairs} new (source IP, VNI) pairs of kind ${c.kind} during the session flood that began ${e.id}, coalesced into this finding`,
      evidence: {
        coalesced: true,
        episode: e.id,
        pairs: c.pairs,
        recentPairs: c.recent,
        topSources: this.topSources(e),
      },
    };
  }
}

/** Add one to `ip`'s count unless the map is full of other sources; the new count, or 0 when not counted. */
function bump(m: Map<string, number>, ip: string): number {
  const n = m.get(ip);
  if (n !== undefined) {
    m.set(ip, n + 1);
    return n + 1;
  }
  if (m.size >= MAX_SOURCES) return 0;
  m.set(ip, 1);
  return 1;
}
