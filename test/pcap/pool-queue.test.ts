import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { DROP, DROP_COUNT } from '../../src/outcomes.js';
import { isMgError } from '../../src/errors.js';
import { BufferPool } from '../../src/pcap/buffer-pool.js';
import { DiskQueue, dropCodeForError, type BatchOpen, type BatchWrite, type DiskErrorReport } from '../../src/pcap/disk-queue.js';
import { PcapFileWriter } from '../../src/pcap/file-writer.js';
import { nativeBatchHash, nativeBatchOpen, nativeBatchWrite } from '../../src/ingest/native-addon.js';
import { describeNeeds } from '../helpers/needs.js';
import { makeTmpDir } from '../helpers/tmp.js';
import { frame } from './pcap-helpers.js';

const { dir, remove } = makeTmpDir('mg-pcap-pq-');
afterAll(remove);

describe('BufferPool', () => {
  it('allocates on demand up to its ceiling, then only reuses', () => {
    const pool = new BufferPool({ bufferBytes: 4096, maxBytes: 3 * 4096 + 100 });
    expect(pool.maxBuffers).toBe(3);
    const a = pool.acquire()!;
    const b = pool.acquire()!;
    const c = pool.acquire()!;
    expect([a.length, pool.inUse, pool.available, pool.allocatedBytes]).toEqual([4096, 3, 0, 3 * 4096]);
    expect(pool.acquire()).toBeNull();
    expect(pool.exhausted).toBe(1);
    pool.release(b);
    // The same memory comes back: nothing new is allocated in steady state.
    expect(pool.acquire()).toBe(b);
    pool.release(a);
    pool.release(b);
    pool.release(c);
    expect([pool.inUse, pool.allocatedBytes]).toEqual([0, 3 * 4096]);
    expect(() => pool.release(Buffer.alloc(10))).toThrow(RangeError);
  });

  it('hands out size classes from minBufferBytes up to bufferBytes, and at its ceiling reuses a smaller free one or lets free ones go', () => {
    const pool = new BufferPool({ bufferBytes: 32768, minBufferBytes: 4096, maxBytes: 65536 });
    expect(pool.classes).toEqual([4096, 8192, 16384, 32768]);
    expect([pool.classFor(0), pool.classFor(4097), pool.classFor(1 << 20)]).toEqual([4096, 8192, 32768]);
    const a = pool.acquire()!;
    const b = pool.acquire(20_000)!;
    expect([a.length, b.length, pool.inUseBytes]).toEqual([4096, 32768, 36864]);
    // 28 KiB left: a 32 KiB buffer does not fit, but one that holds 5,000 bytes does.
    const c = pool.acquire(32768, 5000)!;
    expect(c.length).toBe(8192);
    expect(pool.acquire(32768, 32768)).toBeNull();
    // At the ceiling, a free buffer of a smaller class that holds the record is reused.
    pool.release(c);
    expect(pool.acquire(32768, 5000)).toBe(c);
    pool.release(b);
    pool.release(a);
    pool.release(c);
    // At the ceiling, free small buffers are let go for a large one: the bytes never pass maxBytes.
    const d = pool.acquire(32768)!;
    const e = pool.acquire(32768)!;
    expect([d.length, e.length, pool.allocatedBytes, pool.inUseBytes]).toEqual([32768, 32768, 65536, 65536]);
    pool.release(d);
    pool.release(e);
    expect(pool.inUse).toBe(0);
  });

  it('at its ceiling turns free buffers of other classes into the class asked for, rather than handing out a wrong size', () => {
    const pool = new BufferPool({ bufferBytes: 65536, minBufferBytes: 1024, maxBytes: 131072 });
    const onDiscard: number[] = [];
    // After a ramp: every writer started with 1 KiB and 2 KiB buffers, which are now free and fill the pool.
    const big = pool.acquire(65536)!;
    const small = Array.from({ length: 48 }, (_, i) => pool.acquire(i < 32 ? 1024 : 2048)!);
    for (const b of small) pool.release(b);
    expect([pool.allocatedBytes, pool.inUseBytes]).toEqual([131072, 65536]);
    // Writers that want 4 KiB get 4 KiB (the small free ones go), not another 1-2 KiB buffer.
    const four = Array.from({ length: 8 }, () => pool.acquire(4096, 100)!);
    expect(four.map((b) => b.length)).toEqual(Array(8).fill(4096));
    expect([pool.allocatedBytes, pool.inUseBytes]).toEqual([131072, 65536 + 8 * 4096]);
    // A quiet writer is never handed a free large buffer: it goes, and the small class is allocated.
    pool.release(big);
    const p2 = new BufferPool({ bufferBytes: 65536, minBufferBytes: 1024, maxBytes: 65536, onDiscard: (b) => onDiscard.push(b.length) });
    const whole = p2.acquire(65536)!;
    p2.release(whole);
    const q = p2.acquire(4096)!;
    expect([q.length, onDiscard, p2.allocatedBytes]).toEqual([4096, [65536], 4096]);
    // When letting free ones go cannot make room, a free smaller one that holds the record still does.
    const p3 = new BufferPool({ bufferBytes: 8192, minBufferBytes: 1024, maxBytes: 16384 });
    const held = p3.acquire(8192)!;
    const s1 = p3.acquire(2048)!;
    p3.acquire(2048);
    p3.acquire(4096);
    p3.release(s1);
    expect(p3.acquire(8192, 1500)).toBe(s1);
    expect(p3.acquire(8192, 1500)).toBeNull();
    void held;
    for (const b of four) pool.release(b);
    expect(pool.inUse).toBe(0);
  });

  it('trim() lets go half of the free buffers no acquire needed since the last trim, and keeps those taken meanwhile', () => {
    const discarded: number[] = [];
    const pool = new BufferPool({ bufferBytes: 65536, minBufferBytes: 4096, maxBytes: 1 << 22, onDiscard: (b) => discarded.push(b.length) });
    const bufs = [...Array.from({ length: 8 }, () => pool.acquire(4096)!), ...Array.from({ length: 4 }, () => pool.acquire(65536)!)];
    for (const b of bufs) pool.release(b);
    const all = 8 * 4096 + 4 * 65536;
    expect(pool.allocatedBytes).toBe(all);
    // The first trim only starts the watch: nothing was known to be idle before it.
    expect(pool.trim()).toBe(0);
    // An interval in which 4 KiB buffers were taken down to 5 free, and no 64 KiB one.
    const taken = [pool.acquire(4096)!, pool.acquire(4096)!, pool.acquire(4096)!];
    for (const b of taken) pool.release(b);
    // Idle the whole interval: 5 of 4 KiB and 4 of 64 KiB; half of each (rounded up) goes.
    expect(pool.trim()).toBe(3 * 4096 + 2 * 65536);
    expect(discarded.sort((a, b) => a - b)).toEqual([4096, 4096, 4096, 65536, 65536]);
    expect(pool.allocatedBytes).toBe(all - 3 * 4096 - 2 * 65536);
    // Left alone, the free lists decay to nothing; what is handed out is never touched.
    const held = pool.acquire(65536)!;
    for (let i = 0; i < 8; i++) pool.trim();
    expect([pool.allocatedBytes, pool.inUseBytes, pool.trimmedBytes]).toEqual([65536, 65536, all - 65536]);
    pool.release(held);
  });

  it('keeps a quiet writer within its fair share: a 4 KiB buffer that fills under a 5 KiB share is not doubled', () => {
    const pool = new BufferPool({ bufferBytes: 65536, minBufferBytes: 1024, maxBytes: 1 << 22 });
    const w = new PcapFileWriter(join(dir, 'share.pcap'), { pool, snaplen: 1500 });
    // The timer's flush sets the share (SessionWriters.fairShare: 3/4 of 64 MiB over 10,000 writers).
    w.flush(true, 5030);
    // 1016-byte records: a busy interval fills 1 KiB, 2 KiB, then 4 KiB buffers, and stays at 4 KiB.
    for (let i = 0; i < 12; i++) w.append(frame(i, 1000), 0, 1000, 1000, 1, i);
    expect(w.bufferBytes).toBe(4096);
    // Past BUSY_FACTOR shares in one interval the writer is busy and may grow.
    for (let i = 12; i < 60; i++) w.append(frame(i, 1000), 0, 1000, 1000, 1, i);
    expect(w.bufferBytes).toBeGreaterThan(4096);
    void w.close();
  });

  it('gives a writer a small first buffer, doubles it when it fills before a flush, and sizes it to the traffic at a flush', () => {
    const pool = new BufferPool({ bufferBytes: 65536, minBufferBytes: 4096, maxBytes: 1 << 22 });
    const w = new PcapFileWriter(join(dir, 'grow.pcap'), { pool, snaplen: 1500 });
    w.append(frame(0, 1000), 0, 1000, 1000, 1, 0);
    expect(pool.inUseBytes).toBe(4096);
    // Records of 1016 bytes: 4 fill 4 KiB, the next 8 fill 8 KiB, then 16 KiB and 32 KiB: 60 records.
    for (let i = 1; i < 60; i++) w.append(frame(i, 1000), 0, 1000, 1000, 1, 0);
    const held = pool.inUseBytes;
    expect(held).toBe(4096 + 8192 + 16384 + 32768);
    // 60 records in the interval: the next interval starts with the class that held them (64 KiB).
    w.flush();
    w.append(frame(60, 1000), 0, 1000, 1000, 2, 0);
    expect(pool.inUseBytes).toBe(held + 65536);
    void w.close();
  });

  it('refuses sizes that cannot work, with a config error naming the field', () => {
    for (const [opts, field] of [
      [{ bufferBytes: 100 }, 'bufferBytes'],
      [{ bufferBytes: 8192, maxBytes: 4096 }, 'maxBytes'],
    ] as const) {
      let err: unknown;
      try {
        new BufferPool(opts);
      } catch (e) {
        err = e;
      }
      expect(isMgError(err) && err.code === 'MG_ERR_CONFIG_INVALID' && err.problems[0]?.field).toBe(field);
    }
    // A writer whose largest record cannot fit one buffer is refused too.
    expect(() => new PcapFileWriter(join(dir, 'never.pcap'), { pool: new BufferPool({ bufferBytes: 4096 }) })).toThrow(/cannot hold a 262144-byte frame/);
  });
});

