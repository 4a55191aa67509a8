/**
 * Data-plane detection. The collector calls `onNewPair` on the first packet of each new (outer source
 * IP, VNI) pair; nothing here runs per packet. A timer calls `checkSilent` and `checkExpired` with what
 * the session table (or `observed_sessions`) says about recent traffic.
 *
 * Silence is counted from the later of: the session's last traffic, the detector's start, and the
 * reload that added the session to the manifest. So a session that never sends anything is reported
 * `silentAfterMs` after start, and a restart does not report every session at once: the collector gets
 * `silentAfterMs` to see traffic first.
 */
import { RateLimiter, type Logger } from '../util/log.js';
import { buildIndex, type AuthResult, type AuthStatus, type ManifestIndex } from './authorize.js';
import type { Sql } from '../store/engine.js';
import { WriteQueue } from '../store/write-queue.js';
import { attachTrafficToSessionFindings, controlEvidenceForTraffic, DATA_PLANE_KINDS, trafficRow } from './correlate.js';
import type { Findings } from './findings.js';
import { DetectorWrites } from './writes.js';
import { newDetectCounters, type DetectCounters } from './counters.js';
import type { Finding, FindingInput, FindingKind } from './finding.js';
import { canonicalIp } from '../decode/addr.js';
import type { Manifest, ManifestSession } from './manifest-types.js';
import { DETECT_DEFAULTS } from './config.js';
import { FloodMonitor, type FloodThresholds } from './flood.js';
import { findingId } from './store.js';

/** Default for `detect.silentAfterSeconds`: 15 minutes. */
export const DEFAULT_SILENT_AFTER_MS = 15 * 60_000;

/**
 * Pairs remembered for re-evaluation on reload. The collector's own table is bounded; this bound keeps
 * a flood of forged (source IP, VNI) pairs from growing the detector's memory without limit. The oldest
 * pair is forgotten first; a forgotten pair is evaluated again on its next first packet.
 */
export const MAX_TRACKED_PAIRS = 100_000;

export interface PairVerdict {
  /** The manifest session the pair belongs to; null when none does (or it does not authorize the source). */
  sessionId: string | null;
  status: AuthStatus;
}

export interface ObservedPair {
  sourceIp: string;
  vni: number;
  /** ms since the epoch. */
  lastSeenMs: number;
}

export interface CheckResult {
  raised: Finding[];
  resolved: Finding[];
}

export interface DataPlaneOptions {
  findings: Findings;
  /** The ordered write path (serve: the catalog's queue); a queue of its own on `findings.store` when absent. */
  writes?: DetectorWrites;
  manifest: Manifest | null;
  /** 0 disables silent-session detection. */
  silentAfterMs?: number;
  clock?: () => number;
  log?: Logger;
  counters?: DetectCounters;
  /** `detect.newPairFlood` (src/detect/flood.ts); the defaults of src/detect/config.ts when absent. */
  newPairFlood?: FloodThresholds;
}

/** DETECT_DEFAULTS.newPairFlood, in the monitor's units. */
export const DEFAULT_FLOOD_THRESHOLDS: FloodThresholds = Object.freeze({
  intervalMs: DETECT_DEFAULTS.newPairFlood.intervalSeconds * 1000,
  perSource: DETECT_DEFAULTS.newPairFlood.perSource,
  total: DETECT_DEFAULTS.newPairFlood.total,
});

interface PairState {
  sourceIp: string;
  vni: number;
  firstSeenMs: number;
  lastSeenMs: number;
  status: AuthStatus;
  sessionId: string | null;
}

const KIND_OF: Record<Exclude<AuthStatus, 'authorized'>, FindingKind> = {
  'unauthorized-vni': 'unauthorized-vni',
  'unexpected-source': 'unexpected-source',
  expired: 'expired-session',
};

