import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { DROP, DROP_COUNT } from '../../src/outcomes.js';
import { BufferPool } from '../../src/pcap/buffer-pool.js';
import { DiskQueue, type DiskErrorReport } from '../../src/pcap/disk-queue.js';
import { PcapFileWriter } from '../../src/pcap/file-writer.js';
import { openCapture } from '../../src/pcap/reader.js';
import { tshark } from '../helpers/oracles.js';
import { checkIfHave } from '../helpers/needs.js';
import { expectReadable } from '../helpers/read-back.js';
import { makeTmpDir } from '../helpers/tmp.js';
import { buildPcap, epochString, frame, md5, tsharkFrames, type Rec } from './pcap-helpers.js';

/** SHA-256 of zero bytes: what close() reports for a file it never created. */
const EMPTY_SHA256 = createHash('sha256').digest('hex');

/** Read a file back with our reader: [data, origLen, tsSec, tsNsec] per record. */
function readBack(path: string, limitBytes?: number): { data: Buffer; origLen: number; tsSec: number; tsNsec: number }[] {
  const r = openCapture(path, limitBytes === undefined ? {} : { limitBytes });
  const out = [];
  while (r.next()) {
    const x = r.record;
    out.push({ data: Buffer.from(x.buf.subarray(x.off, x.off + x.caplen)), origLen: x.origLen, tsSec: x.tsSec, tsNsec: x.tsNsec });
  }
  expect(r.truncated).toBe(false);
  r.close();
  return out;
}

