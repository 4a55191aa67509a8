/**
 * SHA-256 of a response body computed in a worker thread while the body streams (issue 11). GET /v1/pcap
 * uses it when its merge runs in JavaScript (no native merge step): with the native step, hashing on the
 * merge's own thread (src/api/http.ts BodyDigest) measured the same in wall time with the same or less
 * CPU and no hand-offs (docs/performance.md, "Extraction").
 *
 * An extraction's main thread merges records, hashes the output and hands it to the socket; the hash
 * (about 0.55 ns per byte with SHA-NI) was a fifth of that thread's time. Here the chunks pass through
 * at once and one shared worker thread hashes them meanwhile, on the other core: the bytes are not
 * copied, because the merge writes its chunks in SharedArrayBuffer memory (MergeOptions.sharedMemory)
 * and only (buffer, offset, length) crosses threads. A chunk in ordinary memory is copied into shared
 * memory first. The producer must not overwrite a chunk until the worker is done with it: `pendingBytes`
 * counts what is still to be hashed, and the merge counts it as held downstream.
 *
 * Messages to one worker are handled in order, so the digest covers exactly the bytes passed before
 * digest() was called; later ones are neither counted nor hashed (as with HashingCounter).
 */
import { Transform, type TransformCallback } from 'node:stream';
import { Worker } from 'node:worker_threads';

// CommonJS, evaluated: no file to find whether we run from dist/ or from the TypeScript sources (tests).
const WORKER_SOURCE = `
const { parentPort } = require('node:worker_threads');
const { createHash } = require('node:crypto');
const jobs = new Map();
const memory = new Map();
parentPort.on('message', (m) => {
  if (m.t === 'u') {
    let h = jobs.get(m.id);
    if (h === undefined) jobs.set(m.id, (h = createHash('sha256')));
    let mem = memory.get(m.mem);
    if (mem === undefined) memory.set(m.mem, (mem = m.sab));
    h.update(new Uint8Array(mem, m.off, m.len));
    parentPort.postMessage({ t: 'u', id: m.id, len: m.len });
  } else if (m.t === 'f') {
    memory.delete(m.mem);
  } else {
    const h = jobs.get(m.id) ?? createHash('sha256');
    jobs.delete(m.id);
    parentPort.postMessage({ t: 'd', id: m.id, hex: h.digest('hex') });
  }
});
`;

type FromWorker = { t: 'u'; id: number; len: number } | { t: 'd'; id: number; hex: string };

interface Job {
  hashed(len: number): void;
  done(hex: string): void;
  failed(e: Error): void;
}

let worker: Worker | null = null;
let nextId = 1;
const jobs = new Map<number, Job>();
/**
 * Shared memory the worker holds, by id: a SharedArrayBuffer crosses once (posting one costs a few
 * microseconds; the merge reuses a handful of chunks), later chunks name it by id. When one is garbage
 * here, the worker lets go of it too.
 */
let nextMemId = 1;
let memIds = new WeakMap<SharedArrayBuffer, number>();
const released = new FinalizationRegistry<number>((mem) => worker?.postMessage({ t: 'f', mem }));

function hashWorker(): Worker {
  if (worker !== null) return worker;
  const w = new Worker(WORKER_SOURCE, { eval: true, name: 'mirrorguard-sha256' });
  // A new worker holds none of the memory an earlier one did.
  memIds = new WeakMap();
  // Idle between extractions: it must not keep a process alive on its own.
  w.unref();
  w.on('message', (m: FromWorker) => {
    const j = jobs.get(m.id);
    if (j === undefined) return;
    if (m.t === 'u') j.hashed(m.len);
    else {
      jobs.delete(m.id);
      j.done(m.hex);
    }
  });
  const fail = (e: Error) => {
    if (worker === w) worker = null;
    for (const j of jobs.values()) j.failed(e);
    jobs.clear();
  };
  w.on('error', fail);
  w.on('exit', (code) => fail(new Error(`the SHA-256 worker exited (${code})`)));
  worker = w;
  return w;
}

/**
 * Bytes the worker may be behind by, by default. Beyond, the stream takes no more input until it catches
 * up (backpressure to the merge), so a starved worker cannot make the merge allocate chunk after chunk.
 */
export const DEFAULT_MAX_PENDING_HASH_BYTES = 8 * 1024 * 1024;

/** Passes bytes through unchanged, counting them; their SHA-256 is computed in a worker thread. */
export class OffloadedHashingCounter extends Transform {
  bytes = 0;
  /** Bytes passed through that the worker has not hashed yet: their memory must stay as it is. */
  pendingBytes = 0;
  private readonly maxPending: number;
  /** The callback of a chunk passed on while the worker was too far behind: called when it catches up. */
  private waiting: TransformCallback | null = null;
  private readonly id = nextId++;
  private readonly w: Worker;
  private sealed = false;
  private result: Promise<string> | null = null;
  private hex: string | null = null;
  private error: Error | null = null;
  private settle: { resolve(hex: string): void; reject(e: Error): void } | null = null;

  constructor(opts: { maxPendingBytes?: number } = {}) {
    super();
    this.maxPending = opts.maxPendingBytes ?? DEFAULT_MAX_PENDING_HASH_BYTES;
    this.w = hashWorker();
    jobs.set(this.id, {
      hashed: (len) => {
        this.pendingBytes -= len;
        if (this.pendingBytes <= this.maxPending) this.caughtUp();
      },
      done: (hex) => {
        this.hex = hex;
        this.settle?.resolve(hex);
      },
      failed: (e) => {
        this.error = e;
        this.pendingBytes = 0;
        this.caughtUp();
        this.settle?.reject(e);
      },
    });
  }

  private caughtUp(): void {
    const cb = this.waiting;
    this.waiting = null;
    cb?.();
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    if (!this.sealed && this.error === null && chunk.length > 0) {
      let shared = chunk;
      if (!(chunk.buffer instanceof SharedArrayBuffer)) {
        shared = Buffer.from(new SharedArrayBuffer(chunk.length));
        chunk.copy(shared);
      }
      this.bytes += chunk.length;
      this.pendingBytes += chunk.length;
      const sab = shared.buffer as SharedArrayBuffer;
      let mem = memIds.get(sab);
      if (mem === undefined) {
        mem = nextMemId++;
        memIds.set(sab, mem);
        released.register(sab, mem);
        this.w.postMessage({ t: 'u', id: this.id, mem, sab, off: shared.byteOffset, len: shared.length });
      } else this.w.postMessage({ t: 'u', id: this.id, mem, off: shared.byteOffset, len: shared.length });
    }
    if (this.pendingBytes > this.maxPending) {
      // Passed on now; the next chunk is taken when the worker has caught up.
      this.push(chunk);
      this.waiting = cb;
      return;
    }
    cb(null, chunk);
  }

  /** The digest, when digest() was called and the worker has answered; else null. */
  digestIfDone(): string | null {
    return this.hex;
  }

  /** The hex SHA-256 of everything that passed before the first call; later bytes are not counted. */
  digest(): Promise<string> {
    if (this.result !== null) return this.result;
    this.sealed = true;
    this.result = new Promise<string>((resolve, reject) => {
      if (this.error !== null) return reject(this.error);
      this.settle = { resolve, reject };
      this.w.postMessage({ t: 'd', id: this.id });
    });
    // Callers await it; an unobserved failure must not become an unhandled rejection.
    this.result.catch(() => undefined);
    void this.result.finally(() => jobs.delete(this.id)).catch(() => undefined);
    return this.result;
  }
}
