import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { isMgError, type ErrorCode } from '../../src/errors.js';
import { PcapFileWriter } from '../../src/pcap/file-writer.js';
import { openCapture, openCaptureAsync, type CaptureReaderOptions } from '../../src/pcap/reader.js';
import { describeWithFixtures, fixture } from '../helpers/fixtures.js';
import { makeTmpDir } from '../helpers/tmp.js';
import { checkIfHave, itNeeds } from '../helpers/needs.js';
import { buildPcap, epochString, frame, md5, PcapngBuilder, tsharkFrames, type Rec, type TsharkFrame } from './pcap-helpers.js';

const { dir, remove } = makeTmpDir('mg-pcap-reader-');
afterAll(remove);

interface Seen extends TsharkFrame {
  linktype: number;
  interfaceId: number;
}

function seen(rec: { buf: Buffer; off: number; caplen: number; origLen: number; tsSec: number; tsNsec: number; linktype: number; interfaceId: number }): Seen {
  return {
    md5: md5(rec.buf.subarray(rec.off, rec.off + rec.caplen)),
    len: rec.origLen,
    capLen: rec.caplen,
    epoch: epochString(rec.tsSec, rec.tsNsec),
    linktype: rec.linktype,
    interfaceId: rec.interfaceId,
  };
}

function readSyncAll(path: string, opts: CaptureReaderOptions = {}): { frames: Seen[]; truncated: boolean; problem: string | null; format: string } {
  const r = openCapture(path, opts);
  const frames: Seen[] = [];
  while (r.next()) frames.push(seen(r.record));
  r.close();
  return { frames, truncated: r.truncated, problem: r.problem, format: r.format };
}

async function readAsyncAll(path: string, opts: CaptureReaderOptions = {}): Promise<{ frames: Seen[]; truncated: boolean }> {
  const r = await openCaptureAsync(path, opts);
  const frames: Seen[] = [];
  for await (const rec of r) frames.push(seen(rec));
  return { frames, truncated: r.truncated };
}

const tsharkView = (f: Seen): TsharkFrame => ({ md5: f.md5, len: f.len, capLen: f.capLen, epoch: f.epoch });

function write(name: string, content: Buffer): string {
  const p = join(dir, name);
  writeFileSync(p, content);
  return p;
}

async function expectCode(p: Promise<unknown> | (() => unknown), code: ErrorCode): Promise<void> {
  let err: unknown;
  try {
    await (typeof p === 'function' ? p() : p);
  } catch (e) {
    err = e;
  }
  expect(isMgError(err) ? err.code : err).toBe(code);
}

/** A mixed set of records: several sizes, some cut short, timestamps with every digit used. */
const RECS: Rec[] = Array.from({ length: 40 }, (_, i) => {
  const len = 14 + ((i * 211) % 1400);
  return { tsSec: 1_600_000_000 + i * 13, tsNsec: (i * 987_654_321) % 1_000_000_000, data: frame(i, len), origLen: i % 4 === 0 ? len + 64 : len };
});

const expectedFrames = (resolution: 'ns' | 'us'): TsharkFrame[] =>
  RECS.map((r) => ({
    md5: md5(r.data),
    len: r.origLen ?? r.data.length,
    capLen: r.data.length,
    epoch: epochString(r.tsSec, resolution === 'us' ? Math.floor(r.tsNsec / 1000) * 1000 : r.tsNsec),
  }));

