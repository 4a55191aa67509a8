/**
 * The shared third-party fixtures live beside the project (../shared/fixtures) and are never copied into
 * it. Tests that need them skip cleanly when the folder is absent (it is present in CI).
 */
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'vitest';

export const PROJECT_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const FIXTURES = process.env.MIRRORGUARD_FIXTURES ?? resolve(PROJECT_ROOT, '..', 'shared', 'fixtures');
export const HAVE_FIXTURES = existsSync(join(FIXTURES, 'SOURCES.md'));

export function fixture(...parts: string[]): string {
  return join(FIXTURES, ...parts);
}

/**
 * `describe` that is skipped, with the reason in its name, when ../shared/fixtures is absent. The body is
 * not even run then (vitest runs a skipped describe's body to collect its tests, and bodies read fixtures).
 */
export const describeWithFixtures: typeof describe = (HAVE_FIXTURES
  ? describe
  : (name: string) =>
      describe.skip(`${name} (skipped: ${FIXTURES} is absent)`, () => {
        it.skip('needs the shared fixtures', () => undefined);
      })) as typeof describe;