describe('DiskQueue', () => {
  it('maps errno codes to drop reasons', () => {
    expect(dropCodeForError('ENOSPC')).toBe(DROP.WRITE_ENOSPC);
    expect(dropCodeForError('EDQUOT')).toBe(DROP.WRITE_ENOSPC);
    expect(dropCodeForError('EIO')).toBe(DROP.WRITE_ERROR);
    expect(dropCodeForError('EACCES')).toBe(DROP.WRITE_ERROR);
  });

  it('runs at most maxConcurrentWrites files at once, and returns every byte of its bound', async () => {
    const queue = new DiskQueue({ maxConcurrentWrites: 2 });
    const pool = new BufferPool({ bufferBytes: 4096, maxBytes: 1 << 22 });
    const writers = Array.from({ length: 6 }, (_, k) => new PcapFileWriter(join(dir, `c-${k}.pcap`), { pool, queue, snaplen: 1500 }));
    let maxInFlight = 0;
    let sampling = true;
    const sample = () => {
      maxInFlight = Math.max(maxInFlight, queue.inFlight);
      if (sampling) setImmediate(sample);
    };
    sample();
    for (let round = 0; round < 20; round++) {
      for (const w of writers) for (let i = 0; i < 4; i++) w.append(frame(round * 4 + i, 1000), 0, 1000, 1000, 1, 0);
      for (const w of writers) w.flush();
      await new Promise((r) => setImmediate(r));
    }
    const infos = await Promise.all(writers.map((w) => w.close()));
    sampling = false;
    expect(maxInFlight).toBe(2);
    expect(queue.queuedBytes).toBe(0);
    expect(queue.inFlight).toBe(0);
    expect(pool.inUse).toBe(0);
    for (const i of infos) expect([i.packets, i.bytes, readFileSync(i.path).length]).toEqual([80, 24 + 80 * 1016, 24 + 80 * 1016]);
  });

  it('rate-limits reports per (operation, errno), tells how many were suppressed, and survives a hook that throws', async () => {
    const reports: DiskErrorReport[] = [];
    const drops = new Float64Array(DROP_COUNT);
    let calls = 0;
    const queue = new DiskQueue({
      counts: drops,
      errorReportIntervalMs: 50,
      onError: (r) => {
        calls++;
        reports.push(r);
        throw new Error('a broken hook');
      },
    });
    const w = new PcapFileWriter(join(dir, 'missing-dir', 'x.pcap'), { queue });
    for (let i = 0; i < 4; i++) {
      w.append(frame(i), 0, 64, 64, 1, 0);
      await w.drain();
    }
    expect(calls).toBe(1);
    await new Promise((r) => setTimeout(r, 60));
    w.append(frame(9), 0, 64, 64, 1, 0);
    await w.drain();
    expect(reports.map((r) => [r.op, r.code, r.suppressed])).toEqual([
      ['create', 'ENOENT', 0],
      ['create', 'ENOENT', 3],
    ]);
    expect(drops[DROP.WRITE_ERROR]).toBe(5);
    await w.close();
  });
});

