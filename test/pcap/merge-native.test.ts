/**
 * The native merge step (native/src/merge.cc, MergeOptions.mergeStep) against the JavaScript merge: the
 * same bytes and the same stats on every input, whatever the interleaving, ties, window, buffer sizes,
 * cut files and records the step hands back to JavaScript. With MergeOptions.digest (the API's SHA-256
 * of the body) the merge hashes exactly the bytes it pushes, whichever path wrote them.
 */
import { createHash } from 'node:crypto';
import { readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, expect, it } from 'vitest';
import { BodyDigest } from '../../src/api/http.js';
import { loadMergeStep } from '../../src/api/native-merge.js';
import { mergeCaptures, type MergeOptions, type MergeStats, type MergeStepFn } from '../../src/pcap/merge.js';
import { fixture, HAVE_FIXTURES } from '../helpers/fixtures.js';
import { describeNeeds } from '../helpers/needs.js';
import { makeTmpDir } from '../helpers/tmp.js';
import { buildPcap, frame, type Rec } from './pcap-helpers.js';

const { dir, remove } = makeTmpDir('mg-pcap-merge-native-');
afterAll(remove);

let seq = 0;
function write(content: Buffer): string {
  const p = join(dir, `in-${seq++}.pcap`);
  writeFileSync(p, content);
  return p;
}

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** Merge; with `hashed`, the merge keeps the body's SHA-256 too, which must be node:crypto's over the output. */
async function merge(files: string[], opts: MergeOptions, hashed = false): Promise<{ out: Buffer; stats: MergeStats; steps: number }> {
  const digest = hashed ? new BodyDigest() : null;
  const s = mergeCaptures(files, digest !== null ? { ...opts, digest } : opts);
  const chunks: Buffer[] = [];
  for await (const c of s) chunks.push(Buffer.from(c as Buffer));
  const out = Buffer.concat(chunks);
  if (digest !== null) {
    expect(digest.digest()).toBe(sha256(out));
    expect(digest.bytes).toBe(out.length);
    expect(s.bytesPushed).toBe(out.length);
  }
  return { out, stats: s.stats, steps: s.nativeSteps };
}

/**
 * Merge with and without the step; both must agree byte for byte and in every count. Each is run again
 * keeping the SHA-256: the same bytes, and node:crypto's digest of them.
 */
async function both(files: string[], opts: MergeOptions, step: MergeStepFn): Promise<{ out: Buffer; stats: MergeStats; steps: number }> {
  const js = await merge(files, opts);
  const native = await merge(files, { ...opts, mergeStep: step });
  expect(native.out.equals(js.out)).toBe(true);
  expect(native.stats).toEqual(js.stats);
  expect(js.steps).toBe(0);
  for (const o of [opts, { ...opts, mergeStep: step }]) {
    const h = await merge(files, o, true);
    expect(h.out.equals(js.out)).toBe(true);
    expect(h.stats).toEqual(js.stats);
  }
  return native;
}

