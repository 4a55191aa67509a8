import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, readlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { afterAll, describe, expect, it } from 'vitest';
import { BodyDigest } from '../../src/api/http.js';
import { isMgError } from '../../src/errors.js';
import { PcapFileWriter } from '../../src/pcap/file-writer.js';
import { mergeCaptures, type MergeOptions, type MergeStats } from '../../src/pcap/merge.js';
import type { ReadHandle } from '../../src/pcap/reader.js';

/** An input with an opener of its own (as an archived object in S3): its name, and how to open it. */
interface CaptureInput {
  name: string;
  open(): Promise<ReadHandle>;
}
import { openCapture } from '../../src/pcap/reader.js';
import { checkIfHave, describeNeeds, itNeeds } from '../helpers/needs.js';
import { expectReadable } from '../helpers/read-back.js';
import { makeTmpDir } from '../helpers/tmp.js';
import { buildPcap, frame, tsharkFrames, md5, epochString, type Rec } from './pcap-helpers.js';

const { dir, remove } = makeTmpDir('mg-pcap-merge-');
afterAll(remove);

/** A record whose payload carries a label, so the merged order can be read back. */
function rec(label: number, tsSec: number, tsNsec: number, len = 60): Rec {
  return { tsSec, tsNsec, data: frame(label, len) };
}

function write(name: string, content: Buffer): string {
  const p = join(dir, name);
  writeFileSync(p, content);
  return p;
}

async function mergeToBuffer(input: (string | CaptureInput)[], opts: MergeOptions = {}): Promise<{ out: Buffer; stats: MergeStats; summary: MergeStats | null }> {
  // Inputs with an opener of their own go in as their names plus MergeOptions.openers (as the API's S3 inputs do).
  const files = input.map((f) => (typeof f === 'string' ? f : f.name));
  const openers = input.map((f) => (typeof f === 'string' ? undefined : () => f.open()));
  const s = mergeCaptures(files, openers.some((o) => o !== undefined) ? { ...opts, openers } : opts);
  let summary: MergeStats | null = null;
  s.on('summary', (st: MergeStats) => (summary = { ...st }));
  const chunks: Buffer[] = [];
  for await (const c of s) chunks.push(c as Buffer);
  return { out: Buffer.concat(chunks), stats: s.stats, summary };
}

function labels(path: string): number[] {
  const r = openCapture(path);
  const out: number[] = [];
  while (r.next()) out.push(r.record.buf.readUInt32BE(r.record.off + 14));
  expect(r.truncated).toBe(false);
  r.close();
  return out;
}

const T = 1_700_000_000;
// Three overlapping inputs in three formats. Labels are the expected merged position.
const A = [rec(0, T, 0), rec(2, T, 300), rec(3, T, 300), rec(7, T + 1, 0), rec(9, T + 2, 5)];
// B ties with A at (T, 300): A comes first (input order). Its 1 ns steps would vanish in float nanoseconds.
const B = [rec(1, T, 100), rec(4, T, 301), rec(5, T, 302), rec(8, T + 1, 999_999_999)];
// C is a microsecond pcap, big-endian: its timestamps are whole microseconds.
const C = [rec(6, T, 999_000), rec(10, T + 3, 0, 1514)];

function inputs(): string[] {
  return [write('a.pcap', buildPcap(A)), write('b.pcap', buildPcap(B)), write('c.pcap', buildPcap(C, { bigEndian: true, resolution: 'us' }))];
}