describe('reader: classic pcap', () => {
  for (const bigEndian of [false, true]) {
    for (const resolution of ['ns', 'us'] as const) {
      it(`reads ${bigEndian ? 'big' : 'little'}-endian ${resolution} pcap the way tshark does, sync and async`, async () => {
        const p = write(`classic-${bigEndian}-${resolution}.pcap`, buildPcap(RECS, { bigEndian, resolution }));
        const sync = readSyncAll(p);
        expect(sync.truncated).toBe(false);
        expect(sync.format).toBe('pcap');
        expect(sync.frames.map(tsharkView)).toEqual(expectedFrames(resolution));
        expect(sync.frames.every((f) => f.linktype === 1 && f.interfaceId === 0)).toBe(true);
        expect((await readAsyncAll(p)).frames).toEqual(sync.frames);
        checkIfHave('tshark', () => expect(tsharkFrames(p)).toEqual(expectedFrames(resolution)));
        const r = openCapture(p);
        expect([r.littleEndian, r.nanosecond, r.snaplen, r.linktype]).toEqual([!bigEndian, resolution === 'ns', 262144, 1]);
        r.close();
      });
    }
  }

  it('reads records that span chunk boundaries and records larger than the chunk', async () => {
    const p = write('chunks.pcap', buildPcap(RECS));
    const whole = readSyncAll(p).frames;
    for (const chunkBytes of [64, 100, 1000, 1517, 4096]) {
      expect([chunkBytes, readSyncAll(p, { chunkBytes }).frames]).toEqual([chunkBytes, whole]);
      expect([chunkBytes, (await readAsyncAll(p, { chunkBytes })).frames]).toEqual([chunkBytes, whole]);
    }
  });

  it('reads ahead into a second buffer and hands out the same records, stops and problems as without', async () => {
    // Records of random sizes (some larger than the space kept for a record cut at a buffer's end, some
    // larger than the buffer), pcap or pcapng, cut or corrupted at a random byte, read up to a random limit.
    const target = join(dir, 'ahead.bin');
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.integer({ min: 0, max: 700 }), { maxLength: 40 }),
        fc.boolean(),
        fc.integer({ min: 64, max: 2048 }),
        fc.option(fc.integer({ min: 0, max: 40_000 })),
        fc.option(fc.integer({ min: 0, max: 40_000 })),
        async (sizes, ng, chunkBytes, cutAt, limit) => {
          const recs = sizes.map((n, i) => ({ tsSec: 1_700_000_000 + i, tsNsec: i * 7, data: frame(i, n + 14) }));
          let bytes: Buffer;
          if (ng) {
            const g = new PcapngBuilder().shb().idb(1, 262144, { tsresol: 9 });
            for (const r of recs) g.epb(0, BigInt(r.tsSec) * 1_000_000_000n + BigInt(r.tsNsec), r.data);
            bytes = g.build();
          } else bytes = buildPcap(recs);
          if (cutAt !== null && cutAt < bytes.length) bytes = bytes.subarray(0, Math.max(cutAt, ng ? 48 : 24));
          writeFileSync(target, bytes);
          const opts: CaptureReaderOptions = limit === null ? { chunkBytes } : { chunkBytes, limitBytes: Math.max(limit, ng ? 48 : 24) };
          const plain = await openCaptureAsync(target, opts);
          const ahead = await openCaptureAsync(target, { ...opts, readAhead: true });
          const a: Seen[] = [];
          const b: Seen[] = [];
          while (await plain.next()) a.push(seen(plain.record));
          while (await ahead.next()) b.push(seen(ahead.record));
          expect(b).toEqual(a);
          expect([ahead.truncated, ahead.problem, ahead.goodOffset]).toEqual([plain.truncated, plain.problem, plain.goodOffset]);
          await plain.close();
          await ahead.close();
        },
      ),
      { numRuns: 150 },
    );
  });

  it('reads only up to a byte limit, as the API does for a file still being written', async () => {
    const bytes = buildPcap(RECS);
    const p = write('limit.pcap', bytes);
    let end = 24;
    for (let i = 0; i < 10; i++) end += 16 + RECS[i]!.data.length;
    const atRecord = readSyncAll(p, { limitBytes: end });
    expect(atRecord.frames).toHaveLength(10);
    expect(atRecord.truncated).toBe(false);
    expect((await readAsyncAll(p, { limitBytes: end })).frames).toEqual(atRecord.frames);
    // A limit inside a record: the nine whole ones, then a cut.
    const inside = readSyncAll(p, { limitBytes: end - 1 });
    expect([inside.frames.length, inside.truncated]).toEqual([9, true]);
  });

  it('stops at a corrupt or cut record, keeps what came before and says why', () => {
    const bytes = buildPcap(RECS.slice(0, 5));
    const third = 24 + 16 * 2 + RECS[0]!.data.length + RECS[1]!.data.length;
    const huge = Buffer.from(bytes);
    huge.writeUInt32LE(0x7fffffff, third + 8);
    const a = readSyncAll(write('huge.pcap', huge));
    expect([a.frames.length, a.truncated]).toEqual([2, true]);
    expect(a.problem).toMatch(/caplen 2147483647/);

    const cut = readSyncAll(write('cut.pcap', bytes.subarray(0, bytes.length - 3)));
    expect([cut.frames.length, cut.truncated]).toEqual([4, true]);
    expect(cut.problem).toMatch(/cut short/);

    const halfHeader = readSyncAll(write('half-header.pcap', bytes.subarray(0, third + 7)));
    expect([halfHeader.frames.length, halfHeader.truncated]).toEqual([2, true]);

    const clean = readSyncAll(write('header-only.pcap', bytes.subarray(0, 24)));
    expect([clean.frames.length, clean.truncated, clean.problem]).toEqual([0, false, null]);
  });

  it('throws coded errors for a missing, unreadable or non-capture file', async () => {
    const bad: [string, Buffer | null, ErrorCode][] = [
      ['missing.pcap', null, 'MG_ERR_CAPTURE_READ'],
      ['empty.pcap', Buffer.alloc(0), 'MG_ERR_CAPTURE_FORMAT'],
      ['tiny.pcap', Buffer.from([0xd4, 0xc3]), 'MG_ERR_CAPTURE_FORMAT'],
      ['short-header.pcap', buildPcap([]).subarray(0, 20), 'MG_ERR_CAPTURE_FORMAT'],
      ['text.pcap', Buffer.from('GET / HTTP/1.1\r\nHost: example\r\n\r\n'), 'MG_ERR_CAPTURE_FORMAT'],
      ['version.pcap', (() => { const b = buildPcap([]); b.writeUInt16LE(3, 4); return b; })(), 'MG_ERR_CAPTURE_FORMAT'],
      ['shb-cut.pcapng', new PcapngBuilder().shb().build().subarray(0, 20), 'MG_ERR_CAPTURE_FORMAT'],
      ['shb-bom.pcapng', (() => { const b = new PcapngBuilder().shb().build(); b.writeUInt32LE(0x11223344, 8); return b; })(), 'MG_ERR_CAPTURE_FORMAT'],
      ['shb-len.pcapng', new PcapngBuilder().shb().build().fill(0xff, 4, 8), 'MG_ERR_CAPTURE_FORMAT'],
    ];
    for (const [name, content, code] of bad) {
      const p = content === null ? join(dir, name) : write(name, content);
      await expectCode(() => openCapture(p), code);
      await expectCode(openCaptureAsync(p), code);
    }
    // A directory opens but cannot be read.
    await expectCode(() => openCapture(dir), 'MG_ERR_CAPTURE_READ');
    await expectCode(openCaptureAsync(dir), 'MG_ERR_CAPTURE_READ');
  });

  it('never throws past the header on random bytes, always ends, and a good file still reads afterwards', () => {
    const good = write('fuzz-good.pcap', buildPcap(RECS.slice(0, 3)));
    const target = join(dir, 'fuzz.bin');
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 600 }), fc.boolean(), fc.integer({ min: 64, max: 300 }), (tail, ng, chunkBytes) => {
        const head = ng ? new PcapngBuilder().shb().idb().build() : buildPcap([]);
        writeFileSync(target, Buffer.concat([head, tail]));
        const r = openCapture(target, { chunkBytes });
        let n = 0;
        while (r.next()) {
          n++;
          const rec = r.record;
          expect(rec.off + rec.caplen).toBeLessThanOrEqual(rec.buf.length);
        }
        r.close();
        expect(n).toBe(r.packets);
        expect(n).toBeLessThanOrEqual(tail.length / 12 + 1);
        expect(readSyncAll(good).frames).toHaveLength(3);
      }),
      { numRuns: 300 },
    );
  });
});