describe('DiskQueue: buffers queued behind each other for one file', () => {
  it('go out in one writev, in order, each hashed and counted; the file is the concatenation', async () => {
    const counts = new Float64Array(DROP_COUNT);
    const queue = new DiskQueue({ counts });
    const preamble = Buffer.from('PREAMBLE');
    const path = join(dir, 'writev.bin');
    const f = queue.file(path, preamble);
    const pieces: Buffer[] = [];
    let released = 0;
    // 40 chunks handed over at once, of different sizes: WRITEV_MAX_BUFFERS per writev, so several writevs.
    for (let i = 0; i < 40; i++) {
      const buf = Buffer.alloc(1000 + i * 37, 65 + (i % 26));
      const len = buf.length - (i % 3);
      pieces.push(buf.subarray(0, len));
      f.enqueue({ buf, len, packets: i + 1, minSec: 10 + i, minNsec: 0, maxSec: 10 + i, maxNsec: 5, release: () => released++ });
    }
    const r = await f.close();
    const want = Buffer.concat([preamble, ...pieces]);
    expect(readFileSync(path).equals(want)).toBe(true);
    expect(r.sha256).toBe(createHash('sha256').update(want).digest('hex'));
    expect({ bytes: r.bytes, packets: r.packets, minSec: r.minSec, maxSec: r.maxSec, lost: r.lostPackets }).toEqual({ bytes: want.length, packets: 820, minSec: 10, maxSec: 49, lost: 0 });
    expect({ written: counts[DROP.OK], released, queued: queue.queuedBytes }).toEqual({ written: 820, released: 40, queued: 0 });
  });

  it('when the file cannot be created, every buffer of the writev is counted lost, once', async () => {
    const counts = new Float64Array(DROP_COUNT);
    const queue = new DiskQueue({ counts });
    const f = queue.file(join(dir, 'no-such-dir', 'x.bin'), Buffer.from('P'));
    for (let i = 0; i < 5; i++) f.enqueue({ buf: Buffer.alloc(100), len: 100, packets: 2, minSec: 1, minNsec: 0, maxSec: 1, maxNsec: 0, release: null });
    const r = await f.close();
    expect({ lost: r.lostPackets, error: counts[DROP.WRITE_ERROR], written: counts[DROP.OK], queued: queue.queuedBytes }).toEqual({ lost: 10, error: 10, written: 0, queued: 0 });
  });
});

