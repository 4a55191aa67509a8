/**
 * Loads the native merge step (native/src/merge.cc, built by `node native/build.mjs` next to the native
 * receiver as native/build/Release/mirrorguard_merge.node) for `GET /v1/pcap`'s merge, which takes it as
 * MergeOptions.mergeStep: src/pcap/ loads no addon. Null when it is not built, does not load, or is a
 * build of another layout; the merge then runs its JavaScript loop, which writes the same bytes.
 * The answer is cached per thread.
 *
 * MIRRORGUARD_NATIVE_MERGE=PATH loads another build (pointing nowhere: the JavaScript merge, which is how
 * the fallback is tested and compared).
 *
 * The same module hashes the body (`nativeBodyDigest`): a SHA-256 context of OpenSSL's, which the merge
 * updates on the main thread, the step while it copies (MergeOptions.digest). Without the module, or with
 * MIRRORGUARD_EXTRACT_HASH=worker, the route hashes in a worker thread instead (src/api/hash-offload.ts).
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { MERGE_STEP, type MergeDigest, type MergeStepFn } from '../pcap/merge.js';

/** Must equal abiVersion in native/src/merge.cc. */
export const NATIVE_MERGE_ABI_VERSION = 2;

/** The module's SHA-256 (native/src/merge.cc): an opaque context, updates, and a digest that spends it. */
export interface NativeSha256Fns {
  sha256Create(): object | null;
  sha256Update(h: object, buf: Uint8Array, start: number, end: number): number;
  sha256Digest(h: object): Buffer | null;
}

export type MergeStepLoad = { ok: true; step: MergeStepFn; sha: NativeSha256Fns; path: string } | { ok: false; reason: string };

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

/**
 * A response body's SHA-256 kept by the merge (MergeOptions.digest), or null: the module is missing, or
 * MIRRORGUARD_EXTRACT_HASH=worker asks for the worker thread.
 */
export function nativeBodyDigest(): NativeBodyDigest | null {
  if (process.env.MIRRORGUARD_EXTRACT_HASH === 'worker') return null;
  const l = loadMergeStep();
  if (!l.ok) return null;
  const h = l.sha.sha256Create();
  return h === null ? null : new NativeBodyDigest(l.sha, h);
}

/** SHA-256 over the bytes given, in order; hex() ends it (later updates throw). */
export class NativeBodyDigest implements MergeDigest {
  private result: string | null = null;

  constructor(
    private readonly fns: NativeSha256Fns,
    readonly native: object,
  ) {}

  update(buf: Uint8Array, start: number, end: number): void {
    if (this.fns.sha256Update(this.native, buf, start, end) !== 0) throw new RangeError(`cannot hash bytes ${start}..${end} of ${buf.length}${this.result !== null ? ': the digest is done' : ''}`);
  }

  /** The hex digest of everything hashed so far; the first call ends the context. */
  hex(): string {
    if (this.result === null) {
      const d = this.fns.sha256Digest(this.native);
      if (d === null) throw new Error('the SHA-256 context failed');
      this.result = d.toString('hex');
    }
    return this.result;
  }
}

function load(path: string): MergeStepLoad {
  if (!existsSync(path)) return { ok: false, reason: `${path} is not built; the JavaScript merge is used` };
  let mod: { mergeStep?: unknown; sha256Create?: unknown; abiVersion?: number; layout?: Record<string, number> } & Partial<NativeSha256Fns>;
  try {
    mod = createRequire(import.meta.url)(path) as typeof mod;
  } catch (e) {
    return { ok: false, reason: `${path} does not load (${(e as Error).message.split('\n')[0]})` };
  }
  if (mod.abiVersion !== NATIVE_MERGE_ABI_VERSION || typeof mod.mergeStep !== 'function' || typeof mod.sha256Create !== 'function' || mod.layout === undefined) {
    return { ok: false, reason: `${path} is a stale build (ABI ${String(mod.abiVersion)}, expected ${NATIVE_MERGE_ABI_VERSION})` };
  }
  for (const [k, v] of Object.entries(MERGE_STEP)) {
    if (mod.layout[k] !== v) return { ok: false, reason: `${path} has another layout (${k} ${String(mod.layout[k])}, expected ${v})` };
  }
  return { ok: true, step: mod.mergeStep as MergeStepFn, sha: mod as NativeSha256Fns, path };
}