describe('PcapFileWriter: bytes on disk', () => {
  const { dir, remove } = makeTmpDir('mg-pcap-writer-');
  afterAll(remove);

  it('writes exactly the global header and one record per append, byte for byte', async () => {
    const path = join(dir, 'exact.pcap');
    const w = new PcapFileWriter(path, {});
    // The frame sits at a non-zero offset inside a bigger buffer, as it does inside a VXLAN datagram;
    // a receiver may hand a plain Uint8Array rather than a Buffer.
    const dgram = Buffer.concat([Buffer.alloc(50, 0xff), frame(7, 20), Buffer.alloc(3, 0xff)]);
    expect(w.append(dgram, 50, 70, 20, 1_700_000_000, 5)).toBe(DROP.OK);
    expect(w.append(new Uint8Array(dgram), 50, 64, 1500, 1_700_000_001, 999_999_999)).toBe(DROP.OK);
    const info = await w.close();
    const bytes = readFileSync(path);
    // prettier-ignore
    const expected = Buffer.concat([
      Buffer.from([
        0x4d, 0x3c, 0xb2, 0xa1, 0x02, 0x00, 0x04, 0x00,  // magic (ns), version 2.4
        0, 0, 0, 0, 0, 0, 0, 0,                          // thiszone, sigfigs
        0x00, 0x00, 0x04, 0x00, 0x01, 0x00, 0x00, 0x00,  // snaplen 262144, Ethernet
        0x00, 0xf1, 0x53, 0x65, 0x05, 0x00, 0x00, 0x00,  // 1700000000 s, 5 ns
        0x14, 0x00, 0x00, 0x00, 0x14, 0x00, 0x00, 0x00,  // caplen 20, len 20
      ]),
      frame(7, 20),
      Buffer.from([
        0x01, 0xf1, 0x53, 0x65, 0xff, 0xc9, 0x9a, 0x3b,  // 1700000001 s, 999999999 ns
        0x0e, 0x00, 0x00, 0x00, 0xdc, 0x05, 0x00, 0x00,  // caplen 14, len 1500 (cut short)
      ]),
      frame(7, 20).subarray(0, 14),
    ]);
    expect(bytes).toEqual(expected);
    expect(info).toEqual({
      path,
      created: true,
      bytes: expected.length,
      packets: 2,
      firstSec: 1_700_000_000,
      firstNsec: 5,
      lastSec: 1_700_000_001,
      lastNsec: 999_999_999,
      sha256: createHash('sha256').update(expected).digest('hex'),
      lostPackets: 0,
      lastError: null,
    });
  });

  it('raises a wire length below the captured length to it, and refuses frames over the snap length or empty', async () => {
    const path = join(dir, 'lengths.pcap');
    const w = new PcapFileWriter(path, { snaplen: 1000, pool: new BufferPool({ bufferBytes: 4096, maxBytes: 16384 }) });
    const f = frame(1, 1001);
    expect(w.append(f, 0, 100, 0, 10, 0)).toBe(DROP.OK);
    expect(w.append(f, 0, 1001, 1001, 10, 1)).toBe(DROP.INNER_TOO_LONG);
    expect(w.append(f, 0, 1000, 1000, 10, 2)).toBe(DROP.OK);
    expect(w.append(f, 5, 5, 60, 10, 3)).toBe(DROP.INNER_TOO_SHORT);
    expect(w.append(f, 0, 60, 60, 10, 1_000_000_000)).toBe(DROP.WRITE_ERROR);
    await w.close();
    const recs = readBack(path);
    expect(recs.map((r) => [r.data.length, r.origLen, r.tsNsec])).toEqual([
      [100, 100, 0],
      [1000, 1000, 2],
    ]);
    const r = openCapture(path);
    expect(r.snaplen).toBe(1000);
    r.close();
    expectReadable(path, 2);
  });

  it('round-trips many frames of many sizes through our reader and tshark, across many buffers', async () => {
    const path = join(dir, 'round.pcap');
    // 4 KiB buffers: the 1500 frames below fill and hand over a buffer every few packets.
    const pool = new BufferPool({ bufferBytes: 4096, maxBytes: 1 << 20 });
    const w = new PcapFileWriter(path, { snaplen: 2048, pool });
    const sent: Rec[] = [];
    for (let i = 0; i < 300; i++) {
      const len = 14 + ((i * 97) % 1500);
      const f = frame(i, len);
      const tsSec = 1_700_000_000 + Math.floor(i / 7);
      const tsNsec = (i * 123_456_789) % 1_000_000_000;
      // Every fifth frame is cut short by the mirror session's PacketLength: wire length is larger.
      const origLen = i % 5 === 0 ? len + 100 : len;
      expect(w.append(f, 0, len, origLen, tsSec, tsNsec)).toBe(DROP.OK);
      sent.push({ tsSec, tsNsec, data: f, origLen });
      // Let the disk queue run sometimes, as the event loop would between datagrams.
      if (i % 50 === 0) await new Promise((r) => setImmediate(r));
    }
    const expectedFile = buildPcap(sent, { snaplen: 2048 });
    const info = await w.close();
    expect(readFileSync(path)).toEqual(expectedFile);
    expect(info.packets).toBe(300);
    expect(info.bytes).toBe(expectedFile.length);
    expect(pool.inUse).toBe(0);

    expect(readBack(path)).toEqual(sent.map((s) => ({ data: s.data, origLen: s.origLen, tsSec: s.tsSec, tsNsec: s.tsNsec })));
    checkIfHave('tshark', () =>
      expect(tsharkFrames(path)).toEqual(sent.map((s) => ({ md5: md5(s.data), len: s.origLen, capLen: s.data.length, epoch: epochString(s.tsSec, s.tsNsec) }))),
    );
  });

  it('stores a frame cut by the mirror session with its wire length, so tshark says the capture limited it', async () => {
    const path = join(dir, 'cut.pcap');
    const w = new PcapFileWriter(path, {});
    // prettier-ignore
    const ipv4 = Buffer.from([
      0x02, 0, 0, 0, 0, 0x01, 0x02, 0, 0, 0, 0, 0x02, 0x08, 0x00,  // Ethernet, EtherType IPv4
      0x45, 0x00, 0x05, 0xce, 0, 0, 0, 0, 0x40, 0x11,               // IPv4, total length 1486, TTL 64, UDP ...
    ]);
    // Only 24 bytes were mirrored (PacketLength) of a 1500-byte frame.
    expect(w.append(ipv4, 0, ipv4.length, 1500, 1_700_000_000, 1)).toBe(DROP.OK);
    await w.close();
    expect(readBack(path)).toEqual([{ data: ipv4, origLen: 1500, tsSec: 1_700_000_000, tsNsec: 1 }]);
    checkIfHave('tshark', () => {
      expect(tsharkFrames(path)).toEqual([{ md5: md5(ipv4), len: 1500, capLen: 24, epoch: '1700000000.000000001' }]);
      expect(tshark(['-r', path, '-n']).stdout).toContain('IPv4 1500 [Packet size limited during capture]');
    });
  });

  it('keeps frames in append order when timestamps step backwards, and reports the earliest and latest', async () => {
    const path = join(dir, 'backwards.pcap');
    const w = new PcapFileWriter(path, {});
    w.append(frame(1), 0, 64, 64, 100, 500);
    w.append(frame(2), 0, 64, 64, 99, 700);
    w.append(frame(3), 0, 64, 64, 101, 1);
    const info = await w.close();
    expect([info.firstSec, info.firstNsec, info.lastSec, info.lastNsec]).toEqual([99, 700, 101, 1]);
    expect(readBack(path).map((r) => r.tsSec)).toEqual([100, 99, 101]);
  });

  it('gives a file with no packets a header, so it still opens', async () => {
    const path = join(dir, 'empty.pcap');
    const info = await new PcapFileWriter(path, {}).close();
    expect(info).toMatchObject({ created: true, bytes: 24, packets: 0 });
    expect(statSync(path).size).toBe(24);
    expectReadable(path, 0);
  });

  it('creates the file lazily, never clobbers an existing file, and refuses appends after close', async () => {
    const path = join(dir, 'lazy.pcap');
    const w = new PcapFileWriter(path, {});
    w.append(frame(1), 0, 64, 64, 1, 0);
    // Nothing touches the disk on the packet path.
    expect(existsSync(path)).toBe(false);
    await w.drain();
    expect(statSync(path).size).toBe(24 + 16 + 64);
    await w.close();
    expect(w.append(frame(2), 0, 64, 64, 2, 0)).toBe(DROP.WRITE_ERROR);

    const taken = join(dir, 'taken.pcap');
    writeFileSync(taken, 'somebody else wrote this');
    const drops = new Float64Array(DROP_COUNT);
    const reports: DiskErrorReport[] = [];
    const w2 = new PcapFileWriter(taken, { queue: new DiskQueue({ counts: drops, onError: (r) => reports.push(r) }) });
    w2.append(frame(1), 0, 64, 64, 1, 0);
    const info = await w2.close();
    expect(readFileSync(taken, 'utf8')).toBe('somebody else wrote this');
    expect(info).toMatchObject({ created: false, bytes: 0, packets: 0, lostPackets: 1, sha256: EMPTY_SHA256, lastError: 'EEXIST' });
    expect(drops[DROP.WRITE_ERROR]).toBe(1);
    expect(reports[0]).toMatchObject({ op: 'create', code: 'EEXIST', lostPackets: 1 });
  });

  it('serves the file being written up to its last flushed record', async () => {
    const path = join(dir, 'live.pcap');
    const w = new PcapFileWriter(path, {});
    for (let i = 0; i < 10; i++) w.append(frame(i), 0, 64, 64, 1000 + i, 0);
    await w.drain();
    // More records arrive but are not flushed yet.
    for (let i = 10; i < 15; i++) w.append(frame(i), 0, 64, 64, 1000 + i, 0);
    expect([w.firstSec, w.firstNsec, w.lastSec, w.lastNsec, w.committedPackets]).toEqual([1000, 0, 1009, 0, 10]);
    const s = w.stats();
    expect(s).toMatchObject({ packets: 15, committedPackets: 10, committedBytes: 24 + 10 * 80, firstSec: 1000, lastSec: 1009, pendingBytes: 5 * 80, lostPackets: 0 });
    expect(statSync(path).size).toBe(s.committedBytes);
    const seen = readBack(path, s.committedBytes);
    expect(seen.map((r) => r.tsSec)).toEqual([1000, 1001, 1002, 1003, 1004, 1005, 1006, 1007, 1008, 1009]);
    expectReadable(path, 10);
    await w.close();
    expect(readBack(path)).toHaveLength(15);
  });

  it('has no timer of its own: a partial buffer waits for its owner to flush it', async () => {
    const path = join(dir, 'timer.pcap');
    const w = new PcapFileWriter(path, { datasyncIntervalMs: 1 });
    w.append(frame(1), 0, 64, 64, 1, 0);
    await new Promise((r) => setTimeout(r, 50));
    expect([w.committedPackets, existsSync(path)]).toEqual([0, false]);
    expect(w.flush()).toBe(true);
    const t0 = Date.now();
    while (w.committedPackets === 0 && Date.now() - t0 < 5000) await new Promise((r) => setTimeout(r, 10));
    expect(w.committedPackets).toBe(1);
    expect(statSync(path).size).toBe(24 + 80);
    await w.close();
  });
});

