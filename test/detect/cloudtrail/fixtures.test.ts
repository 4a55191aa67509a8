/**
 * The real samples in ../shared/fixtures/cloudtrail (panther-analysis AWS.EC2.Traffic.Mirroring tests,
 * Panther-normalized: "2022-11-15 22:58:13" times, exponent-form numbers, float ownerId) through every
 * input shape: single files, the Records file, gzip, an S3 delivery tree, EventBridge events, JSON lines.
 * SOURCES.md gives each sample's expected result; the six "true" ones must each give a finding when no
 * manifest is given, the three "false" ones none.
 */
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { beforeAll, afterAll, expect, it } from 'vitest';
import { FindingAggregator } from '../../../src/detect/cloudtrail/aggregate.js';
import { normalizeRecord } from '../../../src/detect/cloudtrail/normalize.js';
import { readCloudTrailPath } from '../../../src/detect/cloudtrail/parse.js';
import { evaluateControlEvent } from '../../../src/detect/cloudtrail/rules/index.js';
import type { Finding, FindingKind } from '../../../src/detect/finding.js';
import { findingId } from '../../../src/detect/finding-id.js';
import type { Manifest } from '../../../src/detect/manifest-types.js';
import { describeWithFixtures, fixture } from '../../helpers/fixtures.js';
import { makeTmpDir } from '../../helpers/tmp.js';
import { manifestOf } from './events.js';

const DIR = 'cloudtrail';
const PREFIX = 'panther-aws_ec2_traffic_mirroring-';
const ACTOR = 'arn:aws:sts::123123123123:assumed-role/MakeStuffPublic';

/** Expected finding per sample without a manifest (SOURCES.md "rule ExpectedResult" true/false). */
const EXPECTED: Record<string, [kind: FindingKind, key: string] | null> = {
  CreateTrafficMirrorFilter: ['mirror-filter-changed', 'tmf-010db9a7d8056cc2d'],
  CreateTrafficMirrorFilterRule: ['mirror-filter-changed', 'tmf-010db9a7d8056cc2d'],
  CreateTrafficMirrorSession: ['mirror-attempt-failed', ACTOR], // errorCode Client.NetworkInterfaceNotSupported
  CreateTrafficMirrorTarget: ['mirror-target-created', 'tmt-0a45c694b91bcea54'],
  DeleteTrafficMirrorTarget: ['mirror-session-deleted', 'tmt-0fd4b591901182794'],
  ModifyTrafficMirrorSession: ['mirror-session-modified', 'tms-05e1e21760419ecb6'],
  DescribeTrafficMirrorTargets: null,
  'AWS-Config-Runs-DescribeTrafficMirrorTargets': null,
  UnrelatedEvent: null,
};

const single = (name: string): string => fixture(DIR, `${PREFIX}${name}.json`);
const RECORDS = (): string => fixture(DIR, `${PREFIX}all-tests.Records.json`);

async function scan(path: string, manifest: Manifest | null = null): Promise<{ findings: Finding[]; errors: string[]; records: number }> {
  const agg = new FindingAggregator();
  const errors: string[] = [];
  let records = 0;
  for await (const item of readCloudTrailPath(path)) {
    if (item.type === 'error') errors.push(item.error.describe());
    if (item.type !== 'records') continue;
    for (const r of item.records) {
      records++;
      const ev = normalizeRecord(r);
      if (ev) for (const f of evaluateControlEvent(ev, manifest)) agg.add(f);
    }
  }
  return { findings: agg.findings(), errors, records };
}

/** Incidents as `kind id xcount`; ids are findingId(kind, key), so this checks the keys too. */
const summary = (fs: Finding[]): string[] => fs.map((f) => `${f.kind} ${f.id} x${f.count}`).sort();
const incident = (kind: FindingKind, key: string, count: number): string => `${kind} ${findingId(kind, key)} x${count}`;

const ALL_FROM_RECORDS = [
  incident('mirror-attempt-failed', ACTOR, 1),
  incident('mirror-filter-changed', 'tmf-010db9a7d8056cc2d', 2),
  incident('mirror-session-deleted', 'tmt-0fd4b591901182794', 1),
  incident('mirror-session-modified', 'tms-05e1e21760419ecb6', 1),
  incident('mirror-target-created', 'tmt-0a45c694b91bcea54', 1),
].sort();

