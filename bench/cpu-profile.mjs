#!/usr/bin/env node
// Where the main thread's time goes: a V8 .cpuprofile (node --cpu-prof) reduced to functions by self
// time, optionally within a window of CLOCK_MONOTONIC microseconds (V8's profile clock, the same clock
// as process.hrtime), so `npm run bench -- --cpu-prof` can keep only the drain of a burst.
//
//   node bench/cpu-profile.mjs FILE.cpuprofile [--from US] [--to US] [--top N]
//
// Each sample counts as one median sampling interval. (Chrome DevTools weighs a sample by the time to the
// next one; on a loaded machine the sampler thread is sometimes descheduled for milliseconds or seconds,
// and that weighting then hands the whole gap to whichever function happened to be sampled before it.)
// V8 samples on a wall-clock timer: a thread preempted by another process while in a function is
// counted there. Only the thread that was profiled (the main thread) is in the profile: the libuv
// pool's disk writes are not.
import { readFileSync } from 'node:fs';
import { basename } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

export function readProfile(file) {
  return JSON.parse(readFileSync(file, 'utf8'));
}

/** V8's pseudo-frames: not JavaScript, not native functions of ours. */
const PSEUDO = new Set(['(idle)', '(program)', '(garbage collector)', '(root)']);

/**
 * Self time by function in [fromUs, toUs] (whole profile when omitted): rows sorted by self time, each
 * with its share of the window's busy time (idle excluded), plus totals.
 */
export function selfTimeTable(profile, fromUs = -Infinity, toUs = Infinity, top = 25) {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const self = new Map();
  let t = profile.startTime;
  let windowUs = 0;
  let idleUs = 0;
  const { samples, timeDeltas } = profile;
  const sorted = timeDeltas.filter((d) => d > 0).sort((a, b) => a - b);
  const w = sorted.length ? sorted[Math.floor(sorted.length / 2)] : 0;
  let n = 0;
  for (let i = 0; i < samples.length; i++) {
    t += timeDeltas[i];
    if (t < fromUs || t > toUs) continue;
    n++;
    const cf = byId.get(samples[i]).callFrame;
    const name = cf.functionName || '(anonymous)';
    const where = cf.url ? `${basename(cf.url)}:${cf.lineNumber + 1}` : '';
    const key = PSEUDO.has(name) || !where ? name : `${name} ${where}`;
    windowUs += w;
    if (name === '(idle)') idleUs += w;
    self.set(key, (self.get(key) ?? 0) + w);
  }
  const busyUs = windowUs - idleUs;
  const rows = [...self.entries()]
    .filter(([k]) => k !== '(idle)')
    .sort((a, b) => b[1] - a[1])
    .slice(0, top)
    .map(([fn, us]) => ({ fn, selfMs: us / 1000, share: busyUs > 0 ? us / busyUs : 0 }));
  return { samples: n, intervalUs: w, windowMs: windowUs / 1000, busyMs: busyUs / 1000, idleMs: idleUs / 1000, rows };
}

export function formatTable(t) {
  const lines = [`${t.samples} samples at ~${t.intervalUs} µs: main thread busy ${t.busyMs.toFixed(0)} ms, idle ${t.idleMs.toFixed(0)} ms`, '', '| self ms | share of busy | function |', '|---:|---:|---|'];
  for (const r of t.rows) lines.push(`| ${r.selfMs.toFixed(1)} | ${(r.share * 100).toFixed(1)}% | \`${r.fn}\` |`);
  return lines.join('\n');
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: { from: { type: 'string' }, to: { type: 'string' }, top: { type: 'string', default: '25' } },
  });
  if (positionals.length !== 1) {
    process.stderr.write('usage: node bench/cpu-profile.mjs FILE.cpuprofile [--from US] [--to US] [--top N]\n');
    process.exit(64);
  }
  const t = selfTimeTable(readProfile(positionals[0]), values.from ? Number(values.from) : -Infinity, values.to ? Number(values.to) : Infinity, Number(values.top));
  process.stdout.write(`${formatTable(t)}\n`);
}