describe('PcapFileWriter: bounded memory and a slow disk', () => {
  const { dir, remove } = makeTmpDir('mg-pcap-bound-');
  afterAll(remove);

  it('drops with WRITE_QUEUE_FULL when the pool is exhausted, and the file holds exactly the accepted frames', async () => {
    const path = join(dir, 'full.pcap');
    // Four 4 KiB buffers: the disk queue cannot run while this synchronous loop holds the event loop,
    // exactly as when packets arrive faster than the disk drains.
    const pool = new BufferPool({ bufferBytes: 4096, maxBytes: 4 * 4096 });
    const w = new PcapFileWriter(path, { snaplen: 1500, pool });
    const accepted: number[] = [];
    let full = 0;
    for (let i = 0; i < 200; i++) {
      const rc = w.append(frame(i, 1000), 0, 1000, 1000, 1, i);
      if (rc === DROP.OK) accepted.push(i);
      else {
        expect(rc).toBe(DROP.WRITE_QUEUE_FULL);
        full++;
      }
    }
    // 4 buffers of 4 records each; once the pool is empty every frame is dropped.
    expect(accepted).toEqual(Array.from({ length: 16 }, (_, i) => i));
    expect(full).toBe(184);
    expect(w.queueFullDrops).toBe(184);
    expect(pool.inUse).toBe(4);
    // Once the disk catches up, capture resumes.
    await w.drain();
    expect(w.append(frame(500, 1000), 0, 1000, 1000, 2, 0)).toBe(DROP.OK);
    await w.close();
    expect(pool.inUse).toBe(0);
    expect(readBack(path).map((r) => r.data.readUInt32BE(14))).toEqual([...accepted, 500]);
  });

  it('drops with WRITE_QUEUE_FULL when the queue is over its byte bound, and reports it once, off the hot path', async () => {
    const path = join(dir, 'qbound.pcap');
    const reports: DiskErrorReport[] = [];
    const queue = new DiskQueue({ maxQueuedBytes: 8192, onError: (r) => reports.push(r) });
    const pool = new BufferPool({ bufferBytes: 4096, maxBytes: 1 << 20 });
    const w = new PcapFileWriter(path, { snaplen: 1500, pool, queue });
    let ok = 0;
    for (let i = 0; i < 100; i++) if (w.append(frame(i, 1000), 0, 1000, 1000, 1, i) === DROP.OK) ok++;
    // Two full buffers fit the 8 KiB bound (4064 bytes each) and a third is being filled.
    expect(ok).toBe(12);
    expect(queue.queuedBytes).toBe(2 * 4 * 1016);
    expect(reports).toEqual([]);
    w.flush();
    expect(reports).toHaveLength(1);
    expect(reports[0]).toMatchObject({ op: 'queue', code: 'QUEUE_FULL', lostPackets: 88 });
    await w.close();
    expect(queue.queuedBytes).toBe(0);
    expect(readBack(path)).toHaveLength(12);
  });

  it('serializes writes per file while several files share a one-at-a-time queue', async () => {
    const queue = new DiskQueue({ maxConcurrentWrites: 1 });
    const pool = new BufferPool({ bufferBytes: 4096, maxBytes: 1 << 20 });
    const writers = [0, 1, 2].map((k) => new PcapFileWriter(join(dir, `multi-${k}.pcap`), { snaplen: 1500, pool, queue }));
    for (let i = 0; i < 120; i++) {
      const k = i % 3;
      expect(writers[k]!.append(frame(i, 300 + k * 200), 0, 300 + k * 200, 300 + k * 200, 1, i)).toBe(DROP.OK);
      if (i % 10 === 0) writers[k]!.flush();
    }
    const infos = await Promise.all(writers.map((w) => w.close()));
    for (let k = 0; k < 3; k++) {
      expect(infos[k]!.packets).toBe(40);
      expect(readBack(infos[k]!.path).map((r) => r.data.readUInt32BE(14))).toEqual(Array.from({ length: 40 }, (_, j) => j * 3 + k));
    }
  });
});