export class DataPlaneDetector {
  private index: ManifestIndex;
  private readonly store: Findings;
  readonly writes: DetectorWrites;
  private readonly clock: () => number;
  private readonly log: Logger | undefined;
  private readonly limiter = new RateLimiter();
  readonly counters: DetectCounters;
  readonly silentAfterMs: number;
  private readonly startedAt: number;
  private readonly pairs = new Map<string, PairState>();
  /** The GWLB endpoint each pair last arrived through (bounded like `pairs`), for reloads. */
  private readonly gwlbSeen = new Map<string, { sourceIp: string; vni: number; endpointId: string; attachmentId: string | null }>();
  /** When we started expecting traffic from sessions added by a reload (absent: since start). */
  private readonly expectedSince = new Map<string, number>();
  readonly flood: FloodMonitor;

  constructor(opts: DataPlaneOptions) {
    this.store = opts.findings;
    this.writes = opts.writes ?? new DetectorWrites(new WriteQueue(opts.findings.store), () => this.storeRefused());
    this.clock = opts.clock ?? Date.now;
    this.log = opts.log;
    this.counters = opts.counters ?? newDetectCounters();
    this.silentAfterMs = opts.silentAfterMs ?? DEFAULT_SILENT_AFTER_MS;
    this.startedAt = this.clock();
    this.index = buildIndex(opts.manifest);
    this.flood = new FloodMonitor(opts.newPairFlood ?? DEFAULT_FLOOD_THRESHOLDS, {
      record: (input) => this.recordSafely(input),
      onEpisode: (started, summary) => {
        if (started) this.counters['detect.flood.episodes']++;
        if (started) this.log?.warn(summary, 'session flood: new unauthorized pairs past detect.newPairFlood; pairs are now coalesced (session-flood finding raised)');
        else this.log?.info(summary, 'session flood ended');
      },
    });
  }

  /** Write coalesced and flood findings (timer); never throws. */
  flushFlood(now: number = this.clock()): void {
    try {
      this.flood.flush(now);
    } catch (e) {
      this.storeError(e, {});
    }
  }

  private recordSafely(input: FindingInput): void {
    this.writes.post((q) => this.store.record(input, q));
  }

  private storeError(e: unknown, ctx: Record<string, unknown>): void {
    this.counters['detect.store.errors']++;
    const n = this.limiter.allow('store');
    if (n >= 0) this.log?.error({ err: (e as Error).message, ...ctx, suppressed: n }, 'cannot record a flood finding');
  }

  /** A write the store's queue refused (full: the store has been failing for a long time). */
  storeRefused(): void {
    this.counters['detect.store.errors']++;
    const n = this.limiter.allow('store');
    if (n >= 0) this.log?.error({ suppressed: n }, 'cannot queue a detector write: the store write queue is full');
  }

  /** Resolves when every detector write queued so far is in the store. */
  settled(timeoutMs?: number): Promise<boolean> {
    return this.writes.settled(timeoutMs);
  }

  get manifest(): Manifest | null {
    return this.index.manifest;
  }

  get manifestIndex(): ManifestIndex {
    return this.index;
  }