describe('reader: pcapng', () => {
  itNeeds(['editcap'], 'reads editcap conversions of our files (nanosecond and microsecond interfaces) the way tshark does', async () => {
    const ns = write('src-ns.pcap', buildPcap(RECS));
    const us = write('src-us.pcap', buildPcap(RECS, { resolution: 'us' }));
    for (const [src, res] of [[ns, 'ns'], [us, 'us']] as const) {
      const out = join(dir, `conv-${res}.pcapng`);
      execFileSync('editcap', ['-F', 'pcapng', src, out]);
      const sync = readSyncAll(out);
      expect(sync.format).toBe('pcapng');
      expect(sync.truncated).toBe(false);
      expect(sync.frames.map(tsharkView)).toEqual(expectedFrames(res));
      checkIfHave('tshark', () => expect(tsharkFrames(out)).toEqual(expectedFrames(res)));
      for (const chunkBytes of [64, 333]) expect((await readAsyncAll(out, { chunkBytes })).frames).toEqual(sync.frames);
    }
  });

  itNeeds(['mergecap', 'tshark'], 'reads per-interface link types from a multi-interface mergecap file', () => {
    const eth = write('m-eth.pcap', buildPcap(RECS.slice(0, 10)));
    // Raw IP (LINKTYPE_RAW 101) records, interleaved in time with the Ethernet ones.
    const raw = write('m-raw.pcap', buildPcap(RECS.slice(0, 10).map((r) => ({ ...r, tsNsec: r.tsNsec + 1 > 999_999_999 ? r.tsNsec - 1 : r.tsNsec + 1, data: r.data.subarray(14) })), { linktype: 101 }));
    const out = join(dir, 'multi.pcapng');
    execFileSync('mergecap', ['-F', 'pcapng', '-w', out, eth, raw]);
    const frames = readSyncAll(out).frames;
    const ts = tsharkFrames(out);
    const ifaces = execFileSync('tshark', ['-r', out, '-T', 'fields', '-e', 'frame.interface_id'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] })
      .trim()
      .split('\n')
      .map(Number);
    expect(frames.map(tsharkView)).toEqual(ts);
    expect(frames.map((f) => f.interfaceId)).toEqual(ifaces);
    expect(frames.map((f) => f.linktype)).toEqual(ifaces.map((i) => (i === 0 ? 1 : 101)));
  });

  it('reads both byte orders, several sections, every timestamp resolution and every packet block type', async () => {
    const d = (i: number, len = 60) => frame(i, len);
    const b = new PcapngBuilder()
      // Section 1, big-endian: nanosecond and millisecond interfaces, an EPB each, an unknown block between.
      .shb(true)
      .idb(1, 262144, { tsresol: 9 })
      .idb(1, 262144, { tsresol: 3 })
      .epb(0, 1_700_000_000_123_456_789n, d(0))
      // A block type reserved for local use (high bit set): no reader knows it, every reader skips it.
      .block(0x80000123, Buffer.from('local block, to skip'.padEnd(24, '.')))
      .epb(1, 1_700_000_001_234n, d(1, 99), 1500)
      // Section 2, little-endian: interfaces start again. Power-of-two resolutions, a time offset,
      // the default microseconds, a Simple Packet Block and the obsolete Packet Block.
      .shb(false)
      .idb(1, 100, {})
      .idb(1, 262144, { tsresol: 0x80 | 20 })
      .idb(1, 262144, { tsresol: 0x80 | 32 })
      .idb(1, 262144, { tsresol: 9, tsoffset: 1000n })
      // A Simple Packet Block holds min(original length, snaplen) bytes (pcapng draft section 4.4).
      .spb(d(2, 150).subarray(0, 100), 150)
      .epb(1, (1_700_000_002n << 20n) + 524_288n, d(3))
      .epb(2, (1_700_000_003n << 32n) + 1n, d(4))
      .epb(3, 1_700_000_004_000_000_005n, d(5))
      .pb(0, 1_700_000_005_000_001n, d(6, 80), 90)
      // Statistics block (type 5) and a name resolution block (type 4) carry no packets.
      .block(5, Buffer.alloc(12))
      .block(4, Buffer.alloc(4));
    const p = write('mixed.pcapng', b.build());
    const got = readSyncAll(p);
    expect(got.truncated).toBe(false);
    expect(got.frames.map((f) => [f.epoch, f.len, f.capLen, f.interfaceId])).toEqual([
      ['1700000000.123456789', 60, 60, 0],
      ['1700000001.234000000', 1500, 99, 1],
      // SPB: no timestamp, and the interface's snaplen (100) cuts the 150-byte packet.
      ['0.000000000', 150, 100, 0],
      ['1700000002.500000000', 60, 60, 1],
      // 1 / 2^32 s is 0.23 ns: rounds down to 0.
      ['1700000003.000000000', 60, 60, 2],
      // if_tsoffset adds 1000 s.
      ['1700001004.000000005', 60, 60, 3],
      ['1700000005.000001000', 90, 80, 0],
    ]);
    expect(got.frames.map((f) => f.md5)).toEqual([d(0), d(1, 99), d(2, 150).subarray(0, 100), d(3), d(4), d(5), d(6, 80)].map(md5));
    // tshark agrees on bytes, lengths and timestamps (it prints none for the SPB, which has none; we say 0).
    checkIfHave('tshark', () => {
      const ts = tsharkFrames(p).map((f) => (f.epoch === '' ? { ...f, epoch: '0.000000000' } : f));
      expect(ts).toEqual(got.frames.map(tsharkView));
    });
    for (const chunkBytes of [64, 200]) expect((await readAsyncAll(p, { chunkBytes })).frames).toEqual(got.frames);
  });

  it('stops at corrupt blocks and keeps the packets before them', () => {
    const base = () => new PcapngBuilder().shb().idb().epb(0, 1n, frame(0)).epb(0, 2n, frame(1));
    const cases: [string, Buffer, RegExp][] = [
      ['trailer', base().block(6, Buffer.alloc(40), { trailerOverride: 48 }).build(), /lengths disagree/],
      ['odd length', base().raw(Buffer.from('060000003300000000000000', 'hex')).build(), /bad pcapng block length 51/],
      ['tiny length', base().raw(Buffer.from('060000000800000000000000', 'hex')).build(), /bad pcapng block length 8/],
      ['huge length', base().raw(Buffer.from('06000000000000ff00000000', 'hex')).build(), /bad pcapng block length/],
      ['no interface', base().epb(3, 3n, frame(2)).build(), /names interface 3/],
      ['caplen overrun', base().epb(0, 3n, frame(2), 60, 9999).build(), /more than its block holds/],
      ['cut block', base().build().subarray(0, base().build().length - 5), /cut short/],
    ];
    for (const [name, bytes, why] of cases) {
      const r = readSyncAll(write(`bad-${name.replace(/ /g, '-')}.pcapng`, bytes));
      expect([name, r.frames.length, r.truncated]).toEqual([name, name === 'cut block' ? 1 : 2, true]);
      expect(r.problem).toMatch(why);
    }
  });

  itNeeds(['editcap'], 'reads a pcapng written by our writer and converted, up to a byte limit inside a block', () => {
    const src = join(dir, 'w.pcap');
    const w = new PcapFileWriter(src, {});
    for (let i = 0; i < 5; i++) w.append(frame(i), 0, 64, 64, 1_700_000_000 + i, i);
    return w.close().then(() => {
      const out = join(dir, 'w.pcapng');
      execFileSync('editcap', ['-F', 'pcapng', src, out]);
      const size = readFileSync(out).length;
      const r = readSyncAll(out, { limitBytes: size - 10 });
      expect(r.truncated).toBe(true);
      expect(r.frames.length).toBeLessThan(5);
      expect(readSyncAll(out).frames.map((f) => f.epoch)).toEqual([0, 1, 2, 3, 4].map((i) => epochString(1_700_000_000 + i, i)));
    });
  });
});

