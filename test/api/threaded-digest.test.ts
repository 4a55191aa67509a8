// The body's SHA-256 on a threadpool thread (src/api/native-merge.ts ThreadedBodyDigest, native/src/merge.cc
// BackgroundSha256), against node:crypto: the digest, the bytes it counts, the bound it keeps, and the merge
// that refills a chunk only once it is hashed.
import { createHash, randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import fc from 'fast-check';
import { expect, it } from 'vitest';
import { ThreadedBodyDigest } from '../../src/api/native-merge.js';
import { mergeCaptures } from '../../src/pcap/merge.js';
import { describeNeeds } from '../helpers/needs.js';
import { tmpDir } from '../helpers/tmp.js';
import { buildPcap, type Rec } from '../pcap/pcap-helpers.js';

const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

describeNeeds(['native-merge'], 'ThreadedBodyDigest: SHA-256 on a threadpool thread', () => {
  const data = randomBytes(3 << 20);

  it('digests what it was given, in order, whatever the pieces and the pauses (property, against node:crypto)', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.record({ len: fc.integer({ min: 0, max: 300_000 }), pause: fc.boolean() }), { maxLength: 24 }),
        fc.integer({ min: 1, max: 1 << 20 }),
        async (pieces, maxPending) => {
          const d = ThreadedBodyDigest.create(maxPending)!;
          let at = 0;
          for (const p of pieces) {
            const len = Math.min(p.len, data.length - at);
            d.update(data, at, at + len);
            at += len;
            // Either wait as the merge does when the hash is behind, or go straight on.
            const lag = p.pause ? d.behind() : null;
            if (lag !== null) {
              await lag;
              expect(d.pendingBytes).toBeLessThanOrEqual(maxPending / 2);
            }
          }
          expect(d.bytes).toBe(at);
          const hex = await d.digest();
          expect(hex).toBe(sha256(data.subarray(0, at)));
          expect(d.pendingBytes).toBe(0);
          expect(d.digestIfDone()).toBe(hex);
        },
      ),
      { numRuns: 60 },
    );
  });

  it('keeps a bound: behind() is a promise past it, resolved once the hash is at half of it', async () => {
    const d = ThreadedBodyDigest.create(256 * 1024)!;
    expect(d.behind()).toBeNull();
    // The hash thread may keep up with a few MiB (a busy machine can stall this thread meanwhile): give
    // it 3 MiB at a time until it is behind.
    const expected = createHash('sha256');
    let lag: Promise<void> | null = null;
    for (let i = 0; i < 64 && lag === null; i++) {
      d.update(data, 0, data.length);
      expected.update(data);
      lag = d.behind();
    }
    expect(lag).not.toBeNull();
    // One waiter for every caller while behind.
    expect(d.behind() ?? lag).toBe(lag);
    await lag;
    expect(d.pendingBytes).toBeLessThanOrEqual(128 * 1024);
    expect(await d.digest()).toBe(expected.digest('hex'));
  });

  it('refuses bytes after the digest, and answers the same digest twice', async () => {
    const d = ThreadedBodyDigest.create()!;
    d.update(Buffer.from('abc'), 0, 3);
    expect(d.digestIfDone()).toBeNull();
    const a = d.digest();
    expect(() => d.update(Buffer.from('x'), 0, 1)).toThrow(/after digest/);
    expect(await a).toBe(sha256(Buffer.from('abc')));
    expect(await d.digest()).toBe(await a);
    expect(d.bytes).toBe(3);
    expect(() => d.update(Buffer.from('x'), 0, 2)).toThrow();
  });

  it('checks its arguments before touching memory', () => {
    const d = ThreadedBodyDigest.create()!;
    const b = Buffer.alloc(10);
    expect(() => d.update(b, 5, 11)).toThrow(RangeError);
    expect(() => d.update(b, -1, 3)).toThrow(RangeError);
    expect(() => d.update(b, 6, 5)).toThrow(RangeError);
    expect(() => d.update(new Uint16Array(4) as unknown as Uint8Array, 0, 2)).toThrow(TypeError);
    expect(d.bytes).toBe(0);
  });

  it('in the merge: a chunk is refilled only once hashed, and the digest is the output’s', async () => {
    const dir = tmpDir('mg-threaded-digest-');
    // Two inputs interleaved record by record: many output chunks of 4 KiB, each reused as soon as allowed.
    const recs = (src: number): Rec[] => Array.from({ length: 3000 }, (_, i) => ({ tsSec: 1_700_000_000 + i, tsNsec: src * 1000, data: Buffer.alloc(200 + (i % 300), (i + src) & 0xff) }));
    const files = [0, 1].map((s) => {
      const p = join(dir, `in-${s}.pcap`);
      writeFileSync(p, buildPcap(recs(s)));
      return p;
    });
    const d = ThreadedBodyDigest.create(16 * 1024)!;
    const merge = mergeCaptures(files, { outputChunkBytes: 4096, digest: d, heldDownstream: () => d.pendingBytes });
    const out: Buffer[] = [];
    // The consumer copies each chunk at once: a chunk refilled before it was hashed would change the digest, not the output.
    await pipeline(
      merge,
      new Writable({
        write(c: Buffer, _e, cb) {
          out.push(Buffer.from(c));
          cb();
        },
      }),
    );
    const all = Buffer.concat(out);
    expect(all.length).toBeGreaterThan(1_000_000);
    expect(await d.digest()).toBe(sha256(all));
    expect(d.bytes).toBe(all.length);
  });
});
