import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { detectConfigSchema, DETECT_DEFAULTS } from '../../src/detect/config.js';
import { Detector } from '../../src/detect/detector.js';
import type { FindingEvent } from '../../src/detect/finding.js';
import { loadManifest } from '../../src/detect/manifest.js';
import { findingId } from '../../src/detect/store.js';
import { MgError } from '../../src/errors.js';
import { openDb } from '../../src/store/db.js';
import { describeWithFixtures, fixture } from '../helpers/fixtures.js';
import { tmpDir } from '../helpers/tmp.js';
import { settledStore } from '../helpers/settled.js';

const T0 = Date.UTC(2025, 5, 1, 12);

function capturingLogger() {
  const lines: Record<string, unknown>[] = [];
  const log = pino({ level: 'info' }, { write: (s: string) => void lines.push(JSON.parse(s)) });
  return { log, lines };
}

describe('Detector', () => {
  it('warns loudly when started without a manifest', async () => {
    const { log, lines } = capturingLogger();
    const det = new Detector({ db: openDb(':memory:'), manifest: null, log });
    expect(lines.map((l) => [l.level, l.msg])).toEqual([[40, expect.stringMatching(/^NO MANIFEST: every mirror session is treated as unauthorized/)]]);
    expect(det.onNewPair('10.0.0.1', 1, T0).status).toBe('unauthorized-vni');
  });

  it('reloads a valid manifest, and keeps the old one (saying why) when the new file is invalid', async () => {
    const dir = tmpDir();
    const file = join(dir, 'm.yaml');
    writeFileSync(file, 'version: 1\nsessions:\n  - id: tms-00000001\n    vni: 1\n');
    const { log, lines } = capturingLogger();
    const det = new Detector({ db: openDb(':memory:'), manifest: loadManifest(file), log, clock: () => T0 });
    det.onNewPair('10.0.0.2', 2, T0);
    expect((await settledStore(det).get(findingId('unauthorized-vni', '10.0.0.2|2')))?.status).toBe('open');

    writeFileSync(file, 'version: 1\nsessions:\n  - id: tms-00000001\n    vni: 1\n  - id: tms-00000002\n    vni: 2\n');
    const ok = (await det.reloadManifest(file));
    expect(ok.ok).toBe(true);
    expect(det.manifest?.sessions).toHaveLength(2);
    expect((await settledStore(det).get(findingId('unauthorized-vni', '10.0.0.2|2')))?.status).toBe('resolved');

    const before = det.manifest;
    writeFileSync(file, 'version: 1\nsessions:\n  - id: tms-00000001\n    vni: 99999999\n');
    const bad = (await det.reloadManifest(file));
    expect(bad.ok).toBe(false);
    expect(det.manifest).toBe(before);
    const err = (bad as { error: MgError }).error;
    expect(err.code).toBe('MG_ERR_MANIFEST_INVALID');
    const logged = lines.find((l) => l.level === 50)!;
    expect(logged.msg).toContain('manifest reload refused, keeping the manifest in force');
    expect(logged.msg).toContain(`${file}:4: sessions[0].vni: must be from 0 to 16777215 (24 bits), got 99999999`);
    // An unreadable file is refused the same way.
    expect((await det.reloadManifest(join(dir, 'gone.yaml')))).toMatchObject({ ok: false, error: { code: 'MG_ERR_MANIFEST_READ' } });
    expect(det.manifest).toBe(before);
  });

  it('tick raises silent and expired sessions together', async () => {
    const dir = tmpDir();
    const file = join(dir, 'm.yaml');
    writeFileSync(file, 'version: 1\nsessions:\n  - id: tms-00000001\n    vni: 1\n  - id: tms-00000002\n    vni: 2\n    expires: 2025-06-01T12:10:00Z\n');
    const det = new Detector({ db: openDb(':memory:'), manifest: loadManifest(file), clock: () => T0, silentAfterMs: 5 * 60_000 });
    det.onNewPair('10.0.0.2', 2, T0);
    const r = (await det.tick(T0 + 20 * 60_000, [{ sourceIp: '10.0.0.2', vni: 2, lastSeenMs: T0 + 19 * 60_000 }]));
    expect(r.raised.map((f) => [f.kind, f.sessionId]).sort()).toEqual([
      ['expired-session', 'tms-00000002'],
      ['silent-session', 'tms-00000001'],
    ]);
  });

  it('keeps findings across a restart: the same pair after restart is the same incident', async () => {
    const file = join(tmpDir(), 'catalog.db');
    const db1 = openDb(file);
    const first = new Detector({ db: db1, manifest: null });
    first.onNewPair('10.0.0.9', 9, T0);
    await first.settled();
    db1.close();
    const db2 = openDb(file);
    const det = new Detector({ db: db2, manifest: null });
    det.onNewPair('10.0.0.9', 9, T0 + 3600_000);
    const f = (await settledStore(det).get(findingId('unauthorized-vni', '10.0.0.9|9')))!;
    expect([f.count, f.firstSeen]).toEqual([2, new Date(T0).toISOString()]);
    db2.close();
  });

  it('refuses input that is not CloudTrail with MG_ERR_CLOUDTRAIL_FORMAT', async () => {
    const det = new Detector({ db: openDb(':memory:'), manifest: null });
    await expect(det.ingestCloudTrail({ hello: 'world' })).rejects.toThrow(MgError);
    await expect(det.ingestCloudTrail(42)).rejects.toThrow(expect.objectContaining({ code: 'MG_ERR_CLOUDTRAIL_FORMAT', statusCode: 400 }));
  });
});