describeNeeds(['native-merge'], 'mergeCaptures with the native merge step', () => {
  const load = loadMergeStep();
  const step = (load.ok ? load.step : null)!;
  const T = 1_764_000_000;

  it('merges interleaved files with ties and a window to the JavaScript merge bytes, in few native calls', async () => {
    // 4 inputs, 2,000 records each, every fourth timestamp shared by all of them (ties: input order).
    const files: string[] = [];
    for (let k = 0; k < 4; k++) {
      const recs: Rec[] = [];
      for (let i = 0; i < 2000; i++) {
        const t = i % 4 === 0 ? i * 4 : i * 4 + k;
        recs.push({ tsSec: T + Math.floor(t / 1000), tsNsec: (t % 1000) * 1_000_000, data: frame(k * 100_000 + i, 60 + ((i * 7 + k) % 200)) });
      }
      files.push(write(buildPcap(recs)));
    }
    const whole = await both(files, { chunkBytes: 4096, outputChunkBytes: 16 * 1024 }, step);
    expect(whole.stats.packets).toBe(8000);
    expect(whole.steps).toBeGreaterThan(0);
    // The native calls are per refill or output chunk, not per record.
    expect(whole.steps).toBeLessThan(8000 / 4);
    // A window whose edges fall on tied timestamps: `from` included, `to` excluded.
    const w = await both(files, { chunkBytes: 1024, outputChunkBytes: 8192, fromSec: T + 1, fromNsec: 600_000_000, toSec: T + 6, toNsec: 400_000_000 }, step);
    expect(w.stats.outsideWindow).toBeGreaterThan(0);
    expect(w.stats.packets).toBeGreaterThan(0);
    expect(w.stats.packets).toBeLessThan(8000);
  });

  it('agrees with the JavaScript merge on random interleavings, ties, windows, buffer sizes, odd records and cut files', async () => {
    const recArb = fc.record({
      dt: fc.integer({ min: 0, max: 3 }),
      len: fc.integer({ min: 0, max: 300 }),
      // Records the step must hand back: nanoseconds past a second, origLen below caplen or 0.
      odd: fc.constantFrom('none', 'none', 'none', 'none', 'none', 'none', 'nsec', 'short', 'zero'),
    });
    const inputArb = fc.record({
      recs: fc.array(recArb, { minLength: 0, maxLength: 60 }),
      start: fc.integer({ min: 0, max: 20 }),
      cut: fc.integer({ min: 0, max: 40 }),
      // Not our format (a microsecond pcap): the whole merge stays in JavaScript while it is in the heap.
      usec: fc.boolean(),
      limit: fc.option(fc.integer({ min: 24, max: 20_000 }), { nil: undefined }),
    });
    await fc.assert(
      fc.asyncProperty(
        fc.array(inputArb, { minLength: 1, maxLength: 6 }),
        fc.option(fc.integer({ min: 0, max: 120 }), { nil: undefined }),
        fc.option(fc.integer({ min: 0, max: 120 }), { nil: undefined }),
        fc.integer({ min: 64, max: 3000 }),
        fc.integer({ min: 40, max: 5000 }),
        fc.boolean(),
        async (inputs, from, to, chunkBytes, outputChunkBytes, farTo) => {
          let label = 0;
          const files = inputs.map((inp) => {
            let t = inp.start;
            const recs: Rec[] = inp.recs.map((r) => {
              t += r.dt;
              const data = frame(label++, Math.max(r.len, 18));
              const rec: Rec = { tsSec: T + Math.floor(t / 10), tsNsec: (t % 10) * 100_000_000 + (inp.usec ? 0 : 7), data: data.subarray(0, r.len) };
              if (r.odd === 'nsec' && !inp.usec) rec.tsNsec += 1_000_000_000;
              if (r.odd === 'short' && r.len > 0) rec.origLen = r.len - 1;
              if (r.odd === 'zero') rec.origLen = 0;
              return rec;
            });
            const b = buildPcap(recs, inp.usec ? { resolution: 'us' } : {});
            // Cut the file inside its last records (a file still being written, or damaged).
            return write(inp.cut > 0 && inp.cut < b.length - 24 && inp.recs.length > 0 ? b.subarray(0, b.length - inp.cut) : b);
          });
          const opts: MergeOptions = { chunkBytes, outputChunkBytes, limitBytesPerFile: inputs.map((i) => i.limit) };
          if (from !== undefined) Object.assign(opts, { fromSec: T + Math.floor(from / 10), fromNsec: (from % 10) * 100_000_000 + 7 });
          // A window end past 2106 (seconds beyond 32 bits): the step refuses it and JavaScript merges.
          if (farTo) Object.assign(opts, { toSec: 2 ** 32 + 5, toNsec: 0 });
          else if (to !== undefined) Object.assign(opts, { toSec: T + Math.floor(to / 10), toNsec: (to % 10) * 100_000_000 });
          await both(files, opts, step);
        },
      ),
      { numRuns: 150 },
    );
  }, 120_000);

  it('merges records larger than the output chunk and than the read buffer', async () => {
    const a = write(buildPcap([0, 2, 4].map((i) => ({ tsSec: T, tsNsec: i, data: frame(i, 9000) }))));
    const b = write(buildPcap([1, 3, 5].map((i) => ({ tsSec: T, tsNsec: i, data: frame(i, 100) }))));
    const r = await both([a, b], { chunkBytes: 1024, outputChunkBytes: 4096 }, step);
    expect(r.stats.packets).toBe(6);
  });

  it.runIf(HAVE_FIXTURES)('merges the shared pcap fixtures, each first written in our format, to the JavaScript merge bytes', async () => {
    const names = readdirSync(fixture('pcap')).filter((f) => f.endsWith('.pcap'));
    expect(names.length).toBeGreaterThan(5);
    // Each fixture alone through the merge: our nanosecond little-endian pcap, which the step copies as is.
    const ours: string[] = [];
    for (const name of names) {
      const { out } = await merge([fixture('pcap', name)], {});
      ours.push(write(out));
    }
    const all = await both(ours, { chunkBytes: 512, outputChunkBytes: 2048 }, step);
    expect(all.stats.packets).toBeGreaterThan(100);
    expect(all.steps).toBeGreaterThan(0);
    // And with the originals mixed in (microsecond, other link types): JavaScript takes over while they are in the heap.
    await both([...ours.slice(0, 6), ...names.slice(0, 6).map((n) => fixture('pcap', n))], { chunkBytes: 700, outputChunkBytes: 3000 }, step);
  });
});
