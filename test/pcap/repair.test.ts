import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { isMgError } from '../../src/errors.js';
import { PcapFileWriter } from '../../src/pcap/file-writer.js';
import { openCapture } from '../../src/pcap/reader.js';
import { repairPcap, type RepairResult } from '../../src/pcap/repair.js';
import { expectReadable } from '../helpers/read-back.js';
import { makeTmpDir } from '../helpers/tmp.js';
import { buildPcap, frame } from './pcap-helpers.js';

const { dir, remove } = makeTmpDir('mg-pcap-repair-');
afterAll(remove);

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** Records of increasing size, so each cut offset has its own meaning. */
const RECS = [0, 1, 2, 3, 4].map((i) => ({ tsSec: 1_700_000_000 + i, tsNsec: i * 1000 + 7, data: frame(i, 20 + i * 3) }));
const WHOLE = buildPcap(RECS);
/** Offset where each record ends (the header counts as record -1). */
const ENDS = (() => {
  const e = [24];
  for (const r of RECS) e.push(e[e.length - 1]! + 16 + r.data.length);
  return e;
})();

function readCount(path: string): number {
  const r = openCapture(path);
  while (r.next());
  expect(r.truncated).toBe(false);
  r.close();
  return r.packets;
}

describe('repairPcap', () => {
  it('leaves a whole file as it is and describes it', async () => {
    const p = join(dir, 'whole.pcap');
    writeFileSync(p, WHOLE);
    const r = await repairPcap(p);
    expect(r).toEqual({
      path: p,
      packets: 5,
      bytes: WHOLE.length,
      truncatedBytes: 0,
      headerRewritten: false,
      reason: null,
      linktype: 1,
      firstSec: 1_700_000_000,
      firstNsec: 7,
      lastSec: 1_700_000_004,
      lastNsec: 4007,
      sha256: sha(WHOLE),
    } satisfies RepairResult);
    expect(readFileSync(p)).toEqual(WHOLE);
  });

  it('yields a file tshark reads cleanly, with the right packet count, wherever the file was cut', async () => {
    // Every cut inside the header and the last three records; the sync and async variants must agree.
    const cuts: number[] = [];
    for (let k = 0; k < 24; k++) cuts.push(k);
    for (let k = ENDS[2]!; k <= WHOLE.length; k++) cuts.push(k);
    const distinct = new Map<string, { path: string; packets: number }>();
    for (const k of cuts) {
      const p = join(dir, `cut-${k}.pcap`);
      writeFileSync(p, WHOLE.subarray(0, k));
      const r = await repairPcap(p);
      // What survives is the longest prefix of whole records.
      const whole = ENDS.filter((e) => e <= Math.max(k, 24)).length - 1;
      const keep = k < 24 ? 24 : ENDS[whole]!;
      expect([k, r.packets, r.bytes, r.truncatedBytes, r.headerRewritten]).toEqual([k, whole, keep, k < 24 ? 0 : k - keep, k < 24]);
      const bytes = readFileSync(p);
      expect(bytes).toEqual(WHOLE.subarray(0, keep));
      expect(r.sha256).toBe(sha(bytes));
      expect(readCount(p)).toBe(whole);
      if (r.packets > 0) expect([r.lastSec, r.lastNsec]).toEqual([RECS[whole - 1]!.tsSec, RECS[whole - 1]!.tsNsec]);
      distinct.set(r.sha256, { path: p, packets: whole });
    }
    // Each distinct repaired file goes through tshark once (the same bytes need not be re-read).
    expect(distinct.size).toBe(5);
    for (const { path, packets } of distinct.values()) expectReadable(path, packets);
  });

  it('cuts an impossible record header and everything after it', async () => {
    const cases: [string, (b: Buffer) => void, RegExp][] = [
      ['caplen above snaplen', (b) => b.writeUInt32LE(262145, ENDS[3]! + 8), /caplen 262145 above snaplen/],
      ['zero-filled tail', (b) => b.fill(0, ENDS[3]!), /zero wire length/],
      ['caplen above wire length', (b) => b.writeUInt32LE(1, ENDS[3]! + 12), /above wire length/],
      ['nanoseconds out of range', (b) => b.writeUInt32LE(1_000_000_000, ENDS[3]! + 4), /fraction/],
    ];
    for (const [name, damage, why] of cases) {
      const b = Buffer.from(WHOLE);
      damage(b);
      const p = join(dir, `bad-${name.replace(/ /g, '-')}.pcap`);
      writeFileSync(p, b);
      const r = await repairPcap(p);
      expect([name, r.packets, r.bytes, r.truncatedBytes]).toEqual([name, 3, ENDS[3], WHOLE.length - ENDS[3]!]);
      expect(r.reason).toMatch(why);
      expect(readCount(p)).toBe(3);
    }
    // A crash on a filesystem that extends the size before the data lands leaves zeros past the end.
    const p = join(dir, 'zero-tail.pcap');
    writeFileSync(p, Buffer.concat([WHOLE, Buffer.alloc(4096)]));
    const r = await repairPcap(p);
    expect([r.packets, r.bytes]).toEqual([5, WHOLE.length]);
    expectReadable(p, 5);
  });

  it('repairs a file our writer left behind mid-capture, across several read chunks', async () => {
    const p = join(dir, 'crashed.pcap');
    const w = new PcapFileWriter(p, {});
    // ~3 MB: the repair walk reads it in 1 MiB chunks, with records spanning the chunk edges.
    for (let i = 0; i < 2500; i++) w.append(frame(i, 1200), 0, 1200, 1200, 2_000_000_000 + i, 999_999_999 - i);
    await w.drain();
    const size = w.committedBytes;
    // kill -9 mid-write: half a record reached the disk.
    writeFileSync(p, Buffer.concat([readFileSync(p), frame(9, 700)]));
    const r = await repairPcap(p);
    expect([r.packets, r.bytes, r.truncatedBytes]).toEqual([2500, size, 700]);
    expect([r.firstSec, r.firstNsec, r.lastSec, r.lastNsec]).toEqual([2_000_000_000, 999_999_999, 2_000_002_499, 999_997_500]);
    expect(readCount(p)).toBe(2500);
    await w.close().catch(() => undefined);
  });

  it('writes the link type asked for when it has to write the header, and keeps the one in a whole header', async () => {
    const p = join(dir, 'short-hdr.pcap');
    writeFileSync(p, WHOLE.subarray(0, 10));
    const r = await repairPcap(p, { linktype: 101 });
    expect(r).toMatchObject({ headerRewritten: true, linktype: 101, bytes: 24 });
    expect(readFileSync(p).readUInt32LE(20)).toBe(101);
    const p2 = join(dir, 'raw-ip.pcap');
    writeFileSync(p2, buildPcap(RECS.slice(0, 1), { linktype: 101, resolution: 'us', bigEndian: true }));
    const r2 = await repairPcap(p2, { linktype: 1 });
    expect(r2).toMatchObject({ headerRewritten: false, linktype: 101, packets: 1, firstNsec: 0 });
  });

  it('rewrites a zero-filled header (a power loss on some filesystems) and keeps nothing of the zeros after it', async () => {
    const p = join(dir, 'zeros.pcap');
    writeFileSync(p, Buffer.alloc(4096));
    const r = await repairPcap(p);
    expect(r).toMatchObject({ headerRewritten: true, packets: 0, bytes: 24, truncatedBytes: 4096 - 24 });
    expect(readFileSync(p)).toEqual(WHOLE.subarray(0, 24));
    expect(r.sha256).toBe(sha(WHOLE.subarray(0, 24)));
    expectReadable(p, 0);
    // Zeroed header, intact records after it: the records are kept.
    const p2 = join(dir, 'zero-header.pcap');
    writeFileSync(p2, Buffer.concat([Buffer.alloc(24), WHOLE.subarray(24)]));
    expect(await repairPcap(p2)).toMatchObject({ headerRewritten: true, packets: 5, bytes: WHOLE.length, truncatedBytes: 0 });
    expect(readFileSync(p2)).toEqual(WHOLE);
  });

  it('refuses to touch a file that is not a classic pcap', async () => {
    const cases: [string, Buffer][] = [
      ['text.pcap', Buffer.from('this is a text file, not a capture at all')],
      ['short-text.pcap', Buffer.from('hello')],
      ['pcapng.pcap', Buffer.from('0a0d0d0a1c0000004d3c2b1a01000000ffffffffffffffff1c000000', 'hex')],
    ];
    for (const [name, content] of cases) {
      const p = join(dir, name);
      writeFileSync(p, content);
      await expect(repairPcap(p)).rejects.toSatisfy((e) => isMgError(e) && e.code === 'MG_ERR_CAPTURE_FORMAT');
      await expect(repairPcap(p)).rejects.toThrow(/not repairing/);
      expect(readFileSync(p)).toEqual(content);
    }
    await expect(repairPcap(join(dir, 'missing.pcap'))).rejects.toSatisfy((e) => isMgError(e) && e.code === 'MG_ERR_CAPTURE_READ');
  });
});
