import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import { Detector } from '../../src/detect/detector.js';
import { compareInventory, fetchInventory, parseDescribeOutput, readDescribeJson, type InventorySession } from '../../src/detect/inventory.js';
import { checkManifestText, type Manifest } from '../../src/detect/manifest.js';
import { MgError } from '../../src/errors.js';
import { openDb } from '../../src/store/db.js';
import { describeWithFixtures, fixture } from '../helpers/fixtures.js';
import { tmpDir } from '../helpers/tmp.js';
import { useFakeEc2, type FakeEc2, type FakeSession } from './fake-ec2.js';

const AT = Date.UTC(2025, 5, 1, 12);
const DESCRIBE = () => fixture('aws-cli', 'aws-cli-describe-traffic-mirror-sessions.output.json');

/**
 * The aws-cli fixture's IDs are documentation placeholders (`tms-0567a4c684EXAMPLE`), which the
 * manifest check rightly refuses. To name those sessions in a manifest, tests replace the placeholder
 * with hex digits: `EXAMPLE` -> `abcdef0` keeps the length (10 + 7 = 17 hex digits).
 */
export function hexIds(text: string): string {
  return text.replace(/EXAMPLE/g, 'abcdef0');
}

function manifest(body: string): Manifest {
  const r = checkManifestText(`version: 1\nsessions:\n${body}`, 'm.yaml');
  if (!r.manifest) throw new Error(JSON.stringify(r.problems));
  return r.manifest;
}

function catchMg(f: () => unknown): MgError {
  try {
    f();
  } catch (e) {
    if (e instanceof MgError) return e;
    throw e;
  }
  throw new Error('expected an MgError');
}

describeWithFixtures('inventory from aws ec2 describe-traffic-mirror-sessions output', () => {
  it('reads the CLI fixture: two sessions, VNIs 42 and 13314501, same source ENI', async () => {
    const s = readDescribeJson(DESCRIBE());
    expect(s).toEqual([
      {
        id: 'tms-0567a4c684EXAMPLE',
        vni: 42,
        eni: 'eni-0a471a5cf3EXAMPLE',
        targetId: 'tmt-0dabe9b0a6EXAMPLE',
        filterId: 'tmf-083e18f985EXAMPLE',
        ownerId: '111122223333',
        packetLength: 20,
        sessionNumber: 1,
        description: 'TCP Session',
        tags: {},
      },
      {
        id: 'tms-0060101cf8EXAMPLE',
        vni: 13314501,
        eni: 'eni-0a471a5cf3EXAMPLE',
        targetId: 'tmt-03665551cbEXAMPLE',
        filterId: 'tmf-06c787846cEXAMPLE',
        ownerId: '111122223333',
        sessionNumber: 2,
        description: 'TCP Session',
        tags: { Name: 'tag test' },
      },
    ]);
  });

  it('finds both sessions unmanaged and the manifest session missing', async () => {
    const sessions = readDescribeJson(DESCRIBE());
    const m = manifest('  - id: tms-0123456789abcdef0\n    vni: 5569041\n');
    const f = compareInventory(m, sessions, { at: AT });
    expect(f.map((x) => [x.kind, x.key, x.vni])).toEqual([
      ['unmanaged-session', 'tms-0567a4c684EXAMPLE', 42],
      ['unmanaged-session', 'tms-0060101cf8EXAMPLE', 13314501],
      ['missing-session', 'tms-0123456789abcdef0', 5569041],
    ]);
    expect(f[0]!.summary).toBe('Mirror session tms-0567a4c684EXAMPLE (VNI 42, eni-0a471a5cf3EXAMPLE -> tmt-0dabe9b0a6EXAMPLE) exists in AWS but not in the manifest');
  });

  it('reports drift in VNI, ENI, target and filter with expected and actual values', async () => {
    const sessions = parseDescribeOutput(JSON.parse(hexIds(readFileSync(DESCRIBE(), 'utf8'))));
    const m = manifest(`  - id: tms-0567a4c684abcdef0
    vni: 42
    sourceEni: eni-0a471a5cf3abcdef0
    targetId: tmt-0dabe9b0a6abcdef0
    filterId: tmf-083e18f985abcdef0
  - id: tms-0060101cf8abcdef0
    vni: 13314500
    sourceEni: eni-0000000000abcdef0
    targetId: tmt-0000000000abcdef0
    filterId: tmf-0000000000abcdef0
`);
    const f = compareInventory(m, sessions, { at: AT });
    expect(f).toHaveLength(1);
    expect(f[0]).toMatchObject({ kind: 'session-drift', key: 'tms-0060101cf8abcdef0', vni: 13314501 });
    expect(f[0]!.evidence.differences).toEqual([
      { field: 'vni', expected: 13314500, actual: 13314501 },
      { field: 'sourceEni', expected: 'eni-0000000000abcdef0', actual: 'eni-0a471a5cf3abcdef0' },
      { field: 'targetId', expected: 'tmt-0000000000abcdef0', actual: 'tmt-03665551cbabcdef0' },
      { field: 'filterId', expected: 'tmf-0000000000abcdef0', actual: 'tmf-06c787846cabcdef0' },
    ]);
    expect(f[0]!.summary).toBe(
      'Mirror session tms-0060101cf8abcdef0 differs from the manifest: vni 13314500 -> 13314501, sourceEni eni-0000000000abcdef0 -> eni-0a471a5cf3abcdef0, targetId tmt-0000000000abcdef0 -> tmt-03665551cbabcdef0, filterId tmf-0000000000abcdef0 -> tmf-06c787846cabcdef0',
    );
  });

  it('compares only the fields the manifest states; an expired entry that still exists is drift; a gone one is not missing', async () => {
    const sessions = parseDescribeOutput(JSON.parse(hexIds(readFileSync(DESCRIBE(), 'utf8'))));
    const m = manifest(`  - id: tms-0567a4c684abcdef0
    vni: 42
  - id: tms-0060101cf8abcdef0
    vni: 13314501
    expires: 2025-01-01T00:00:00Z
  - id: tms-00000009
    vni: 9
    expires: 2025-01-01T00:00:00Z
  - id: tms-00000010
    vni: 10
    region: us-east-1
`);
    const f = compareInventory(m, sessions, { at: AT, region: 'eu-central-1' });
    expect(f.map((x) => [x.kind, x.key])).toEqual([['session-drift', 'tms-0060101cf8abcdef0']]);
    expect(f[0]!.evidence.differences).toEqual([{ field: 'expires', expected: 'deleted by 2025-01-01T00:00:00.000Z', actual: 'still exists' }]);
    // Without a region the us-east-1 entry is in scope and missing.
    expect(compareInventory(m, sessions, { at: AT }).map((x) => x.key)).toContain('tms-00000010');
  });
});

