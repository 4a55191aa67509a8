/**
 * docs/operations.md's settings table against the program, both ways (issue 17, point 1): every key it
 * names is in the config schema and every schema key is in the table; every flag it names exists on
 * `serve` and sets that key, and every serve flag with a key is in the table.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CONFIG_FLAGS } from '../../src/cli/flags.js';
import { configSchema } from '../../src/config/schema.js';
import { PROJECT_ROOT } from '../helpers/fixtures.js';

interface Def {
  type: string;
  innerType?: unknown;
  in?: unknown;
  shape?: Record<string, unknown>;
}

/** Dotted keys of a zod object, through default/prefault/optional/nullable/pipe wrappers; open records and lists end a path. */
function keys(schema: unknown, prefix = ''): string[] {
  let s = schema as { _zod: { def: Def } };
  for (;;) {
    const d = s._zod.def;
    if (d.innerType) s = d.innerType as typeof s;
    else if (d.type === 'pipe' && d.in) s = d.in as typeof s;
    else break;
  }
  const d = s._zod.def;
  if (d.type !== 'object' || !d.shape) return prefix ? [prefix] : [];
  const out = prefix ? [prefix] : [];
  for (const [k, v] of Object.entries(d.shape)) out.push(...keys(v, prefix ? `${prefix}.${k}` : k));
  return out;
}

const rows = [...readFileSync(join(PROJECT_ROOT, 'docs', 'operations.md'), 'utf8').matchAll(/^\| (?:`(--[a-z-]+)[^`]*`)? *\| `([a-zA-Z][\w.]*?)(?:\.\*)?` \|/gm)].map((m) => ({ flag: m[1], key: m[2]! }));

describe('docs/operations.md settings table', () => {
  const schemaKeys = keys(configSchema);

  it('reads the table and the schema', () => {
    expect(rows.length).toBeGreaterThan(30);
    expect(schemaKeys).toContain('api.trustProxy');
  });

  it('names only keys the schema has', () => {
    expect(rows.map((r) => r.key).filter((k) => !schemaKeys.includes(k))).toEqual([]);
  });

  it('names every key the schema has (sections by their keys)', () => {
    const documented = new Set(rows.map((r) => r.key));
    const leaves = schemaKeys.filter((k) => !schemaKeys.some((o) => o.startsWith(`${k}.`)));
    const missing = leaves.filter((k) => !documented.has(k) && ![...documented].some((d) => k.startsWith(`${d}.`)));
    expect(missing).toEqual([]);
  });

  it('every flag in the table exists and sets its key; every flag with a key is in the table', () => {
    for (const r of rows.filter((x) => x.flag)) {
      const f = CONFIG_FLAGS[r.flag!.slice(2)];
      expect([r.flag, f?.path?.join('.')]).toEqual([r.flag, r.key]);
    }
    const inTable = new Set(rows.map((r) => r.flag));
    expect(Object.values(CONFIG_FLAGS).filter((f) => f.path && !inTable.has(`--${f.name}`)).map((f) => f.name)).toEqual([]);
  });
});
