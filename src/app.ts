/**
 * The `serve` application, built from a validated, frozen config. buildApp() does no I/O; start()
 * opens the data directory and catalog, repairs what a crash left, starts the receiver and timers;
 * stop() flushes and closes every file. Tests build apps with port 0 and a temporary data directory.
 */
import { accessSync, constants, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Config } from './config/schema.js';
import { Catalog } from './collector/catalog.js';
import { Collector } from './collector/collector.js';
import { SessionWriters } from './collector/session-writer.js';
import { collectorSettings } from './collector/settings.js';
import { recoverCatalog } from './collector/recovery.js';
import { runRetention } from './collector/retention.js';
import { HeapTrimmer, heapTrimFromEnv } from './util/heap-trim.js';
import { MgError } from './errors.js';
import { nativeWriterParts } from './ingest/native-addon.js';
import { readKernelUdpStats, type KernelUdpStats } from './ingest/proc-net-udp.js';
import { startPcapReceiver, type PcapReceiver } from './ingest/libpcap.js';
import { geneveSink } from './ingest/sink.js';
import { nativeAvailable, nativeCounters, startNativeReceiver, type NativeBoundReceiver } from './ingest/native.js';
import { ringAvailable, ringCounters, startRingReceiver, type RingBoundReceiver } from './ingest/ring.js';
import { startNativeWorkers, type NativeWorkerPool } from './receive-workers.js';
import { startUdpReceiver, type BoundReceiver } from './ingest/udp.js';
import { startServeApi, livePairsFrom } from './api/serve.js';
import type { ApiHandle } from './api/app.js';
import { createAlerts, type Alerts } from './alert/alerts.js';
import { parseAlertsConfig, type AlertingConfig, type ResolvedWebhook } from './alert/config.js';
import { Detector } from './detect/detector.js';
import { floodThresholds } from './detect/config.js';
import { FLUSH_INTERVAL_MS as FLOOD_FLUSH_MS } from './detect/flood.js';
import { loadManifest } from './detect/manifest.js';
import type { Manifest } from './detect/manifest-types.js';
import type { Db } from './store/db.js';
import { defaultNodeId, defaultStoreUrl, openStore, type Store } from './store/store.js';
import type { WorkerStore } from './receive-workers.js';
import type { S3Client } from '@aws-sdk/client-s3';
import type { ArchiveService } from './archive/service.js';
import type { SigningKey } from './ledger/keys.js';
import { loadSigningKey } from './ledger/keys.js';
import { storeCounters, type WriteQueue } from './store/write-queue.js';
import { parseHostPort } from './util/units.js';
import { resolveLogFormat, type Logger } from './util/log.js';
import { DROP_NAMES, WEIRD_NAMES } from './outcomes.js';

export interface AppOptions {
  /** Webhooks resolved by the CLI (with config-file lines in errors); parsed from config when absent. */
  alerts?: { webhooks: readonly ResolvedWebhook[]; alerting: AlertingConfig };
  /** The manifest checkStartup already loaded (config.manifest is read again on reload only). */
  manifest?: Manifest | null;
  /** This node's name (rows, archive jobs, ledger records); default: the host name. */
  nodeId?: string;
  /** The ledger's key, read by checkStartup; required when archive.s3 is set. */
  signingKey?: SigningKey | null;
  /** The S3 client for the archive (tests); built from archive.s3 otherwise. */
  s3Client?: S3Client;
  /** How long stop() may spend uploading the files it just closed, ms (within serve's stop timeout). */
  archiveDrainMs?: number;
}

/** serve stops within 10 s; the archive drain gets most of it. */
export const ARCHIVE_DRAIN_MS = 7000;

/** How often the detector looks for silent and expired sessions: a quarter of the silence threshold, 1-30 s. */
function detectTickMs(silentAfterSeconds: number): number {
  return Math.min(30_000, Math.max(1000, (silentAfterSeconds * 1000) / 4));
}