describe('describe output errors', () => {
  it('names every malformed field', async () => {
    const e = catchMg(() => parseDescribeOutput({ TrafficMirrorSessions: [{ TrafficMirrorSessionId: 'tms-1', VirtualNetworkId: '42' }, 7] }, 'd.json'));
    expect(e.code).toBe('MG_ERR_INVENTORY_READ');
    expect(e.exitCode).toBe(2);
    expect(e.describe().split('\n').slice(1)).toEqual([
      'd.json: TrafficMirrorSessions[0].NetworkInterfaceId: required string missing',
      'd.json: TrafficMirrorSessions[0].TrafficMirrorTargetId: required string missing',
      'd.json: TrafficMirrorSessions[0].TrafficMirrorFilterId: required string missing',
      'd.json: TrafficMirrorSessions[0].VirtualNetworkId: must be an integer from 0 to 16777215, got "42"',
      'd.json: TrafficMirrorSessions[1]: must be an object',
    ]);
    expect(catchMg(() => parseDescribeOutput({ TrafficMirrorSession: {} }, 'd.json')).describe()).toContain('d.json: TrafficMirrorSessions: missing');
  });

  it('refuses unreadable and non-JSON files', async () => {
    const dir = tmpDir();
    expect(catchMg(() => readDescribeJson(join(dir, 'none.json'))).code).toBe('MG_ERR_INVENTORY_READ');
    writeFileSync(join(dir, 'x.json'), 'not json');
    expect(catchMg(() => readDescribeJson(join(dir, 'x.json'))).message).toMatch(/not JSON/);
  });
});

const S1: FakeSession = {
  trafficMirrorSessionId: 'tms-0aaaaaaaaaaaaaaa1',
  trafficMirrorTargetId: 'tmt-0aaaaaaaaaaaaaaa1',
  trafficMirrorFilterId: 'tmf-0aaaaaaaaaaaaaaa1',
  networkInterfaceId: 'eni-0aaaaaaaaaaaaaaa1',
  ownerId: '111122223333',
  virtualNetworkId: 5569041,
  sessionNumber: 1,
  packetLength: 100,
  description: 'IDS <tap> & more',
  tags: { Name: 'ids', owner: 'netops' },
};
const S2: FakeSession = { ...S1, trafficMirrorSessionId: 'tms-0aaaaaaaaaaaaaaa2', virtualNetworkId: 16777215, sessionNumber: 2, packetLength: undefined, description: undefined, tags: {} };

