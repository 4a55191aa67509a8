// Drop-behind (pcap.dropBehindBytes): a growing capture file's written windows leave the page cache, and
// a closed file's pages leave after its fsync. The oracle is util-linux's fincore (mincore(2) on a
// mapping of the file): which of the file's bytes are resident. The bytes on disk stay exactly what was
// written, and tshark-free: this is about the page cache, the content check is a byte compare and SHA-256.
import { createHash } from 'node:crypto';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { DROP, DROP_COUNT } from '../../src/outcomes.js';
import { DiskQueue, type DiskFile } from '../../src/pcap/disk-queue.js';
import { nativeBatchOpen, nativeBatchWrite, nativeDropCache } from '../../src/ingest/native-addon.js';
import { diskDir, resident } from '../helpers/page-cache.js';
import { describeNeeds } from '../helpers/needs.js';

describeNeeds(['native', 'fincore'], 'drop-behind: written capture data leaves the page cache', () => {
  let dir = '';
  beforeAll(() => {
    dir = diskDir('mg-drop-');
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  const MiB = 1024 * 1024;
  const PIECE = 2000;

  /** 4 MiB appended in 2,000-byte buffers, 100 a round as the flush timer would hand them over. */
  async function fill(file: DiskFile, pieces: Buffer[]): Promise<void> {
    for (let round = 0; pieces.length * PIECE < 4 * MiB; round++) {
      for (let k = 0; k < 100; k++) {
        const buf = Buffer.alloc(PIECE, (round * 100 + k) % 251);
        pieces.push(buf);
        file.enqueue({ buf, len: PIECE, packets: 1, minSec: 1, minNsec: 0, maxSec: 1, maxNsec: 0, release: () => undefined });
      }
      await file.idle();
    }
  }

  it('keeps a few windows of a growing file cached, none once it is closed, and the bytes exact', async () => {
    const opts = { batchWrite: nativeBatchWrite(), batchOpen: nativeBatchOpen(), dropCache: nativeDropCache(), maxConcurrentWrites: 32 };
    const countsOn = new Float64Array(DROP_COUNT);
    const countsOff = new Float64Array(DROP_COUNT);
    const on = new DiskQueue({ ...opts, counts: countsOn, dropBehindBytes: 32 * 1024 });
    const off = new DiskQueue({ ...opts, counts: countsOff, dropBehindBytes: 0 });
    const pre = Buffer.from('PCAPHEADER');
    const a = on.file(join(dir, 'drop.pcap'), pre);
    const b = off.file(join(dir, 'keep.pcap'), pre);
    const piecesA: Buffer[] = [];
    const piecesB: Buffer[] = [];
    await fill(a, piecesA);
    await fill(b, piecesB);
    const size = pre.length + piecesA.length * PIECE;
    // Growing: with drop-behind, what is cached is the last windows (a window still being written back
    // when its turn came gets dropped at the next); without it, the whole file.
    const growingOn = resident(join(dir, 'drop.pcap'));
    const growingOff = resident(join(dir, 'keep.pcap'));
    expect(growingOff).toBeGreaterThanOrEqual(size - 4096);
    expect(growingOn).toBeLessThan(size / 4);
    const [ra, rb] = [await a.close(), await b.close()];
    expect(resident(join(dir, 'drop.pcap'))).toBe(0);
    expect(resident(join(dir, 'keep.pcap'))).toBeGreaterThanOrEqual(size - 4096);
    // Dropping pages changes nothing on disk: both files are what was written, hashed the same.
    const wantA = Buffer.concat([pre, ...piecesA]);
    expect(readFileSync(join(dir, 'drop.pcap')).equals(wantA)).toBe(true);
    expect(ra.sha256).toBe(createHash('sha256').update(wantA).digest('hex'));
    expect(rb.sha256).toBe(ra.sha256);
    expect([countsOn[DROP.OK], countsOff[DROP.OK]]).toEqual([piecesA.length, piecesB.length]);
  });

  it('is off without the batched writer, and refuses a negative window', () => {
    expect(new DiskQueue({ dropBehindBytes: 32 * 1024, dropCache: nativeDropCache() }).dropBehindBytes).toBe(0);
    expect(() => new DiskQueue({ batchWrite: nativeBatchWrite(), dropBehindBytes: -1 })).toThrow(/dropBehindBytes/);
  });
});