describe('mergeCaptures', () => {
  it('merges overlapping files of mixed formats into one nanosecond pcap in timestamp order, byte for byte', async () => {
    const files = inputs();
    const { out, stats, summary } = await mergeToBuffer(files);
    const all = [...A, ...B, ...C].sort((x, y) => x.data.readUInt32BE(14) - y.data.readUInt32BE(14));
    // The expected output: our global header and the records in label order.
    expect(out).toEqual(buildPcap(all));
    expect(stats).toMatchObject({ packets: 11, bytes: out.length, read: 11, filtered: 0, skipped: 0, outsideWindow: 0, truncated: [], linktype: 1 });
    expect(summary).toEqual(stats);
    const p = write('merged.pcap', out);
    expect(labels(p)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    checkIfHave('tshark', () =>
      expect(tsharkFrames(p)).toEqual(all.map((r) => ({ md5: md5(r.data), len: r.data.length, capLen: r.data.length, epoch: epochString(r.tsSec, r.tsNsec) }))),
    );
  });

  itNeeds(['editcap'], 'also merges a pcapng input (editcap-converted) with classic ones', async () => {
    const [a, b] = inputs();
    const ng = join(dir, 'c.pcapng');
    execFileSync('editcap', ['-F', 'pcapng', join(dir, 'c.pcap'), ng]);
    const { out } = await mergeToBuffer([a!, b!, ng]);
    expect(labels(write('merged-ng.pcap', out))).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
  });

  it('keeps a window [from, to): a record exactly at `from` is in, one exactly at `to` is out', async () => {
    const files = inputs();
    const { out, stats } = await mergeToBuffer(files, { fromSec: T, fromNsec: 300, toSec: T + 1, toNsec: 999_999_999 });
    expect(labels(write('window.pcap', out))).toEqual([2, 3, 4, 5, 6, 7]);
    // The merge stops at the first record at or past `to`; the earlier ones were read and skipped.
    expect(stats.outsideWindow).toBe(2);
    expect(stats.packets).toBe(6);
    // Open-ended on either side.
    expect(labels(write('from-only.pcap', (await mergeToBuffer(files, { fromSec: T + 1 })).out))).toEqual([7, 8, 9, 10]);
    expect(labels(write('to-only.pcap', (await mergeToBuffer(files, { toSec: T, toNsec: 301 })).out))).toEqual([0, 1, 2, 3]);
    // An empty window still yields a valid, empty pcap.
    const empty = write('empty-window.pcap', (await mergeToBuffer(files, { fromSec: T + 10 })).out);
    expectReadable(empty, 0);
  });

  it('filters frames with the predicate, which sees each frame in place', async () => {
    const files = inputs();
    const seen: number[] = [];
    const { out, stats } = await mergeToBuffer(files, {
      predicate: (buf, off, end) => {
        seen.push(end - off);
        return buf.readUInt32BE(off + 14) % 2 === 0;
      },
    });
    expect(labels(write('even.pcap', out))).toEqual([0, 2, 4, 6, 8, 10]);
    expect(stats.filtered).toBe(5);
    expect(seen.filter((n) => n === 1514)).toHaveLength(1);
  });

  it('reads each file only up to its byte limit, as for a file still being written', async () => {
    const files = inputs();
    const twoRecords = 24 + 2 * (16 + 60);
    const { out } = await mergeToBuffer(files, { limitBytesPerFile: [twoRecords, undefined, undefined] });
    expect(labels(write('limited.pcap', out))).toEqual([0, 1, 2, 4, 5, 6, 8, 10]);
  });

  it('reports an input that ends in a corrupt record, and merges what it had', async () => {
    const [a, b] = inputs();
    const bad = Buffer.from(readFileSync(b!));
    bad.writeUInt32LE(0x7fffffff, 24 + 2 * 76 + 8);
    const badPath = write('b-bad.pcap', bad);
    const { out, stats } = await mergeToBuffer([a!, badPath]);
    expect(labels(write('partial.pcap', out))).toEqual([0, 1, 2, 3, 4, 7, 9]);
    expect(stats.truncated).toEqual([{ path: badPath, problem: expect.stringMatching(/caplen/) }]);
  });

  it('fails with a coded error, before any byte, when an input is missing or not a capture', async () => {
    const [a] = inputs();
    for (const [p, code] of [
      [join(dir, 'gone.pcap'), 'MG_ERR_CAPTURE_READ'],
      [write('junk.pcap', Buffer.from('not a capture file at all, no')), 'MG_ERR_CAPTURE_FORMAT'],
    ] as const) {
      const chunks: Buffer[] = [];
      const err = await (async () => {
        try {
          for await (const c of mergeCaptures([a!, p])) chunks.push(c as Buffer);
        } catch (e) {
          return e;
        }
        return null;
      })();
      expect(isMgError(err) ? err.code : err).toBe(code);
      expect(chunks).toEqual([]);
    }
  });

  it('skips records of another link type than the output', async () => {
    const [a] = inputs();
    const raw = write('raw.pcap', buildPcap([rec(99, T, 50)], { linktype: 101 }));
    const { out, stats } = await mergeToBuffer([a!, raw]);
    expect(labels(write('eth-only.pcap', out))).toEqual([0, 2, 3, 7, 9]);
    expect(stats.skipped).toBe(1);
  });
});

/** Bytes read so far from each open input, from the kernel's file positions (Linux /proc). */
function openInputs(paths: string[]): number {
  return readdirSync('/proc/self/fd').filter((fd) => {
    try {
      return paths.includes(readlinkSync(`/proc/self/fd/${fd}`));
    } catch {
      return false;
    }
  }).length;
}

describeNeeds(['procfs'], 'mergeCaptures: streaming', () => {
  const N = 8000;
  const LEN = 1200;
  const big: string[] = [];

  it('streams large inputs to a slow consumer reading no further ahead than two chunks per input', async () => {
    // Three ~10 MB files whose records interleave one by one.
    for (let k = 0; k < 3; k++) {
      const p = join(dir, `big-${k}.pcap`);
      const w = new PcapFileWriter(p, {});
      for (let i = 0; i < N; i++) w.append(frame(i * 3 + k, LEN), 0, LEN, LEN, T + Math.floor(i / 1000), (i % 1000) * 3 + k);
      await w.close();
      big.push(p);
    }
    const chunkBytes = 256 * 1024;
    const s = mergeCaptures(big, { chunkBytes });
    let consumed = 0;
    let maxAhead = 0;
    let next = 0;
    let ordered = true;
    let carry = Buffer.alloc(0);
    await pipeline(
      s,
      new Writable({
        highWaterMark: 16 * 1024,
        write(chunk: Buffer, _enc, done) {
          consumed += chunk.length;
          maxAhead = Math.max(maxAhead, s.inputBytesRead - consumed);
          // Check the order as it streams: labels must come 0, 1, 2, ...
          let b = Buffer.concat([carry, chunk]);
          let o = next === 0 ? 24 : 0;
          while (b.length - o >= 16 && b.length - o >= 16 + b.readUInt32LE(o + 8)) {
            if (b.readUInt32BE(o + 16 + 14) !== next) ordered = false;
            next++;
            o += 16 + b.readUInt32LE(o + 8);
          }
          carry = b.subarray(o);
          b = carry;
          // A slow disk or network on the other side.
          setTimeout(done, 0);
        },
      }),
    );
    expect(ordered).toBe(true);
    expect(next).toBe(3 * N);
    expect(s.stats.packets).toBe(3 * N);
    expect(consumed).toBe(24 + 3 * N * (16 + LEN));
    // Reading stays within two chunks per input (one merged, one read ahead) plus what the stream
    // buffers, for ~29 MB of input.
    expect(maxAhead).toBeLessThan(2 * 3 * chunkBytes + 256 * 1024);
    expect(maxAhead).toBeGreaterThan(0);
    expect(openInputs(big)).toBe(0);
  });

  it('aborts mid-stream: the stream errors with AbortError and every input is closed', async () => {
    expect(big).toHaveLength(3);
    const ac = new AbortController();
    const s = mergeCaptures(big, { signal: ac.signal });
    let got = 0;
    const err = await (async () => {
      try {
        for await (const c of s) {
          got += (c as Buffer).length;
          if (got > 1_000_000) ac.abort();
        }
      } catch (e) {
        return e as Error;
      }
      return null;
    })();
    expect(err?.name).toBe('AbortError');
    expect(got).toBeLessThan(3_000_000);
    await new Promise((r) => setImmediate(r));
    expect(openInputs(big)).toBe(0);
  });
});

/** A deterministic generator (mulberry32), so a failing case can be replayed. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

describeNeeds(['mergecap'], 'mergeCaptures: byte for byte what mergecap writes', () => {
  let label = 0;
  /** n records from `start` (ns offset from T), each step ns after the previous; varied sizes, some cut short. */
  function series(rand: () => number, n: number, start: number, step: () => number): Rec[] {
    const out: Rec[] = [];
    let t = start;
    for (let i = 0; i < n; i++) {
      const len = 60 + Math.floor(rand() * 1455);
      const cut = rand() < 0.05;
      out.push({ tsSec: T + Math.floor(t / 1e9), tsNsec: t % 1e9, data: frame(label++, len), ...(cut ? { origLen: len + 100 } : {}) });
      t += step();
    }
    return out;
  }

  /**
   * mergecap's nanosecond-pcap output for the same files (-F nsecpcap: -F pcap would round to
   * microseconds). On equal timestamps mergecap takes the file named last first; we keep input order
   * (the earlier rotated file first), so it is given the files in reverse.
   */
  function mergecap(files: string[], name: string): Buffer {
    const out = join(dir, name);
    execFileSync('mergecap', ['-F', 'nsecpcap', '-w', out, ...[...files].reverse()]);
    return readFileSync(out);
  }

  /** Our output through a consumer that copies each chunk, with output chunks reused once it has (heldDownstream). */
  async function mergeReusing(files: string[], opts: MergeOptions): Promise<Buffer> {
    const parts: Buffer[] = [];
    const sink = new Writable({
      highWaterMark: 4096,
      write(chunk: Buffer, _enc, done) {
        parts.push(Buffer.from(chunk));
        setImmediate(done);
      },
    });
    await pipeline(mergeCaptures(files, { ...opts, heldDownstream: () => sink.writableLength }), sink);
    return Buffer.concat(parts);
  }

  const cases: [string, (rand: () => number) => Buffer[]][] = [
    // One packet of each file in turn, with exact ties between files (input order decides).
    ['interleaved, with ties', (rand) => [0, 1, 2, 3].map((k) => buildPcap(series(rand, 400, k * 250, () => 1000).map((r, i) => (i % 7 === 0 ? { ...r, tsNsec: r.tsNsec - (r.tsNsec % 1000) } : r))))],
    // Rotated files of one source that follow each other; the second starts at the first's last timestamp.
    [
      'rotated, touching at the boundary',
      (rand) => {
        const a = series(rand, 700, 0, () => 1 + Math.floor(rand() * 5000));
        const last = a[a.length - 1]!;
        const b = series(rand, 700, (last.tsSec - T) * 1e9 + last.tsNsec, () => 1 + Math.floor(rand() * 5000));
        const lastB = b[b.length - 1]!;
        const c = series(rand, 700, (lastB.tsSec - T) * 1e9 + lastB.tsNsec + 1, () => 1 + Math.floor(rand() * 5000));
        return [buildPcap(a), buildPcap(b), buildPcap(c)];
      },
    ],
    // Bursts: files overlap in time, but each runs several packets ahead before the other catches up.
    ['bursts that overlap', (rand) => [0, 1, 2].map(() => buildPcap(series(rand, 600, Math.floor(rand() * 1e6), () => (rand() < 0.1 ? 200_000 : 10))))],
    // A microsecond, big-endian file among nanosecond ones: its records are rewritten, the others copied.
    [
      'mixed formats',
      (rand) => [buildPcap(series(rand, 500, 0, () => 3000)), buildPcap(series(rand, 500, 1000, () => 3000), { bigEndian: true, resolution: 'us' }), buildPcap(series(rand, 500, 500, () => 3000))],
    ],
  ];

  for (const [name, make] of cases) {
    it(`${name}: whole files, small and large buffers, fresh and reused output chunks`, async () => {
      const slug = name.replace(/\W+/g, '-');
      const files = make(prng(name.length * 7919)).map((b, i) => write(`mc-${slug}-${i}.pcap`, b));
      const theirs = mergecap(files, `mc-${slug}-mergecap.pcap`);
      const total = files.reduce((n, f) => n + openCaptureCount(f), 0);
      expect(theirs.length).toBeGreaterThan(24);
      for (const opts of [{}, { chunkBytes: 4096, outputChunkBytes: 1000 }, { chunkBytes: 64 * 1024, outputChunkBytes: 64 * 1024 }] as MergeOptions[]) {
        const { out, stats } = await mergeToBuffer(files, opts);
        expect(stats.packets).toBe(total);
        expect(out.equals(theirs), `${name} ${JSON.stringify(opts)}: differs from mergecap at byte ${firstDiff(out, theirs)}`).toBe(true);
        const reused = await mergeReusing(files, opts);
        expect(reused.equals(theirs), `${name} ${JSON.stringify(opts)} reusing chunks: differs at byte ${firstDiff(reused, theirs)}`).toBe(true);
      }
    });
  }
});