export interface App {
  readonly config: Readonly<Config>;
  readonly detector: Detector;
  readonly alerts: Alerts;
  /** SIGHUP: reload the manifest; an invalid file keeps the old one. Null without a manifest file. */
  reloadManifest(): ReturnType<Detector['reloadManifest']> | null;
  /** The API's bound port, when it runs. */
  readonly apiPort: number | null;
  start(): Promise<void>;
  stop(): Promise<void>;
  /** Available after start(). */
  readonly db: Db;
  readonly collector: Collector;
  /** The archive (archive.s3 set), after start(); else null. */
  readonly archive: ArchiveService | null;
  readonly receiver: BoundReceiver | PcapReceiver | NativeWorkerPool | null;
  /** The GENEVE socket (`geneve.listen`, a Gateway Load Balancer's traffic), when configured. Receive only. */
  readonly geneveReceiver: BoundReceiver | null;
  /**
   * Hand every buffered record to the disk, wait for the writes, and sync the open files' catalog rows
   * (a live download wants the last seconds): the same for one collector or many workers.
   */
  flushLive(): Promise<void>;
  kernelStats(): KernelUdpStats | null;
  counters(): Record<string, number>;
  /** The packet path's counters alone (collector or workers), without the store's. */
  collectorCounters(): Record<string, number>;
}

