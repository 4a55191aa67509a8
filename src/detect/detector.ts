/**
 * The detector as one object, independent of transport: the collector calls `onNewPair`, the
 * CloudTrail inputs (files, HTTP, EventBridge) call `ingestCloudTrail`, the inventory (file or SDK)
 * calls `checkInventory`, a timer calls `tick`, SIGHUP calls `reloadManifest`. Every path ends in the
 * same findings store with the same rules, so the same incident gets the same finding whichever way it
 * was noticed.
 */
import { isMgError, type MgError } from '../errors.js';
import type { Db } from '../store/db.js';
import { storeFromDb, type Store } from '../store/store.js';
import { WriteQueue } from '../store/write-queue.js';
import { RateLimiter, type Logger } from '../util/log.js';
import { normalizeRecord } from './cloudtrail/normalize.js';
import { recordsFromJson } from './cloudtrail/parse.js';
import { evaluateControlEvent } from './cloudtrail/rules/index.js';
import type { ControlEvent } from './cloudtrail/types.js';
import {
  attachControlToTraffic,
  controlEvidenceForSession,
  isSessionChange,
  recordControlEvent,
  trafficEvidence,
} from './correlate.js';
import { newDetectCounters, type DetectCounters } from './counters.js';
import { DataPlaneDetector, type CheckResult, type ObservedPair, type PairVerdict } from './data-plane.js';
import type { Finding, FindingInput, FindingKind } from './finding.js';
import { compareInventory, fetchInventory, type FetchOptions, type InventorySession } from './inventory.js';
import type { FloodThresholds } from './flood.js';
import { loadManifestIsolatedAsync } from './manifest-isolated.js';
import type { Manifest } from './manifest-types.js';
import { Findings, type AsyncFindingListener } from './findings.js';
import { findingId, mergeCorrelated } from './store.js';
import { DetectorWrites } from './writes.js';

const INVENTORY_KINDS: readonly FindingKind[] = ['unmanaged-session', 'missing-session', 'session-drift'];

/** How far back observed traffic counts as evidence for an inventory finding. */
export const INVENTORY_TRAFFIC_WINDOW_MS = 24 * 3600_000;

export type ControlRules = (ev: ControlEvent, manifest: Manifest | null) => FindingInput[];

export interface DetectorOptions {
  /** The store (either engine); or `db`, a better-sqlite3 connection wrapped in one. */
  store?: Store;
  db?: Db;
  /** The ordered write path shared with the collector (serve: the catalog's queue); else one of its own. */
  queue?: WriteQueue;
  manifest: Manifest | null;
  /** Called inside the transaction that writes each finding, with its handle (the webhook outbox). */
  onChange?: AsyncFindingListener;
  /** Called once a batch of detector writes has committed (serve: wake the webhook dispatcher). */
  afterCommit?: () => void;
  /** silent-session threshold; 0 disables. Default 15 minutes. */
  silentAfterMs?: number;
  clock?: () => number;
  log?: Logger;
  /** The control-plane rules; the CloudTrail rules by default. */
  rules?: ControlRules;
  /** `detect.newPairFlood` thresholds (src/detect/flood.ts). */
  newPairFlood?: FloodThresholds;
}

export interface IngestResult {
  /** Traffic-mirroring events read (new and repeated). */
  events: ControlEvent[];
  /** Events already stored (the same eventID delivered again); they raise nothing new. */
  duplicates: number;
  /** Records that are not traffic-mirroring calls. */
  skipped: number;
  /** Control-plane findings recorded. */
  findings: Finding[];
  /** Data-plane findings that gained control-plane evidence. */
  correlated: Finding[];
}

export interface InventoryResult {
  findings: Finding[];
  resolved: Finding[];
}

export class Detector {
  readonly store: Findings;
  readonly writes: DetectorWrites;
  /** docs/counters.md, "Detector". */
  readonly counters: DetectCounters = newDetectCounters();
  readonly dataPlane: DataPlaneDetector;
  private readonly db: Store;
  private readonly clock: () => number;
  private readonly log: Logger | undefined;
  private readonly rules: ControlRules;
  private readonly limiter = new RateLimiter();

  constructor(opts: DetectorOptions) {
    const store = opts.store ?? (opts.db ? storeFromDb(opts.db) : undefined);
    if (store === undefined) throw new Error('Detector: a store or a db is needed');
    this.db = store;
    this.clock = opts.clock ?? Date.now;
    this.log = opts.log;
    this.rules = opts.rules ?? evaluateControlEvent;
    this.store = new Findings(store, opts.onChange);
    this.writes = new DetectorWrites(opts.queue ?? new WriteQueue(store), () => this.dataPlane.storeRefused(), opts.afterCommit);
    this.dataPlane = new DataPlaneDetector({ findings: this.store, writes: this.writes, manifest: opts.manifest, silentAfterMs: opts.silentAfterMs, clock: this.clock, log: opts.log, counters: this.counters, newPairFlood: opts.newPairFlood });
    if (opts.manifest === null) {
      this.log?.warn('NO MANIFEST: every mirror session is treated as unauthorized; every VNI seen raises unauthorized-vni. Write one (mirrorguard manifest init --aws --out manifest.yaml, then review it) and start with --manifest FILE (docs/manifest.md)');
    }
  }