describeWithFixtures('real CloudTrail samples (panther-analysis)', () => {
  let tmp: { dir: string; remove: () => void };
  beforeAll(() => {
    tmp = makeTmpDir('mg-ct-fixtures-');
  });
  afterAll(() => tmp.remove());

  it('has the nine samples SOURCES.md lists', () => {
    const names = readdirSync(fixture(DIR)).filter((f) => f.startsWith(PREFIX) && !f.includes('all-tests'));
    expect(names.map((n) => n.slice(PREFIX.length, -'.json'.length)).sort()).toEqual(Object.keys(EXPECTED).sort());
  });

  for (const [name, expected] of Object.entries(EXPECTED)) {
    it(`${name}: ${expected ? `${expected[0]} keyed ${expected[1]}` : 'no finding'}`, async () => {
      const r = await scan(single(name));
      expect(r.errors).toEqual([]);
      expect(r.records).toBe(1);
      expect(summary(r.findings)).toEqual(expected ? [incident(expected[0], expected[1], 1)] : []);
      if (expected) {
        const f = r.findings[0]!;
        expect(f.firstSeen).toMatch(/^2022-11-15T2[23]:\d\d:\d\dZ$/); // "2022-11-15 22:58:13" read as UTC
        expect(f.evidence.actorArn).toBe(ACTOR);
        expect(f.evidence.callerIp).toBe('AWS Internal'); // console calls
      }
    });
  }

  it('reads the exponent-form VNI and float ownerId of the Modify sample', () => {
    const ev = normalizeRecord(JSON.parse(readFileSync(single('ModifyTrafficMirrorSession'), 'utf8')))!;
    expect(ev).toMatchObject({ vni: 12348395, sessionId: 'tms-05e1e21760419ecb6', eni: 'eni-08dd7ebbda3b01770', targetId: 'tmt-0a45c694b91bcea54', filterId: 'tmf-010db9a7d8056cc2d' });
    expect(ev.eventTime).toBe(Date.UTC(2022, 10, 15, 23, 10, 17));
    expect(ev.accountId).toBe('123123123123');
    const target = normalizeRecord(JSON.parse(readFileSync(single('CreateTrafficMirrorTarget'), 'utf8')))!;
    expect(target.targetDestination).toBe('eni-0fd6cc8547555878f');
    expect(target.eni).toBeUndefined();
  });

  it('the Records file gives the same incidents as the single files, the two filter calls as one', async () => {
    const r = await scan(RECORDS());
    expect(r.records).toBe(9);
    expect(summary(r.findings)).toEqual(ALL_FROM_RECORDS);
  });

  it('gzipped, in an S3 delivery tree, as EventBridge events and as JSON lines: the same incidents', async () => {
    const records = (JSON.parse(readFileSync(RECORDS(), 'utf8')) as { Records: unknown[] }).Records;
    const gz = join(tmp.dir, 'all.json.gz');
    writeFileSync(gz, gzipSync(readFileSync(RECORDS())));
    expect(summary((await scan(gz)).findings)).toEqual(ALL_FROM_RECORDS);

    // One S3 object per record, spread over days and regions, as CloudTrail delivers them.
    const tree = join(tmp.dir, 's3');
    records.forEach((rec, i) => {
      const region = (rec as { awsRegion: string }).awsRegion;
      const d = join(tree, 'AWSLogs', '123123123123', 'CloudTrail', region, '2022', '11', String(15 + (i % 3)));
      mkdirSync(d, { recursive: true });
      writeFileSync(join(d, `123123123123_CloudTrail_${region}_20221115T2300Z_${i}abc.json.gz`), gzipSync(JSON.stringify({ Records: [rec] })));
    });
    const t = await scan(tree);
    expect(t.errors).toEqual([]);
    expect(t.records).toBe(9);
    expect(summary(t.findings)).toEqual(ALL_FROM_RECORDS);

    const eb = join(tmp.dir, 'eventbridge.json');
    writeFileSync(eb, JSON.stringify(records.map((detail) => ({ version: '0', 'detail-type': 'AWS API Call via CloudTrail', source: 'aws.ec2', detail }))));
    expect(summary((await scan(eb)).findings)).toEqual(ALL_FROM_RECORDS);

    const lines = join(tmp.dir, 'all.jsonl');
    writeFileSync(lines, records.map((r) => JSON.stringify(r)).join('\n'));
    expect(summary((await scan(lines)).findings)).toEqual(ALL_FROM_RECORDS);
  });

  it('with a manifest naming the Modify sample session, its target and filter: only what is not authorized', async () => {
    const manifest = manifestOf({
      id: 'tms-05e1e21760419ecb6',
      vni: 12348395,
      sourceEni: 'eni-08dd7ebbda3b01770',
      targetId: 'tmt-0a45c694b91bcea54',
      filterId: 'tmf-010db9a7d8056cc2d',
      line: 3,
    });
    const r = await scan(RECORDS(), manifest);
    expect(r.findings.map((f) => [f.kind, f.severity, f.count])).toEqual([
      ['mirror-filter-changed', 'high', 2], // the filter of an authorized session changed
      ['mirror-attempt-failed', 'high', 1],
    ]);
  });
});