describe('live inventory through @aws-sdk/client-ec2 against a local EC2-like server', () => {
  const fake = useFakeEc2();
  let ec2: FakeEc2;

  it('follows nextToken across pages and signs with the default credential chain', async () => {
    ec2 = await fake.start({ pages: [[S1], [S2]] });
    const sessions = await fetchInventory({ region: 'eu-central-1', endpoint: ec2.url, pageSize: 5 });
    expect(sessions).toEqual([
      {
        id: 'tms-0aaaaaaaaaaaaaaa1',
        vni: 5569041,
        eni: 'eni-0aaaaaaaaaaaaaaa1',
        targetId: 'tmt-0aaaaaaaaaaaaaaa1',
        filterId: 'tmf-0aaaaaaaaaaaaaaa1',
        ownerId: '111122223333',
        packetLength: 100,
        sessionNumber: 1,
        description: 'IDS <tap> & more',
        tags: { Name: 'ids', owner: 'netops' },
      },
      { id: 'tms-0aaaaaaaaaaaaaaa2', vni: 16777215, eni: 'eni-0aaaaaaaaaaaaaaa1', targetId: 'tmt-0aaaaaaaaaaaaaaa1', filterId: 'tmf-0aaaaaaaaaaaaaaa1', ownerId: '111122223333', sessionNumber: 2, tags: {} },
    ]);
    expect(ec2.requests.map((r) => [r.form.get('Action'), r.form.get('MaxResults'), r.form.get('NextToken')])).toEqual([
      ['DescribeTrafficMirrorSessions', '5', null],
      ['DescribeTrafficMirrorSessions', '5', 'page-1'],
    ]);
    expect(ec2.requests[0]!.authorization).toMatch(/^AWS4-HMAC-SHA256 Credential=AKIDEXAMPLETEST\/\d{8}\/eu-central-1\/ec2\/aws4_request/);
  });

  it('accepts static credentials in the options instead', async () => {
    vi.stubEnv('AWS_ACCESS_KEY_ID', '');
    ec2 = await fake.start({ pages: [[S1]] });
    const s = await fetchInventory({ region: 'us-east-1', endpoint: ec2.url, credentials: { accessKeyId: 'AKIDSTATIC', secretAccessKey: 'x' } });
    expect(s.map((x) => x.id)).toEqual(['tms-0aaaaaaaaaaaaaaa1']);
    expect(ec2.requests[0]!.authorization).toContain('Credential=AKIDSTATIC/');
  });

  it('turns an EC2 error answer into MG_ERR_INVENTORY_AWS with the service code', async () => {
    ec2 = await fake.start({ error: { status: 403, code: 'UnauthorizedOperation', message: 'You are not authorized to perform this operation.' } });
    const e = await fetchInventory({ region: 'eu-central-1', endpoint: ec2.url }).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(MgError);
    expect((e as MgError).code).toBe('MG_ERR_INVENTORY_AWS');
    expect((e as MgError).exitCode).toBe(69);
    expect((e as MgError).message).toBe(
      'the EC2 DescribeTrafficMirrorSessions call failed: UnauthorizedOperation (HTTP 403): You are not authorized to perform this operation.',
    );
    expect(ec2.requests).toHaveLength(1); // a permission error is not retried
  });

  it('Detector.runInventory records findings and resolves them once the inventory agrees', async () => {
    ec2 = await fake.start({ pages: [[S1], [S2]] });
    const m = manifest(`  - id: tms-0aaaaaaaaaaaaaaa1
    vni: 5569041
    sourceEni: eni-0aaaaaaaaaaaaaaa1
    targetId: tmt-0aaaaaaaaaaaaaaa9
  - id: tms-0aaaaaaaaaaaaaaa3
    vni: 3
`);
    let now = AT;
    const det = new Detector({ db: openDb(':memory:'), manifest: m, clock: () => now });
    const r = await det.runInventory({ region: 'eu-central-1', endpoint: ec2.url });
    expect(r.findings.map((f) => [f.kind, f.sessionId]).sort()).toEqual([
      ['missing-session', 'tms-0aaaaaaaaaaaaaaa3'],
      ['session-drift', 'tms-0aaaaaaaaaaaaaaa1'],
      ['unmanaged-session', 'tms-0aaaaaaaaaaaaaaa2'],
    ]);
    // Repeating the check counts, it does not duplicate.
    now += 60_000;
    const again = (await det.checkInventory(await fetchInventory({ region: 'eu-central-1', endpoint: ec2.url }), { region: 'eu-central-1' }));
    expect(again.findings.map((f) => f.count)).toEqual([2, 2, 2]);
    expect(again.resolved).toEqual([]);
    // The session was deleted and the manifest fixed: all three resolve.
    now += 60_000;
    await det.setManifest(manifest('  - id: tms-0aaaaaaaaaaaaaaa1\n    vni: 5569041\n    targetId: tmt-0aaaaaaaaaaaaaaa1\n'));
    const fixed = (await det.checkInventory([{ id: 'tms-0aaaaaaaaaaaaaaa1', vni: 5569041, eni: 'eni-0aaaaaaaaaaaaaaa1', targetId: 'tmt-0aaaaaaaaaaaaaaa1', filterId: 'tmf-0aaaaaaaaaaaaaaa1', tags: {} } satisfies InventorySession], { region: 'eu-central-1' }));
    expect(fixed.findings).toEqual([]);
    expect(fixed.resolved.map((f) => f.kind).sort()).toEqual(['missing-session', 'session-drift', 'unmanaged-session']);
  });
});