  /**
   * The first packet of a new (source IP, VNI) pair arrived at `atMs`. Never throws: the verdict is
   * returned even when the finding cannot be written (counted as detect.store.errors and logged at
   * most once a minute), so a full disk cannot stop capture.
   */
  onNewPair(sourceIp: string, vni: number, atMs: number = this.clock()): PairVerdict {
    const ip = canonicalIp(sourceIp) ?? sourceIp;
    const auth = this.index.authorize(ip, vni, atMs);
    const sessionId = auth.status === 'authorized' || auth.status === 'expired' ? auth.session!.id : null;
    this.counters['detect.pairs.evaluated']++;
    if (auth.status !== 'authorized') {
      this.counters['detect.pairs.unauthorized']++;
      // During a flood most unauthorized pairs are counted into one finding per kind, not written one by one.
      if (this.flood.note(ip, vni, KIND_OF[auth.status], atMs) === 'coalesce') {
        this.counters['detect.pairs.coalesced']++;
        return { sessionId, status: auth.status };
      }
    }
    const key = pairKey(ip, vni);
    let pair = this.pairs.get(key);
    if (pair === undefined) {
      if (this.pairs.size >= MAX_TRACKED_PAIRS) {
        this.pairs.delete(this.pairs.keys().next().value!);
        this.counters['detect.pairs.forgotten']++;
      }
      pair = { sourceIp: ip, vni, firstSeenMs: atMs, lastSeenMs: atMs, status: auth.status, sessionId };
      this.pairs.set(key, pair);
    } else {
      pair.lastSeenMs = Math.max(pair.lastSeenMs, atMs);
      pair.status = auth.status;
      pair.sessionId = sessionId;
    }
    const state = { ...pair };
    // Written behind the verdict, in order, in the queue's next batch: the packet path never waits.
    this.writes.post(async (q) => {
      await this.store.store.observed.note(ip, vni, sessionId, atMs, q);
      if (auth.status === 'authorized') {
        // Nothing open on this VNI (the common case: 10,000 authorized sessions starting) leaves nothing to
        // resolve (this pair's own findings carry its VNI) and no session finding to learn of the traffic:
        // one indexed query instead of three, and no finding ids to hash.
        if (!(await this.store.store.findings.anyOpenOnVni(vni, q))) return;
        await this.resolvePair(ip, vni, atMs, `authorized by ${auth.session!.id} in manifest ${this.shaNote()}`, q);
      } else {
        await this.store.record(await this.pairFinding(state, auth, atMs, 'first packet', q), q);
      }
      // Findings about a session on this VNI (a CloudTrail create, an unmanaged session) learn it carries traffic.
      await attachTrafficToSessionFindings(this.store, trafficRow({ source_ip: ip, vni, first_seen: atMs, last_seen: atMs }), sessionId, atMs, q);
    });
    return { sessionId, status: auth.status };
  }

  /**
   * A pair's packets arrived through GWLB endpoint `endpointId` (the first time, or another endpoint than
   * before). When the manifest session of the pair names `gwlbEndpointId` and it differs, raise
   * unexpected-gwlb-endpoint; when it matches, resolve an open one. Never throws.
   */
  onGwlbEndpoint(sourceIp: string, vni: number, endpointId: string, attachmentId: string | null, atMs: number = this.clock()): Promise<Finding | null> {
    const ip = canonicalIp(sourceIp) ?? sourceIp;
    const key = pairKey(ip, vni);
    this.gwlbSeen.delete(key); // re-insert: the newest last
    if (this.gwlbSeen.size >= MAX_TRACKED_PAIRS) this.gwlbSeen.delete(this.gwlbSeen.keys().next().value!);
    this.gwlbSeen.set(key, { sourceIp: ip, vni, endpointId, attachmentId });
    return this.writes.run((q) => this.checkGwlbEndpoint(ip, vni, endpointId, attachmentId, atMs, 'traffic', q)).catch((e: unknown) => {
      this.storeError(e, { sourceIp: ip, vni, endpointId });
      return null;
    });
  }

  private async checkGwlbEndpoint(ip: string, vni: number, endpointId: string, attachmentId: string | null, atMs: number, trigger: string, q: Sql): Promise<Finding | null> {
    const s = this.index.match(ip, vni);
    const id = findingId('unexpected-gwlb-endpoint', pairKey(ip, vni));
    if (s?.gwlbEndpointId === undefined || s.gwlbEndpointId === endpointId) {
      await this.store.resolveIfOpen(id, atMs, s?.gwlbEndpointId === undefined ? 'the manifest names no GWLB endpoint for the session' : `traffic arrives through ${endpointId}, as the manifest says`, q);
      return null;
    }
    const m = this.index.manifest;
    return (await this.store.record({
      kind: 'unexpected-gwlb-endpoint',
      key: pairKey(ip, vni),
      at: atMs,
      vni,
      sourceIp: ip,
      sessionId: s.id,
      summary: `Traffic of ${s.id} (VNI ${vni}, from ${ip}) arrives through GWLB endpoint ${endpointId}, not ${s.gwlbEndpointId} as the manifest says`,
      evidence: {
        pair: { sourceIp: ip, vni },
        gwlbEndpointId: endpointId,
        gwlbAttachmentId: attachmentId,
        expected: s.gwlbEndpointId,
        trigger,
        session: claimOf(s),
        manifest: m ? { file: m.file, sha256: m.sha256, sessions: m.sessions.length } : null,
      },
    }, q)).finding;
  }

