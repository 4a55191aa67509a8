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
import { MERGE_STEP, type MergeStepFn } from '../pcap/merge.js';

/** Must equal abiVersion in native/src/merge.cc. */
export const NATIVE_MERGE_ABI_VERSION = 1;

export type MergeStepLoad = { ok: true; step: MergeStepFn; path: string } | { ok: false; reason: string };

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
  let mod: { mergeStep?: unknown; abiVersion?: number; layout?: Record<string, number> };
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
  return { ok: true, step: mod.mergeStep as MergeStepFn, path };
}
