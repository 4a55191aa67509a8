/**
 * The upload worker's scheduling, apart from S3 (s3-archiver.test.ts runs it against moto_server): it
 * waits instead of spinning while uploads run, keeps to its concurrency, stops cleanly with an upload in
 * flight, drains a node's due jobs by a deadline, and records permanent failures once.
 */
import { describe, expect, it } from 'vitest';
import { MemoryArchiveJobs } from '../../src/archive/memory-jobs.js';
import { ArchiveIntegrityError } from '../../src/archive/s3-archiver.js';
import type { ArchiveFile, UploadResult } from '../../src/archive/types.js';
import { ArchiveWorker } from '../../src/archive/worker.js';
import { contractFile, contractResult } from './jobs-contract.js';

/** An archiver whose uploads take `ms` and succeed, unless the path says otherwise. */
function slowArchiver(ms: number) {
  let running = 0;
  let most = 0;
  const uploaded: string[] = [];
  return {
    uploaded,
    most: () => most,
    async upload(f: ArchiveFile, signal?: AbortSignal): Promise<UploadResult> {
      running++;
      most = Math.max(most, running);
      try {
        await new Promise((r, j) => {
          const t = setTimeout(r, ms);
          signal?.addEventListener('abort', () => (clearTimeout(t), j(new Error('aborted'))));
        });
        if (f.path.includes('tampered')) throw new ArchiveIntegrityError(`${f.path}: SHA-256 differs`);
        uploaded.push(f.path);
        return contractResult(f.path);
      } finally {
        running--;
      }
    },
  };
}

class CountingJobs extends MemoryArchiveJobs {
  claims = 0;
  override claim(node: string, owner: string, nowMs: number, leaseMs: number) {
    this.claims++;
    return super.claim(node, owner, nowMs, leaseMs);
  }
}

describe('ArchiveWorker', () => {
  it('waits (does not spin) while uploads run, and never runs more than its concurrency', async () => {
    const jobs = new CountingJobs();
    const a = slowArchiver(150);
    for (let i = 1; i <= 5; i++) await jobs.enqueue(contractFile(i), Date.now());
    const w = new ArchiveWorker({ jobs, archiver: a, node: 'i-0abc', concurrency: 2, pollMs: 1000 });
    w.start();
    const t0 = Date.now();
    while ((await jobs.pending()) > 0 && Date.now() - t0 < 10_000) await new Promise((r) => setTimeout(r, 10));
    await w.stop();
    expect(a.uploaded).toHaveLength(5);
    expect(a.most()).toBe(2);
    // 5 successful claims, and a failed one each time the slots were filled or a slot freed: a handful, not thousands.
    expect(jobs.claims).toBeLessThan(20);
  });

  it('stop() waits for the upload in flight; a job claimed as it stops is finished, not left claimed', async () => {
    const jobs = new MemoryArchiveJobs();
    const a = slowArchiver(200);
    await jobs.enqueue(contractFile(1), Date.now());
    const w = new ArchiveWorker({ jobs, archiver: a, node: 'i-0abc', pollMs: 10 });
    w.start();
    await new Promise((r) => setTimeout(r, 50));
    await w.stop();
    expect(await jobs.get(1)).toMatchObject({ state: 'done' });
  });

  it('stop(grace) aborts an upload that outlasts the grace; the job goes back to pending for a retry', async () => {
    const jobs = new MemoryArchiveJobs();
    const a = slowArchiver(60_000);
    await jobs.enqueue(contractFile(1), Date.now());
    const w = new ArchiveWorker({ jobs, archiver: a, node: 'i-0abc', pollMs: 10 });
    w.start();
    await new Promise((r) => setTimeout(r, 50));
    const t0 = Date.now();
    await w.stop(100);
    expect(Date.now() - t0).toBeLessThan(5000);
    expect(await jobs.get(1)).toMatchObject({ state: 'pending', attempts: 1, lastError: 'Error: aborted' });
  });

  it("drain() uploads this node's due jobs until none is due or the deadline passes; integrity failures are final", async () => {
    const jobs = new MemoryArchiveJobs();
    const a = slowArchiver(5);
    await jobs.enqueue(contractFile(1), 0);
    await jobs.enqueue({ ...contractFile(2), path: '/data/pcap/tampered.pcap' }, 0);
    await jobs.enqueue(contractFile(3), 0);
    await jobs.enqueue(contractFile(4, 'i-0def'), 0); // another node's: not this one's to upload
    const w = new ArchiveWorker({ jobs, archiver: a, node: 'i-0abc' });
    expect(await w.drain(Date.now() + 10_000)).toBe(1);
    expect(a.uploaded).toEqual(['/data/pcap/1.pcap', '/data/pcap/3.pcap']);
    expect(await jobs.get(2)).toMatchObject({ state: 'failed', attempts: 1 });
    expect(w.counters).toMatchObject({ 'archive.upload.ok': 2, 'archive.upload.integrity': 1, 'archive.upload.retry': 0 });
    // A deadline already past uploads nothing.
    await jobs.enqueue(contractFile(5), 0);
    expect(await w.drain(0)).toBe(2);
  });

  it('a failing ledger append (onUploaded) leaves the job to retry: never done without its record', async () => {
    const jobs = new MemoryArchiveJobs();
    let fail = true;
    const w = new ArchiveWorker({
      jobs,
      archiver: slowArchiver(1),
      node: 'i-0abc',
      random: () => 0,
      onUploaded: async () => {
        if (fail) throw new Error('ledger unavailable');
      },
    });
    await jobs.enqueue(contractFile(1), 0);
    expect(await w.runOnce()).toBe(true);
    expect(await jobs.get(1)).toMatchObject({ state: 'pending', attempts: 1, lastError: 'Error: ledger unavailable' });
    fail = false;
    await new Promise((r) => setTimeout(r, 600)); // the first retry is 0.5-1 s away (equal jitter; random 0 gives 0.5 s)
    expect(await w.runOnce()).toBe(true);
    expect(await jobs.get(1)).toMatchObject({ state: 'done' });
  });
});
