// What the benchmarks read about a process from /proc, shared by bench/run.mjs, live.mjs and steady.mjs.
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { SERVE_NODE_FLAGS } from '../dist/util/v8-heap.js';

/**
 * Busy CPU time of the whole machine so far, nanoseconds: /proc/stat's user, nice, system, irq and softirq
 * over every CPU (steal and idle excluded). Unlike cpuNs(pid) it counts work done for a process outside
 * it: the kernel's writeback threads, and softirqs (such as the deferred skb frees of a recvmmsg) run on
 * another CPU while it was idle. Ticks of 1/CLK_TCK s (10 ms).
 */
let clkTck = 0;
export function machineBusyNs() {
  if (clkTck === 0) clkTck = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout.trim()) || 100;
  const f = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0].trim().split(/\s+/).slice(1).map(Number);
  const [user, nice, system, , , irq, softirq] = f;
  return ((user + nice + system + irq + softirq) * 1e9) / clkTck;
}

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
