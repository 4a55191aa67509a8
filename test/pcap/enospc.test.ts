/**
 * A real full disk: a 64 KiB tmpfs mounted inside a temporary folder (the `tmpfs` need: root and
 * permission to mount). The writer must leave a file tshark reads, count what it lost under
 * pcap.write.enospc, and resume by itself once space is freed.
 */
import { spawnSync } from 'node:child_process';
import { closeSync, mkdirSync, openSync, rmSync, statSync, truncateSync, unlinkSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { describeNeeds, itNeeds } from '../helpers/needs.js';
import { DROP, DROP_COUNT } from '../../src/outcomes.js';
import { BufferPool } from '../../src/pcap/buffer-pool.js';
import { DiskQueue, type BatchWrite, type DiskErrorReport } from '../../src/pcap/disk-queue.js';
import { nativeBatchHash, nativeBatchWrite } from '../../src/ingest/native-addon.js';
import { PcapFileWriter } from '../../src/pcap/file-writer.js';
import { openCapture } from '../../src/pcap/reader.js';
import { repairPcap } from '../../src/pcap/repair.js';
import { expectReadable } from '../helpers/read-back.js';
import { makeTmpDir } from '../helpers/tmp.js';
import { frame, sha256File } from './pcap-helpers.js';

let mnt = '';

/** Sequence numbers of the frames in a file, read with our reader. */
function seqs(path: string): number[] {
  const r = openCapture(path);
  const out: number[] = [];
  while (r.next()) out.push(r.record.buf.readUInt32BE(r.record.off + 14));
  expect(r.truncated).toBe(false);
  r.close();
  return out;
}

/** Fill the filesystem until the kernel refuses; returns the filler's path. */
function fillDisk(name: string, bytes: number): string {
  const p = join(mnt, name);
  const fd = openSync(p, 'w');
  const block = Buffer.alloc(4096, 0x55);
  try {
    for (let done = 0; done < bytes; done += block.length) writeSync(fd, block);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOSPC') throw e;
  } finally {
    closeSync(fd);
  }
  return p;
}

describeNeeds(['tmpfs'], 'PcapFileWriter on a full disk (64 KiB tmpfs)', () => {
  const tmp = makeTmpDir('mg-pcap-enospc-');
  beforeAll(() => {
    mnt = join(tmp.dir, 'small');
    mkdirSync(mnt);
    const m = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=64k,mode=0755', 'tmpfs', mnt], { encoding: 'utf8' });
    if (m.status !== 0) throw new Error(`mount tmpfs failed: ${m.stderr}`);
  });
  afterAll(() => {
    spawnSync('umount', [mnt], { stdio: 'ignore' });
    tmp.remove();
  });

  it('truncates back to the last whole record, counts the lost frames as ENOSPC, and resumes when space returns', async () => {
    const filler = fillDisk('filler', 40 * 1024);
    const drops = new Float64Array(DROP_COUNT);
    const reports: DiskErrorReport[] = [];
    const path = join(mnt, 'cap.pcap');
    // One 1 MiB buffer from the start (no small first buffers), so the 30 frames below are one write.
    const pool = new BufferPool({ minBufferBytes: 1 << 20 });
    const w = new PcapFileWriter(path, { pool, queue: new DiskQueue({ counts: drops, onError: (r) => reports.push(r) }) });

    for (let i = 0; i < 10; i++) expect(w.append(frame(i, 1000), 0, 1000, 1000, 100, i)).toBe(DROP.OK);
    await w.drain();
    expect(w.committedPackets).toBe(10);
    expect(drops[DROP.OK]).toBe(10);

    // About 30 KB more does not fit in what is left: part of it is written, then ENOSPC.
    for (let i = 10; i < 40; i++) expect(w.append(frame(i, 1000), 0, 1000, 1000, 101, i)).toBe(DROP.OK);
    await w.drain();
    expect(w.lostPackets).toBe(30);
    expect(drops[DROP.WRITE_ENOSPC]).toBe(30);
    expect(drops[DROP.WRITE_ERROR]).toBe(0);
    // Written stays what reached the disk: the lost frames were never counted there.
    expect(drops[DROP.OK]).toBe(10);
    expect(reports[0]).toMatchObject({ op: 'write', code: 'ENOSPC', lostPackets: 30 });
    // The partial write was cut back: the file ends on the last whole record and parses.
    expect(statSync(path).size).toBe(24 + 10 * 1016);
    expect(w.committedBytes).toBe(24 + 10 * 1016);
    expectReadable(path, 10);

    // Space comes back; the next buffers are written without anyone restarting anything.
    unlinkSync(filler);
    for (let i = 40; i < 50; i++) expect(w.append(frame(i, 1000), 0, 1000, 1000, 102, i)).toBe(DROP.OK);
    const info = await w.close();
    expect(info).toMatchObject({ created: true, packets: 20, lostPackets: 30, bytes: 24 + 20 * 1016, lastError: 'ENOSPC' });
    expect(info.sha256).toBe(sha256File(path));
    expect(seqs(path)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 40, 41, 42, 43, 44, 45, 46, 47, 48, 49]);
    expectReadable(path, 20);
    rmSync(path);
  });

  // Each batched case three times: the SHA-256 on the main thread; by the batch on the threadpool (the addon's
  // FileSha256, which hashes a group before writing it and must take the bytes back out when the write fails);
  // and that with direct writes from a page on (pcap.directWriteBytes: the whole pages of a write go with
  // O_DIRECT, which tmpfs takes since Linux 6.6, and a full disk stops them part way as it does a pwritev).
  const hashModes = [
    ['main thread', false, 0],
    ['hashed by the batch', true, 0],
    ['hashed by the batch, direct writes', true, 4096],
  ] as const;

  for (const [mode, inBatch, direct] of hashModes) itNeeds(['native'], `with batched writes (the addon pwriteBatch, ${mode}): the same truncate, count and resume`, async () => {
    const batchWrite = nativeBatchWrite()!;
    const drops = new Float64Array(DROP_COUNT);
    const path = join(mnt, `cap-batch-${inBatch}-${direct}.pcap`);
    const pool = new BufferPool({ minBufferBytes: 1 << 20 });
    const w = new PcapFileWriter(path, { pool, queue: new DiskQueue({ counts: drops, batchWrite, batchHash: inBatch ? nativeBatchHash() : null, directWriteBytes: direct }) });
    // The first buffer creates the file (fs.promises); later ones are batched.
    for (let i = 0; i < 10; i++) w.append(frame(i, 1000), 0, 1000, 1000, 100, i);
    await w.drain();
    for (let i = 10; i < 15; i++) w.append(frame(i, 1000), 0, 1000, 1000, 100, i);
    await w.drain();
    expect(drops[DROP.OK]).toBe(15);
    const filler = fillDisk(`filler-b-${inBatch}-${direct}`, 40 * 1024);
    for (let i = 15; i < 45; i++) w.append(frame(i, 1000), 0, 1000, 1000, 101, i);
    await w.drain();
    expect({ lost: w.lostPackets, enospc: drops[DROP.WRITE_ENOSPC], ok: drops[DROP.OK] }).toEqual({ lost: 30, enospc: 30, ok: 15 });
    expect(statSync(path).size).toBe(24 + 15 * 1016);
    unlinkSync(filler);
    for (let i = 45; i < 50; i++) w.append(frame(i, 1000), 0, 1000, 1000, 102, i);
    const info = await w.close();
    expect(info).toMatchObject({ packets: 20, lostPackets: 30, bytes: 24 + 20 * 1016, lastError: 'ENOSPC' });
    expect(info.sha256).toBe(sha256File(path));
    expect(seqs(path)).toEqual([...Array.from({ length: 15 }, (_, i) => i), 45, 46, 47, 48, 49]);
    rmSync(path);
  });

  for (const [mode, inBatch, direct] of hashModes) itNeeds(['native'], `with several buffers of one file in one pwritev (${mode}): the disk fills part way through them; what fit is kept, the rest counted lost`, async () => {
    const native = nativeBatchWrite()!;
    let coalesced = 0;
    const batchWrite: BatchWrite = (fds, positions, lengths, buffers, count, results, done, dropWindow, hashes, directBytes) => {
      for (let i = 1; i < count; i++) if (fds[i] === fds[i - 1] && positions[i] === positions[i - 1]! + lengths[i - 1]!) coalesced++;
      native(fds, positions, lengths, buffers, count, results, done, dropWindow, hashes, directBytes);
    };
    const drops = new Float64Array(DROP_COUNT);
    const path = join(mnt, `cap-iov-${inBatch}-${direct}.pcap`);
    // 2 KiB buffers: two records each.
    const pool = new BufferPool({ minBufferBytes: 2048, bufferBytes: 2048 });
    const queue = new DiskQueue({ counts: drops, batchWrite, batchHash: inBatch ? nativeBatchHash() : null, directWriteBytes: direct });
    const w = new PcapFileWriter(path, { pool, queue, snaplen: 1500 });
    for (let i = 0; i < 4; i++) w.append(frame(i, 1000), 0, 1000, 1000, 100, i);
    await w.drain();
    // Fill the disk, then give back 8 KiB: room for some of the next twenty buffers, not all.
    const filler = fillDisk(`filler-iov-${inBatch}-${direct}`, 1 << 20);
    truncateSync(filler, Math.max(0, statSync(filler).size - 8192));
    for (let i = 4; i < 44; i++) w.append(frame(i, 1000), 0, 1000, 1000, 101, i);
    await w.drain();
    const ok = drops[DROP.OK]!;
    const lost = drops[DROP.WRITE_ENOSPC]!;
    expect(coalesced).toBeGreaterThan(0);
    expect(ok + lost).toBe(44);
    expect(ok).toBeGreaterThan(4);
    expect(lost).toBeGreaterThan(0);
    expect(statSync(path).size).toBe(24 + ok * 1016);
    unlinkSync(filler);
    for (let i = 44; i < 48; i++) w.append(frame(i, 1000), 0, 1000, 1000, 102, i);
    const info = await w.close();
    expect(info).toMatchObject({ packets: ok + 4, lostPackets: lost, lastError: 'ENOSPC' });
    expect(info.sha256).toBe(sha256File(path));
    // Whole records only: the ones that fit, in order, then the ones after space came back.
    expect(seqs(path)).toEqual([...Array.from({ length: ok }, (_, i) => i), 44, 45, 46, 47]);
    expectReadable(path, ok + 4);
    rmSync(path);
  });

  it('on a disk with no room even for the header, reports an empty file that repair then completes', async () => {
    const filler = fillDisk('all-full', 1 << 20);
    const drops = new Float64Array(DROP_COUNT);
    const path = join(mnt, 'nohdr.pcap');
    const w = new PcapFileWriter(path, { queue: new DiskQueue({ counts: drops }) });
    w.append(frame(1, 200), 0, 200, 200, 1, 0);
    const info = await w.close();
    // The inode was created, but not one byte fits: the catalog learns the file is empty.
    expect(info).toMatchObject({ created: true, bytes: 0, packets: 0, lostPackets: 1, lastError: 'ENOSPC' });
    expect(drops[DROP.WRITE_ENOSPC]).toBe(1);
    expect(statSync(path).size).toBe(0);

    unlinkSync(filler);
    const r = await repairPcap(path);
    expect(r).toMatchObject({ bytes: 24, packets: 0, headerRewritten: true });
    expectReadable(path, 0);
    rmSync(path);
  });
});