function openCaptureCount(path: string): number {
  const r = openCapture(path);
  let n = 0;
  while (r.next()) n++;
  r.close();
  return n;
}

function firstDiff(a: Buffer, b: Buffer): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return i;
  return n;
}

describe('mergeCaptures: sequential files (rotated), whole ones streamed as bytes', () => {
  // Three rotated files of one source, in our own format, then a fourth in another format: every window
  // gives the same bytes with `sequential` and `wholeFiles` as through the heap merge.
  const F = [
    Array.from({ length: 400 }, (_, i) => rec(i, T + i, 1000, 60 + (i % 300))),
    Array.from({ length: 300 }, (_, i) => rec(400 + i, T + 400 + i, 0, 200)),
    Array.from({ length: 200 }, (_, i) => rec(700 + i, T + 700 + i, 999_999_999, 1514)),
    Array.from({ length: 50 }, (_, i) => rec(900 + i, T + 900 + i, 0)),
  ];
  const paths = () => [
    write('s0.pcap', buildPcap(F[0]!)),
    write('s1.pcap', buildPcap(F[1]!)),
    write('s2.pcap', buildPcap(F[2]!)),
    write('s3.pcap', buildPcap(F[3]!, { bigEndian: true, resolution: 'us' })),
  ];

  it('gives the merge bytes for windows inside, across and around the files, with few output bytes per chunk', async () => {
    const files = paths();
    const sizes = files.map((f) => readFileSync(f).length);
    const windows: [number, number][] = [
      [0, 0],
      [T + 100, T + 800],
      [T + 400, T + 700],
      [T + 400, T + 699],
      [T + 399, T + 401],
      [T + 950, T + 1000],
    ];
    for (const [from, to] of windows) {
      const win = from === 0 ? {} : { fromSec: from, fromNsec: 0, toSec: to, toNsec: 0 };
      // What the route would say: a file is whole when all of its records are inside the window.
      const whole = F.map((recs, i) => (i < 3 && (from === 0 || (recs[0]!.tsSec >= from && recs[recs.length - 1]!.tsSec < to)) ? recs.length : undefined));
      const base = await mergeToBuffer(files, { ...win, limitBytesPerFile: sizes });
      const seq = await mergeToBuffer(files, { ...win, limitBytesPerFile: sizes, sequential: true, wholeFiles: whole, outputChunkBytes: 4096 });
      expect(seq.out.equals(base.out), `window ${from - T}..${to - T}: first difference at ${firstDiff(seq.out, base.out)}`).toBe(true);
      expect(seq.stats.packets).toBe(base.stats.packets);
      expect(seq.stats.wholeFiles).toBe(whole.filter((w) => w !== undefined).length);
    }
  });

  it('streams a whole file only up to its byte limit, and a whole file of another link type goes through the record path', async () => {
    const files = paths();
    const sizes = files.map((f) => readFileSync(f).length);
    const other = write('s-raw.pcap', buildPcap(F[1]!, { linktype: 101 }));
    const r = await mergeToBuffer([files[0]!, other, files[2]!], { limitBytesPerFile: [sizes[0]!, readFileSync(other).length, sizes[2]!], sequential: true, wholeFiles: [400, 300, 200] });
    expect(r.stats.skipped).toBe(300);
    expect(r.stats.wholeFiles).toBe(2);
    expect(labels(write('s-out.pcap', r.out))).toEqual([...F[0]!, ...F[2]!].map((x) => x.data.readUInt32BE(14)));
  });
});

