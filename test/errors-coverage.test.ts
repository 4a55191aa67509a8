/**
 * docs/errors.md, both ways and by behaviour (issue 17): every documented code is produced by some test
 * that triggers it (its name appears in a test other than the registry's own), and every MG_ERR_* the
 * source can emit is in the registry. The two codes no other test reached are triggered here.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ERRORS } from '../src/errors.js';
import { buildHarness, bearer } from './api/helpers.js';
import { describeWithFixtures, fixture, PROJECT_ROOT } from './helpers/fixtures.js';
import { runCli } from './helpers/serve.js';
import { useTmpDir } from './helpers/tmp.js';

function files(dir: string, ext: string): string[] {
  return readdirSync(dir).flatMap((f) => {
    const p = join(dir, f);
    return statSync(p).isDirectory() ? files(p, ext) : p.endsWith(ext) ? [p] : [];
  });
}

const SELF = ['test/errors.test.ts', 'test/errors-coverage.test.ts'];

describe('error codes, documented and triggered', () => {
  it('every code in docs/errors.md appears in a test that triggers it', () => {
    const tests = files(join(PROJECT_ROOT, 'test'), '.ts').filter((f) => !SELF.includes(relative(PROJECT_ROOT, f)));
    const text = tests.map((f) => readFileSync(f, 'utf8')).join('\n');
    const untested = Object.keys(ERRORS).filter((c) => !text.includes(c) && !SELF_TRIGGERED.includes(c));
    expect(untested).toEqual([]);
  });

  it('every MG_ERR_* the source names is in the registry (and so in docs/errors.md)', () => {
    const named = new Set(files(join(PROJECT_ROOT, 'src'), '.ts').flatMap((f) => [...readFileSync(f, 'utf8').matchAll(/\bMG_ERR_[A-Z0-9_]+\b/g)].map((m) => m[0])));
    expect([...named].filter((c) => !(c in ERRORS))).toEqual([]);
  });
});

/** Codes whose only trigger is below. */
const SELF_TRIGGERED = ['MG_ERR_API_INTERNAL', 'MG_ERR_MANIFEST_WRITE'];

describe('the codes no other test reached', () => {
  const tmp = useTmpDir('mg-codes-');

  it('MG_ERR_API_INTERNAL: an unexpected throw inside a route is a coded 500, not a stack', async () => {
    const h = buildHarness({ dataDir: tmp.path });
    Object.defineProperty(h, 'kernel', { get: () => { throw new Error('boom'); } });
    try {
      const r = await h.app.inject({ url: '/v1/status', headers: bearer('auditor') });
      expect(r.statusCode).toBe(500);
      expect(r.json()).toMatchObject({ code: 'MG_ERR_API_INTERNAL' });
      expect(r.body).not.toContain('boom');
    } finally {
      await h.close();
    }
  });

  describeWithFixtures('manifest init --out', () => {
    it('MG_ERR_MANIFEST_WRITE (exit 73) when the folder does not exist', () => {
      const r = runCli(['manifest', 'init', '--describe-json', fixture('aws-cli', 'aws-cli-describe-traffic-mirror-sessions.output.json'), '--out', join(tmp.path, 'no', 'such', 'm.yaml')]);
      expect(r.status).toBe(73);
      expect(r.stderr).toContain('MG_ERR_MANIFEST_WRITE');
    });
  });
});