export function buildApp(config: Readonly<Config>, logger: Logger, opts: AppOptions = {}): App {
  // Validate everything that can be validated before any I/O, so a bad config fails fast.
  const alertsConfig = opts.alerts ?? parseAlertsConfig({ webhooks: config.webhooks, alerting: config.alerting });
  let db: Db | undefined;
  let store: Store | undefined;
  let catalogQueue: WriteQueue | null = null;
  let collector: Collector | undefined;
  let detector: Detector | undefined;
  let alerts: Alerts | undefined;
  let receiver: BoundReceiver | PcapReceiver | null = null;
  let receiverFinal: Record<string, number> = {};
  let geneveReceiver: BoundReceiver | null = null;
  let pool: NativeWorkerPool | null = null;
  let api: ApiHandle | null = null;
  let retentionTimer: NodeJS.Timeout | null = null;
  let heapTrimmer: HeapTrimmer | null = null;
  let detectTimer: NodeJS.Timeout | null = null;
  let floodTimer: NodeJS.Timeout | null = null;
  let inventory: { stop(): void } | null = null;
  let archive: ArchiveService | null = null;
  let started = false;
  // node.id (--node-id), else MIRRORGUARD_NODE (the fleet template sets the instance ID), else the host name.
  const nodeId = config.node.id ?? opts.nodeId ?? defaultNodeId();

  const app: App = {
    config,
    get db() {
      if (!db) throw new Error('app not started');
      return db;
    },
    get collector() {
      if (!collector) throw new Error('app not started');
      return collector;
    },
    get receiver() {
      return pool ?? receiver;
    },
    get archive() {
      return archive;
    },
    get geneveReceiver() {
      return geneveReceiver;
    },

    async flushLive() {
      // One meaning however many collectors: every buffer on disk and every open file's row synced.
      // With workers the main thread's collector still takes GENEVE.
      await Promise.all([pool?.flushLive(), collector?.flushLive()]);
    },
    get detector() {
      if (!detector) throw new Error('app not started');
      return detector;
    },
    get alerts() {
      if (!alerts) throw new Error('app not started');
      return alerts;
    },

    reloadManifest() {
      if (!config.manifest || !detector) return null;
      return (async () => {
        const r = await detector!.reloadManifest(config.manifest!);
        if (!r.ok) return r;
      const verdict = (ip: string, vni: number) => detector!.verdict(ip, vni);
      if (pool) pool.reassess(verdict);
      else collector?.reassess(verdict);
        logger.info({ manifest: config.manifest, sha256: r.manifest.sha256, sessions: r.manifest.sessions.length }, 'manifest reloaded');
        return r;
      })();
    },

    get apiPort() {
      return api ? api.port : null;
    },

    async start() {
      if (started) return;
      started = true;
      // The manifest first: an invalid one refuses to start before anything is touched.
      // Which receiver, before anything is created: a missing addon refuses to start with nothing touched.
      const kind = config.source.startsWith('pcap:') ? 'pcap' : chooseReceiver(config, logger);
      const manifest = opts.manifest !== undefined ? opts.manifest : config.manifest ? loadManifest(config.manifest) : null;
      prepareDataDir(config.dataDir);
      const storeOptions: WorkerStore = {
        url: config.store.url ?? defaultStoreUrl(config.dataDir),
        ...(config.store.passwordFile !== null ? { passwordFile: config.store.passwordFile } : {}),
        ...(config.store.tls.ca !== null ? { tlsCa: config.store.tls.ca } : {}),
      };
      // PostgreSQL unreachable: MG_ERR_STORE_UNREACHABLE naming the URL without its password (exit 69).
      store = await openStore({
        ...storeOptions,
        nodeId,
        onError: (e) => logger.error({ err: e.message }, 'store connection error'),
      });
      db = store.sqlite ?? undefined;
      const catalog = new Catalog(store);
      const s3 = config.archive.s3;
      if (s3 !== null) {
        // checkStartup read the key already; a caller that skipped it gets the same coded error here.
        const key = opts.signingKey ?? (config.archive.signingKey !== null ? loadSigningKey(config.archive.signingKey) : null);
        if (key === null) throw new MgError('MG_ERR_CONFIG_INVALID', 'archive.signingKey', { problems: [{ field: 'archive.signingKey', message: 'archive.s3 is set but archive.signingKey is not' }] });
        // Loaded only with an archive: the S3 client and its modules are about 20 MB of RSS the embedded default does without.
        const { ArchiveService } = await import('./archive/service.js');
        archive = new ArchiveService({ config: { ...config.archive, s3 }, key, store, dataDir: config.dataDir, node: nodeId, logger, ...(opts.s3Client ? { client: opts.s3Client } : {}) });
        catalog.archive(nodeId, config.dataDir, () => archive?.worker.poke());
      }
      catalogQueue = catalog.queue;
      {
        // One warning when the store starts failing (and how many writes wait), one info when it is back.
        let failing = false;
        const q = catalog.queue;
        q.listen({
          onError: (err, queued) => {
            if (failing) return;
            failing = true;
            logger.warn({ err: err.message, queued }, 'the store is failing; writes wait in order and are retried with backoff');
            const check = setInterval(() => {
              if (q.degraded) return;
              clearInterval(check);
              failing = false;
              logger.info({ queued: q.depth() }, 'the store is back; queued writes are landing');
            }, 1000);
            check.unref();
          },
          onRejected: (err) => logger.error({ err: err.message, code: (err as { code?: unknown }).code }, 'the store refused a write; it was set aside (store.queue.rejected) and the queue went on'),
        });
      }
      alerts = createAlerts({ outbox: store.outbox, webhooks: alertsConfig.webhooks, alerting: alertsConfig.alerting, log: logger });
      detector = new Detector({
        store,
        // The detector's rows go behind the catalog's in one ordered queue: the packet path never waits.
        queue: catalog.queue,
        manifest,
        onChange: alerts.onFindingEvent,
        // The outbox's own wake can come before the batch commits (PostgreSQL): wake again after it.
        afterCommit: () => alerts!.dispatcher.notify(),
        silentAfterMs: config.detect.silentAfterSeconds * 1000,
        log: logger,
        newPairFlood: floodThresholds(config.detect),
      });
      // Without a manifest the detector itself warns loudly (every session is unauthorized).
      if (manifest) logger.info({ manifest: config.manifest, sessions: manifest.sessions.length, sha256: manifest.sha256 }, 'manifest loaded');
      alerts.start();
      const rec = await recoverCatalog(catalog, config.dataDir, logger);
      if (rec.repaired || rec.adopted || rec.removedRows) logger.warn(rec, 'recovered the catalog after an unclean stop');
      // After recovery: the files it closed are swept into the queue, and jobs a killed process held come back.
      if (archive) await archive.start();

      // The session writers (files, pool, disk queue, outcome counts), then the packet path that feeds them.
      const settings = collectorSettings(config);
      const writers = new SessionWriters({ ...settings, catalog, logger, ...nativeWriterParts() });
      collector = new Collector({
        ...settings,
        writers,
        catalog,
        logger,
        onNewPair: (ip, vni, atMs) => detector!.onNewPair(ip, vni, atMs),
        onGwlbEndpoint: (ip, vni, endpointId, attachmentId, atMs) => detector!.onGwlbEndpoint(ip, vni, endpointId, attachmentId, atMs),
      });
      collector.start();

      detectTimer = setInterval(() => {
        // Last-seen times come from observed_sessions (synced every flush interval): it outlives idle
        // pairs the collector evicted, and the workers' pairs, which live in their threads.
        detector!.tick(Date.now()).catch((e: unknown) => logger.error({ err: e }, 'detector tick failed'));
      }, detectTickMs(config.detect.silentAfterSeconds));
      detectTimer.unref();
      floodTimer = setInterval(() => detector!.flushFlood(), FLOOD_FLUSH_MS);
      floodTimer.unref();
      const inv = config.detect.inventory;
      if (inv.intervalSeconds > 0) {
        inventory = detector.scheduleInventory(inv.intervalSeconds * 1000, {
          ...(inv.region ? { region: inv.region } : {}),
          ...(inv.endpoint ? { endpoint: inv.endpoint } : {}),
          pageSize: inv.pageSize,
        });
      }

      const retention = () => {
        runRetention(catalog, config.dataDir, config.retention, logger, { archive: archive !== null }).catch((e: unknown) => logger.error({ err: e }, 'retention failed; retrying on the next interval'));
        // Finished webhook deliveries go too (pending ones never): the outbox would otherwise grow forever.
        alerts!.prune().then(
          (deleted) => {
            if (deleted > 0) logger.info({ deleted, keepDeliveriesDays: alertsConfig.alerting.keepDeliveriesDays }, 'pruned old webhook deliveries');
          },
          (e: unknown) => logger.error({ err: e }, 'pruning webhook deliveries failed; retrying on the next interval'),
        );
      };
      retention();
      retentionTimer = setInterval(retention, config.retention.intervalSeconds * 1000);
      retentionTimer.unref();
      // Old-generation garbage is collected before it piles up (src/util/heap-trim.ts).
      heapTrimmer = new HeapTrimmer({ logger, busy: () => writers.underPressure(), ...heapTrimFromEnv() });
      heapTrimmer.start();

      const hp = parseHostPort(config.listen)!;
      if (kind === 'pcap') {
        receiver = startPcapReceiver(collector, { iface: config.source.slice(5), vxlanPort: config.vxlanPort, genevePort: config.geneve.port, bufferBytes: config.recvBufferBytes, logger });
      } else if (kind === 'dgram') {
        receiver = await startUdpReceiver(collector, { host: hp.host, port: hp.port, recvBufferBytes: config.recvBufferBytes, logger });
      } else if (config.workers > 1) {
        // Each worker has its own Collector and files; this one stays idle but keeps the catalog code paths.
        pool = await startNativeWorkers({
          receiver: kind,
          ring: ringSettings(config),
          // One PACKET_FANOUT group per serve process (ids are per network namespace).
          fanoutGroup: process.pid & 0xffff,
          workers: config.workers,
          host: hp.host,
          port: hp.port,
          recvBufferBytes: config.recvBufferBytes,
          recvCoalesceMs: config.recvCoalesceMs,
          store: storeOptions,
          nodeId: store!.nodeId,
          collector: collectorSettings(config),
          logger,
          logLevel: config.log.level,
          logFormat: resolveLogFormat(config.log.format),
          onNewPair: (ip, vni, atMs) => detector!.onNewPair(ip, vni, atMs),
        });
      } else if (kind === 'af-packet') {
        // GENEVE (geneve.listen) comes through the same ring, by its port.
        const g = config.geneve.listen !== null ? parseHostPort(config.geneve.listen)! : null;
        receiver = await startRingReceiver(collector, g !== null ? collector : null, {
          host: hp.host,
          port: hp.port,
          geneve: g,
          ...ringSettings(config),
          logger,
          backlogged: () => writers.backlogged(),
        });
      } else {
        const c = collector;
        receiver = await startNativeReceiver(c, { host: hp.host, port: hp.port, recvBufferBytes: config.recvBufferBytes, coalesceMs: config.recvCoalesceMs, logger, backlogged: () => writers.backlogged() });
      }
      if (config.geneve.listen !== null && !(kind === 'af-packet' && pool === null)) {
        // GENEVE from a Gateway Load Balancer, into this process's collector (with --workers, that is
        // the main thread's, worker 0 in file names): the same sessions, files and findings as VXLAN.
        const g = parseHostPort(config.geneve.listen)!;
        const c = collector;
        // Its own socket (with --workers, the rings carry VXLAN only): the addon's recvmmsg when built.
        const kind = config.receiver === 'dgram' || !nativeAvailable().ok ? 'dgram' : 'native';
        geneveReceiver =
          kind === 'native'
            ? await startNativeReceiver(geneveSink(c), { host: g.host, port: g.port, recvBufferBytes: config.recvBufferBytes, coalesceMs: config.recvCoalesceMs, logger, backlogged: () => writers.backlogged(), payload: 'geneve' })
            : await startUdpReceiver(c, { host: g.host, port: g.port, recvBufferBytes: config.recvBufferBytes, logger, payload: 'geneve' });
      }

      const d = detector;
      const al = alerts;
      const col = collector;
      api = await startServeApi({
        config: config.api,
        dataDir: config.dataDir,
        logger,
        deps: {
          store: store!,
          findings: d.store,
          detector: d,
          counters: () => ({ ...app.counters(), ...d.counters, ...al.counters() }),
          kernelStats: () => app.kernelStats(),
          // With workers the pairs live in the workers; the API reads observed_sessions from the catalog.
          sessionsLive: () => (pool ? [] : livePairsFrom(col.sessions)),
          flushLive: () => app.flushLive(),
          reloadManifest: () => app.reloadManifest(),
          alertStats: () => al.stats(),
          storeDegraded: () => catalogQueue?.degraded ?? false,
          archive: archive ?? null,
          ledger: archive ? archive.ledger : null,
          // With af-packet, GENEVE comes through the VXLAN ring (its filter names both ports).
          health: () => ({
            receiver: app.receiver !== null,
            ...(config.geneve.listen !== null ? { geneve: geneveReceiver !== null || (receiver?.kind === 'af-packet' && (receiver as RingBoundReceiver).genevePort !== null) } : {}),
          }),
        },
      });
    },

    async stop() {
      const drainDeadline = Date.now() + (opts.archiveDrainMs ?? ARCHIVE_DRAIN_MS);
      // The API first: no download should see the files half closed.
      if (api) await api.close();
      api = null;
      if (retentionTimer) clearInterval(retentionTimer);
      heapTrimmer?.stop();
      retentionTimer = null;
      if (detectTimer) clearInterval(detectTimer);
      detectTimer = null;
      if (floodTimer) clearInterval(floodTimer);
      floodTimer = null;
      inventory?.stop();
      const kernel = app.kernelStats(); // read while the socket still exists
      // The receiver's own counters (ring drops, recvmmsg batches) go in the final line too, read as it closes.
      if (receiver) receiverFinal = receiverCounters(receiver);
      if (receiver) await receiver.close();
      receiver = null;
      if (geneveReceiver) await geneveReceiver.close();
      geneveReceiver = null;
      if (pool) {
        await pool.close();
        logger.info({ counters: app.counters() }, 'workers stopped; final counters');
      }
      if (collector) {
        await collector.close();
        logger.info({ counters: app.counters(), kernel }, 'stopped; final counters');
      }
      if (archive) {
        // Every file is closed and its row (and job) queued: land them, then upload within the grace.
        await catalogQueue?.flush(Math.max(0, drainDeadline - Date.now()));
        await archive.stop(drainDeadline);
        archive = null;
      }
      // After the collector: what a flood coalesced since the last second, then the alerts its last edges queued.
      detector?.flushFlood();
      // The detector's rows (findings, their outbox rows) into the store, bounded like the catalog's.
      if (detector) await detector.settled(5_000);
      if (alerts) await alerts.stop();
      // Whatever the queue could not write by now (the store away) stays out; recovery adopts the files.
      catalogQueue?.close();
      await store?.close().catch(() => undefined);
    },

    kernelStats() {
      // The af-packet mode's UDP socket is never read: its drop counter counts nearly every datagram and means nothing.
      if (config.receiver !== 'dgram' && (pool?.receiverKind === 'af-packet' || receiver?.kind === 'af-packet')) return null;
      const port = pool ? pool.address.port : receiver && receiver.kind !== 'libpcap' ? receiver.address.port : null;
      return port === null ? null : readKernelUdpStats(port);
    },

    counters() {
      return { ...this.collectorCounters(), ...storeCounters(catalogQueue), ...(archive ? archive.snapshot() : {}) };
    },

    collectorCounters() {
      if (pool) {
        const w = pool.counters();
        const out: Record<string, number> = {};
        w.drops.forEach((v, i) => (out[DROP_NAMES[i]!] = v));
        w.weird.forEach((v, i) => (out[WEIRD_NAMES[i]!] = v));
        // GENEVE goes to the main thread's collector: add its outcomes.
        if (collector && config.geneve.listen !== null) for (const [k, v] of Object.entries(collector.counters())) out[k] = (out[k] ?? 0) + v;
        // The workers' session tables keep their own counters, not published yet: the main thread's only.
        if (collector) Object.assign(out, collector.sessions.counters);
        // The session writers' counters: every worker's and the main thread's (GENEVE).
        for (const [k, v] of Object.entries(w.writers)) out[k] = v + (collector ? collector.writers.counters[k as keyof typeof w.writers] : 0);
        if (geneveReceiver?.kind === 'native') Object.assign(out, nativeCounters((geneveReceiver as NativeBoundReceiver).stats(), 'ingest.geneve'));
        return { ...out, ...(pool.receiverKind === 'af-packet' ? ringCounters(w.ring) : nativeCounters(w.receiver)) };
      }
      if (!collector) return {};
      const out: Record<string, number> = { ...collector.counters(), ...collector.sessions.counters, ...collector.writers.counters };
      Object.assign(out, receiver ? receiverCounters(receiver) : receiverFinal);
      if (geneveReceiver?.kind === 'native') Object.assign(out, nativeCounters((geneveReceiver as NativeBoundReceiver).stats(), 'ingest.geneve'));
      return out;
    },
  };
  return app;
}

