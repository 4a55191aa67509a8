/**
 * SessionWriter on its own, without the collector: a pair's files from open to close, and the catalog rows
 * that follow them. What the collector adds (decoding, the session table) is test/collector/collector.test.ts.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { Catalog, type CaptureRow } from '../../src/collector/catalog.js';
import { SessionWriters, type SessionIdentity } from '../../src/collector/session-writer.js';
import { DROP } from '../../src/outcomes.js';
import { PlannedCopy, type CopyEngine } from '../../src/pcap/copy.js';
import { openDb } from '../../src/store/db.js';
import { silentLogger } from '../../src/util/log.js';
import { expectReadable } from '../helpers/read-back.js';
import { useTmpDir } from '../helpers/tmp.js';

const MiB = 1024 * 1024;
const T = 1_800_000_000;

function setup(dir: string, over: { rotateBytes?: number; rotateSeconds?: number } = {}) {
  const db = openDb(join(dir, 'mirrorguard.db'));
  const catalog = new Catalog(db);
  let now = T;
  const writers = new SessionWriters({
    dataDir: dir,
    catalog,
    logger: silentLogger(),
    workerId: 3,
    rotateBytes: over.rotateBytes ?? 64 * MiB,
    rotateSeconds: over.rotateSeconds ?? 3600,
    bufferBytes: MiB,
    queueBytes: 8 * MiB,
    nowSec: () => now,
  });
  const rows = async () => {
    await catalog.flush();
    return db.prepare('SELECT * FROM captures ORDER BY id').all() as CaptureRow[];
  };
  return { db, writers, rows, setNow: (s: number) => (now = s) };
}

const pair: SessionIdentity = { sourceIp: '172.31.0.238', vni: 5569041, sessionId: 'tms-0123456789abcdef0', gwlbEndpointId: null, gwlbAttachmentId: null };
const frame = (n: number) => Buffer.alloc(n, 0x42);

describe('SessionWriter', () => {
  const tmp = useTmpDir('mg-session-writer-');

  it('opens a catalog row with its first append, rotates by size, and closes every file with its hash and numbers', async () => {
    // Header 24 + 3 records of 16 + 100 = 372 bytes fit; the fourth starts a new file.
    const { db, writers, rows } = setup(tmp.path, { rotateBytes: 400 });
    const w = writers.writer(pair);
    expect((await rows())).toHaveLength(0);
    for (let i = 0; i < 5; i++) expect(w.append(frame(100), 0, 100, 100, T, i)).toBe(DROP.OK);
    // Two rows at once (the first is finalized when its close completes), each with the pair's worker and session.
    expect((await rows()).map((r) => [r.worker, r.session_id])).toEqual([
      [3, 'tms-0123456789abcdef0'],
      [3, 'tms-0123456789abcdef0'],
    ]);
    await writers.close();
    const all = (await rows());
    expect(all.map((r) => [r.state, r.close_reason, r.packets, r.bytes])).toEqual([
      ['closed', 'size', 3, 24 + 3 * 116],
      ['closed', 'shutdown', 2, 24 + 2 * 116],
    ]);
    for (const r of all) {
      const bytes = readFileSync(join(tmp.path, r.path));
      expect(r.sha256).toBe(createHash('sha256').update(bytes).digest('hex'));
      expectReadable(join(tmp.path, r.path), r.packets!);
    }
    // The disk queue counted what reached the disk, once.
    expect(writers.counts[DROP.OK]).toBe(5);
    db.close();
  });

  it('on the timer: flushes, syncs the open row to what is on disk, and rotates by age', async () => {
    const { db, writers, rows } = setup(tmp.path, { rotateSeconds: 60 });
    const w = writers.writer(pair);
    w.append(frame(60), 0, 60, 60, T, 0);
    w.tick(T + 1);
    await writers.drain();
    w.tick(T + 2);
    expect((await rows())[0]).toMatchObject({ state: 'open', packets: 1, bytes: 24 + 76 });
    w.tick(T + 60);
    await writers.close();
    expect((await rows())[0]).toMatchObject({ state: 'closed', close_reason: 'age', packets: 1 });
    db.close();
  });

  it('flushLive puts every buffer on disk and brings the open rows up to date; a new verdict reaches the row', async () => {
    const { db, writers, rows } = setup(tmp.path);
    const w = writers.writer(pair);
    for (let i = 0; i < 3; i++) w.append(frame(80), 0, 80, 80, T, i);
    expect(writers.counts[DROP.OK]).toBe(0);
    await writers.flushLive();
    expect((await rows())[0]).toMatchObject({ state: 'open', packets: 3, bytes: 24 + 3 * 96 });
    expect(writers.counts[DROP.OK]).toBe(3);
    w.sessionIdChanged(null);
    expect((await rows())[0]!.session_id).toBeNull();
    await writers.close();
    db.close();
  });

  it('returns what the PCAP writer refuses, for the collector to count, and counts nothing itself', async () => {
    const { db, writers } = setup(tmp.path);
    const w = writers.writer(pair);
    expect(w.append(frame(10), 5, 5, 60, T, 0)).toBe(DROP.INNER_TOO_SHORT);
    await writers.close();
    expect(Array.from(writers.counts).every((n) => n === 0)).toBe(true);
    db.close();
  });

  it('counts and logs planned frame copies the addon refuses (pcap.copy.refused), never silently', async () => {
    // An engine that refuses every entry: what a bug in the addon's bounds would look like.
    const ids: Uint8Array[] = [];
    const refusing: CopyEngine = { register: (b) => ids.push(b) - 1, unregister: () => true, run: (n) => n };
    const lines: { level: number; msg: string; refused?: number }[] = [];
    const db = openDb(join(tmp.path, 'mirrorguard.db'));
    const writers = new SessionWriters({
      dataDir: tmp.path,
      catalog: new Catalog(db),
      logger: pino({ level: 'info' }, { write: (l: string) => void lines.push(JSON.parse(l)) }),
      rotateBytes: 64 * MiB,
      rotateSeconds: 3600,
      bufferBytes: MiB,
      queueBytes: 8 * MiB,
      plannedCopy: new PlannedCopy(() => refusing),
    });
    const batch = Buffer.alloc(4096, 0x42);
    writers.batchBuffer(batch);
    const w = writers.writer(pair);
    for (let i = 0; i < 3; i++) expect(w.append(batch, i * 1000, i * 1000 + 500, 500, T, i)).toBe(DROP.OK);
    expect(writers.counters['pcap.copy.refused']).toBe(0);
    writers.endBatch();
    expect(writers.counters['pcap.copy.refused']).toBe(3);
    expect(lines.filter((l) => l.level === 50 && l.msg.includes('pcap.copy.refused'))).toMatchObject([{ refused: 3 }]);
    await writers.close();
  });
});