describeWithFixtures('reader: every shared fixture, against tshark', () => {
  const files = (() => {
    try {
      return readdirSync(fixture('pcap')).filter((f) => /\.pcap(ng)?$/.test(f)).sort();
    } catch {
      return [];
    }
  })();

  it('finds the fixtures, including the pcapng one', () => {
    expect(files.length).toBeGreaterThan(20);
    expect(files).toContain('zeek-geneve-truncated.pcapng');
  });

  it('reads zeek-geneve-truncated.pcapng: one packet, 58 of 156 bytes captured', async () => {
    const p = fixture('pcap', 'zeek-geneve-truncated.pcapng');
    const r = readSyncAll(p);
    expect(r.format).toBe('pcapng');
    expect(r.truncated).toBe(false);
    expect(r.frames.map((f) => [f.len, f.capLen, f.epoch, f.linktype])).toEqual([[156, 58, '1402706119.542940000', 1]]);
    expect((await readAsyncAll(p, { chunkBytes: 64 })).frames).toEqual(r.frames);
  });

  itNeeds(['mergecap', 'tshark'], 'reads every fixture with the same packets, bytes, lengths and timestamps as tshark', () => {
    // One tshark run over all fixtures: mergecap -a concatenates them, record for record, into one
    // pcapng (wiretap reads each original file; one interface per input keeps its link type).
    const merged = join(dir, 'all-fixtures.pcapng');
    execFileSync('mergecap', ['-a', '-F', 'pcapng', '-w', merged, ...files.map((f) => fixture('pcap', f))]);
    const theirs = tsharkFrames(merged);
    let at = 0;
    for (const f of files) {
      const p = fixture('pcap', f);
      const ours = readSyncAll(p);
      expect([f, ours.truncated]).toEqual([f, false]);
      expect([f, ours.frames.map(tsharkView)]).toEqual([f, theirs.slice(at, at + ours.frames.length)]);
      expect([f, readSyncAll(p, { chunkBytes: 4096 }).frames]).toEqual([f, ours.frames]);
      at += ours.frames.length;
    }
    expect(at).toBe(theirs.length);
  });
});
