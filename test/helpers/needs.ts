/**
 * What a test needs from outside Node: an oracle (tshark, tcpdump, mergecap, scapy), a capability
 * (libpcap through `cap`, root for tmpfs mounts, the native addon) or a server (PostgreSQL, an S3
 * emulator, Chromium). One place answers "is it here?", once per run (test/helpers/global-setup.ts
 * probes and hands the answers to every worker), and one place decides what a missing one means:
 *
 * - on a developer's machine the test is skipped, its name says which need was missing, and the run
 *   ends with one summary line saying how to get it (test/helpers/skip-summary-reporter.ts);
 * - under CI=true the test runs and fails at once, naming the need, so CI never silently loses coverage.
 *
 * `MIRRORGUARD_TEST_WITHOUT=tshark,scapy` pretends those are absent (how the skip path itself is tested).
 */
import { describe, inject, it, TestRunner } from 'vitest';


import { probeNeeds } from './global-setup.js';
import { NEEDS, NEEDS_MARKER, type Need } from './needs-table.js';

export { NEEDS, NEEDS_MARKER, type Need };

/** True when every need is present in this run. */
export function have(...needs: Need[]): boolean {
  return missing(needs).length === 0;
}

/** The needs of `needs` that are absent in this run. */
export function missing(needs: readonly Need[]): Need[] {
  const present = answers();
  return needs.filter((n) => present[n] !== true);
}

let local: Record<Need, boolean> | null = null;

/** The global setup's answers; a config without that setup (a one-off run) gets a probe of its own. */
function answers(): Record<Need, boolean> {
  const provided = inject('mirrorguardNeeds') as Record<Need, boolean> | undefined;
  if (provided) return provided;
  local ??= probeNeeds();
  return local;
}

const IN_CI = process.env.CI === 'true' || process.env.CI === '1';

function label(name: string, absent: Need[]): string {
  return `${name} ${NEEDS_MARKER}${absent.join(', ')}]`;
}

function failing(absent: Need[]): () => never {
  return () => {
    throw new Error(`CI=true and this test needs ${absent.map((n) => NEEDS[n].probe).join(', ')}, which is missing: ${absent.map((n) => NEEDS[n].get).join('; ')} (.ci/run installs it)`);
  };
}

/**
 * `describe` that runs only where `needs` are present. Missing outside CI: one skipped test whose name
 * names the need (the body is not even collected, since bodies often probe the tool). Missing under
 * CI=true: one failing test instead.
 */
export function describeNeeds(needs: Need[], name: string, body: () => void): void {
  const absent = missing(needs);
  if (absent.length === 0) describe(name, body);
  else if (IN_CI) describe(name, () => it(`requires ${absent.join(', ')}`, failing(absent)));
  else describe.skip(label(name, absent), () => it.skip('skipped', () => undefined));
}

/** `it` that runs only where `needs` are present; otherwise skipped (or failing under CI=true), as above. */
export function itNeeds(needs: Need[], name: string, fn: () => unknown | Promise<unknown>, timeout?: number): void {
  const absent = missing(needs);
  if (absent.length === 0) return it(name, fn, timeout);
  if (IN_CI) return it(label(name, absent), failing(absent));
  it.skip(label(name, absent), fn);
}

/**
 * Inside a test that also checks things without the need: run `check` where the need is present; under
 * CI=true fail where it is absent; elsewhere leave the check out and mark the test, so the summary line
 * counts it. For an oracle's second opinion on files the rest of the test already checked with our own code.
 */
export function checkIfHave<T>(need: Need, check: () => T): T | undefined {
  if (have(need)) return check();
  if (IN_CI) failing([need])();
  const t = TestRunner.getCurrentTest();
  if (t) t.meta.mirrorguardChecksLeftOut = [...new Set([...(t.meta.mirrorguardChecksLeftOut ?? []), need])];
  return undefined;
}

declare module '@vitest/runner' {
  interface TaskMeta {
    /** Needs whose checks checkIfHave() left out of this test. */
    mirrorguardChecksLeftOut?: Need[];
  }
}

declare module 'vitest' {
  export interface ProvidedContext {
    mirrorguardNeeds: Record<Need, boolean>;
  }
}
