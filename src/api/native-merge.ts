/**
 * Loads the native merge step (native/src/merge.cc, built by `node native/build.mjs` next to the native
 * receiver as native/build/Release/mirrorguard_merge.node) for `GET /v1/pcap`'s merge, which takes it as
 * MergeOptions.mergeStep: src/pcap/ loads no addon. Null when it is not built, does not load, or is a
 * build of another layout; the merge then runs its JavaScript loop, which writes the same bytes.
 * The answer is cached per thread.
 *
 * MIRRORGUARD_NATIVE_MERGE=PATH loads another build (pointing nowhere: the JavaScript merge, which is how
 * the fallback is tested and compared).
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { MERGE_STEP, type MergeDigest, type MergeStepFn } from '../pcap/merge.js';

/** Must equal abiVersion in native/src/merge.cc. */
export const NATIVE_MERGE_ABI_VERSION = 1;

export type MergeStepLoad = { ok: true; step: MergeStepFn; path: string; sha256?: BackgroundSha256Ctor } | { ok: false; reason: string };

/** The addon's SHA-256 on libuv's threadpool (native/src/merge.cc `BackgroundSha256`). */
interface BackgroundSha256 {
  update(buf: Uint8Array, start: number, end: number): void;
  digest(cb: (err: Error | null, hex?: string) => void): void;
  wakeBelow(bytes: number): boolean;
  readonly pending: number;
  readonly bytes: number;
}
type BackgroundSha256Ctor = new (onHashed?: (pending: number) => void) => BackgroundSha256;

/** Where the build puts it: native/build/Release, from src/api or dist/api alike. */
export function defaultMergeAddonPath(): string {
  return join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'native', 'build', 'Release', 'mirrorguard_merge.node');
}

let cached: MergeStepLoad | undefined;

export function loadMergeStep(): MergeStepLoad {
  if (cached === undefined) cached = load(process.env.MIRRORGUARD_NATIVE_MERGE || defaultMergeAddonPath());
  return cached;
}

/** The native merge step, or null (the JavaScript merge). */
export function nativeMergeStep(): MergeStepFn | null {
  const l = loadMergeStep();
  return l.ok ? l.step : null;
}

function load(path: string): MergeStepLoad {
  if (!existsSync(path)) return { ok: false, reason: `${path} is not built; the JavaScript merge is used` };
  let mod: { mergeStep?: unknown; abiVersion?: number; layout?: Record<string, number>; BackgroundSha256?: unknown };
  try {
    mod = createRequire(import.meta.url)(path) as typeof mod;
  } catch (e) {
    return { ok: false, reason: `${path} does not load (${(e as Error).message.split('\n')[0]})` };
  }
  if (mod.abiVersion !== NATIVE_MERGE_ABI_VERSION || typeof mod.mergeStep !== 'function' || mod.layout === undefined) {
    return { ok: false, reason: `${path} is a stale build (ABI ${String(mod.abiVersion)}, expected ${NATIVE_MERGE_ABI_VERSION})` };
  }
  for (const [k, v] of Object.entries(MERGE_STEP)) {
    if (mod.layout[k] !== v) return { ok: false, reason: `${path} has another layout (${k} ${String(mod.layout[k])}, expected ${v})` };
  }
  return { ok: true, step: mod.mergeStep as MergeStepFn, path, ...(typeof mod.BackgroundSha256 === 'function' ? { sha256: mod.BackgroundSha256 as BackgroundSha256Ctor } : {}) };
}

/** How far the threaded digest may fall behind the merge before the merge waits for it. */
export const THREADED_DIGEST_MAX_PENDING_BYTES = 8 * 1024 * 1024;

/**
 * The body's SHA-256 for the merge (MergeOptions.digest), computed on libuv's threadpool, chunk after
 * chunk in order, while the merge and the socket go on on this thread (issue 11, goal 2). A pushed chunk
 * stays referenced until hashed; the route counts `pendingBytes` as held downstream, so the merge
 * refills a chunk only once it is both sent and hashed, and the merge waits (behind()) when the hash is
 * more than `maxPending` bytes behind. Null from create() without the addon.
 */
export class ThreadedBodyDigest implements MergeDigest {
  private readonly h: BackgroundSha256;
  private waiter: { promise: Promise<void>; resolve: () => void } | null = null;
  private result: Promise<string> | null = null;
  private hex: string | null = null;

  static create(maxPending = THREADED_DIGEST_MAX_PENDING_BYTES): ThreadedBodyDigest | null {
    const l = loadMergeStep();
    return l.ok && l.sha256 !== undefined ? new ThreadedBodyDigest(l.sha256, maxPending) : null;
  }

  private constructor(
    ctor: BackgroundSha256Ctor,
    private readonly maxPending: number,
  ) {
    this.h = new ctor(() => {
      const w = this.waiter;
      this.waiter = null;
      w?.resolve();
    });
  }

  /** Bytes given to update() so far. */
  get bytes(): number {
    return this.h.bytes;
  }

  /** Bytes given and not hashed yet. */
  get pendingBytes(): number {
    return this.h.pending;
  }

  update(buf: Uint8Array, start: number, end: number): void {
    // After digest() nothing more may count (the addon refuses it, as node:crypto refuses a finished hash).
    this.h.update(buf, start, end);
  }

  behind(): Promise<void> | null {
    if (this.h.pending <= this.maxPending) return null;
    if (this.waiter === null) {
      // Woken at half the bound, so the hash has work queued while the merge fills the next chunks.
      if (!this.h.wakeBelow(this.maxPending / 2)) return null;
      let resolve!: () => void;
      const promise = new Promise<void>((r) => (resolve = r));
      this.waiter = { promise, resolve };
    }
    return this.waiter.promise;
  }

  /** The hex SHA-256 of everything given so far, once hashed; the first call ends it. */
  digest(): Promise<string> {
    this.result ??= new Promise<string>((resolve, reject) =>
      this.h.digest((err, hex) => {
        if (err !== null || hex === undefined) return reject(err ?? new Error('SHA-256 failed'));
        this.hex = hex;
        resolve(hex);
      }),
    );
    return this.result;
  }

  /** The digest when digest() was asked for and is done, else null. */
  digestIfDone(): string | null {
    return this.hex;
  }
}
