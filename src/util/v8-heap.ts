/**
 * V8's heap sized for a packet path (docs/performance.md "V8's heap, sized for a packet path"). serve's
 * packet path allocates nothing per packet, so what the heap holds is the sessions' objects, and what
 * V8 adds on top by default is headroom: the old generation may grow 1.5-4x past what its last full
 * collection kept before the next one (at 10,000 sessions, 80-90 MB committed for 56 MB live), and the
 * young generation grows to 32 MiB. serve is launched with `--max-semi-space-size=4
 * --heap-growing-percent=20` (the systemd unit, `npm start`, the `mirrorguard` command's shebang).
 *
 * The growth factor is read by V8 at every collection, so serve sets it itself when its launcher did
 * not (`node bin/mirrorguard.js serve`); the young generation's size is fixed when the heap is made, so
 * that one only a launcher can set, and serve says so once at start.
 */
import { setFlagsFromString } from 'node:v8';

/** The old generation's limit after a full collection: 20 % above the live bytes it kept. */
export const HEAP_GROWING_PERCENT = 20;
/** V8's semi-space, MiB: a young generation of 8 MiB (two semi-spaces) instead of 32. */
export const MAX_SEMI_SPACE_MIB = 4;
/**
 * The Node.js flags serve is launched with: the bin's shebang, `npm start` and the systemd unit write them
 * out (test/util/v8-heap.test.ts holds each to this), the test helper and the benchmarks start serve with them.
 */
export const SERVE_NODE_FLAGS: readonly string[] = Object.freeze([`--max-semi-space-size=${MAX_SEMI_SPACE_MIB}`, `--heap-growing-percent=${HEAP_GROWING_PERCENT}`]);

export interface HeapFlags {
  /** The growth factor was set here (the launcher did not set one). */
  growingSet: boolean;
  /** The launcher set the young generation's size (--max-semi-space-size). */
  semiSpaceSet: boolean;
}

function given(flag: string, execArgv: readonly string[], nodeOptions: string): boolean {
  const under = flag.replace(/-/g, '_');
  const has = (a: string) => a.startsWith(`--${flag}`) || a.startsWith(`--${under}`);
  return execArgv.some(has) || nodeOptions.split(/\s+/).some(has);
}

/** Called once as serve starts, before the manifest and the store are loaded. */
export function applyServeHeapFlags(execArgv: readonly string[] = process.execArgv, nodeOptions = process.env.NODE_OPTIONS ?? ''): HeapFlags {
  const growingSet = !given('heap-growing-percent', execArgv, nodeOptions);
  if (growingSet) setFlagsFromString(`--heap-growing-percent=${HEAP_GROWING_PERCENT}`);
  return { growingSet, semiSpaceSet: given('max-semi-space-size', execArgv, nodeOptions) };
}