describe('mergeCaptures: the SHA-256 of the output (MergeOptions.digest)', () => {
  const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');
  /** Merge keeping the digest: it must be node:crypto's over the bytes that came out, and count them. */
  async function hashed(files: string[], opts: MergeOptions): Promise<{ out: Buffer; stats: MergeStats }> {
    const digest = new BodyDigest();
    const r = await mergeToBuffer(files, { ...opts, digest });
    expect(digest.digest()).toBe(sha256(r.out));
    expect(digest.bytes).toBe(r.out.length);
    return r;
  }
  const T = 1_764_000_000;

  it('hashes exactly the bytes pushed: interleaved, filtered, window edges on ties, small chunks', async () => {
    const files: string[] = [];
    for (let k = 0; k < 3; k++) {
      const recs: Rec[] = [];
      for (let i = 0; i < 900; i++) recs.push({ tsSec: T + Math.floor(i / 100), tsNsec: (i % 100) * 10_000_000 + (i % 3 === 0 ? 0 : k), data: frame(k * 10_000 + i, 60 + ((i * 13 + k) % 400)) });
      files.push(write(`digest-${k}.pcap`, buildPcap(recs)));
    }
    const all = await hashed(files, { chunkBytes: 2048, outputChunkBytes: 4096 });
    expect(all.stats.packets).toBe(2700);
    const odd = (buf: Buffer, off: number, end: number) => (buf[off + 17]! + end - off) % 3 !== 0;
    const filtered = await hashed(files, { predicate: odd, chunkBytes: 2048, outputChunkBytes: 4096 });
    expect(filtered.stats.filtered).toBeGreaterThan(0);
    expect(filtered.stats.packets).toBeGreaterThan(0);
    const edges = await hashed(files, { chunkBytes: 1500, outputChunkBytes: 5000, fromSec: T + 2, fromNsec: 30_000_000, toSec: T + 7, toNsec: 60_000_000 });
    expect(edges.stats.outsideWindow).toBeGreaterThan(0);
    // An empty window: the global header alone, hashed.
    const none = await hashed(files, { fromSec: T + 50, toSec: T + 60 });
    expect(none.out.length).toBe(24);
  });

  it('hashes files streamed as byte ranges (sequential, wholeFiles) with those read record by record', async () => {
    const seq: string[] = [];
    for (let f = 0; f < 4; f++) seq.push(write(`digest-seq-${f}.pcap`, buildPcap(Array.from({ length: 300 }, (_, i) => ({ tsSec: T + f, tsNsec: i * 1000, data: frame(f * 1000 + i, 100 + (i % 50)) })))));
    const limits = seq.map((p) => readFileSync(p).length);
    const window = { fromSec: T, fromNsec: 5000, toSec: T + 3, toNsec: 100_000 };
    const ranged = await hashed(seq, { sequential: true, wholeFiles: [undefined, 300, 300, undefined], limitBytesPerFile: limits, ...window, chunkBytes: 4096, outputChunkBytes: 3000 });
    expect(ranged.stats.wholeFiles).toBe(2);
    expect(ranged.out.equals((await mergeToBuffer(seq, window)).out)).toBe(true);
  });

  it('a digest that is done takes no more bytes', () => {
    const d = new BodyDigest();
    d.update(Buffer.from('abc'), 0, 3);
    expect(d.digest()).toBe(sha256(Buffer.from('abc')));
    expect(() => d.update(Buffer.from('x'), 0, 1)).toThrow();
    expect(d.bytes).toBe(3);
  });
});

