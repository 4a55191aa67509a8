/**
 * The ArchiveJobs contract (src/archive/types.ts) as a reusable suite: run it against any implementation
 * (`jobsContract('memory', () => new MemoryArchiveJobs())`; the store's SQLite and PostgreSQL ones the
 * same way), so every implementation claims, leases, retries and recovers alike.
 */
import { describe, expect, it } from 'vitest';
import type { ArchiveFile, ArchiveJobs, UploadResult } from '../../src/archive/types.js';

export function contractFile(captureId: number, node = 'i-0abc'): ArchiveFile {
  return { captureId, node, path: `/data/pcap/${captureId}.pcap`, vni: 42, sourceIp: '10.0.1.5', sessionId: null, createdUs: 1, firstUs: 1, lastUs: 2, packets: 3, bytes: 4, sha256: 'a'.repeat(64) };
}

export const contractResult = (key: string): UploadResult => ({ bucket: 'b', key, versionId: 'v1', etag: '"e"', sha256: 'a'.repeat(64), s3ChecksumSha256: 'x', parts: 1, size: 4, retainUntil: null });

export function jobsContract(name: string, make: () => ArchiveJobs | Promise<ArchiveJobs>): void {
  describe(`ArchiveJobs contract: ${name}`, () => {
    it('enqueue is idempotent per (node, captureId); claims go oldest first, each job to one owner', async () => {
      const q = await make();
      const a = await q.enqueue(contractFile(1), 100);
      expect((await q.enqueue(contractFile(1), 200)).id).toBe(a.id);
      const b = await q.enqueue(contractFile(2), 100);
      const other = await q.enqueue(contractFile(1, 'i-0def'), 50);
      expect(other.id).not.toBe(a.id);
      expect(await q.pending()).toBe(3);
      const c1 = await q.claim('i-0abc', 'n/1/0', 100, 1000);
      const c2 = await q.claim('i-0abc', 'n/2/0', 100, 1000);
      expect([c1?.id, c2?.id]).toEqual([a.id, b.id]);
      // Another node's file is not this node's to upload (it is not on this disk).
      expect((await q.claim('i-0def', 'd/1/0', 100, 1000))?.id).toBe(other.id);
      expect(c1).toMatchObject({ state: 'claimed', owner: 'n/1/0', leaseUntilMs: 1100 });
      expect(await q.claim('i-0abc', 'n/3/0', 100, 1000)).toBeNull();
    });

    it('a job is not claimable before notBeforeMs; failed() with a time retries, with null fails for good', async () => {
      const q = await make();
      const j = await q.enqueue(contractFile(1), 0);
      await q.claim('i-0abc', 'o', 0, 1000);
      expect(await q.failed(j.id, 'o', 'boom', 500)).toBe(true);
      expect(await q.claim('i-0abc', 'o', 499, 1000)).toBeNull();
      expect(await q.claim('i-0abc', 'o', 500, 1000)).toMatchObject({ id: j.id, attempts: 1, lastError: 'boom' });
      expect(await q.failed(j.id, 'o', 'bad bytes', null)).toBe(true);
      expect(await q.get(j.id)).toMatchObject({ state: 'failed', attempts: 2, lastError: 'bad bytes' });
      expect(await q.pending()).toBe(0);
      expect(await q.claim('i-0abc', 'o', 10_000, 1000)).toBeNull();
    });

    it('leases: renewed while held, taken over after they end; the old owner can then neither renew nor finish', async () => {
      const q = await make();
      const j = await q.enqueue(contractFile(1), 0);
      await q.claim('i-0abc', 'old', 0, 1000);
      expect(await q.renew(j.id, 'old', 2000)).toBe(true);
      expect(await q.claim('i-0abc', 'new', 1999, 1000)).toBeNull();
      expect((await q.claim('i-0abc', 'new', 2000, 1000))?.id).toBe(j.id);
      expect(await q.renew(j.id, 'old', 5000)).toBe(false);
      expect(await q.done(j.id, 'old', contractResult('k'), 2100)).toBe(false);
      expect(await q.failed(j.id, 'old', 'x', 0)).toBe(false);
      expect(await q.done(j.id, 'new', contractResult('k'), 2100)).toBe(true);
      expect(await q.get(j.id)).toMatchObject({ state: 'done', doneMs: 2100, result: { key: 'k', versionId: 'v1' } });
      expect((await q.doneFor('i-0abc')).map((x) => x.id)).toEqual([j.id]);
      expect(await q.doneFor('i-0def')).toEqual([]);
    });

    it("releaseOwner gives a restarted node's claims back at once, and only its own", async () => {
      const q = await make();
      await q.enqueue(contractFile(1), 0);
      await q.enqueue(contractFile(2), 0);
      await q.claim('i-0abc', 'i-0abc/100/1', 0, 60_000);
      await q.claim('i-0abc', 'i-0abc.other/200/1', 0, 60_000);
      expect(await q.releaseOwner('i-0abc/')).toBe(1);
      expect((await q.claim('i-0abc', 'i-0abc/101/2', 1, 60_000))?.file.captureId).toBe(1);
      expect(await q.claim('i-0abc', 'x', 1, 60_000)).toBeNull();
    });
  });
}