/** The counters a receiver keeps itself (recvmmsg batches and socket errors, or the ring's blocks and drops). */
function receiverCounters(receiver: BoundReceiver | PcapReceiver): Record<string, number> {
  if (receiver.kind === 'native') return nativeCounters((receiver as NativeBoundReceiver).stats());
  if (receiver.kind === 'af-packet') return ringCounters((receiver as RingBoundReceiver).stats());
  return {};
}

function ringSettings(config: Readonly<Config>) {
  return { interface: config.interface, blockBytes: config.ring.blockBytes, blockCount: config.ring.blockCount, retireMs: config.ring.retireMs };
}

/** Why the af-packet ring cannot serve this config (IPv4 addresses and fixed ports only), or null. */
function ringUnfit(config: Readonly<Config>): string | null {
  const hp = parseHostPort(config.listen)!;
  if (hp.host.includes(':')) return 'the listen address is IPv6 (the ring takes IPv4)';
  if (config.geneve.listen !== null) {
    const g = parseHostPort(config.geneve.listen)!;
    if (g.host.includes(':') || g.port === 0) return 'geneve.listen is IPv6 or port 0';
  }
  return null;
}

/**
 * Which receiver runs. `auto` takes the first that can: af-packet (the addon's ring and CAP_NET_RAW),
 * native (the addon), dgram; and says which and why in one log line.
 */
