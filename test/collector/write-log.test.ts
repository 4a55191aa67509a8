/**
 * Every write outcome reaches the log through one rate-limited reporter (the collector's disk queue
 * hook): a full disk with many open session files, or a full write queue, gives a bounded number of
 * log lines, not one per file per flush.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { Catalog } from '../../src/collector/catalog.js';
import { Collector, type CollectorOptions } from '../../src/collector/collector.js';
import { DROP } from '../../src/outcomes.js';
import { openDb, type Db } from '../../src/store/db.js';
import { describeNeeds } from '../helpers/needs.js';
import { makeTmpDir, useTmpDir } from '../helpers/tmp.js';

const SESSIONS = 120;

interface Line {
  level: number;
  msg: string;
  op?: string;
  code?: string;
  suppressed?: number;
}

/** An inner Ethernet/IPv4/UDP frame of `bytes` bytes behind a VXLAN header with `vni`. */
function vxlanFrame(vni: number, bytes: number): Buffer {
  const b = Buffer.alloc(8 + bytes);
  b[0] = 0x08; // RFC 7348 section 5: I flag
  b.writeUIntBE(vni, 4, 3);
  const f = 8;
  b.writeUInt16BE(0x0800, f + 12);
  b[f + 14] = 0x45;
  b.writeUInt16BE(bytes - 14, f + 16);
  b[f + 22] = 64;
  b[f + 23] = 17;
  b.writeUInt32BE(0x0a000001, f + 26);
  b.writeUInt32BE(0x0a000002, f + 30);
  b.writeUInt16BE(bytes - 34, f + 38);
  return b;
}

function collectorOn(dataDir: string, dbFile: string, over: Partial<CollectorOptions> = {}): { collector: Collector; lines: Line[]; db: Db } {
  const lines: Line[] = [];
  const logger = pino({ level: 'info' }, { write: (s: string) => lines.push(JSON.parse(s) as Line) });
  const db = openDb(dbFile);
  const collector = new Collector({
    dataDir,
    catalog: new Catalog(db),
    logger,
    strictVxlan: false,
    vxlanPort: 4789,
    maxSessions: SESSIONS * 2,
    rotateBytes: 64 << 20,
    rotateSeconds: 3600,
    idleCloseSeconds: 3600,
    flushIntervalMs: 1000,
    bufferBytes: 262_160,
    queueBytes: 64 << 20,
    ...over,
  });
  return { collector, lines, db };
}

/** One packet for each of SESSIONS (source, VNI) pairs, then a flush tick, `rounds` times. */
async function traffic(c: Collector, rounds: number, bytes: number): Promise<void> {
  const frames = Array.from({ length: SESSIONS }, (_, i) => vxlanFrame(1000 + i, bytes));
  for (let r = 0; r < rounds; r++) {
    for (const f of frames) c.ingest4(f, 0, f.length, 0xac1f00ee, 1_800_000_000 + r, 0);
    c.tick();
    await c.drain();
  }
}

describeNeeds(['root'], 'write errors with many open files on a full disk (tmpfs)', () => {
  let mnt: { dir: string; remove: () => void } | null = null;
  afterEach(() => {
    if (mnt) {
      spawnSync('umount', ['-l', mnt.dir]);
      mnt.remove();
      mnt = null;
    }
  });

  it(`logs a bounded number of lines for ${SESSIONS} sessions over many flushes`, async () => {
    mnt = makeTmpDir('mg-full-log-');
    expect(spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=256k', 'tmpfs', mnt.dir]).status).toBe(0);
    const dataDir = join(mnt.dir, 'data');
    mkdirSync(dataDir);
    const dbDir = makeTmpDir('mg-full-log-db-'); // the catalog elsewhere: this test is about the PCAP writes
    const { collector, lines, db } = collectorOn(dataDir, join(dbDir.dir, 'mirrorguard.db'));
    try {
      await traffic(collector, 8, 1400);
      await collector.close();
      const lost = collector.drops[DROP.WRITE_ENOSPC]! + collector.drops[DROP.WRITE_ERROR]!;
      expect(lost).toBeGreaterThan(SESSIONS); // most of the 960 frames did not fit in 256 KiB
      const failures = lines.filter((l) => l.msg.startsWith('PCAP write failed'));
      expect(failures.length).toBeGreaterThan(0);
      // One line per (operation, errno) a minute: create, write, truncate, sync, close at most.
      expect(failures.length).toBeLessThanOrEqual(5);
      expect(new Set(failures.map((l) => `${l.op}:${l.code}`)).size).toBe(failures.length);
    } finally {
      db.close();
      dbDir.remove();
    }
  }, 30_000);
});

describe('write queue full', () => {
  const tmp = useTmpDir();

  it('is logged under serve (the collector), once a minute however many sessions drop', async () => {
    // Four buffers for 120 sessions, every one full size (no small first buffers): most sessions find
    // no buffer and drop (pcap.write.queue_full).
    const { collector, lines, db } = collectorOn(tmp.path, join(tmp.path, 'mirrorguard.db'), { queueBytes: 4 * 262_160, minBufferBytes: 262_160 });
    await traffic(collector, 3, 200);
    await collector.close();
    db.close();
    expect(collector.drops[DROP.WRITE_QUEUE_FULL]).toBeGreaterThan(SESSIONS);
    const full = lines.filter((l) => l.msg.startsWith('disk queue full'));
    expect(full).toHaveLength(1);
    expect(full[0]).toMatchObject({ op: 'queue', code: 'QUEUE_FULL' });
  });
});
