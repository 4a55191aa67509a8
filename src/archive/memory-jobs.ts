/**
 * ArchiveJobs in memory: the reference implementation of the contract in types.ts, for tests and for
 * a single process that needs no restart recovery. Jobs are copied in and out so callers cannot change
 * the queue's state behind its back, as a database would not let them.
 */
import type { ArchiveFile, ArchiveJob, ArchiveJobs, UploadResult } from './types.js';

const copy = (j: ArchiveJob): ArchiveJob => structuredClone(j);

export class MemoryArchiveJobs implements ArchiveJobs {
  private readonly jobs = new Map<number, ArchiveJob>();
  private nextId = 1;

  async enqueue(file: ArchiveFile, nowMs: number): Promise<ArchiveJob> {
    for (const j of this.jobs.values()) if (j.file.node === file.node && j.file.captureId === file.captureId) return copy(j);
    const j: ArchiveJob = {
      id: this.nextId++,
      file: structuredClone(file),
      state: 'pending',
      attempts: 0,
      notBeforeMs: nowMs,
      owner: null,
      leaseUntilMs: null,
      lastError: null,
      result: null,
      doneMs: null,
    };
    this.jobs.set(j.id, j);
    return copy(j);
  }

  async claim(node: string, owner: string, nowMs: number, leaseMs: number): Promise<ArchiveJob | null> {
    for (const j of this.jobs.values()) {
      if (j.file.node !== node) continue;
      const due = (j.state === 'pending' && j.notBeforeMs <= nowMs) || (j.state === 'claimed' && (j.leaseUntilMs ?? 0) <= nowMs);
      if (!due) continue;
      j.state = 'claimed';
      j.owner = owner;
      j.leaseUntilMs = nowMs + leaseMs;
      return copy(j);
    }
    return null;
  }

  private held(id: number, owner: string): ArchiveJob | null {
    const j = this.jobs.get(id);
    return j && j.state === 'claimed' && j.owner === owner ? j : null;
  }

  async renew(id: number, owner: string, leaseUntilMs: number): Promise<boolean> {
    const j = this.held(id, owner);
    if (!j) return false;
    j.leaseUntilMs = leaseUntilMs;
    return true;
  }

  async done(id: number, owner: string, result: UploadResult, nowMs: number): Promise<boolean> {
    const j = this.held(id, owner);
    if (!j) return false;
    Object.assign(j, { state: 'done', owner: null, leaseUntilMs: null, result: structuredClone(result), doneMs: nowMs, lastError: null });
    return true;
  }

  async failed(id: number, owner: string, error: string, retryAtMs: number | null): Promise<boolean> {
    const j = this.held(id, owner);
    if (!j) return false;
    j.attempts++;
    j.lastError = error;
    j.owner = null;
    j.leaseUntilMs = null;
    if (retryAtMs === null) j.state = 'failed';
    else {
      j.state = 'pending';
      j.notBeforeMs = retryAtMs;
    }
    return true;
  }

  async releaseOwner(ownerPrefix: string): Promise<number> {
    let n = 0;
    for (const j of this.jobs.values()) {
      if (j.state !== 'claimed' || !j.owner?.startsWith(ownerPrefix)) continue;
      j.state = 'pending';
      j.owner = null;
      j.leaseUntilMs = null;
      n++;
    }
    return n;
  }

  async pending(): Promise<number> {
    let n = 0;
    for (const j of this.jobs.values()) if (j.state === 'pending' || j.state === 'claimed') n++;
    return n;
  }

  async get(id: number): Promise<ArchiveJob | null> {
    const j = this.jobs.get(id);
    return j ? copy(j) : null;
  }

  async doneFor(node: string): Promise<ArchiveJob[]> {
    return [...this.jobs.values()].filter((j) => j.state === 'done' && j.file.node === node).map(copy);
  }
}