describe('periodic inventory (serve)', () => {
  const fake = useFakeEc2();
  let ec2: FakeEc2;

  it('runs, counts runs and failures, and a failure is logged instead of thrown', async () => {
    ec2 = await fake.start({ pages: [[S1]] });
    const errors: string[] = [];
    const log = { error: (_o: unknown, msg: string) => void errors.push(msg), info: () => undefined, warn: () => undefined } as unknown as ConstructorParameters<typeof Detector>[0]['log'];
    const det = new Detector({ db: openDb(':memory:'), manifest: manifest('  - id: tms-00000001\n    vni: 1\n'), log });
    const job = det.scheduleInventory(3600_000, { region: 'eu-central-1', endpoint: ec2.url });
    const r = await job.runNow();
    expect(r?.findings.map((f) => f.kind).sort()).toEqual(['missing-session', 'unmanaged-session']);
    await ec2.close();
    ec2 = await fake.start({ error: { status: 503, code: 'Unavailable', message: 'try later' } });
    const bad = det.scheduleInventory(3600_000, { region: 'eu-central-1', endpoint: ec2.url, maxAttempts: 1 });
    expect(await bad.runNow()).toBeNull();
    job.stop();
    bad.stop();
    expect(det.counters).toMatchObject({ 'detect.inventory.runs': 2, 'detect.inventory.failures': 1 });
    expect(errors).toEqual(['inventory check failed']);
  });
});

describe('inventory correlation', () => {
  it('an unmanaged session carries who created it and the traffic seen on its VNI', async () => {
    const det = new Detector({ db: openDb(':memory:'), manifest: manifest('  - id: tms-00000001\n    vni: 1\n'), clock: () => AT });
    (await det.ingestControlEvents([
      {
        eventId: 'e-1',
        eventName: 'CreateTrafficMirrorSession',
        eventTime: AT - 3600_000,
        eventSource: 'ec2.amazonaws.com',
        actorArn: 'arn:aws:iam::111122223333:user/eve',
        callerIp: '198.51.100.7',
        sessionId: 'tms-0aaaaaaaaaaaaaaa2',
        eni: 'eni-0aaaaaaaaaaaaaaa1',
        vni: 777,
        record: {},
      },
    ]));
    det.onNewPair('10.0.0.5', 777, AT - 1800_000);
    const r = (await det.checkInventory(
      [
        { id: 'tms-00000001', vni: 1, eni: 'eni-00000001', targetId: 'tmt-00000001', filterId: 'tmf-00000001', tags: {} },
        { id: 'tms-0aaaaaaaaaaaaaaa2', vni: 777, eni: 'eni-0aaaaaaaaaaaaaaa1', targetId: 'tmt-0aaaaaaaaaaaaaaa9', filterId: 'tmf-0aaaaaaaaaaaaaaa9', tags: {} },
      ],
      { at: AT },
    ));
    expect(r.findings).toHaveLength(1);
    const f = r.findings[0]!;
    expect(f.kind).toBe('unmanaged-session');
    expect(f.correlated?.control?.map((c) => [c.actorArn, c.callerIp])).toEqual([['arn:aws:iam::111122223333:user/eve', '198.51.100.7']]);
    expect(f.correlated?.traffic?.map((t) => [t.sourceIp, t.vni])).toEqual([['10.0.0.5', 777]]);
  });
});
