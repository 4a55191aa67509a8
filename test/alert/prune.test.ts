import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { buildApp } from '../../src/app.js';
import { parseAlertsConfig } from '../../src/alert/config.js';
import { createAlerts } from '../../src/alert/alerts.js';
import { CATALOG_FILE } from '../../src/collector/layout.js';
import { loadConfig } from '../../src/config/load.js';
import { openDb, type Db } from '../../src/store/db.js';
import { silentLogger } from '../../src/util/log.js';
import { tmpDir } from '../helpers/tmp.js';

const DAY_MS = 86_400_000;

function insert(db: Db, rows: [msgId: string, state: string, ageDays: number][], now: number): void {
  const ins = db.prepare("INSERT INTO outbox (msg_id, endpoint, event_type, finding_id, payload, created_at, next_attempt_at, state) VALUES (?, 'pager', 'finding.created', 'f_1', '{}', ?, ?, ?)");
  for (const [id, state, age] of rows) ins.run(id, now - age * DAY_MS, now - age * DAY_MS, state);
}

const ids = (db: Db): string[] => db.prepare<[], { msg_id: string }>('SELECT msg_id FROM outbox ORDER BY msg_id').all().map((r) => r.msg_id);

const ROWS: [string, string, number][] = [
  ['m1-delivered-old', 'delivered', 40],
  ['m2-failed-old', 'failed', 31],
  ['m3-pending-old', 'pending', 400],
  ['m4-delivered-new', 'delivered', 29],
  ['m5-failed-new', 'failed', 1],
];

describe('webhook delivery pruning', () => {
  it('deletes delivered and given-up deliveries older than keepDeliveriesDays, never pending ones', async () => {
    const db = openDb(':memory:');
    const now = Date.UTC(2026, 0, 1);
    insert(db, ROWS, now);
    const alerts = createAlerts({ db, ...parseAlertsConfig({}), now: () => now });
    expect(await alerts.prune()).toBe(2);
    expect(ids(db)).toEqual(['m3-pending-old', 'm4-delivered-new', 'm5-failed-new']);

    const keep7 = createAlerts({ db, ...parseAlertsConfig({ alerting: { keepDeliveriesDays: 7 } }), now: () => now });
    expect(await keep7.prune()).toBe(1);
    expect(ids(db)).toEqual(['m3-pending-old', 'm5-failed-new']);

    const forever = createAlerts({ db, ...parseAlertsConfig({ alerting: { keepDeliveriesDays: 0 } }), now: () => now });
    expect(await forever.prune(now + 1000 * DAY_MS)).toBe(0);
    db.close();
  });

  it('refuses a negative keepDeliveriesDays', () => {
    expect(() => parseAlertsConfig({ alerting: { keepDeliveriesDays: -1 } })).toThrow(/alerting.keepDeliveriesDays/);
  });

  it('serve prunes from its retention timer (which runs at start)', async () => {
    const dataDir = tmpDir();
    mkdirSync(dataDir, { recursive: true });
    const seed = openDb(join(dataDir, CATALOG_FILE));
    insert(seed, ROWS, Date.now());
    seed.close();

    const config = loadConfig({
      overrides: [
        { path: ['dataDir'], value: dataDir, flag: '--data-dir' },
        { path: ['listen'], value: '127.0.0.1:0', flag: '--listen' },
        { path: ['receiver'], value: 'dgram', flag: '--receiver' },
        { path: ['api', 'listen'], value: 'off', flag: '--api' },
      ],
    });
    const app = buildApp(config, silentLogger());
    await app.start();
    try {
      expect(ids(app.db)).toEqual(['m3-pending-old', 'm4-delivered-new', 'm5-failed-new']);
    } finally {
      await app.stop();
    }
  });
});
