import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import * as cmd from '../../src/cli/inventory.js';
import { findingId } from '../../src/detect/finding-id.js';
import { describeWithFixtures, fixture } from '../helpers/fixtures.js';
import { tmpDir } from '../helpers/tmp.js';
import { runCli } from './cli-run.js';
import { useFakeEc2, type FakeEc2 } from './fake-ec2.js';

const DESCRIBE = () => fixture('aws-cli', 'aws-cli-describe-traffic-mirror-sessions.output.json');

function writeManifest(dir: string, body: string): string {
  const f = join(dir, 'm.yaml');
  writeFileSync(f, `version: 1\nsessions:\n${body}`);
  return f;
}

describeWithFixtures('mirrorguard inventory check --describe-json', () => {
  it('prints one line per finding, most severe first, and exits 1', async () => {
    const dir = tmpDir();
    const m = writeManifest(dir, '  - id: tms-0123456789abcdef0\n    vni: 5569041\n');
    const r = await runCli(cmd, ['check', '--manifest', m, '--describe-json', DESCRIBE()]);
    expect(r.code).toBe(1);
    const lines = r.stdout.trimEnd().split('\n');
    expect(lines).toHaveLength(3);
    expect(lines[0]).toMatch(/^critical unmanaged-session /);
    expect(lines[1]).toMatch(/^critical unmanaged-session /);
    expect(lines[2]).toBe(
      `medium   missing-session   ${findingId('missing-session', 'tms-0123456789abcdef0')}  Manifest session tms-0123456789abcdef0 (VNI 5569041) does not exist in AWS`,
    );
    expect(r.stdout).toContain(`${findingId('unmanaged-session', 'tms-0567a4c684EXAMPLE')}  Mirror session tms-0567a4c684EXAMPLE (VNI 42,`);
    expect(r.stderr).toBe(`inventory check: 2 sessions in AWS, 1 in ${m}: 3 findings\n`);
  });

  it('--json prints Finding objects with the ids serve would store', async () => {
    const dir = tmpDir();
    const m = writeManifest(dir, '  - id: tms-0123456789abcdef0\n    vni: 5569041\n');
    const r = await runCli(cmd, ['check', '--manifest', m, '--describe-json', DESCRIBE(), '--json']);
    const findings = r.stdout.trimEnd().split('\n').map((l) => JSON.parse(l));
    expect(findings.map((f) => [f.kind, f.sessionId, f.vni, f.status, f.count])).toEqual([
      ['unmanaged-session', 'tms-0060101cf8EXAMPLE', 13314501, 'open', 1],
      ['unmanaged-session', 'tms-0567a4c684EXAMPLE', 42, 'open', 1],
      ['missing-session', 'tms-0123456789abcdef0', 5569041, 'open', 1],
    ]);
    expect(findings[1].id).toBe(findingId('unmanaged-session', 'tms-0567a4c684EXAMPLE'));
    expect(findings[1].evidence.actual).toMatchObject({ vni: 42, eni: 'eni-0a471a5cf3EXAMPLE', tags: {} });
  });

  it('exits 0 when AWS and the manifest agree', async () => {
    const dir = tmpDir();
    const describe = join(dir, 'd.json');
    writeFileSync(describe, readFileSync(DESCRIBE(), 'utf8').replace(/EXAMPLE/g, 'abcdef0'));
    const m = writeManifest(dir, '  - id: tms-0567a4c684abcdef0\n    vni: 42\n    sourceEni: eni-0a471a5cf3abcdef0\n  - id: tms-0060101cf8abcdef0\n    vni: 13314501\n');
    const r = await runCli(cmd, ['check', '--manifest', m, '--describe-json', describe]);
    expect([r.code, r.stdout]).toEqual([0, '']);
  });

  it('exits 2 when the describe file is unreadable, 78 on an invalid manifest, 64 on bad usage', async () => {
    const dir = tmpDir();
    const m = writeManifest(dir, '  - id: tms-0123456789abcdef0\n    vni: 1\n');
    expect((await runCli(cmd, ['check', '--manifest', m, '--describe-json', join(dir, 'none.json')])).code).toBe(2);
    writeFileSync(join(dir, 'bad.json'), '{"Reservations": []}');
    const bad = await runCli(cmd, ['check', '--manifest', m, '--describe-json', join(dir, 'bad.json')]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain(`${join(dir, 'bad.json')}: TrafficMirrorSessions: missing`);
    const invalid = writeManifest(dir, '  - id: nope\n    vni: 1\n');
    expect((await runCli(cmd, ['check', '--manifest', invalid, '--describe-json', DESCRIBE()])).code).toBe(78);
    for (const argv of [['check', '--describe-json', DESCRIBE()], ['check', '--manifest', m], ['check', '--manifest', m, '--aws', '--describe-json', DESCRIBE()], ['check', '--manifest', m, '--describe-json', DESCRIBE(), '--endpoint', 'http://x'], ['list'], ['check', '--manifest', m, '--describe-json', DESCRIBE(), '--nope']]) {
      expect([argv, (await runCli(cmd, argv)).code]).toEqual([argv, 64]);
    }
  });
});

describe('mirrorguard inventory check --aws (local EC2-like server)', () => {
  const fake = useFakeEc2();
  let ec2: FakeEc2;

  it('reads every page and reports drift', async () => {
    const base = { trafficMirrorFilterId: 'tmf-0aaaaaaaaaaaaaaa1', networkInterfaceId: 'eni-0aaaaaaaaaaaaaaa1', ownerId: '111122223333', sessionNumber: 1 };
    ec2 = await fake.start({
      pages: [
        [{ ...base, trafficMirrorSessionId: 'tms-0aaaaaaaaaaaaaaa1', trafficMirrorTargetId: 'tmt-0aaaaaaaaaaaaaaa1', virtualNetworkId: 1 }],
        [{ ...base, trafficMirrorSessionId: 'tms-0aaaaaaaaaaaaaaa2', trafficMirrorTargetId: 'tmt-0bbbbbbbbbbbbbbb2', virtualNetworkId: 2 }],
      ],
    });
    const m = writeManifest(tmpDir(), '  - id: tms-0aaaaaaaaaaaaaaa1\n    vni: 1\n  - id: tms-0aaaaaaaaaaaaaaa2\n    vni: 2\n    targetId: tmt-0aaaaaaaaaaaaaaa1\n');
    const r = await runCli(cmd, ['check', '--manifest', m, '--aws', '--region', 'eu-central-1', '--endpoint', ec2.url]);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe(
      `high     session-drift     ${findingId('session-drift', 'tms-0aaaaaaaaaaaaaaa2')}  Mirror session tms-0aaaaaaaaaaaaaaa2 differs from the manifest: targetId tmt-0aaaaaaaaaaaaaaa1 -> tmt-0bbbbbbbbbbbbbbb2\n`,
    );
    expect(ec2.requests).toHaveLength(2);
  });

  it('exits 69 on an EC2 error', async () => {
    ec2 = await fake.start({ error: { status: 403, code: 'UnauthorizedOperation', message: 'You are not authorized to perform this operation.' } });
    const m = writeManifest(tmpDir(), '  - id: tms-0aaaaaaaaaaaaaaa1\n    vni: 1\n');
    const r = await runCli(cmd, ['check', '--manifest', m, '--aws', '--region', 'eu-central-1', '--endpoint', ec2.url]);
    expect(r.code).toBe(69);
    expect(r.stderr).toContain('MG_ERR_INVENTORY_AWS');
  });
});