describeWithFixtures('Detector.ingestCloudTrail with the Panther-exported Records file', () => {
  const records = JSON.parse(readFileSync(fixture('cloudtrail', 'panther-aws_ec2_traffic_mirroring-all-tests.Records.json'), 'utf8'));

  it('stores every traffic-mirroring event once, skips other services, and is idempotent', async () => {
    const db = openDb(':memory:');
    const events: FindingEvent[] = [];
    const det = new Detector({ db, manifest: null, onChange: (e) => void events.push(e) });
    const first = (await det.ingestCloudTrail(records));
    // 8 traffic-mirroring calls (6 mutations, 2 reads) and one CodeBuild event.
    expect([first.events.length, first.skipped, first.duplicates]).toEqual([8, 1, 0]);
    expect((db.prepare('SELECT COUNT(*) AS n FROM control_events').get() as { n: number }).n).toBe(8);
    expect(first.findings.length).toBeGreaterThan(0);
    await det.settled();
    expect(events.filter((e) => e.type === 'finding.created')).toHaveLength(new Set(first.findings.map((f) => f.id)).size);
    const counts = (await settledStore(det).counts());
    // The same file again (say, from a second trail): nothing new, nothing counted twice.
    const second = (await det.ingestCloudTrail(records));
    expect([second.duplicates, second.findings.length]).toEqual([8, 0]);
    expect((await settledStore(det).counts())).toEqual(counts);
    // And as EventBridge would deliver one of them.
    const eb = (await det.ingestCloudTrail({ 'detail-type': 'AWS API Call via CloudTrail', source: 'aws.ec2', detail: records.Records[0] }));
    expect(eb.duplicates).toBe(1);
  });
});

describe('detect config', () => {
  it('has defaults with units in the key names', async () => {
    expect(detectConfigSchema.parse(undefined)).toEqual({
      silentAfterSeconds: 900,
      inventory: { intervalSeconds: 0, pageSize: 1000 },
      newPairFlood: { intervalSeconds: 10, perSource: 20, total: 200, admitPerSource: 16 },
    });
    expect(DETECT_DEFAULTS.silentAfterSeconds * 1000).toBe(15 * 60_000);
  });

  it('rejects unknown keys and out-of-range values with their path', async () => {
    const r = detectConfigSchema.safeParse({ silentAfterSecs: 5, inventory: { intervalSeconds: 10, region: 'Frankfurt', endpoint: 'ftp://x' } });
    expect(r.success).toBe(false);
    const paths = r.error!.issues.map((i) => i.path.join('.')).sort();
    expect(paths).toEqual(['', 'inventory.endpoint', 'inventory.intervalSeconds', 'inventory.region']);
    expect(detectConfigSchema.parse({ inventory: { intervalSeconds: 300, region: 'eu-central-1', endpoint: 'https://ec2.eu-central-1.amazonaws.com' } }).inventory).toEqual({
      intervalSeconds: 300,
      region: 'eu-central-1',
      endpoint: 'https://ec2.eu-central-1.amazonaws.com',
      pageSize: 1000,
    });
  });
});
