/**
 * Ends the run with one line naming what was skipped for a missing tool and how to get it, so a
 * newcomer's green `npm test` says what it did not check. Tests mark themselves through
 * test/helpers/needs.ts: a skipped test carries the need in its name, a test that left an oracle's
 * check out (checkIfHave) carries it in its meta; this reporter only reads those marks.
 */
import type { Reporter, TestModule } from 'vitest/node';
import { NEEDS, NEEDS_MARKER, type Need } from './needs-table.js';

/** What the summary line starts with (test/helpers/skip-summary.test.ts looks for it). */
export const SUMMARY_PREFIX = 'Skipped for missing tools:';

export default class SkipSummaryReporter implements Reporter {
  onTestRunEnd(testModules: ReadonlyArray<TestModule>): void {
    const byNeed = new Map<Need, number>();
    const count = (n: string) => {
      if (n in NEEDS) byNeed.set(n as Need, (byNeed.get(n as Need) ?? 0) + 1);
    };
    let skipped = 0;
    let partial = 0;
    for (const mod of testModules) {
      for (const t of mod.children.allTests()) {
        const state = t.result().state;
        const at = t.fullName.lastIndexOf(NEEDS_MARKER);
        if (state === 'skipped' && at >= 0) {
          skipped++;
          t.fullName.slice(at + NEEDS_MARKER.length, t.fullName.indexOf(']', at)).split(', ').forEach(count);
        } else if (state !== 'skipped') {
          const left = (t.meta() as { mirrorguardChecksLeftOut?: string[] }).mirrorguardChecksLeftOut;
          if (left?.length) {
            partial++;
            left.forEach(count);
          }
        }
      }
    }
    if (skipped + partial === 0) return;
    const needs = [...byNeed.keys()].sort();
    const how = [...new Set(needs.map((n) => NEEDS[n].get))].join('; ');
    const tests = (n: number) => `${n} test${n === 1 ? '' : 's'}`;
    const what = [skipped > 0 ? tests(skipped) : '', partial > 0 ? `some checks of ${skipped > 0 ? `${partial} more` : tests(partial)}` : ''].filter(Boolean).join(' and ');
    process.stdout.write(
      `\n${SUMMARY_PREFIX} ${what}, needing ${needs.map((n) => `${n} (${byNeed.get(n)})`).join(', ')}. To run them: ${how}; or bash .ci/run, which installs everything.\n`,
    );
  }
}
