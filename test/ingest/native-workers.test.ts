/**
 * --workers N: receivers in worker threads sharing one port with SO_REUSEPORT, each writing its own
 * files, the detector hook answered once in the main thread, counters merged. Needs the addon and the
 * compiled worker script (dist/, which `npm test` builds first): the `native` need; a missing dist/ is
 * an error saying to build, not a skip.
 */
import { createSocket, type Socket } from 'node:dgram';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeAll, expect, it } from 'vitest';
import { openDb } from '../../src/store/db.js';
import { defaultWorkerUrl, startNativeWorkers, type NativeWorkerPool } from '../../src/receive-workers.js';
import { silentLogger } from '../../src/util/log.js';
import { DROP } from '../../src/outcomes.js';
import { tmpDir } from '../helpers/tmp.js';
import { checkIfHave, describeNeeds } from '../helpers/needs.js';
import { tsharkReadsCleanly } from '../helpers/oracles.js';
import { readBack } from '../helpers/read-back.js';
import { collectorTestSettings } from '../helpers/collector.js';

const MiB = 1024 * 1024;
const workerScript = fileURLToPath(defaultWorkerUrl());

/** VXLAN (I flag, VNI) + Ethernet + IPv4 + UDP, `payload` bytes of UDP payload. */
function vxlanDatagram(vni: number, seq: number, payload = 32): Buffer {
  const inner = 14 + 20 + 8 + payload;
  const b = Buffer.alloc(8 + inner);
  b[0] = 0x08;
  b.writeUIntBE(vni, 4, 3);
  const f = 8;
  b.set([2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2], f);
  b.writeUInt16BE(0x0800, f + 12);
  const ip = f + 14;
  b[ip] = 0x45;
  b.writeUInt16BE(inner - 14, ip + 2);
  b[ip + 8] = 64;
  b[ip + 9] = 17;
  b.set([10, 0, 0, 1, 10, 0, 0, 2], ip + 12);
  let sum = 0;
  for (let i = 0; i < 20; i += 2) sum += b.readUInt16BE(ip + i);
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  b.writeUInt16BE(~sum & 0xffff, ip + 10);
  b.writeUInt16BE(40000, ip + 20);
  b.writeUInt16BE(5001, ip + 22);
  b.writeUInt16BE(8 + payload, ip + 24);
  b.writeUInt32BE(seq, ip + 28);
  return b;
}

const pools: NativeWorkerPool[] = [];
const clients: Socket[] = [];
afterEach(async () => {
  for (const c of clients.splice(0)) c.close();
  await Promise.all(pools.splice(0).map((p) => p.close()));
});

/** Two receive workers on an ephemeral port over a fresh SQLite catalog (created and migrated here, as serve does). */
async function twoWorkers(collector: Partial<ReturnType<typeof collectorTestSettings>>, onNewPair: NonNullable<Parameters<typeof startNativeWorkers>[0]['onNewPair']>) {
  const dir = tmpDir();
  const dbFile = join(dir, 'mirrorguard.db');
  openDb(dbFile).close();
  const pool = await startNativeWorkers({
    workers: 2,
    host: '127.0.0.1',
    port: 0,
    recvBufferBytes: 4 * MiB,
    store: { url: `sqlite:${dbFile}` },
    logger: silentLogger(),
    logLevel: 'silent',
    counterIntervalMs: 20,
    collector: { ...collectorTestSettings(dir), ...collector },
    onNewPair,
  });
  pools.push(pool);
  return { dir, dbFile, pool };
}

async function waitFor(pred: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!pred()) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

function pcapFiles(dir: string): string[] {
  return readdirSync(dir, { recursive: true, encoding: 'utf8' })
    .filter((f) => f.endsWith('.pcap'))
    .map((f) => join(dir, f));
}

