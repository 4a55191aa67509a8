import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ERRORS, MgError } from '../src/errors.js';
import { PROJECT_ROOT } from './helpers/fixtures.js';

describe('error registry', () => {
  const doc = readFileSync(join(PROJECT_ROOT, 'docs', 'errors.md'), 'utf8');
  const documented = new Set([...doc.matchAll(/^\| `(MG_ERR_[A-Z0-9_]+)`/gm)].map((m) => m[1]));

  it('documents every code in docs/errors.md', () => {
    const missing = Object.keys(ERRORS).filter((c) => !documented.has(c));
    expect(missing).toEqual([]);
  });

  it('documents no code that does not exist', () => {
    const extra = [...documented].filter((c) => !(c in ERRORS));
    expect(extra).toEqual([]);
  });

  it('documents the same exit and HTTP status as the registry', () => {
    for (const m of doc.matchAll(/^\| `(MG_ERR_[A-Z0-9_]+)` \| (\d*) \| (\d*) \|/gm)) {
      const def = ERRORS[m[1] as keyof typeof ERRORS] as { exit: number; status?: number };
      if (m[2]) expect([m[1], def.exit]).toEqual([m[1], Number(m[2])]);
      expect([m[1], 'status' in def ? def.status : undefined]).toEqual([m[1], m[3] ? Number(m[3]) : undefined]);
    }
  });

  it('prints problems as FILE:LINE: field: message', () => {
    const e = new MgError('MG_ERR_MANIFEST_INVALID', 'm.yaml', {
      problems: [{ file: 'm.yaml', line: 4, field: 'sessions[0].vni', message: 'must be at most 16777215' }],
    });
    expect(e.code).toBe('MG_ERR_MANIFEST_INVALID');
    expect(e.exitCode).toBe(78);
    expect(e.describe().split('\n')[1]).toBe('m.yaml:4: sessions[0].vni: must be at most 16777215');
  });
});
