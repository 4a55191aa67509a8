/**
 * The skip mechanism itself (test/helpers/needs.ts): a sample suite run by a vitest of its own, with
 * tshark pretended absent. On a developer's machine the test that needs it is skipped and the run ends
 * green with the summary line; under CI=true the same run fails, naming the need.
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { PROJECT_ROOT } from './fixtures.js';
import { SUMMARY_PREFIX } from './skip-summary-reporter.js';

const VITEST = join(PROJECT_ROOT, 'node_modules', 'vitest', 'vitest.mjs');
const CONFIG = join('test', 'helpers', 'needs-sample', 'vitest.config.ts');

function runSample(env: Record<string, string>): { status: number | null; out: string } {
  // Not this run's worker variables: the child is a run of its own.
  const base = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('VITEST') && k !== 'CI' && k !== 'MIRRORGUARD_TEST_WITHOUT'));
  const r = spawnSync(process.execPath, [VITEST, 'run', '--config', CONFIG], {
    cwd: PROJECT_ROOT,
    encoding: 'utf8',
    env: { ...base, NO_COLOR: '1', FORCE_COLOR: '0', ...env },
    timeout: 120_000,
  });
  return { status: r.status, out: `${r.stdout}${r.stderr}` };
}

describe('skipping for a missing tool', () => {
  it('skips what needs it, passes, and ends with one summary line naming it and how to get it', () => {
    const r = runSample({ MIRRORGUARD_TEST_WITHOUT: 'tshark' });
    expect(r.status, r.out).toBe(0);
    expect(r.out).toMatch(/2 passed \| 1 skipped/);
    const lines = r.out.split('\n').filter((l) => l.startsWith(SUMMARY_PREFIX));
    expect(lines).toEqual([`${SUMMARY_PREFIX} 1 test and some checks of 1 more, needing tshark (2). To run them: apt-get install tshark; or bash .ci/run, which installs everything.`]);
  });

  it('fails under CI=true instead, naming the need', () => {
    const r = runSample({ MIRRORGUARD_TEST_WITHOUT: 'tshark', CI: 'true' });
    expect(r.status, r.out).toBe(1);
    expect(r.out).toMatch(/CI=true and this test needs tshark, which is missing: apt-get install tshark/);
    // Both the test that needs it and the one that checks with it fail; the one that needs nothing passes.
    expect(r.out).toMatch(/2 failed \| 1 passed/);
    expect(r.out.split('\n').some((l) => l.startsWith(SUMMARY_PREFIX))).toBe(false);
  });
});
