/**
 * A large manifest is parsed in a child process (src/detect/manifest-isolated.ts) so that its parse does
 * not set serve's peak memory: the result, and every error with its problems, must be what loadManifest
 * gives in process. The child imports the compiled module (dist/, built by `npm run build`, as the
 * end-to-end tests need).
 */
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { loadManifest } from '../../src/detect/manifest.js';
import { loadManifestIsolated, loadManifestIsolatedAsync } from '../../src/detect/manifest-isolated.js';
import { PROJECT_ROOT } from '../helpers/fixtures.js';
import { makeTmpDir } from '../helpers/tmp.js';

const { dir, remove } = makeTmpDir('mg-manifest-iso-');
afterAll(remove);
const DIST = pathToFileURL(join(PROJECT_ROOT, 'dist', 'detect', 'manifest.js'));

function manifest(n: number, bad = false): string {
  const lines = ['version: 1', 'sessions:'];
  for (let s = 0; s < n; s++) {
    const vni = bad && s === 1500 ? 'banana' : String(5000 + s);
    lines.push(`  - id: tms-${(s + 1).toString(16).padStart(17, '0')}`, `    vni: ${vni}`, `    sourceIps: [10.${(s >> 16) & 255}.${(s >> 8) & 255}.${s & 255}]`, `    owner: team-${s % 7}`);
  }
  if (bad) lines.push('  - id: tms-bad', '    vni: 3');
  return `${lines.join('\n')}\n`;
}

function caught(f: () => unknown): { code: unknown; message: string; problems: unknown } {
  try {
    f();
  } catch (e) {
    const err = e as { code: unknown; message: string; problems: unknown };
    return { code: err.code, message: err.message, problems: err.problems };
  }
  throw new Error('no error');
}

describe('loadManifestIsolated', () => {
  it('gives the same frozen manifest as loadManifest for a large file, parsed in a child', () => {
    const path = join(dir, 'big.yaml');
    writeFileSync(path, manifest(4000));
    expect(existsSync(DIST)).toBe(true); // else the child path would not run at all
    const child = loadManifestIsolated(path, 1024, DIST);
    expect(child).toEqual(loadManifest(path));
    expect(child.sessions).toHaveLength(4000);
    expect(Object.isFrozen(child) && Object.isFrozen(child.sessions[3]) && Object.isFrozen(child.sessions[3]!.sourceIps)).toBe(true);
  });

  it('throws the same coded error with the same problems (file, line, field) as loadManifest', () => {
    const path = join(dir, 'bad.yaml');
    writeFileSync(path, manifest(3000, true));
    const child = caught(() => loadManifestIsolated(path, 1024, DIST));
    expect(child).toEqual(caught(() => loadManifest(path)));
    expect(child.code).toBe('MG_ERR_MANIFEST_INVALID');
    expect((child.problems as unknown[]).length).toBeGreaterThanOrEqual(2);
    expect(caught(() => loadManifestIsolated(join(dir, 'missing.yaml'), 1024, DIST)).code).toBe('MG_ERR_MANIFEST_READ');
  });

  it('without blocking (reloads): the same manifest and the same errors, and the event loop runs meanwhile', async () => {
    const path = join(dir, 'big-async.yaml');
    writeFileSync(path, manifest(6000));
    let ticks = 0;
    const timer = setInterval(() => ticks++, 5);
    const child = await loadManifestIsolatedAsync(path, 1024, DIST);
    clearInterval(timer);
    expect(child).toEqual(loadManifest(path));
    expect(Object.isFrozen(child.sessions[7])).toBe(true);
    // A child process takes well over 5 ms to start and parse 6,000 sessions: the timer ran in between.
    expect(ticks).toBeGreaterThan(0);
    const bad = join(dir, 'bad-async.yaml');
    writeFileSync(bad, manifest(3000, true));
    const err = await loadManifestIsolatedAsync(bad, 1024, DIST).then(
      () => null,
      (e: { code: unknown; message: string; problems: unknown }) => ({ code: e.code, message: e.message, problems: e.problems }),
    );
    expect(err).toEqual(caught(() => loadManifest(bad)));
    await expect(loadManifestIsolatedAsync(join(dir, 'missing.yaml'), 1024, DIST)).rejects.toMatchObject({ code: 'MG_ERR_MANIFEST_READ' });
  });
});

