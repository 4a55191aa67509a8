// What the benchmarks read about a process from /proc, shared by bench/run.mjs, live.mjs and steady.mjs.
import { readdirSync, readFileSync } from 'node:fs';
import { SERVE_NODE_FLAGS } from '../dist/util/v8-heap.js';

/** Nanoseconds on CPU, all threads of the process (sum of /proc/PID/task/TID/schedstat). */
export function cpuNs(pid) {
  let total = 0;
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      total += Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ')[0]);
    } catch {
      /* the thread ended */
    }
  }
  return total;
}

/**
 * Node.js flags serve runs with where it is launched for real (src/util/v8-heap.ts SERVE_NODE_FLAGS, which
 * the command's shebang, the systemd unit and `npm start` write out; test/util/v8-heap.test.ts holds them equal):
 * V8's young generation at 8 MiB and its old generation grown 20 % past what the last full collection
 * kept (docs/performance.md "V8's heap, sized for a packet path"). MIRRORGUARD_BENCH_NODE_ARGS
 * (space-separated) measures serve under other flags, for A/B runs.
 */
export const SERVE_NODE_ARGS = Object.freeze(process.env.MIRRORGUARD_BENCH_NODE_ARGS !== undefined ? process.env.MIRRORGUARD_BENCH_NODE_ARGS.split(/\s+/).filter(Boolean) : [...SERVE_NODE_FLAGS]);