  /**
   * Swap the manifest (SIGHUP). Known pairs are evaluated again: one that became authorized has its
   * finding resolved, one that lost authorization raises one.
   */
  setManifest(manifest: Manifest | null, atMs: number = this.clock()): Promise<CheckResult> {
    const old = this.index;
    const next = buildIndex(manifest);
    this.index = next;
    for (const s of next.sessions) if (old.session(s.id) === undefined && !this.expectedSince.has(s.id)) this.expectedSince.set(s.id, atMs);
    const removed = old.sessions.filter((s) => next.session(s.id) === undefined);
    for (const s of removed) this.expectedSince.delete(s.id);
    // The verdicts change now (the collector re-reads them); the findings follow in the write order.
    const changes: { pair: PairState; before: AuthStatus; auth: AuthResult }[] = [];
    for (const pair of this.pairs.values()) {
      const auth = next.authorize(pair.sourceIp, pair.vni, atMs);
      const sessionId = auth.status === 'authorized' || auth.status === 'expired' ? auth.session!.id : null;
      if (auth.status === pair.status && sessionId === pair.sessionId) continue;
      changes.push({ pair: { ...pair, status: auth.status, sessionId }, before: pair.status, auth });
      pair.status = auth.status;
      pair.sessionId = sessionId;
    }
    const gwlb = [...this.gwlbSeen.values()];
    const sha = this.shaNote();
    return this.writes.run(async (q): Promise<CheckResult> => {
      const raised: Finding[] = [];
      const resolved: Finding[] = [];
      for (const s of removed) pushIf(resolved, await this.store.resolveIfOpen(findingId('silent-session', s.id), atMs, 'session removed from the manifest', q));
      for (const { pair, before, auth } of changes) {
        if (before !== 'authorized') {
          const id = findingId(KIND_OF[before], pairKey(pair.sourceIp, pair.vni));
          pushIf(resolved, await this.store.resolveIfOpen(id, atMs, `manifest reloaded (${sha}): now ${auth.status}`, q));
        }
        if (auth.status !== 'authorized') raised.push((await this.store.record(await this.pairFinding(pair, auth, atMs, 'manifest reload', q), q)).finding);
      }
      for (const g of gwlb) {
        const id = findingId('unexpected-gwlb-endpoint', pairKey(g.sourceIp, g.vni));
        const open = (await this.store.get(id, q))?.status === 'open';
        const f = await this.checkGwlbEndpoint(g.sourceIp, g.vni, g.endpointId, g.attachmentId, atMs, 'manifest reload', q);
        if (f && !open) raised.push(f);
        else if (!f && open) pushIf(resolved, await this.store.get(id, q));
      }
      this.log?.info({ sessions: next.sessions.length, sha256: manifest?.sha256, raised: raised.length, resolved: resolved.length }, 'manifest in force');
      return { raised, resolved };
    });
  }

  /**
   * Raise silent-session for each unexpired manifest session with no traffic for `silentAfterMs`, and
   * resolve it when traffic is back. `observed` defaults to the `observed_sessions` table.
   */
  checkSilent(now: number = this.clock(), observed?: Iterable<ObservedPair>): Promise<CheckResult> {
    if (this.silentAfterMs <= 0) return Promise.resolve({ raised: [], resolved: [] });
    const given = observed === undefined ? undefined : [...observed];
    return this.writes.run((q) => this.checkSilentIn(q, now, given));
  }