describeNeeds(['native'], 'native receive workers', () => {
  beforeAll(() => {
    if (!existsSync(workerScript)) throw new Error(`${workerScript} is not built: run npm run build (npm test does)`);
  });

  it('two workers share the port, each writes its own files, the detector runs once per pair, counters merge', async () => {
    const calls: string[] = [];
    const { dir, dbFile, pool } = await twoWorkers({}, (sourceIp, vni) => {
      calls.push(`${sourceIp}|${vni}`);
      return { sessionId: vni === 77 ? 'tms-0123456789abcdef0' : null, status: vni === 77 ? 'authorized' : 'unauthorized-vni' };
    });
    expect(pool.workers).toBe(2);
    expect(pool.alive).toBe(2);
    expect(pool.address.port).toBeGreaterThan(0);

    // 48 client sockets: 48 source ports, so the kernel's 4-tuple hash reaches both workers.
    const N = 48;
    for (let i = 0; i < N; i++) {
      const c = createSocket('udp4');
      clients.push(c);
      await new Promise<void>((r, j) => c.send(vxlanDatagram(i % 2 ? 77 : 78, i), pool.address.port, '127.0.0.1', (e) => (e ? j(e) : r())));
    }
    await waitFor(() => pool.counters().drops[DROP.OK] === N, `${N} frames written`);
    const per = pool.perWorker();
    expect(per.every((w) => w.receiver.packets > 0)).toBe(true);
    expect(per.reduce((a, w) => a + w.receiver.packets, 0)).toBe(N);
    // Both pairs were seen by both workers (very likely), but the detector ran once per pair.
    expect(calls.sort()).toEqual(['127.0.0.1|77', '127.0.0.1|78']);

    await pool.flushLive();
    await pool.close();
    expect(pool.alive).toBe(0);

    const files = pcapFiles(dir);
    expect(files.some((f) => /-w1-\d+\.pcap$/.test(f))).toBe(true);
    expect(files.some((f) => /-w2-\d+\.pcap$/.test(f))).toBe(true);
    let packets = 0;
    for (const f of files) {
      const own = readBack(f);
      expect(own.truncated, f).toBe(false);
      packets += own.frames.length;
      checkIfHave('tshark', () => expect(tsharkReadsCleanly(f)).toMatchObject({ ok: true, packets: own.frames.length }));
    }
    expect(packets).toBe(N);

    const db = openDb(dbFile);
    const rows = db.prepare('SELECT worker, vni, session_id, state, packets FROM captures ORDER BY worker, vni').all() as {
      worker: number;
      vni: number;
      session_id: string | null;
      state: string;
      packets: number;
    }[];
    db.close();
    expect(new Set(rows.map((r) => r.worker))).toEqual(new Set([1, 2]));
    expect(rows.every((r) => r.state === 'closed')).toBe(true);
    expect(rows.reduce((a, r) => a + r.packets, 0)).toBe(N);
    // The verdict reached the workers and their catalog rows.
    for (const r of rows) expect(r.session_id).toBe(r.vni === 77 ? 'tms-0123456789abcdef0' : null);
  });

  it('each worker publishes its session writers\' counters, and the pool sums them (pcap.files.closed_early at a small open-file limit)', async () => {
    const { pool } = await twoWorkers({ maxOpenFiles: 2 }, () => ({ sessionId: null, status: 'authorized' }));
    const PAIRS = 24;
    const c = createSocket('udp4');
    for (let i = 0; i < PAIRS; i++) {
      await new Promise<void>((r, j) => c.send(vxlanDatagram(1000 + i, i), pool.address.port, '127.0.0.1', (e) => (e ? j(e) : r())));
    }
    c.close();
    await waitFor(() => pool.counters().drops[DROP.OK] === PAIRS, `${PAIRS} frames written`);
    // Two files open at most per worker: most new pairs closed an idle file first.
    await waitFor(() => pool.counters().writers['pcap.files.closed_early'] >= PAIRS - 2 * 2 - 2, 'early closes published');
    const per = pool.perWorker();
    expect(pool.counters().writers['pcap.files.closed_early']).toBe(per.reduce((a, w) => a + w.writers['pcap.files.closed_early'], 0));
    expect(pool.counters().writers['pcap.copy.refused']).toBe(0);
    // The buffer gauges are sampled every tick in each worker and summed: memory held, and the part in use.
    await waitFor(() => pool.counters().writers['pcap.buffers.pool_bytes'] > 0, 'buffer gauges published');
    const w = pool.counters().writers;
    expect(w['pcap.buffers.pool_bytes']).toBe(pool.perWorker().reduce((a, x) => a + x.writers['pcap.buffers.pool_bytes'], 0));
    expect(w['pcap.buffers.in_use_bytes']).toBeLessThanOrEqual(w['pcap.buffers.pool_bytes']);
    await pool.close();
  });

  it('a port held without SO_REUSEPORT is MG_ERR_INGEST_BIND, and nothing is left running', async () => {
    const dir = tmpDir();
    const dbFile = join(dir, 'mirrorguard.db');
    openDb(dbFile).close();
    const holder = createSocket('udp4');
    clients.push(holder);
    await new Promise<void>((r) => holder.bind(0, '127.0.0.1', r));
    await expect(
      startNativeWorkers({
        workers: 2,
        host: '127.0.0.1',
        port: holder.address().port,
        recvBufferBytes: MiB,
        store: { url: `sqlite:${dbFile}` },
        logger: silentLogger(),
        logLevel: 'silent',
        collector: collectorTestSettings(dir),
      }),
    ).rejects.toMatchObject({ code: 'MG_ERR_INGEST_BIND', message: expect.stringMatching(/worker 1: .*EADDRINUSE/) });
  });
});
