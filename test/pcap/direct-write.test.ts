// Direct writes (pcap.directWriteBytes): a batched write's whole pages go to disk with O_DIRECT, past the
// page cache, and only its partial first and last pages through it. The oracles: util-linux's fincore
// (mincore(2) on a mapping of the file) for what is resident, node:crypto for the SHA-256, and a byte
// compare for the content. Any mix of buffer sizes, page offsets and groups must give the same bytes.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { closeSync, mkdirSync, openSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { DROP, DROP_COUNT } from '../../src/outcomes.js';
import { DiskQueue, type BatchWrite, type DiskFile } from '../../src/pcap/disk-queue.js';
import { nativeBatchHash, nativeBatchOpen, nativeBatchWrite } from '../../src/ingest/native-addon.js';
import { diskDir, resident } from '../helpers/page-cache.js';
import { describeNeeds, itNeeds } from '../helpers/needs.js';

/** Piece i of a file: bytes that differ from piece to piece and within one (a misplaced page shows). */
function piece(i: number, len: number): Buffer {
  const b = Buffer.allocUnsafe(len);
  for (let k = 0; k < len; k++) b[k] = (i * 131 + k * 7 + (k >> 12)) & 0xff;
  return b;
}

describeNeeds(['native', 'fincore'], 'direct writes: busy files skip the page cache, byte for byte', () => {
  let dir = '';
  beforeAll(() => {
    dir = diskDir('mg-direct-');
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  const MiB = 1024 * 1024;
  const opts = () => ({ batchWrite: nativeBatchWrite(), batchOpen: nativeBatchOpen(), batchHash: nativeBatchHash(), maxConcurrentWrites: 32, maxQueuedBytes: 64 * MiB });

  /** Hand `sizes` over as one file's buffers, `perRound` at a time as the flush would, and wait for each round. */
  async function write(file: DiskFile, sizes: number[], perRound: number, pieces: Buffer[]): Promise<void> {
    for (let i = 0; i < sizes.length; i += perRound) {
      for (let k = i; k < Math.min(sizes.length, i + perRound); k++) {
        const buf = piece(pieces.length, sizes[k]!);
        pieces.push(buf);
        file.enqueue({ buf, len: buf.length, packets: 1, minSec: 1, minNsec: 0, maxSec: 1, maxNsec: 0, release: () => undefined });
      }
      await file.idle();
    }
  }

  it('writes a busy file past the page cache, and a quiet one (small writes) through it, the same bytes and hash', async () => {
    const counts = new Float64Array(DROP_COUNT);
    // Drop-behind off in both: what is resident is what the writes put in the cache.
    const direct = new DiskQueue({ ...opts(), counts, dropBehindBytes: 0, directWriteBytes: 256 * 1024 });
    const cached = new DiskQueue({ ...opts(), counts: new Float64Array(DROP_COUNT), dropBehindBytes: 0, directWriteBytes: 0 });
    const pre = Buffer.from('PCAPHEADER-24-BYTES-LONG');
    const busy = direct.file(join(dir, 'busy.pcap'), pre);
    const quiet = direct.file(join(dir, 'quiet.pcap'), pre);
    const plain = cached.file(join(dir, 'plain.pcap'), pre);
    // 8 MiB in buffers of 512 KiB less a record's odd size, so no buffer starts on a page boundary.
    const sizes = Array.from({ length: 17 }, (_, i) => 512 * 1024 - 1466 * (i % 3) - 24);
    const [pb, pq, pp]: Buffer[][] = [[], [], []];
    await write(busy, sizes, 2, pb);
    await write(quiet, Array.from({ length: 200 }, () => 4000), 10, pq);
    await write(plain, sizes, 2, pp);
    const size = pre.length + sizes.reduce((a, b) => a + b, 0);
    // Before anything reads them: the busy file holds at most a partial page at each end of each write
    // in the cache; written through the cache, the same file is all resident.
    expect(resident(join(dir, 'busy.pcap'))).toBeLessThanOrEqual(2 * 4096 * sizes.length);
    expect(resident(join(dir, 'plain.pcap'))).toBeGreaterThanOrEqual(size - 4096);
    expect(resident(join(dir, 'quiet.pcap'))).toBeGreaterThanOrEqual(pre.length + 200 * 4000 - 4096);
    const [rb, rq, rp] = [await busy.close(), await quiet.close(), await plain.close()];
    const want = Buffer.concat([pre, ...pb]);
    expect(readFileSync(join(dir, 'busy.pcap')).equals(want)).toBe(true);
    expect(readFileSync(join(dir, 'plain.pcap')).equals(Buffer.concat([pre, ...pp]))).toBe(true);
    expect(readFileSync(join(dir, 'quiet.pcap')).equals(Buffer.concat([pre, ...pq]))).toBe(true);
    expect(rb.sha256).toBe(createHash('sha256').update(want).digest('hex'));
    expect(rp.sha256).toBe(rb.sha256);
    expect(rq.sha256).toBe(createHash('sha256').update(Buffer.concat([pre, ...pq])).digest('hex'));
    expect(counts[DROP.OK]).toBe(sizes.length + 200);
    // pcap.direct.bytes: nearly all of the busy file (whole pages of each write), none of the quiet one.
    expect(direct.directBytes).toBeGreaterThan(size - 2 * 4096 * sizes.length);
    expect(direct.directBytes).toBeLessThanOrEqual(size);
    expect(direct.directBytes % 4096).toBe(0);
    expect([direct.directRefused, cached.directBytes]).toEqual([0, 0]);
  });

  it('any buffer sizes, rounds and threshold: the file is the buffers in order, and its hash theirs', async () => {
    let run = 0;
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.integer({ min: 1, max: 200_000 }), { minLength: 1, maxLength: 24 }),
        fc.integer({ min: 1, max: 6 }),
        fc.constantFrom(4096, 8192, 65536),
        fc.integer({ min: 0, max: 5000 }),
        async (sizes, perRound, threshold, preLen) => {
          const path = join(dir, `prop-${run++}.pcap`);
          const q = new DiskQueue({ ...opts(), counts: new Float64Array(DROP_COUNT), dropBehindBytes: 32 * 1024, directWriteBytes: threshold });
          const pre = piece(999, preLen + 1);
          const f = q.file(path, pre);
          const pieces: Buffer[] = [];
          await write(f, sizes, perRound, pieces);
          const info = await f.close();
          const want = Buffer.concat([pre, ...pieces]);
          const got = readFileSync(path);
          rmSync(path);
          expect(got.length).toBe(want.length);
          expect(got.equals(want)).toBe(true);
          expect(info.sha256).toBe(createHash('sha256').update(want).digest('hex'));
        },
      ),
      { numRuns: 40 },
    );
  });

  it('lets the page cache take a burst when the disk is behind (more than half the queue waiting), and goes direct again after', async () => {
    const native = nativeBatchWrite()!;
    const seen: number[] = [];
    let slow = true;
    // A disk that is behind: each batched write starts 20 ms late while `slow`.
    const batchWrite: BatchWrite = (fds, positions, lengths, buffers, count, results, done, dropWindow, hashes, directBytes, stats) => {
      seen.push(directBytes ?? 0);
      const go = () => native(fds, positions, lengths, buffers, count, results, done, dropWindow, hashes, directBytes, stats);
      if (slow) setTimeout(go, 20);
      else go();
    };
    const q = new DiskQueue({ ...opts(), batchWrite, counts: new Float64Array(DROP_COUNT), maxQueuedBytes: 4 * MiB, directWriteBytes: 4096 });
    const files = Array.from({ length: 4 }, (_, i) => q.file(join(dir, `behind-${i}.pcap`), Buffer.from('HDR')));
    const pieces: Buffer[][] = files.map(() => []);
    // Each file's first write creates it; then 3 MiB queued at once across the files: more than half of 4 MiB.
    await Promise.all(files.map((f, i) => write(f, [8192], 1, pieces[i]!)));
    seen.length = 0;
    for (let k = 0; k < 6; k++) {
      files.forEach((f, i) => {
        const buf = piece(pieces[i]!.length, 128 * 1024);
        pieces[i]!.push(buf);
        f.enqueue({ buf, len: buf.length, packets: 1, minSec: 1, minNsec: 0, maxSec: 1, maxNsec: 0, release: () => undefined });
      });
    }
    expect(q.queuedBytes).toBe(24 * 128 * 1024);
    await Promise.all(files.map((f) => f.idle()));
    expect(seen.length).toBeGreaterThan(0);
    expect(seen[0]).toBe(0);
    expect(q.directBehind).toBeGreaterThan(0);
    // The disk caught up: the next writes go direct.
    slow = false;
    seen.length = 0;
    await Promise.all(files.map((f, i) => write(f, [256 * 1024], 1, pieces[i]!)));
    expect(seen.every((d) => d === 4096)).toBe(true);
    for (const [i, f] of files.entries()) {
      const info = await f.close();
      const want = Buffer.concat([Buffer.from('HDR'), ...pieces[i]!]);
      expect(readFileSync(join(dir, `behind-${i}.pcap`)).equals(want)).toBe(true);
      expect(info.sha256).toBe(createHash('sha256').update(want).digest('hex'));
    }
  });

  it('refuses a threshold that is not whole pages, and is off without the batched writer', () => {
    expect(() => new DiskQueue({ batchWrite: nativeBatchWrite(), directWriteBytes: 5000 })).toThrow(/directWriteBytes/);
    expect(() => new DiskQueue({ batchWrite: nativeBatchWrite(), directWriteBytes: -4096 })).toThrow(/directWriteBytes/);
    expect(new DiskQueue({ directWriteBytes: 4096 }).directWriteBytes).toBe(0);
  });

  it('the addon writes the pages of one call past the cache and the partial pages through it', async () => {
    const write = nativeBatchWrite()!;
    const path = join(dir, 'raw.bin');
    const fd = openSync(path, 'wx');
    try {
      // One entry from byte 100: a partial first page, 60 whole pages, a partial last page.
      const buf = piece(7, 4096 - 100 + 60 * 4096 + 1000);
      const results = new Int32Array(1);
      const stats = new Float64Array(2);
      await new Promise<void>((done) => write(Int32Array.of(fd), Float64Array.of(100), Int32Array.of(buf.length), [buf], 1, results, done, 0, undefined, 4096, stats));
      expect(results[0]).toBe(0);
      expect([...stats]).toEqual([60 * 4096, 0]);
      // The first and last pages are cached (written through the cache); the 60 between are not.
      expect(resident(path)).toBe(2 * 4096);
      const got = readFileSync(path);
      expect(got.subarray(0, 100).equals(Buffer.alloc(100))).toBe(true);
      expect(got.subarray(100).equals(buf)).toBe(true);
    } finally {
      closeSync(fd);
    }
  });

  itNeeds(['tmpfs'], 'on a file system without O_DIRECT (ramfs), counts the refusal and writes the same bytes through the cache', async () => {
    const mnt = join(dir, 'ramfs');
    mkdirSync(mnt);
    const m = spawnSync('mount', ['-t', 'ramfs', 'ramfs', mnt], { encoding: 'utf8' });
    expect(m.status, m.stderr).toBe(0);
    try {
      const q = new DiskQueue({ ...opts(), counts: new Float64Array(DROP_COUNT), directWriteBytes: 4096 });
      const pre = Buffer.from('HEADER');
      const f = q.file(join(mnt, 'r.pcap'), pre);
      const pieces: Buffer[] = [];
      await write(f, [300_000, 200_001, 77_777, 500_000], 2, pieces);
      const info = await f.close();
      const want = Buffer.concat([pre, ...pieces]);
      expect(readFileSync(join(mnt, 'r.pcap')).equals(want)).toBe(true);
      expect(info.sha256).toBe(createHash('sha256').update(want).digest('hex'));
      expect(q.directBytes).toBe(0);
      expect(q.directRefused).toBeGreaterThan(0);
    } finally {
      spawnSync('umount', [mnt]);
    }
  });
});