  private async checkSilentIn(q: Sql, now: number, observed: ObservedPair[] | undefined): Promise<CheckResult> {
    const raised: Finding[] = [];
    const resolved: Finding[] = [];
    const lastBySession = new Map<string, number>();
    for (const o of observed ?? (await this.readObserved(q))) {
      const ip = canonicalIp(o.sourceIp) ?? o.sourceIp;
      const pair = this.pairs.get(pairKey(ip, o.vni));
      if (pair) pair.lastSeenMs = Math.max(pair.lastSeenMs, o.lastSeenMs);
      const s = this.index.match(ip, o.vni);
      if (s) lastBySession.set(s.id, Math.max(lastBySession.get(s.id) ?? 0, o.lastSeenMs));
    }
    for (const s of this.index.sessions) {
      const id = findingId('silent-session', s.id);
      const current = await this.store.get(id, q);
      const open = current?.status === 'open';
      if (s.expires !== undefined && now >= s.expires) {
        // An expired session is not expected to send; expired-session covers it if it does.
        if (open) pushIf(resolved, await this.store.resolveIfOpen(id, now, 'session expired', q));
        continue;
      }
      const last = lastBySession.get(s.id);
      const from = Math.max(last ?? -Infinity, this.expectedSince.get(s.id) ?? this.startedAt);
      const silentFor = now - from;
      if (silentFor >= this.silentAfterMs) {
        if (!open) raised.push((await this.store.record(this.silentFinding(s, last, from, now), q)).finding);
      } else if (open && last !== undefined && now - last < this.silentAfterMs) {
        pushIf(resolved, await this.store.resolveIfOpen(id, now, `traffic resumed at ${new Date(last).toISOString()}`, q));
      }
    }
    return { raised, resolved };
  }

  /**
   * Raise expired-session for pairs that were authorized at their first packet and kept sending after
   * their session's `expires`. `observed` defaults to the `observed_sessions` table.
   */
  checkExpired(now: number = this.clock(), observed?: Iterable<ObservedPair>): Promise<Finding[]> {
    const given = observed === undefined ? undefined : [...observed];
    return this.writes.run((q) => this.checkExpiredIn(q, now, given));
  }

  /** checkSilent and checkExpired in one write (the detector's tick). */
  tick(now: number, observed?: Iterable<ObservedPair>): Promise<CheckResult> {
    const given = observed === undefined ? undefined : [...observed];
    return this.writes.run(async (q) => {
      const silent = this.silentAfterMs > 0 ? await this.checkSilentIn(q, now, given) : { raised: [], resolved: [] };
      const expired = await this.checkExpiredIn(q, now, given);
      return { raised: [...silent.raised, ...expired], resolved: silent.resolved };
    });
  }

  private async checkExpiredIn(q: Sql, now: number, observed: ObservedPair[] | undefined): Promise<Finding[]> {
    const raised: Finding[] = [];
    for (const o of observed ?? (await this.readObserved(q))) {
      const ip = canonicalIp(o.sourceIp) ?? o.sourceIp;
      const s = this.index.match(ip, o.vni);
      if (s?.expires === undefined || o.lastSeenMs < s.expires || now < s.expires) continue;
      const key = pairKey(ip, o.vni);
      const pair = this.pairs.get(key);
      if (pair) {
        pair.status = 'expired';
        pair.sessionId = s.id;
        pair.lastSeenMs = Math.max(pair.lastSeenMs, o.lastSeenMs);
      }
      if ((await this.store.get(findingId('expired-session', key), q))?.status === 'open') continue;
      const state = pair ?? { sourceIp: ip, vni: o.vni, firstSeenMs: o.lastSeenMs, lastSeenMs: o.lastSeenMs, status: 'expired' as const, sessionId: s.id };
      raised.push((await this.store.record(await this.pairFinding(state, { status: 'expired', session: s }, o.lastSeenMs, 'traffic after expiry', q), q)).finding);
    }
    return raised;
  }

  /** The current verdict for a pair, without recording anything (the collector re-reads after a tick). */
  verdict(sourceIp: string, vni: number, atMs: number = this.clock()): PairVerdict {
    const auth = this.index.authorize(canonicalIp(sourceIp) ?? sourceIp, vni, atMs);
    return { sessionId: auth.status === 'authorized' || auth.status === 'expired' ? auth.session!.id : null, status: auth.status };
  }

  private async resolvePair(ip: string, vni: number, atMs: number, reason: string, q: Sql): Promise<void> {
    const key = pairKey(ip, vni);
    await this.store.resolveOpenAmong(DATA_PLANE_KINDS.map((kind) => findingId(kind, key)), atMs, reason, q);
  }

