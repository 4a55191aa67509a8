// What the benchmarks read about a process from /proc, shared by bench/run.mjs, live.mjs and steady.mjs.
import { readdirSync, readFileSync } from 'node:fs';

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
 * Node.js flags serve runs with where it is launched for real: those of the `mirrorguard` command's
 * shebang, which the systemd unit and `npm start` repeat (test/util/v8-heap.test.ts holds them equal):
 * V8's young generation at 8 MiB and its old generation grown 20 % past what the last full collection
 * kept (docs/performance.md "V8's heap, sized for a packet path"). MIRRORGUARD_BENCH_NODE_ARGS
 * (space-separated) measures serve under other flags, for A/B runs.
 */
export const SERVE_NODE_ARGS = Object.freeze(
  (process.env.MIRRORGUARD_BENCH_NODE_ARGS ?? readFileSync(new URL('../bin/mirrorguard.js', import.meta.url), 'utf8').split('\n')[0].replace(/^#!\/usr\/bin\/env -S node\s*/, ''))
    .split(/\s+/)
    .filter(Boolean),
);
