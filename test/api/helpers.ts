/**
 * Builders for the API tests: an app over an in-memory catalog with real stores (Catalog, Detector,
 * FindingStore) and real PCAP files written by the real writer into a temporary data directory.
 * Only what exists in a running collector alone (its in-memory pairs, counters, kernel stats, the
 * flush of the live file) is a small fake, driven by the test.
 */
import { storeFromDb } from '../../src/store/store.js';
import { settledStore } from '../helpers/settled.js';
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { buildApi } from '../../src/api/app.js';
import { parseApiConfig, sha256Digest, type ApiConfig, type ApiRole, type ApiToken } from '../../src/api/config.js';
import type { ApiDeps, LivePair } from '../../src/api/deps.js';
import { Catalog } from '../../src/collector/catalog.js';
import { captureRelPath } from '../../src/collector/layout.js';
import { Detector } from '../../src/detect/detector.js';
import { checkManifestText } from '../../src/detect/manifest.js';
import type { Manifest } from '../../src/detect/manifest-types.js';
import { PcapFileWriter } from '../../src/pcap/file-writer.js';
import { openDb, type Db } from '../../src/store/db.js';
import { toMicros } from '../../src/util/clock.js';
import type { Logger } from '../../src/util/log.js';
import { API_FRAMES } from '../helpers/packets.js';

export const TOKENS: Record<ApiRole, string> = {
  auditor: 'auditor-token-0123456789abcdef',
  ingest: 'ingest-token-0123456789abcdef',
  admin: 'admin-token-0123456789abcdef',
};

export function tokensFor(): ApiToken[] {
  return (Object.keys(TOKENS) as ApiRole[]).map((role) => ({ name: `${role}-user`, role, digest: sha256Digest(TOKENS[role]) }));
}

export function bearer(role: ApiRole): { authorization: string } {
  return { authorization: `Bearer ${TOKENS[role]}` };
}

/** A frame to write: bytes and capture time. */
export interface Frame {
  data: Buffer;
  sec: number;
  nsec: number;
}

export interface Harness {
  app: FastifyInstance;
  db: Db;
  catalog: Catalog;
  detector: Detector;
  dataDir: string;
  deps: ApiDeps;
  live: LivePair[];
  counters: Record<string, number>;
  /** What kernelStats() reports (the receive socket's /proc/net/udp line). */
  kernel: { sockets: number; drops: number; rxQueueBytes: number } | null;
  /** Set by a test to make flushLive do something (a live writer's drain). */
  onFlush: (() => Promise<void>) | null;
  flushes: number;
  manifestPath: string | null;
  close(): Promise<void>;
}

export function manifestFrom(text: string, file = 'manifest.yaml'): Manifest {
  const r = checkManifestText(text, file);
  if (!r.manifest) throw new Error(`bad test manifest: ${JSON.stringify(r.problems)}`);
  return r.manifest;
}

