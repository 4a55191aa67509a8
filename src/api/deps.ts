/**
 * What the API needs from a running `serve`, as an interface: the integrator passes the real objects,
 * tests pass an in-memory database, real stores and small fakes for what only a live collector has.
 * The API reads through these and writes only the audit log (and, through `reloadManifest`, asks for
 * a manifest reload).
 */
import type { AlertStats } from '../alert/alerts.js';
import type { Detector } from '../detect/detector.js';
import type { Findings } from '../detect/findings.js';
import type { KernelUdpStats } from '../ingest/proc-net-udp.js';
import type { Ledger } from '../ledger/ledger.js';
import type { Store } from '../store/store.js';
import type { Logger } from '../util/log.js';
import type { ApiConfig } from './config.js';
import type { AuditLog } from './audit.js';

/** A (source IP, VNI) pair the collector holds in memory now. */
export interface LivePair {
  sourceIp: string;
  vni: number;
  /** The manifest session it belongs to, as the collector labelled it. */
  sessionId: string | null;
  /** Since the pair entered the session table. */
  packets: number;
  bytes: number;
  /** ms since the epoch. */
  firstSeenMs: number;
  lastSeenMs: number;
  /** The GWLB endpoint and attachment the pair last arrived through (GENEVE), when it did. */
  gwlbEndpointId?: string | null;
  gwlbAttachmentId?: string | null;
}

/** The part of the detector the API calls. */
export type ApiDetector = Pick<Detector, 'ingestCloudTrail' | 'verdict' | 'manifest'>;

export type ManifestReloadResult = Awaited<ReturnType<Detector['reloadManifest']>>;

export interface ApiDeps {
  /** The store (src/store/): the API's only way to the database. */
  store: Store;
  /** Absolute data directory; catalog paths are relative to it. */
  dataDir: string;
  findings: Findings;
  detector: ApiDetector;
  /** fastify logs through it (pino); silent when absent. */
  logger?: Logger;
  /** Every counter by its docs/counters.md name (packet outcomes, weird, detect.*, alert.*, ingest.*). */
  counters(): Record<string, number>;
  /** The receive socket's kernel drop counter; null when unknown (not Linux, no socket). */
  kernelStats(): KernelUdpStats | null;
  /** The collector's in-memory pairs. */
  sessionsLive(): Iterable<LivePair>;
  /**
   * Hand every buffered record to the disk, wait for the writes, and update the open files' catalog rows
   * (packets, bytes) so that a live download includes the last packets. Called before serving or
   * merging a file that is still being written.
   */
  flushLive(): Promise<void>;
  /**
   * Reload the manifest file `serve` was started with (the SIGHUP path, including re-labelling the
   * collector's pairs); null when serve runs without a manifest file.
   */
  reloadManifest(): ManifestReloadResult | null | Promise<ManifestReloadResult | null>;
  /** Webhook delivery stats (src/alert createAlerts().stats); absent or null without webhooks. */
  alertStats?(): AlertStats | null | Promise<AlertStats | null>;
  /** True while store writes wait in the queue because the store fails (/healthz `store: degraded`). */
  storeDegraded?(): boolean;
  /** Named liveness checks for /healthz beyond the database, e.g. `{ receiver: true }`. */
  health?(): Record<string, boolean>;
  /** Wall clock in ms (tests). */
  now?(): number;
  /** The S3 archive when serve runs one (archive.s3): legal holds on archived objects. */
  /** The evidence ledger when serve runs an archive: extractions append a record. */
  ledger?: Pick<Ledger, 'appendExtraction'> | null;
  archive?: {
    setLegalHold(key: string, versionId: string | null, on: boolean): Promise<void>;
    /** Bytes start..end (inclusive) of an archived object: downloads whose local copy is gone, extractions (`signal` aborts the GET). */
    readObject?(key: string, versionId: string | null, start: number, end: number, signal?: AbortSignal): Promise<NodeJS.ReadableStream>;
  } | null;
}

/** Shared by the route groups of one app. */
export interface ApiContext {
  deps: ApiDeps;
  cfg: ApiConfig;
  audit: AuditLog;
  now: () => number;
  startedAtMs: number;
  extractions: { active: number; total: number; refused: number };
}
