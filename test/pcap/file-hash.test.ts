// A capture file's SHA-256 hashed by the batched writes on the threadpool (native/src/writer.cc FileSha256
// and pwriteBatch's `hashes`), against node:crypto: the digest of what was committed, whatever the batch
// groups, the failures and the updates made on the main thread in between; and what pwriteBatch refuses.
import { createHash, randomBytes } from 'node:crypto';
import { closeSync, openSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, expect, it } from 'vitest';
import { loadNativeAddon, nativeBatchHash, nativeBatchWrite } from '../../src/ingest/native-addon.js';
import type { FileHash } from '../../src/pcap/disk-queue.js';
import { describeNeeds } from '../helpers/needs.js';
import { makeTmpDir } from '../helpers/tmp.js';

const sha256 = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

/** pwriteBatch as a promise: the results once done() ran. */
function batch(fds: number[], positions: number[], buffers: Uint8Array[], hashes: (FileHash | null)[] | undefined): Promise<Int32Array> {
  const write = nativeBatchWrite()!;
  const n = buffers.length;
  const results = new Int32Array(n).fill(1);
  return new Promise((done) =>
    write(Int32Array.from(fds), Float64Array.from(positions), Int32Array.from(buffers.map((b) => b.length)), buffers, n, results, () => done(results), 0, hashes),
  );
}

describeNeeds(['native'], 'FileSha256: a file hash the batched writes update', () => {
  const tmp = makeTmpDir('mg-file-hash-');
  afterAll(tmp.remove);
  const data = randomBytes(3 << 20);

  it('hashes what each batch wrote, in order, with main-thread updates in between (property, against node:crypto)', async () => {
    const newHash = nativeBatchHash()!;
    let run = 0;
    await fc.assert(
      fc.asyncProperty(
        // Rounds of one file's entries; each round is one batch, or the main thread's update() for it.
        fc.array(fc.record({ lens: fc.array(fc.integer({ min: 0, max: 700_000 }), { minLength: 1, maxLength: 6 }), onMain: fc.boolean() }), { maxLength: 6 }),
        async (rounds) => {
          const path = join(tmp.dir, `p-${run++}.bin`);
          const fd = openSync(path, 'wx');
          const h = newHash();
          const want: Buffer[] = [];
          let pos = 0;
          let at = 0;
          try {
            for (const r of rounds) {
              const bufs = r.lens.map((len) => {
                const b = data.subarray(at % data.length, Math.min(data.length, (at % data.length) + len));
                at += len;
                return b;
              });
              if (r.onMain) {
                for (const b of bufs) h.update(b);
              } else {
                const positions: number[] = [];
                for (const b of bufs) {
                  positions.push(pos);
                  pos += b.length;
                }
                const results = await batch(bufs.map(() => fd), positions, bufs, bufs.map(() => h));
                expect([...results]).toEqual(bufs.map(() => 0));
              }
              want.push(...bufs);
            }
          } finally {
            closeSync(fd);
          }
          expect(h.digest()).toBe(sha256(Buffer.concat(want)));
        },
      ),
      { numRuns: 40 },
    );
  });

  it('keeps only committed bytes in the hash: a write that fails leaves the hash as it was, and the other files of the batch are hashed', async () => {
    const newHash = nativeBatchHash()!;
    const good = openSync(join(tmp.dir, 'good.bin'), 'wx');
    // A descriptor open for reading only: every write to it fails (EBADF), after the group was hashed.
    const readOnly = openSync(join(tmp.dir, 'good.bin'), 'r');
    try {
      const [a, b] = [newHash(), newHash()];
      const pre = Buffer.from('PRE');
      b.update(pre);
      const bufs = [data.subarray(0, 1000), data.subarray(1000, 5000), data.subarray(5000, 9000), data.subarray(9000, 9100)];
      const results = await batch([good, good, readOnly, readOnly], [0, 1000, 3, 4003], bufs, [a, a, b, b]);
      expect(results[0]).toBe(0);
      expect(results[1]).toBe(0);
      expect(results[2]).toBeLessThan(0);
      expect(results[3]).toBeLessThan(0);
      expect(a.digest()).toBe(sha256(data.subarray(0, 5000)));
      expect(readFileSync(join(tmp.dir, 'good.bin')).equals(data.subarray(0, 5000))).toBe(true);
      // Only the preamble the main thread added: the failed group was taken back out.
      expect(b.digest()).toBe(sha256(pre));
    } finally {
      closeSync(good);
      closeSync(readOnly);
    }
  });

  it('refuses a hash that is not a FileSha256 still open, before writing anything', () => {
    const write = nativeBatchWrite()!;
    const addon = loadNativeAddon();
    if (!addon.ok) throw new Error(addon.reason);
    const fd = openSync(join(tmp.dir, 'refused.bin'), 'wx');
    try {
      const digested = nativeBatchHash()!();
      digested.digest();
      const notOurs = [{ update() {}, digest: () => '' }, Buffer.alloc(4), new addon.addon.Copier(new Int32Array(8)), digested, 7];
      for (const h of notOurs) {
        const call = () => write(Int32Array.of(fd), Float64Array.of(0), Int32Array.of(4), [Buffer.from('data')], 1, new Int32Array(1), () => undefined, 0, [h as FileHash]);
        expect(call).toThrow(/hash/);
      }
      expect(() => digested.digest()).toThrow(/twice/);
      expect(() => digested.update(Buffer.alloc(1))).toThrow(/after digest/);
      expect(readFileSync(join(tmp.dir, 'refused.bin')).length).toBe(0);
    } finally {
      closeSync(fd);
    }
  });
});
