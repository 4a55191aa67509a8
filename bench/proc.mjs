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
 * Node.js flags serve runs with where it is launched for real (deploy/systemd/mirrorguard.service and
 * `npm start`): V8's young generation at 16 MiB (docs/performance.md "The pool at its ceiling").
 */
export const SERVE_NODE_ARGS = Object.freeze(['--max-semi-space-size=8']);
