import { createHash, randomBytes } from 'node:crypto';
import { PassThrough, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { OffloadedHashingCounter } from '../../src/api/hash-offload.js';

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** Chunks of `data` as the merge hands them out: slices of shared memory (or ordinary buffers), reused after use. */
function chunksOf(data: Buffer, sizes: number[], shared: boolean): Buffer[] {
  const out: Buffer[] = [];
  let o = 0;
  for (let i = 0; o < data.length; i++) {
    const n = Math.min(Math.max(1, sizes[i % sizes.length]!), data.length - o);
    const b = shared ? Buffer.from(new SharedArrayBuffer(n + 16), 8, n) : Buffer.allocUnsafe(n);
    data.copy(b, 0, o, o + n);
    out.push(b);
    o += n;
  }
  return out;
}

async function run(counter: OffloadedHashingCounter, chunks: Buffer[]): Promise<Buffer> {
  const got: Buffer[] = [];
  const src = new PassThrough();
  const done = pipeline(
    src,
    counter,
    new Writable({
      write(c: Buffer, _e, cb) {
        got.push(Buffer.from(c));
        cb();
      },
    }),
  );
  for (const c of chunks) src.write(c);
  src.end();
  await done;
  return Buffer.concat(got);
}

describe('OffloadedHashingCounter: the body SHA-256 in a worker thread', () => {
  it('passes the bytes through unchanged and digests exactly them, from shared or ordinary memory', async () => {
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 0, max: 300_000 }), fc.array(fc.integer({ min: 1, max: 70_000 }), { minLength: 1, maxLength: 6 }), fc.boolean(), async (len, sizes, shared) => {
        const data = randomBytes(len);
        const c = new OffloadedHashingCounter();
        const passed = await run(c, chunksOf(data, sizes, shared));
        expect(passed.equals(data)).toBe(true);
        expect(c.bytes).toBe(len);
        expect(await c.digest()).toBe(sha256(data));
        expect(c.digestIfDone()).toBe(sha256(data));
        expect(c.pendingBytes).toBe(0);
      }),
      { numRuns: 40 },
    );
  });

  it('stops taking input while the worker is more than maxPendingBytes behind, and still digests every byte', async () => {
    const data = randomBytes(6 << 20);
    const c = new OffloadedHashingCounter({ maxPendingBytes: 256 * 1024 });
    let maxPending = 0;
    const src = new PassThrough({ highWaterMark: 64 * 1024 });
    const got: Buffer[] = [];
    const done = pipeline(
      src,
      c,
      new Writable({
        write(x: Buffer, _e, cb) {
          maxPending = Math.max(maxPending, c.pendingBytes);
          got.push(Buffer.from(x));
          cb();
        },
      }),
    );
    for (const part of chunksOf(data, [128 * 1024], true)) if (!src.write(part)) await new Promise((r) => src.once('drain', r));
    src.end();
    await done;
    expect(Buffer.concat(got).equals(data)).toBe(true);
    // One chunk beyond the bound at most: the one passed on when the bound was crossed.
    expect(maxPending).toBeLessThanOrEqual(256 * 1024 + 128 * 1024);
    expect(await c.digest()).toBe(sha256(data));
  });

  it('keeps concurrent bodies apart and counts nothing after digest() (a client gone mid-way)', async () => {
    const a = randomBytes(1 << 20);
    const b = randomBytes(700_000);
    const ca = new OffloadedHashingCounter();
    const cb = new OffloadedHashingCounter();
    const [pa, pb] = await Promise.all([run(ca, chunksOf(a, [65536, 1000], true)), run(cb, chunksOf(b, [512 * 1024], true))]);
    expect([pa.equals(a), pb.equals(b)]).toEqual([true, true]);
    expect([await ca.digest(), await cb.digest()]).toEqual([sha256(a), sha256(b)]);

    const cut = new OffloadedHashingCounter();
    const src = new PassThrough();
    src.pipe(cut).resume();
    const first = Buffer.from(new SharedArrayBuffer(1000));
    first.fill(7);
    src.write(first);
    await new Promise((r) => setImmediate(r));
    const d = cut.digest();
    src.write(Buffer.alloc(500, 1));
    await new Promise((r) => setImmediate(r));
    expect(await d).toBe(sha256(first));
    expect(cut.bytes).toBe(1000);
  });
});