  get manifest(): Manifest | null {
    return this.dataPlane.manifest;
  }

  /** The first packet of a new (source IP, VNI) pair (the collector's first-packet edge). */
  onNewPair(sourceIp: string, vni: number, atMs: number = this.clock()): PairVerdict {
    return this.dataPlane.onNewPair(sourceIp, vni, atMs);
  }

  /** Write what a flood has coalesced and end a quiet episode (serve's one-second timer). Never throws. */
  flushFlood(now: number = this.clock()): void {
    this.dataPlane.flushFlood(now);
  }

  /** Resolves when every detector write queued so far is in the store (false after `timeoutMs`). */
  settled(timeoutMs?: number): Promise<boolean> {
    return this.writes.settled(timeoutMs);
  }

  /** A pair's packets arrive through a GWLB endpoint (first time, or another one than before). Never throws. */
  onGwlbEndpoint(sourceIp: string, vni: number, endpointId: string, attachmentId: string | null, atMs: number = this.clock()): void {
    void this.dataPlane.onGwlbEndpoint(sourceIp, vni, endpointId, attachmentId, atMs);
  }

  /** The current verdict for a pair without recording anything. */
  verdict(sourceIp: string, vni: number, atMs: number = this.clock()): PairVerdict {
    return this.dataPlane.verdict(sourceIp, vni, atMs);
  }

  /**
   * CloudTrail input in any shape src/detect/cloudtrail/parse.ts accepts (a record, a Records file, an
   * EventBridge event, lookup-events output, an array of these). Throws MG_ERR_CLOUDTRAIL_FORMAT.
   */
  async ingestCloudTrail(input: unknown, where = 'input'): Promise<IngestResult> {
    const records = recordsFromJson(input, where);
    const events: ControlEvent[] = [];
    for (const r of records) {
      const ev = normalizeRecord(r);
      if (ev) events.push(ev);
    }
    const res = await this.ingestControlEvents(events);
    res.skipped = records.length - events.length;
    return res;
  }

  /**
   * Normalized control events: each is stored (once per eventID), run through the rules, and
   * correlated both ways. One transaction per event, so an event and its findings (and their webhook
   * rows) commit together; a repeat of an event already stored does nothing.
   */
  async ingestControlEvents(events: readonly ControlEvent[]): Promise<IngestResult> {
    const out: IngestResult = { events: [...events], duplicates: 0, skipped: 0, findings: [], correlated: [] };
    // Oldest first, so that a create is stored before the modify that follows it.
    const ordered = [...events].sort((a, b) => a.eventTime - b.eventTime);
    const manifest = this.manifest;
    for (const ev of ordered) {
      await this.writes.run(async (q) => {
        if (!(await recordControlEvent(this.db, ev, q))) {
          out.duplicates++;
          this.counters['detect.control.duplicates']++;
          return;
        }
        this.counters['detect.control.events']++;
        const traffic =
          ev.vni !== undefined || ev.sessionId !== undefined
            ? await trafficEvidence(this.db, { ...(ev.vni !== undefined ? { vni: ev.vni } : {}), ...(ev.sessionId !== undefined ? { sessionId: ev.sessionId } : {}), sinceMs: ev.eventTime }, q)
            : [];
        for (const input of this.rules(ev, manifest)) {
          if (traffic.length && ev.dryRun !== true && ev.errorCode === undefined) {
            input.correlated = mergeCorrelated(input.correlated, { traffic }).merged;
          }
          out.findings.push((await this.store.record(input, q)).finding);
        }
        if (isSessionChange(ev)) out.correlated.push(...(await attachControlToTraffic(this.store, ev, this.clock(), q)));
      });
    }
    return out;
  }