describe('PcapFileWriter: directory problems', () => {
  const { dir, remove } = makeTmpDir('mg-pcap-dir-');
  afterAll(remove);

  it('counts losses while the directory is missing, reports them rate-limited, and starts writing once it exists', async () => {
    const sub = join(dir, 'not-yet');
    const path = join(sub, 'late.pcap');
    const drops = new Float64Array(DROP_COUNT);
    const reports: DiskErrorReport[] = [];
    const w = new PcapFileWriter(path, { queue: new DiskQueue({ counts: drops, onError: (r) => reports.push(r) }) });
    for (let round = 0; round < 5; round++) {
      for (let i = 0; i < 3; i++) expect(w.append(frame(round * 3 + i), 0, 64, 64, round, i)).toBe(DROP.OK);
      await w.drain();
    }
    expect(w.lostPackets).toBe(15);
    expect(drops[DROP.WRITE_ERROR]).toBe(15);
    expect(drops[DROP.WRITE_ENOSPC]).toBe(0);
    // Five failed creates, one report: the rest are suppressed for the interval.
    expect(reports).toHaveLength(1);
    expect(reports[0]).toMatchObject({ path, op: 'create', code: 'ENOENT', lostPackets: 3, suppressed: 0 });
    expect(drops[DROP.OK]).toBe(0);

    mkdirSync(sub);
    for (let i = 0; i < 4; i++) w.append(frame(100 + i), 0, 64, 64, 10, i);
    const info = await w.close();
    expect(info).toMatchObject({ created: true, packets: 4, lostPackets: 15, bytes: 24 + 4 * 80 });
    expect([drops[DROP.OK], drops[DROP.WRITE_ERROR]]).toEqual([4, 15]);
    expect(readBack(path).map((r) => r.data.readUInt32BE(14))).toEqual([100, 101, 102, 103]);
    expectReadable(path, 4);
  });

  it('resolves close() with created: false when the file can never be created', async () => {
    const blocker = join(dir, 'a-file');
    writeFileSync(blocker, '');
    // A path under a regular file fails with ENOTDIR whoever runs the test (root ignores mode bits).
    const path = join(blocker, 'x.pcap');
    const drops = new Float64Array(DROP_COUNT);
    const w = new PcapFileWriter(path, { queue: new DiskQueue({ counts: drops }) });
    w.append(frame(1), 0, 64, 64, 1, 0);
    const info = await w.close();
    expect(info).toMatchObject({ created: false, bytes: 0, packets: 0, lostPackets: 1, sha256: EMPTY_SHA256, lastError: 'ENOTDIR' });
    expect(drops[DROP.WRITE_ERROR]).toBe(1);
  });
});
