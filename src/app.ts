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
import { CATALOG_FILE } from './collector/layout.js';
import { recoverCatalog } from './collector/recovery.js';
import { runRetention } from './collector/retention.js';
import { MgError } from './errors.js';
import { readKernelUdpStats, type KernelUdpStats } from './ingest/proc-net-udp.js';
import { startUdpReceiver, type BoundReceiver } from './ingest/udp.js';
import { openDb, type Db } from './store/db.js';
import { parseHostPort } from './util/units.js';
import type { Logger } from './util/log.js';

export interface App {
  readonly config: Readonly<Config>;
  start(): Promise<void>;
  stop(): Promise<void>;
  /** Available after start(). */
  readonly db: Db;
  readonly collector: Collector;
  readonly receiver: BoundReceiver | null;
  kernelStats(): KernelUdpStats | null;
  counters(): Record<string, number>;
}

export function buildApp(config: Readonly<Config>, logger: Logger): App {
  let db: Db | undefined;
  let collector: Collector | undefined;
  let receiver: BoundReceiver | null = null;
  let retentionTimer: NodeJS.Timeout | null = null;
  let started = false;

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
      return receiver;
    },

    async start() {
      if (started) return;
      started = true;
      prepareDataDir(config.dataDir);
      db = openDb(join(config.dataDir, CATALOG_FILE));
      const catalog = new Catalog(db);
      const rec = await recoverCatalog(catalog, config.dataDir, logger);
      if (rec.repaired || rec.adopted || rec.removedRows) logger.warn(rec, 'recovered the catalog after an unclean stop');

      collector = new Collector({
        dataDir: config.dataDir,
        catalog,
        logger,
        strictVxlan: config.strictVxlan,
        vxlanPort: config.vxlanPort,
        maxSessions: config.maxSessions,
        rotateBytes: config.pcap.rotateBytes,
        rotateSeconds: config.pcap.rotateSeconds,
        idleCloseSeconds: config.pcap.idleCloseSeconds,
        flushIntervalMs: config.pcap.flushIntervalMs,
        bufferBytes: config.pcap.bufferBytes,
        queueBytes: config.pcap.queueBytes,
      });
      collector.start();

      const retention = () => {
        try {
          runRetention(catalog, config.dataDir, config.retention, logger);
        } catch (e) {
          logger.error({ err: e }, 'retention failed; retrying on the next interval');
        }
      };
      retention();
      retentionTimer = setInterval(retention, config.retention.intervalSeconds * 1000);
      retentionTimer.unref();

      const hp = parseHostPort(config.listen)!;
      receiver = await startUdpReceiver(collector, { host: hp.host, port: hp.port, recvBufferBytes: config.recvBufferBytes, logger });
    },

    async stop() {
      if (retentionTimer) clearInterval(retentionTimer);
      retentionTimer = null;
      if (receiver) await receiver.close();
      receiver = null;
      if (collector) {
        await collector.close();
        logger.info({ counters: app.counters(), kernel: app.kernelStats() }, 'stopped; final counters');
      }
      db?.close();
    },

    kernelStats() {
      return receiver ? readKernelUdpStats(receiver.address.port) : null;
    },

    counters() {
      return collector ? collector.counters() : {};
    },
  };
  return app;
}

function prepareDataDir(dir: string): void {
  try {
    mkdirSync(join(dir, 'pcap'), { recursive: true });
    accessSync(dir, constants.W_OK);
  } catch (e) {
    throw new MgError('MG_ERR_DATA_DIR', `${dir}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, { cause: e });
  }
}
