/**
 * One receive worker of `--workers N` (src/receive-workers.ts runs this file in a worker thread). This
 * is wiring, beside src/app.ts: the only place in a worker that opens the database and composes a
 * Catalog, a Collector and a receiver; ingest/ and collector/ know nothing of threads.
 *
 * Each worker has a native receiver bound with SO_REUSEPORT, its own Collector writing files tagged with
 * its worker id, its own connection to the catalog database. The detector lives in the main thread: a
 * new pair is written at once as 'pending' and reported; the verdict comes back as a message.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { nativeWriterParts } from './ingest/native-addon.js';
import { Catalog } from './collector/catalog.js';
import { openStore, type Store } from './store/store.js';
import { Collector, type PairVerdict } from './collector/collector.js';
import { SessionWriters } from './collector/session-writer.js';
import { ERRORS, isMgError } from './errors.js';
import { createLogger } from './util/log.js';
import { startNativeReceiver, type NativeBoundReceiver } from './ingest/native.js';
import { startRingReceiver, type RingBoundReceiver } from './ingest/ring.js';
import { COUNTER_LAYOUT, MAX_VERDICTS, PENDING, RING_FIELDS, WRITER_FIELDS, type FromWorker, type ToWorker, type WorkerData } from './receive-workers.js';

const data = workerData as WorkerData;
const port = parentPort!;
const post = (m: FromWorker) => port.postMessage(m);
const logger = createLogger(data.logLevel, data.logFormat, { colorize: data.logColor }).child({ worker: data.id });
const verdicts = new Map<string, PairVerdict>();
const key = (ip: string, vni: number) => `${ip}|${vni}`;
/** Verdicts kept (oldest forgotten first): a flood of spoofed pairs must not grow this without bound. */
function rememberVerdict(k: string, v: PairVerdict): void {
  if (!verdicts.has(k) && verdicts.size >= MAX_VERDICTS) verdicts.delete(verdicts.keys().next().value!);
  verdicts.set(k, v);
}
const view = new Float64Array(data.counters);

let store: Store | null = null;
let collector: Collector | null = null;
let receiver: NativeBoundReceiver | null = null;
let ring: RingBoundReceiver | null = null;
let timer: NodeJS.Timeout | null = null;

function publish(): void {
  if (collector === null) return;
  const L = COUNTER_LAYOUT;
  view.set(collector.drops, L.drops);
  view.set(collector.weird, L.weird);
  const s = collector.stats();
  view[L.sessions] = s.sessions;
  view[L.queuedBytes] = s.queuedBytes;
  WRITER_FIELDS.forEach((f, i) => (view[L.writers + i] = collector!.writers.counters[f]));
  if (receiver !== null) {
    const r = receiver.stats();
    view[L.rxPackets] = r.packets;
    view[L.rxBatches] = r.batches;
    view[L.rxTruncated] = r.truncated;
    view[L.rxKernelDrops] = r.kernelDrops;
    view[L.rxUnstamped] = r.unstamped;
    view[L.rxErrors] = r.errors;
    view[L.rxBackpressurePauses] = r.backpressurePauses;
  }
  if (ring !== null) {
    const r = ring.stats() as unknown as Record<string, number>;
    RING_FIELDS.forEach((f, i) => (view[L.ring + i] = r[f]!));
    view[L.rxPackets] = r.packets!;
  }
}

async function start(): Promise<void> {
  try {
    // Its own connection to the store serve opened (and migrated): SQLite file or PostgreSQL.
    store = await openStore({ ...data.store, nodeId: data.nodeId, migrate: false });
    const catalog = new Catalog(store);
    const writers = new SessionWriters({ ...data.collector, catalog, logger, workerId: data.id, ...nativeWriterParts() });
    collector = new Collector({
      ...data.collector,
      writers,
      catalog,
      logger,
      workerId: data.id,
      onNewPair(sourceIp, vni, atMs) {
        const known = verdicts.get(key(sourceIp, vni));
        if (known !== undefined) return known;
        post({ type: 'newPair', sourceIp, vni, atMs });
        return PENDING;
      },
    });
    collector.start();
    const c = collector;
    if (data.receiver === 'af-packet' && data.ring !== null) {
      const { holdPort, ...ringOpts } = data.ring;
      ring = await startRingReceiver(c, null, { host: data.host, port: data.port, ...ringOpts, holdPort, logger, backlogged: () => writers.backlogged() });
      timer = setInterval(publish, data.counterIntervalMs);
      post({ type: 'ready', port: ring.address.port, recvBufferBytes: 0, recvBufferForced: false });
      return;
    }
    receiver = await startNativeReceiver(c, {
      host: data.host,
      port: data.port,
      recvBufferBytes: data.recvBufferBytes,
      ...(data.recvCoalesceMs !== undefined ? { coalesceMs: data.recvCoalesceMs } : {}),
      logger,
      reusePort: true,
      // Backpressure from the session writers' disk queue: a burst waits in the socket buffer.
      backlogged: () => writers.backlogged(),
      ...(data.batch !== undefined ? { batch: data.batch } : {}),
      ...(data.slotBytes !== undefined ? { slotBytes: data.slotBytes } : {}),
    });
    timer = setInterval(publish, data.counterIntervalMs);
    post({ type: 'ready', port: receiver.address.port, recvBufferBytes: receiver.recvBufferBytes, recvBufferForced: receiver.recvBufferForced });
  } catch (e) {
    // Only the detail crosses: the main thread rebuilds the MgError around it.
    const msg = (e as Error).message;
    const head = isMgError(e) ? `${ERRORS[e.code].message}: ` : '';
    post({ type: 'failed', code: isMgError(e) ? e.code : 'MG_ERR_INGEST_BIND', message: msg.startsWith(head) ? msg.slice(head.length) : msg });
    await shutdown();
  }
}

async function shutdown(): Promise<void> {
  if (timer) clearInterval(timer);
  timer = null;
  if (receiver) await receiver.close();
  if (ring) await ring.close();
  if (collector) await collector.close();
  publish();
  receiver = null;
  ring = null;
  collector = null;
  await store?.close().catch(() => undefined);
  store = null;
  post({ type: 'closed' });
  port.close();
}

port.on('message', (m: ToWorker) => {
  switch (m.type) {
    case 'verdict':
      rememberVerdict(key(m.sourceIp, m.vni), m.verdict);
      collector?.setVerdict(m.sourceIp, m.vni, m.verdict);
      break;
    case 'reassess':
      for (const v of m.verdicts) rememberVerdict(key(v.sourceIp, v.vni), v.verdict);
      collector?.reassess((ip, vni) => verdicts.get(key(ip, vni)) ?? PENDING);
      break;
    case 'flush':
      // The same flushLive as a single collector's: on disk and in the catalog when the answer goes.
      void (collector?.flushLive() ?? Promise.resolve())
        .catch((e: unknown) => logger.error({ err: e }, 'live flush failed'))
        .finally(() => {
          publish();
          post({ type: 'flushed', id: m.id });
        });
      break;
    case 'close':
      void shutdown();
      break;
  }
});

void start();