  /**
   * Compare an inventory with the manifest: record unmanaged/missing/drift findings, and resolve those
   * from an earlier check (of the same region) that no longer hold.
   */
  checkInventory(sessions: readonly InventorySession[], opts: { region?: string; at?: number } = {}): Promise<InventoryResult> {
    const at = opts.at ?? this.clock();
    const scope = opts.region ?? null;
    const inputs = compareInventory(this.manifest, sessions, { region: opts.region, at });
    return this.writes.run(async (q): Promise<InventoryResult> => {
      const findings: Finding[] = [];
      const current = new Set<string>();
      for (const input of inputs) {
        const control = input.sessionId ? await controlEvidenceForSession(this.db, input.sessionId, q) : [];
        const traffic =
          input.kind === 'missing-session'
            ? []
            : await trafficEvidence(
                this.db,
                {
                  ...(input.vni !== undefined ? { vni: input.vni } : {}),
                  ...(input.kind === 'session-drift' && input.sessionId !== undefined ? { sessionId: input.sessionId } : {}),
                  sinceMs: at - INVENTORY_TRAFFIC_WINDOW_MS,
                  unattributedOnly: input.kind === 'unmanaged-session',
                },
                q,
              );
        if (control.length || traffic.length) {
          input.correlated = { ...(control.length ? { control } : {}), ...(traffic.length ? { traffic } : {}) };
        }
        current.add(findingId(input.kind, input.key));
        findings.push((await this.store.record(input, q)).finding);
      }
      const resolved: Finding[] = [];
      const stale: string[] = [];
      let cursor: string | undefined;
      do {
        const page = await this.store.list({ kind: INVENTORY_KINDS, status: 'open', limit: 500, ...(cursor !== undefined ? { cursor } : {}) }, q);
        for (const f of page.items) if (!current.has(f.id) && (f.evidence.scope ?? null) === scope) stale.push(f.id);
        cursor = page.nextCursor ?? undefined;
      } while (cursor !== undefined);
      for (const id of stale) {
        const r = await this.store.resolveIfOpen(id, at, 'no longer seen by the inventory check', q);
        if (r) resolved.push(r);
      }
      return { findings, resolved };
    });
  }

  /** Fetch the live inventory and check it (the periodic job in serve). */
  async runInventory(opts: FetchOptions = {}): Promise<InventoryResult> {
    const sessions = await fetchInventory(opts);
    return this.checkInventory(sessions, { region: opts.region });
  }

  /**
   * Run the live inventory check every `intervalMs` until stopped. Failures are logged (at most once a
   * minute) and the next run is tried on schedule; the timer does not keep the process alive.
   */
  scheduleInventory(intervalMs: number, opts: FetchOptions = {}): { stop(): void; runNow(): Promise<InventoryResult | null> } {
    let running = false;
    const run = async (): Promise<InventoryResult | null> => {
      if (running) return null;
      running = true;
      try {
        this.counters['detect.inventory.runs']++;
        const r = await this.runInventory(opts);
        this.log?.info({ findings: r.findings.length, resolved: r.resolved.length }, 'inventory check done');
        return r;
      } catch (e) {
        this.counters['detect.inventory.failures']++;
        const n = this.limiter.allow('inventory');
        if (n >= 0) this.log?.error({ err: isMgError(e) ? e.describe() : String(e), suppressed: n }, 'inventory check failed');
        return null;
      } finally {
        running = false;
      }
    };
    const timer = setInterval(() => void run(), intervalMs);
    timer.unref();
    return { stop: () => clearInterval(timer), runNow: run };
  }

  /** Swap the manifest in force and re-evaluate known pairs. */
  setManifest(manifest: Manifest | null, atMs: number = this.clock()): Promise<CheckResult> {
    if (manifest === null) this.log?.warn('NO MANIFEST: every mirror session is now treated as unauthorized');
    return this.dataPlane.setManifest(manifest, atMs);
  }

  /**
   * SIGHUP: load `path` again. An invalid or unreadable file keeps the manifest in force; the error
   * (with every `FILE:LINE: field: message`) is logged and returned.
   */
  async reloadManifest(path: string): Promise<{ ok: true; manifest: Manifest; result: CheckResult } | { ok: false; error: MgError }> {
    let manifest: Manifest;
    try {
      manifest = await loadManifestIsolatedAsync(path);
    } catch (e) {
      if (!isMgError(e)) throw e;
      this.log?.error({ problems: e.problems.length }, `manifest reload refused, keeping the manifest in force (sha256 ${this.manifest?.sha256 ?? 'none'}):\n${e.describe()}`);
      return { ok: false, error: e };
    }
    return { ok: true, manifest, result: await this.setManifest(manifest) };
  }

  /** silent-session only. */
  checkSilent(now: number = this.clock(), observed?: Iterable<ObservedPair>): Promise<CheckResult> {
    return this.dataPlane.checkSilent(now, observed);
  }

  /** The periodic data-plane checks: silent sessions, and traffic that outlived its session's `expires`. */
  tick(now: number = this.clock(), observed?: Iterable<ObservedPair>): Promise<CheckResult> {
    return this.dataPlane.tick(now, observed);
  }
}
