/**
 * docs/counters.md and the metrics table of docs/api.md against the code, both ways: every name the
 * code can emit is documented, and every documented name is one the code emits. The code's lists come
 * from where the names are defined (the drop and weird registries, the detector's and the alerts'
 * counter objects, the native receiver's and the capture ring's counter mappings, the Prometheus registry), not from a list
 * kept here.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createAlerts } from '../src/alert/alerts.js';
import { parseAlertsConfig } from '../src/alert/config.js';
import { DROP_NAMES, WEIRD_NAMES } from '../src/outcomes.js';
import { newSessionTableCounters } from '../src/collector/session-table.js';
import { newSessionWritersCounters } from '../src/collector/session-writer.js';
import { newDetectCounters } from '../src/detect/counters.js';
import { newArchiveCounters } from '../src/archive/counters.js';
import { nativeCounters, type NativeCounterSource } from '../src/ingest/native.js';
import { ringCounters, type RingReceiverStats } from '../src/ingest/ring.js';
import { openDb } from '../src/store/db.js';
import { storeCounters } from '../src/store/write-queue.js';
import { bearer, buildHarness, type Harness } from './api/helpers.js';
import { PROJECT_ROOT } from './helpers/fixtures.js';
import { makeTmpDir } from './helpers/tmp.js';

/** `| \`name\` |` rows of each `## Section` of a Markdown file, by section title. */
function tableNames(file: string): Map<string, string[]> {
  const bySection = new Map<string, string[]>();
  let section = '';
  for (const line of readFileSync(join(PROJECT_ROOT, 'docs', file), 'utf8').split('\n')) {
    const h = /^## (.+)$/.exec(line);
    if (h) section = h[1]!.trim();
    // The first cell may name several: `a`, `b`.
    const row = /^\| ((?:`[^`]+`(?:, )?)+) \|/.exec(line);
    if (row) bySection.set(section, [...(bySection.get(section) ?? []), ...[...row[1]!.matchAll(/`([^`]+)`/g)].map((m) => m[1]!)]);
  }
  return bySection;
}

const sorted = (xs: Iterable<string>) => [...new Set(xs)].sort();

describe('docs/counters.md', () => {
  const sections = tableNames('counters.md');
  const documented = [...sections.values()].flat();

  // Every counter family, from the code that names it.
  const db = openDb(':memory:');
  const alerts = createAlerts({ db, ...parseAlertsConfig({}) });
  const alertNames = Object.keys(alerts.counters());
  db.close();
  // nativeCounters() maps the receiver's stats to names; any stats object gives every name.
  const nativeNames = Object.keys(nativeCounters(new Proxy({}, { get: () => 0 }) as NativeCounterSource));
  const families: [string, string[]][] = [
    ['Packet outcomes', [...DROP_NAMES]],
    ['Weird (stored, but odd)', [...WEIRD_NAMES]],
    ['Alerts', alertNames],
    ['Store', Object.keys(storeCounters(null))],
    ['Session table', Object.keys(newSessionTableCounters())],
    ['Capture files', Object.keys(newSessionWritersCounters())],
    ['Detector', Object.keys(newDetectCounters())],
    ['Native receiver', nativeNames],
    ['Capture ring', Object.keys(ringCounters(new Proxy({}, { get: () => 0 }) as RingReceiverStats))],
    ['Archive', Object.keys(newArchiveCounters())],
    ['GENEVE socket', Object.keys(nativeCounters(new Proxy({}, { get: () => 0 }) as NativeCounterSource, 'ingest.geneve'))],
  ];
  const code = families.flatMap(([, names]) => names);

  it('finds every family in the code (the registries are not empty)', () => {
    for (const [section, names] of families) expect([section, names.length > 0]).toEqual([section, true]);
    expect(nativeNames).toContain('ingest.native.kernel_drops');
    expect(code).toContain('pcap.write.enospc');
  });

  it('lists every counter the code keeps', () => {
    expect(sorted(code.filter((n) => !documented.includes(n)))).toEqual([]);
  });

  it('lists only counters the code keeps', () => {
    expect(sorted(documented.filter((n) => !code.includes(n)))).toEqual([]);
  });

  it('lists each counter once, in the section of its family', () => {
    expect(documented.filter((n, i) => documented.indexOf(n) !== i)).toEqual([]);
    for (const [section, names] of families) expect([section, sorted(sections.get(section) ?? [])]).toEqual([section, sorted(names)]);
  });
});

describe('docs/api.md, Metrics', () => {
  const { dir, remove } = makeTmpDir('mg-counters-doc-');
  let h: Harness;
  let exposed: string[] = [];
  beforeAll(async () => {
    h = buildHarness({ dataDir: dir });
    const r = await h.app.inject({ url: '/metrics', headers: bearer('auditor') });
    expect(r.statusCode).toBe(200);
    // Every registered metric has a TYPE line, whether or not it has samples yet.
    exposed = [...r.body.matchAll(/^# TYPE (\S+) /gm)].map((m) => m[1]!);
  });
  afterAll(async () => {
    await h.close();
    remove();
  });

  const table = tableNames('api.md').get('Metrics') ?? [];
  // `mirrorguard_process_*` stands for prom-client's default metrics.
  const covered = (name: string) => table.some((t) => (t.endsWith('*') ? name.startsWith(t.slice(0, -1)) : name === t));

  it('lists every metric /metrics serves', () => {
    expect(exposed.length).toBeGreaterThan(10);
    expect(sorted(exposed.filter((n) => !covered(n)))).toEqual([]);
  });

  it('lists only metrics /metrics serves', () => {
    const stale = table.filter((t) => (t.endsWith('*') ? !exposed.some((n) => n.startsWith(t.slice(0, -1))) : !exposed.includes(t)));
    expect(sorted(stale)).toEqual([]);
  });
});