function chooseReceiver(config: Readonly<Config>, logger: Logger): 'af-packet' | 'native' | 'dgram' {
  if (config.receiver === 'dgram') {
    if (config.workers > 1) throw new MgError('MG_ERR_CONFIG_INVALID', '--workers needs the native receiver', { problems: [{ field: 'workers', message: 'more than 1 worker needs --receiver af-packet, native, or auto with the addon built' }] });
    return 'dgram';
  }
  if (config.receiver === 'af-packet') {
    const unfit = ringUnfit(config);
    if (unfit !== null) throw new MgError('MG_ERR_CONFIG_INVALID', 'receiver af-packet', { problems: [{ field: 'receiver', message: `af-packet cannot serve this: ${unfit}` }] });
    const r = ringAvailable();
    if (!r.ok) throw new MgError(nativeAvailable().ok ? 'MG_ERR_INGEST_RING' : 'MG_ERR_INGEST_NATIVE_UNAVAILABLE', r.reason);
    return 'af-packet';
  }
  const n = nativeAvailable();
  if (config.receiver === 'auto') {
    const unfit = ringUnfit(config);
    const r = unfit === null ? ringAvailable() : { ok: false as const, reason: unfit };
    if (r.ok) {
      logger.info({ receiver: 'af-packet', reason: 'the addon has the capture ring and the process has CAP_NET_RAW' }, 'receiver auto: af-packet');
      return 'af-packet';
    }
    if (n.ok) {
      logger.info({ receiver: 'native', reason: `af-packet unavailable: ${r.reason}` }, 'receiver auto: native (recvmmsg)');
      return 'native';
    }
    if (config.workers > 1) throw new MgError('MG_ERR_INGEST_NATIVE_UNAVAILABLE', n.reason);
    logger.info({ receiver: 'dgram', reason: `af-packet unavailable: ${r.reason}; native unavailable: ${n.reason}` }, 'receiver auto: dgram (node:dgram)');
    return 'dgram';
  }
  if (n.ok) return 'native';
  if (config.receiver === 'native' || config.workers > 1) throw new MgError('MG_ERR_INGEST_NATIVE_UNAVAILABLE', n.reason);
  return 'dgram';
}

function prepareDataDir(dir: string): void {
  try {
    mkdirSync(join(dir, 'pcap'), { recursive: true });
    accessSync(dir, constants.W_OK);
  } catch (e) {
    throw new MgError('MG_ERR_DATA_DIR', `${dir}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, { cause: e });
  }
}