describeNeeds(['native'], 'DiskQueue: batched writes (the addon pwriteBatch)', () => {
  it.each([
    ['on the main thread', false],
    ['by the batch, on the threadpool (the addon FileSha256)', true],
  ])('write many files in a few threadpool jobs: every file the concatenation of its buffers, each hashed (%s) and counted once', async (_, inBatch) => {
    const native = nativeBatchWrite()!;
    let calls = 0;
    let entries = 0;
    let hashed = 0;
    const batchWrite: BatchWrite = (fds, positions, lengths, buffers, count, results, done, dropWindow, hashes) => {
      calls++;
      entries += count;
      if (hashes !== undefined) for (let i = 0; i < count; i++) if (hashes[i] !== null) hashed++;
      native(fds, positions, lengths, buffers, count, results, done, dropWindow, hashes);
    };
    const counts = new Float64Array(DROP_COUNT);
    const queue = new DiskQueue({ counts, batchWrite, maxConcurrentWrites: 32, batchHash: inBatch ? nativeBatchHash() : null });
    expect(queue.hashesInBatch).toBe(inBatch);
    const preamble = Buffer.from('PRE');
    const FILES = 300;
    const files = Array.from({ length: FILES }, (_, i) => queue.file(join(dir, `batch-${inBatch}-${i}.bin`), preamble));
    const pieces: Buffer[][] = files.map(() => []);
    let released = 0;
    // Three rounds, as three flush intervals: the first creates every file (fs.promises), the next two
    // go through batches, some files with several buffers queued behind each other.
    for (let round = 0; round < 3; round++) {
      for (let i = 0; i < FILES; i++) {
        for (let k = 0; k <= (i + round) % 3; k++) {
          const buf = Buffer.alloc(200 + ((i * 7 + k) % 50), 97 + ((i + round + k) % 26));
          const len = buf.length - k;
          pieces[i]!.push(buf.subarray(0, len));
          files[i]!.enqueue({ buf, len, packets: 1, minSec: 100 + round, minNsec: k, maxSec: 100 + round, maxNsec: k, release: () => released++ });
        }
      }
      await Promise.all(files.map((f) => f.idle()));
    }
    const results = await Promise.all(files.map((f) => f.close()));
    let packets = 0;
    for (let i = 0; i < FILES; i++) {
      const want = Buffer.concat([preamble, ...pieces[i]!]);
      expect(readFileSync(join(dir, `batch-${inBatch}-${i}.bin`)).equals(want)).toBe(true);
      expect(results[i]!.sha256).toBe(createHash('sha256').update(want).digest('hex'));
      expect(results[i]!.bytes).toBe(want.length);
      packets += pieces[i]!.length;
    }
    expect({ written: counts[DROP.OK], released, queued: queue.queuedBytes }).toEqual({ written: packets, released: packets, queued: 0 });
    // Rounds two and three went through batches: a few calls for hundreds of files' buffers.
    expect(entries).toBeGreaterThan(FILES);
    expect(calls).toBeLessThan(entries / 20);
    // Hashed where asked: every batched entry by the batch, or none.
    expect(hashed).toBe(inBatch ? entries : 0);
  });
});

