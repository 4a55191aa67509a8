/**
 * serve's V8 heap flags (src/util/v8-heap.ts): the old generation's growth factor is set by serve itself
 * when the launcher did not, and it bounds the heap V8 commits past the live bytes. Measured in child
 * processes (the flag is process-wide), against dist/ (`npm test` builds it first).
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { applyServeHeapFlags, HEAP_GROWING_PERCENT, MAX_SEMI_SPACE_MIB, SERVE_NODE_FLAGS } from '../../src/util/v8-heap.js';
import { PROJECT_ROOT } from '../helpers/fixtures.js';
import { BIN, LAUNCH_NODE_ARGS, startServe } from '../helpers/serve.js';
import { tmpDir } from '../helpers/tmp.js';

const HEAP = join(PROJECT_ROOT, 'dist', 'util', 'v8-heap.js');

/** A child with ~40 MB of live objects and a steady churn of garbage: V8's largest committed heap, MB. */
function peakHeapMb(nodeArgs: string[], apply: boolean, env: NodeJS.ProcessEnv = {}): { peak: number; flags: unknown } {
  const script = `
    const { getHeapStatistics } = await import('node:v8');
    const { applyServeHeapFlags } = await import(${JSON.stringify(HEAP)});
    const flags = ${apply} ? applyServeHeapFlags() : null;
    const live = [];
    for (let i = 0; i < 300000; i++) live.push({ a: i, b: 'x' + i, c: [i, i] });
    let peak = 0;
    let junk;
    for (let r = 0; r < 150; r++) {
      junk = [];
      for (let i = 0; i < 20000; i++) junk.push({ a: i, s: 'y' + i, arr: new Array(4) });
      peak = Math.max(peak, getHeapStatistics().total_heap_size);
    }
    console.log(JSON.stringify({ peak: peak / 1e6, flags, live: live.length + junk.length }));
  `;
  const r = spawnSync(process.execPath, [...nodeArgs, '--input-type=module', '-e', script], { encoding: 'utf8', env: { ...process.env, NODE_OPTIONS: '', ...env }, timeout: 60_000 });
  expect(r.status, r.stderr).toBe(0);
  return JSON.parse(r.stdout) as { peak: number; flags: unknown };
}

describe('serve heap flags', () => {
  it('a launcher without the flags: serve sets the growth factor itself, and V8 commits far less past the live heap', () => {
    const off = peakHeapMb(['--max-semi-space-size=4'], false);
    const on = peakHeapMb(['--max-semi-space-size=4'], true);
    expect(on.flags).toEqual({ growingSet: true, semiSpaceSet: true });
    // Measured 66-68 against 178-236 MB: with a small young generation more garbage is promoted, and V8's
    // default lets the old generation grow 1.5-4x past the live bytes before it collects.
    expect(on.peak).toBeLessThan(off.peak * 0.7);
  });

  it("a launcher's own growth factor wins; the young generation's flag counts from NODE_OPTIONS too", () => {
    const own = peakHeapMb(['--max-semi-space-size=4', '--heap_growing_percent=300'], true);
    expect(own.flags).toEqual({ growingSet: false, semiSpaceSet: true });
    // NODE_OPTIONS admits --max-semi-space-size (not the growth factor).
    const ours = peakHeapMb([], true, { NODE_OPTIONS: '--max-semi-space-size=4' });
    expect(ours.flags).toEqual({ growingSet: true, semiSpaceSet: true });
    expect(ours.peak).toBeLessThan(own.peak * 0.7);
  });

  it('reports what the launcher gave, without touching V8 when both are given', () => {
    expect(applyServeHeapFlags(['--max-semi-space-size=4', '--heap-growing-percent=20'], '')).toEqual({ growingSet: false, semiSpaceSet: true });
    expect(applyServeHeapFlags(['--inspect'], '--max-semi-space-size=2 --heap-growing-percent=10')).toEqual({ growingSet: false, semiSpaceSet: true });
  });

  it('serve started by plain `node` says once that the young generation flag is missing; started as the command, it does not', async () => {
    const msg = (l: { msg: string }) => l.msg.startsWith('node was started without --max-semi-space-size');
    const plain = await startServe(['--api', 'off', '--data-dir', join(tmpDir(), 'data'), '--log-format', 'json'], {}, []);
    const line = await plain.waitForLog(msg);
    expect(line.level).toBe(30);
    expect(line.flag).toBe('--max-semi-space-size=4');
    expect(await plain.stop()).toBe(0);
    expect(plain.logs.filter(msg)).toHaveLength(1);
    const launched = await startServe(['--api', 'off', '--data-dir', join(tmpDir(), 'data'), '--log-format', 'json']);
    expect(LAUNCH_NODE_ARGS).toEqual([`--max-semi-space-size=${MAX_SEMI_SPACE_MIB}`, `--heap-growing-percent=${HEAP_GROWING_PERCENT}`]);
    expect(await launched.stop()).toBe(0);
    expect(launched.logs.filter(msg)).toHaveLength(0);
  });

  it('the mirrorguard command, npm start, the systemd unit and the benchmarks pass the flags serve is sized for', async () => {
    const { readFileSync } = await import('node:fs');
    const flags = SERVE_NODE_FLAGS.join(' ');
    expect(SERVE_NODE_FLAGS).toEqual([`--max-semi-space-size=${MAX_SEMI_SPACE_MIB}`, `--heap-growing-percent=${HEAP_GROWING_PERCENT}`]);
    const { SERVE_NODE_ARGS } = (await import(join(PROJECT_ROOT, 'bench', 'proc.mjs'))) as { SERVE_NODE_ARGS: readonly string[] };
    if (process.env.MIRRORGUARD_BENCH_NODE_ARGS === undefined) expect(SERVE_NODE_ARGS.join(' ')).toBe(flags);
    expect(readFileSync(BIN, 'utf8').split('\n')[0]).toBe(`#!/usr/bin/env -S node ${flags}`);
    const pkg = JSON.parse(readFileSync(join(PROJECT_ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> };
    expect(pkg.scripts.start).toBe(`node ${flags} bin/mirrorguard.js serve`);
    expect(readFileSync(join(PROJECT_ROOT, 'deploy', 'systemd', 'mirrorguard.service'), 'utf8')).toContain(`ExecStart=/usr/bin/node ${flags} `);
  });
});
