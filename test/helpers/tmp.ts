import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, onTestFinished } from 'vitest';

/**
 * A fresh temporary folder, removed after the current test. Inside a test body the removal is the test's
 * own onTestFinished hook: an afterEach registered while a test runs goes to a suite that has already been
 * collected and never ran, so every such folder was left behind in the system's temporary directory.
 */
export function tmpDir(prefix = 'mg-test-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  const remove = () => rmSync(dir, { recursive: true, force: true });
  try {
    onTestFinished(remove);
  } catch {
    afterEach(remove); // called while a suite is collected, outside any test
  }
  return dir;
}

/** A temporary folder the caller removes (for beforeAll/afterAll use). */
export function makeTmpDir(prefix = 'mg-test-'): { dir: string; remove: () => void } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

/** For a describe block: a fresh folder per test, at `.path`, removed after it. */
export function useTmpDir(prefix = 'mg-test-'): { readonly path: string } {
  let current = '';
  beforeEach(() => {
    current = mkdtempSync(join(tmpdir(), prefix));
  });
  afterEach(() => rmSync(current, { recursive: true, force: true }));
  return {
    get path() {
      return current;
    },
  };
}