describeNeeds(['native'], 'DiskQueue: batched creates (the addon openBatch)', () => {
  it('creates many new files (and their folders) in a few jobs; the preamble goes with the first buffers in a write batch', async () => {
    const nativeOpen = nativeBatchOpen()!;
    const nativeWrite = nativeBatchWrite()!;
    let openCalls = 0;
    let opened = 0;
    let preambles = 0;
    const batchOpen: BatchOpen = (paths, count, mode, makeDirs, results, done) => {
      openCalls++;
      opened += count;
      nativeOpen(paths, count, mode, makeDirs, results, done);
    };
    const batchWrite: BatchWrite = (fds, positions, lengths, buffers, count, results, done) => {
      for (let i = 0; i < count; i++) if (positions[i] === 0) preambles++;
      nativeWrite(fds, positions, lengths, buffers, count, results, done);
    };
    const counts = new Float64Array(DROP_COUNT);
    const queue = new DiskQueue({ counts, batchWrite, batchOpen, makeDirs: true, fileMode: 0o600, maxConcurrentWrites: 32 });
    const preamble = Buffer.from('PREAMBLE');
    const FILES = 600;
    const root = join(dir, 'opened');
    const path = (i: number) => join(root, `h${i % 3}`, `f-${i}.pcap`);
    const files = Array.from({ length: FILES }, (_, i) => queue.file(path(i), preamble));
    const pieces: Buffer[][] = files.map(() => []);
    for (let round = 0; round < 2; round++) {
      for (let i = 0; i < FILES; i++) {
        const buf = Buffer.alloc(100 + (i % 40), 65 + ((i + round) % 26));
        pieces[i]!.push(buf);
        files[i]!.enqueue({ buf, len: buf.length, packets: 1, minSec: 1, minNsec: 0, maxSec: 1, maxNsec: 0, release: null });
      }
      await Promise.all(files.map((f) => f.idle()));
    }
    const results = await Promise.all(files.map((f) => f.close()));
    for (let i = 0; i < FILES; i++) {
      const want = Buffer.concat([preamble, ...pieces[i]!]);
      expect(readFileSync(path(i)).equals(want), path(i)).toBe(true);
      expect(results[i]!).toMatchObject({ created: true, bytes: want.length, packets: 2, sha256: createHash('sha256').update(want).digest('hex'), lastError: null });
    }
    expect(statSync(path(0)).mode & 0o777).toBe(0o600);
    expect(counts[DROP.OK]).toBe(2 * FILES);
    // Every file created by a batched open, in a handful of calls; every preamble written by a write batch.
    expect(opened).toBe(FILES);
    expect(openCalls).toBeLessThanOrEqual(3);
    expect(preambles).toBe(FILES);
  });

  it('a create the batch cannot do goes to the fs path, which reports it and counts the buffer lost; the others are written', async () => {
    const reports: DiskErrorReport[] = [];
    const counts = new Float64Array(DROP_COUNT);
    const queue = new DiskQueue({ counts, batchWrite: nativeBatchWrite(), batchOpen: nativeBatchOpen(), makeDirs: true, onError: (r) => reports.push(r) });
    const base = join(dir, 'refused');
    mkdirSync(base, { recursive: true });
    writeFileSync(join(base, 'taken.pcap'), 'someone else');
    // An existing file (O_EXCL refuses it: never clobbered) and a folder path through a regular file.
    const bad = [queue.file(join(base, 'taken.pcap'), Buffer.from('P')), queue.file(join(base, 'taken.pcap', 'x.pcap'), Buffer.from('P'))];
    const good = queue.file(join(base, 'ok', 'fine.pcap'), Buffer.from('P'));
    for (const f of [...bad, good]) f.enqueue({ buf: Buffer.from('records'), len: 7, packets: 3, minSec: 1, minNsec: 0, maxSec: 1, maxNsec: 0, release: null });
    const [r0, r1, r2] = await Promise.all([...bad, good].map((f) => f.close()));
    expect(r0).toMatchObject({ created: false, lostPackets: 3, lastError: 'EEXIST' });
    expect(r1).toMatchObject({ created: false, lostPackets: 3, lastError: 'ENOTDIR' });
    expect(r2).toMatchObject({ created: true, packets: 3, lostPackets: 0 });
    expect(readFileSync(join(base, 'taken.pcap'), 'utf8')).toBe('someone else');
    expect(readFileSync(join(base, 'ok', 'fine.pcap'), 'utf8')).toBe('Precords');
    expect(counts[DROP.WRITE_ERROR]).toBe(6);
    expect(reports.map((r) => `${r.op}:${r.code}`).sort()).toEqual(['create:EEXIST', 'create:ENOTDIR']);
  });
});