describe('mergeCaptures: inputs that are not local files', () => {
  /** A capture held in memory, read by positional reads in small, uneven pieces (as ranged GETs may come). */
  function memoryInput(name: string, bytes: Buffer, opened: { open: number; closed: number }): CaptureInput {
    return {
      name,
      async open() {
        opened.open++;
        return {
          async read(buf: Buffer, off: number, len: number, pos: number) {
            await new Promise((r) => setImmediate(r));
            const n = Math.max(0, Math.min(len, 777 + (pos % 1000), bytes.length - pos));
            bytes.copy(buf, off, pos, pos + n);
            return { bytesRead: n };
          },
          async close() {
            opened.closed++;
          },
        };
      },
    };
  }

  it('merges inputs with openers of their own (short reads) to the same bytes as the same files on disk, in every mode', async () => {
    const A = Array.from({ length: 300 }, (_, i) => rec(i * 2, T + i, 0, 60 + (i % 500)));
    const B = Array.from({ length: 300 }, (_, i) => rec(i * 2 + 1, T + i, 1, 1514));
    const C = Array.from({ length: 100 }, (_, i) => rec(1000 + i, T + 400 + i, 0));
    const cut = buildPcap(B).subarray(0, buildPcap(B).length - 5);
    const bytes = [buildPcap(A), cut, buildPcap(C, { bigEndian: true, resolution: 'us' })];
    const paths = bytes.map((b, i) => write(`src-${i}.pcap`, b));
    const opened = { open: 0, closed: 0 };
    const inputs = bytes.map((b, i) => memoryInput(`mem-${i}`, b, opened));
    const onDisk = await mergeToBuffer(paths, { chunkBytes: 4096 });
    const inMemory = await mergeToBuffer(inputs, { chunkBytes: 4096 });
    expect(inMemory.out.equals(onDisk.out), `first difference at ${firstDiff(inMemory.out, onDisk.out)} of ${onDisk.out.length}/${inMemory.out.length}; ${JSON.stringify(onDisk.stats)} ${JSON.stringify(inMemory.stats)}`).toBe(true);
    expect(inMemory.stats.truncated.map((t) => t.path)).toEqual(['mem-1']);
    expect(onDisk.stats.truncated.map((t) => t.problem)).toEqual(inMemory.stats.truncated.map((t) => t.problem));
    // Sequential, with a whole file streamed as its byte range.
    const seqOpts: MergeOptions = { sequential: true, wholeFiles: [300, undefined], limitBytesPerFile: [bytes[0]!.length, bytes[2]!.length], outputChunkBytes: 4096 };
    const seqDisk = await mergeToBuffer([paths[0]!, paths[2]!], seqOpts);
    const seqMem = await mergeToBuffer([inputs[0]!, inputs[2]!], seqOpts);
    expect(seqMem.out.equals(seqDisk.out)).toBe(true);
    expect(seqMem.stats.wholeFiles).toBe(1);
    expect(opened.closed).toBe(opened.open);
  });

  it('opens its inputs side by side, reports the failing input of lowest index whatever finished first, and closes every one', async () => {
    const good = buildPcap(Array.from({ length: 50 }, (_, i) => rec(i, T + i, 0)));
    const opened = { open: 0, closed: 0 };
    let inFlight = 0;
    let peak = 0;
    // Input 3 answers slowly with a bad header; input 6 fails at once; the rest are good captures.
    const slowBad: CaptureInput = {
      name: 'mem-bad',
      async open() {
        opened.open++;
        return {
          async read(buf: Buffer, off: number) {
            await new Promise((r) => setTimeout(r, 30));
            const junk = Buffer.from('not a capture file at all, no');
            junk.copy(buf, off);
            return { bytesRead: junk.length };
          },
          async close() {
            opened.closed++;
          },
        };
      },
    };
    const inputs: CaptureInput[] = Array.from({ length: 10 }, (_, i) => {
      if (i === 3) return slowBad;
      if (i === 6) return { name: 'mem-gone', open: () => Promise.reject(new Error('NoSuchKey')) };
      return {
        name: `mem-${i}`,
        async open() {
          opened.open++;
          inFlight++;
          peak = Math.max(peak, inFlight);
          await new Promise((r) => setTimeout(r, 5));
          inFlight--;
          return {
            async read(buf: Buffer, off: number, len: number, pos: number) {
              const n = Math.max(0, Math.min(len, good.length - pos));
              good.copy(buf, off, pos, pos + n);
              return { bytesRead: n };
            },
            async close() {
              opened.closed++;
            },
          };
        },
      };
    });
    const merge = mergeCaptures(inputs.map((x) => x.name), { openers: inputs.map((x) => () => x.open()) });
    const streamErr = new Promise((r) => merge.once('error', r));
    const err = await merge.ready().then(
      () => null,
      (e: unknown) => e,
    );
    expect(isMgError(err) && err.code).toBe('MG_ERR_CAPTURE_FORMAT');
    expect((err as Error).message).toContain('mem-bad');
    expect(peak).toBeGreaterThan(1);
    expect(await streamErr).toBe(err);
    if (!merge.closed) await new Promise((r) => merge.once('close', r));
    expect(opened.closed).toBe(opened.open);
  });

  it('fails with MG_ERR_CAPTURE_READ naming the input when its source cannot be opened', async () => {
    const broken: CaptureInput = { name: 's3://bucket/gone.pcap', open: () => Promise.reject(new Error('NoSuchKey')) };
    const chunks: Buffer[] = [];
    const e = await (async () => {
      try {
        for await (const c of mergeCaptures([broken.name], { openers: [() => broken.open()] })) chunks.push(c as Buffer);
      } catch (x) {
        return x;
      }
      return null;
    })();
    expect(chunks).toEqual([]);
    expect(isMgError(e) && e.code).toBe('MG_ERR_CAPTURE_READ');
    expect((e as Error).message).toContain('s3://bucket/gone.pcap: NoSuchKey');
  });
});
