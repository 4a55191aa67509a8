import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach } from 'vitest';

/** A fresh temporary folder, removed after the current test. */
export function tmpDir(prefix = 'mg-test-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  afterEach(() => rmSync(dir, { recursive: true, force: true }));
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