  private async pairFinding(pair: PairState, auth: AuthResult, atMs: number, trigger: string, q: Sql): Promise<FindingInput> {
    const m = this.index.manifest;
    const { sourceIp, vni } = pair;
    const kind = KIND_OF[auth.status as Exclude<AuthStatus, 'authorized'>];
    const claims = this.index.sessionsForVni(vni).map((s) => claimOf(s));
    let summary: string;
    if (kind === 'unauthorized-vni') {
      summary = m
        ? `Traffic from ${sourceIp} on VNI ${vni}, which no session in the manifest authorizes`
        : `Traffic from ${sourceIp} on VNI ${vni}; no manifest is loaded, so no session is authorized`;
    } else if (kind === 'unexpected-source') {
      summary = `Traffic on VNI ${vni} from ${sourceIp}, which is not a listed source of ${claims.map((c) => c.id).join(', ')}`;
    } else {
      summary = `Traffic from ${sourceIp} on ${auth.session!.id} (VNI ${vni}) after the session expired at ${new Date(auth.session!.expires!).toISOString()}`;
    }
    const evidence: Record<string, unknown> = {
      pair: { sourceIp, vni },
      firstPacketAt: new Date(pair.firstSeenMs).toISOString(),
      trigger,
      manifest: m ? { file: m.file, sha256: m.sha256, sessions: m.sessions.length } : null,
      claims,
    };
    if (auth.status === 'expired') evidence.session = claimOf(auth.session!);
    const sessionId = auth.status === 'expired' ? auth.session!.id : undefined;
    const control = await controlEvidenceForTraffic(this.store.store, { vni, ...(auth.session ? { sessionId: auth.session.id } : {}), atMs }, q);
    const input: FindingInput = { kind, key: pairKey(sourceIp, vni), at: atMs, vni, sourceIp, summary, evidence };
    if (sessionId) input.sessionId = sessionId;
    if (control.length) input.correlated = { control };
    return input;
  }

  private silentFinding(s: ManifestSession, last: number | undefined, from: number, now: number): FindingInput {
    const silentForMs = now - from;
    return {
      kind: 'silent-session',
      key: s.id,
      at: now,
      vni: s.vni,
      sessionId: s.id,
      summary:
        last === undefined
          ? `No traffic on authorized session ${s.id} (VNI ${s.vni}) in the ${Math.round(silentForMs / 60_000)} min since it was expected`
          : `No traffic on authorized session ${s.id} (VNI ${s.vni}) since ${new Date(last).toISOString()}`,
      evidence: {
        session: claimOf(s),
        lastTrafficAt: last === undefined ? null : new Date(last).toISOString(),
        countingFrom: new Date(from).toISOString(),
        silentForMs,
        silentAfterMs: this.silentAfterMs,
      },
    };
  }

  private async readObserved(q: Sql): Promise<ObservedPair[]> {
    return (await this.store.store.observed.all(q)).map((r) => ({ sourceIp: r.source_ip, vni: r.vni, lastSeenMs: r.last_seen }));
  }

  private shaNote(): string {
    const m = this.index.manifest;
    return m ? `sha256 ${m.sha256.slice(0, 12)}` : 'none';
  }
}

export function pairKey(sourceIp: string, vni: number): string {
  return `${sourceIp}|${vni}`;
}

function claimOf(s: ManifestSession): Record<string, unknown> {
  const c: Record<string, unknown> = { id: s.id, vni: s.vni, sourceIps: s.sourceIps ?? 'any', line: s.line };
  if (s.sourceEni) c.sourceEni = s.sourceEni;
  if (s.gwlbEndpointId) c.gwlbEndpointId = s.gwlbEndpointId;
  if (s.owner) c.owner = s.owner;
  if (s.expires !== undefined) c.expires = new Date(s.expires).toISOString();
  return c;
}

function pushIf(list: Finding[], f: Finding | undefined): void {
  if (f) list.push(f);
}
