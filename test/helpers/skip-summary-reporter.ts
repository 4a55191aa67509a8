/**
 * Ends the run with one line naming what was skipped for a missing tool and how to get it, so a
 * newcomer's green `npm test` says what it did not check. Tests mark themselves through
 * test/helpers/needs.ts; this reporter only reads their names.
 */
import type { Reporter, TestModule } from 'vitest/node';
import { NEEDS, NEEDS_MARKER, type Need } from './needs-table.js';

export default class SkipSummaryReporter implements Reporter {
  onTestRunEnd(testModules: ReadonlyArray<TestModule>): void {
    const byNeed = new Map<Need, number>();
    let tests = 0;
    for (const mod of testModules) {
      for (const t of mod.children.allTests('skipped')) {
        const at = t.fullName.lastIndexOf(NEEDS_MARKER);
        if (at < 0) continue;
        tests++;
        const names = t.fullName.slice(at + NEEDS_MARKER.length, t.fullName.indexOf(']', at)).split(', ');
        for (const n of names) if (n in NEEDS) byNeed.set(n as Need, (byNeed.get(n as Need) ?? 0) + 1);
      }
    }
    if (tests === 0) return;
    const needs = [...byNeed.keys()];
    const how = [...new Set(needs.map((n) => NEEDS[n].get))].join('; ');
    process.stdout.write(
      `\nSkipped ${tests} test${tests === 1 ? '' : 's'} that ${tests === 1 ? 'needs' : 'need'} ${needs.map((n) => `${n} (${byNeed.get(n)})`).join(', ')}: ${how}; or run bash .ci/run, which installs everything.\n`,
    );
  }
}