export function buildHarness(opts: {
  dataDir: string;
  api?: Record<string, unknown>;
  manifest?: Manifest | null;
  manifestPath?: string | null;
  now?: () => number;
  tokens?: ApiToken[];
  logger?: Logger;
}): Harness {
  const db = openDb(':memory:');
  const store = storeFromDb(db, 'test-node', 'sqlite::memory:');
  const catalog = new Catalog(store);
  // One ordered queue for the catalog's and the detector's writes, as in serve.
  const detector = new Detector({ store, queue: catalog.queue, manifest: opts.manifest ?? null, silentAfterMs: 0, ...(opts.now ? { clock: opts.now } : {}) });
  const live: LivePair[] = [];
  const counters: Record<string, number> = {};
  const h: Harness = {
    app: undefined as unknown as FastifyInstance,
    db,
    catalog,
    detector,
    dataDir: opts.dataDir,
    deps: undefined as unknown as ApiDeps,
    live,
    counters,
    kernel: { sockets: 1, drops: 0, rxQueueBytes: 0 },
    onFlush: null,
    flushes: 0,
    manifestPath: opts.manifestPath ?? null,
    async close() {
      await h.app.close();
      db.close();
    },
  };
  const deps: ApiDeps = {
    store,
    dataDir: opts.dataDir,
    findings: settledStore(detector),
    detector,
    counters: () => ({ ...counters, ...detector.counters }),
    kernelStats: () => h.kernel,
    sessionsLive: () => live,
    flushLive: async () => {
      h.flushes++;
      if (h.onFlush) await h.onFlush();
      await catalog.flush();
    },
    reloadManifest: () => (h.manifestPath === null ? null : detector.reloadManifest(h.manifestPath)),
    ...(opts.now ? { now: opts.now } : {}),
    ...(opts.logger ? { logger: opts.logger } : {}),
  };
  h.deps = deps;
  const cfg: ApiConfig = parseApiConfig(opts.api ?? {});
  h.app = buildApi(deps, cfg, opts.tokens ?? tokensFor());
  // Catalog writes are queued (src/store/write-queue.ts); serve's timer lands them within a second. Here,
  // every request first waits for what the test wrote through the catalog.
  h.app.addHook('onRequest', async () => {
    await catalog.flush();
  });
  return h;
}

/**
 * Write frames into a capture file with the real writer, where the collector would put it, and record
 * it in the catalog the way the collector does (open row first, closed with the writer's numbers).
 */
export async function writeCapture(
  h: Pick<Harness, 'catalog' | 'dataDir'>,
  o: { vni: number; sourceIp: string; sessionId?: string | null; frames: Frame[]; seq?: number; state?: 'closed' | 'open' },
): Promise<{ id: number; path: string; abs: string; writer: PcapFileWriter | null }> {
  const first = o.frames[0]!;
  const rel = captureRelPath(o.vni, o.sourceIp, first.sec, first.nsec, 0, o.seq ?? 1);
  const abs = join(h.dataDir, rel);
  mkdirSync(dirname(abs), { recursive: true });
  const createdUs = toMicros(first.sec, first.nsec);
  const id = h.catalog.open({ path: rel, vni: o.vni, sourceIp: o.sourceIp, sessionId: o.sessionId ?? null, worker: 0, createdUs, firstUs: createdUs });
  const w = new PcapFileWriter(abs, {});
  for (const f of o.frames) {
    const code = w.append(f.data, 0, f.data.length, f.data.length, f.sec, f.nsec);
    if (code !== 0) throw new Error(`append failed with drop code ${code}`);
  }
  if (o.state === 'open') {
    await w.drain();
    const last = o.frames[o.frames.length - 1]!;
    h.catalog.sync(id, w.committedPackets, w.committedBytes, toMicros(last.sec, last.nsec));
    return { id, path: rel, abs, writer: w };
  }
  const info = await w.close();
  h.catalog.close(id, {
    closedUs: toMicros(info.lastSec, info.lastNsec) + 1,
    firstUs: toMicros(info.firstSec, info.firstNsec),
    lastUs: toMicros(info.lastSec, info.lastNsec),
    packets: info.packets,
    bytes: info.bytes,
    sha256: info.sha256!,
    reason: 'size',
  });
  return { id, path: rel, abs, writer: null };
}

/**
 * Inner Ethernet frames by name (test/helpers/packets.ts; test/helpers/packets.test.ts checks the same
 * frames against scapy where it is installed): tcp443 / tcp443r (a TCP handshake 10.0.0.1 <-> 10.0.0.2:443),
 * dns (UDP 10.0.0.3 -> 8.8.8.8:53), icmp6 (fd00::1 -> fd00::2 echo), ssh_vlan (VLAN 7, 10.1.0.1 -> 10.0.0.2:22).
 */
export function craftFrames(): Record<string, Buffer> {
  return API_FRAMES();
}

export function writeFile(path: string, text: string): string {
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, text);
  return path;
}
