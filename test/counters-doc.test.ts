import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { openDb } from '../src/store/db.js';
import { createAlerts } from '../src/alert/alerts.js';
import { parseAlertsConfig } from '../src/alert/config.js';
import { DROP_NAMES, WEIRD_NAMES } from '../src/decode/drop-reasons.js';
import { newDetectCounters } from '../src/detect/counters.js';
import { PROJECT_ROOT } from './helpers/fixtures.js';

describe('docs/counters.md', () => {
  const doc = readFileSync(join(PROJECT_ROOT, 'docs', 'counters.md'), 'utf8');
  const documented = new Set([...doc.matchAll(/^\| `([a-z0-9_.]+)` \|/gm)].map((m) => m[1]));

  it('lists every counter the code keeps', () => {
    const db = openDb(':memory:');
    const alerts = createAlerts({ db, ...parseAlertsConfig({}) });
    const names = [...DROP_NAMES, ...WEIRD_NAMES, ...Object.keys(newDetectCounters()), ...Object.keys(alerts.stats().counters)];
    db.close();
    expect(names.filter((n) => !documented.has(n))).toEqual([]);
  });
});
