import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import * as cmd from '../../src/cli/manifest.js';
import { checkManifestText } from '../../src/detect/manifest.js';
import { describeWithFixtures, fixture } from '../helpers/fixtures.js';
import { tmpDir } from '../helpers/tmp.js';
import { runCli } from './cli-run.js';
import { useFakeEc2, type FakeEc2 } from './fake-ec2.js';

const GOOD = 'version: 1\nsessions:\n  - id: tms-0123456789abcdef0\n    vni: 5569041\n    sourceIps: [172.31.0.238]\n';

describe('mirrorguard manifest check', () => {
  it('exits 0 on a valid manifest', async () => {
    const f = join(tmpDir(), 'm.yaml');
    writeFileSync(f, GOOD);
    const r = await runCli(cmd, ['check', f]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(new RegExp(`^${f}: valid, 1 session, sha256 [0-9a-f]{64}\\n$`));
    expect(r.stderr).toBe('');
  });

  it('prints every problem as FILE:LINE: field: message and exits 78', async () => {
    const f = join(tmpDir(), 'm.yaml');
    writeFileSync(f, 'version: 1\nsessions:\n  - id: tms-XYZ\n    vni: 16777216\n    sourceIps: [10.0.0.300]\n    colour: red\n');
    const r = await runCli(cmd, ['check', f]);
    expect(r.code).toBe(78);
    const lines = r.stderr.trimEnd().split('\n');
    expect(lines[0]).toBe(`mirrorguard: MG_ERR_MANIFEST_INVALID: invalid manifest: ${f}: 4 problems`);
    expect(lines.slice(1)).toEqual([
      `${f}:3: sessions[0].id: must be "tms-" and 8 or 17 lowercase hex digits, got "tms-XYZ"`,
      `${f}:4: sessions[0].vni: must be from 0 to 16777215 (24 bits), got 16777216`,
      `${f}:5: sessions[0].sourceIps[0]: not an IPv4 or IPv6 address: "10.0.0.300"`,
      `${f}:6: sessions[0].colour: unknown key; allowed: id, vni, sourceEni, sourceIps, targetId, filterId, gwlbEndpointId, owner, description, region, expires`,
    ]);
  });

  it('exits 66 on a missing file and 64 on bad usage', async () => {
    expect((await runCli(cmd, ['check', join(tmpDir(), 'absent.yaml')])).code).toBe(66);
    for (const argv of [['check'], ['check', 'a', 'b'], ['check', 'a', '--force'], ['frobnicate'], [], ['check', 'x', '--bogus']]) {
      const r = await runCli(cmd, argv);
      expect([argv, r.code]).toEqual([argv, 64]);
      expect(r.stderr).toMatch(/^mirrorguard: MG_ERR_CLI_USAGE: invalid command line: manifest: /);
    }
  });

  it('--help prints usage', async () => {
    const r = await runCli(cmd, ['--help']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('usage: mirrorguard manifest check FILE');
  });
});

describeWithFixtures('mirrorguard manifest init --describe-json', () => {
  const DESCRIBE = fixture('aws-cli', 'aws-cli-describe-traffic-mirror-sessions.output.json');

  it('writes to stdout a manifest that passes check, with the review warning, and comments out placeholder IDs', async () => {
    const r = await runCli(cmd, ['init', '--describe-json', DESCRIBE]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('# REVIEW EVERY ENTRY BEFORE TRUSTING IT.');
    // The aws-cli documentation example uses placeholder IDs (tms-0567a4c684EXAMPLE), which are not real IDs.
    expect(checkManifestText(r.stdout, 'out.yaml')).toMatchObject({ problems: [], manifest: { sessions: [] } });
    expect(r.stdout).toContain('  # NOT INCLUDED: session ID "tms-0567a4c684EXAMPLE" is not tms- and 8 or 17 lowercase hex digits');
    expect(r.stderr).toContain('manifest init: left tms-0567a4c684EXAMPLE commented out');
    expect(r.stderr).toContain('0 sessions written; REVIEW EVERY ENTRY');
  });

  it('with real-form IDs, every session becomes an entry that check accepts, and --out refuses to overwrite without --force', async () => {
    const dir = tmpDir();
    const describe = join(dir, 'describe.json');
    writeFileSync(describe, readFileSync(DESCRIBE, 'utf8').replace(/EXAMPLE/g, 'abcdef0'));
    const out = join(dir, 'manifest.yaml');
    const r = await runCli(cmd, ['init', '--describe-json', describe, '--out', out]);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe('');
    const written = readFileSync(out, 'utf8');
    const m = checkManifestText(written, out).manifest!;
    expect(m.sessions.map((s) => [s.id, s.vni, s.sourceEni, s.targetId, s.filterId, s.description])).toEqual([
      ['tms-0567a4c684abcdef0', 42, 'eni-0a471a5cf3abcdef0', 'tmt-0dabe9b0a6abcdef0', 'tmf-083e18f985abcdef0', 'TCP Session'],
      ['tms-0060101cf8abcdef0', 13314501, 'eni-0a471a5cf3abcdef0', 'tmt-03665551cbabcdef0', 'tmf-06c787846cabcdef0', 'TCP Session'],
    ]);
    expect(written).toContain('# tags: Name=tag test');
    expect((await runCli(cmd, ['check', out])).code).toBe(0);

    const again = await runCli(cmd, ['init', '--describe-json', describe, '--out', out]);
    expect(again.code).toBe(73);
    expect(again.stderr).toContain('MG_ERR_MANIFEST_EXISTS');
    writeFileSync(out, 'keep me');
    expect(readFileSync(out, 'utf8')).toBe('keep me');
    const forced = await runCli(cmd, ['init', '--describe-json', describe, '--out', out, '--force']);
    expect(forced.code).toBe(0);
    expect(readFileSync(out, 'utf8')).toContain('version: 1');
  });

  it('comments out sessions that share a VNI (they need sourceIps to be told apart)', async () => {
    const dir = tmpDir();
    const describe = join(dir, 'describe.json');
    const text = readFileSync(DESCRIBE, 'utf8').replace(/EXAMPLE/g, 'abcdef0').replace('"VirtualNetworkId": 13314501', '"VirtualNetworkId": 42');
    writeFileSync(describe, text);
    const r = await runCli(cmd, ['init', '--describe-json', describe]);
    expect(r.code).toBe(0);
    expect(checkManifestText(r.stdout, 'x').problems).toEqual([]);
    expect(r.stdout.match(/# NOT INCLUDED: VNI 42 is used by 2 sessions/g)).toHaveLength(2);
  });

  it('refuses contradictory flags and unreadable input', async () => {
    expect((await runCli(cmd, ['init'])).code).toBe(64);
    expect((await runCli(cmd, ['init', '--describe-json', DESCRIBE, '--aws'])).code).toBe(64);
    expect((await runCli(cmd, ['init', '--describe-json', DESCRIBE, '--force'])).code).toBe(64);
    expect((await runCli(cmd, ['init', '--describe-json', DESCRIBE, '--region', 'eu-west-1'])).code).toBe(64);
    const r = await runCli(cmd, ['init', '--describe-json', join(tmpDir(), 'none.json')]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('MG_ERR_INVENTORY_READ');
  });
});

describe('mirrorguard manifest init --aws (local EC2-like server)', () => {
  const fake = useFakeEc2();
  let ec2: FakeEc2;

  it('writes every page of sessions, with the region, and the result passes check', async () => {
    const base = {
      trafficMirrorTargetId: 'tmt-0aaaaaaaaaaaaaaa1',
      trafficMirrorFilterId: 'tmf-0aaaaaaaaaaaaaaa1',
      networkInterfaceId: 'eni-0aaaaaaaaaaaaaaa1',
      ownerId: '111122223333',
      sessionNumber: 1,
    };
    ec2 = await fake.start({
      pages: [[{ ...base, trafficMirrorSessionId: 'tms-0aaaaaaaaaaaaaaa1', virtualNetworkId: 1 }], [{ ...base, trafficMirrorSessionId: 'tms-0aaaaaaaaaaaaaaa2', virtualNetworkId: 2 }]],
    });
    const out = join(tmpDir(), 'm.yaml');
    const r = await runCli(cmd, ['init', '--aws', '--region', 'eu-central-1', '--endpoint', ec2.url, '--out', out]);
    expect(r.code).toBe(0);
    const m = checkManifestText(readFileSync(out, 'utf8'), out).manifest!;
    expect(m.sessions.map((s) => [s.id, s.vni, s.region])).toEqual([
      ['tms-0aaaaaaaaaaaaaaa1', 1, 'eu-central-1'],
      ['tms-0aaaaaaaaaaaaaaa2', 2, 'eu-central-1'],
    ]);
    expect(readFileSync(out, 'utf8')).toContain('from DescribeTrafficMirrorSessions in eu-central-1');
  });

  it("fills in each source ENI's primary IP and a GWLB target's endpoint; a VNI shared by sessions with distinct IPs is included", async () => {
    const base = { trafficMirrorFilterId: 'tmf-0aaaaaaaaaaaaaaa1', ownerId: '111122223333', sessionNumber: 1 };
    ec2 = await fake.start({
      pages: [
        [
          { ...base, trafficMirrorSessionId: 'tms-0aaaaaaaaaaaaaaa1', virtualNetworkId: 7, networkInterfaceId: 'eni-0aaaaaaaaaaaaaaa1', trafficMirrorTargetId: 'tmt-0aaaaaaaaaaaaaaa1' },
          { ...base, trafficMirrorSessionId: 'tms-0aaaaaaaaaaaaaaa2', virtualNetworkId: 7, networkInterfaceId: 'eni-0aaaaaaaaaaaaaaa2', trafficMirrorTargetId: 'tmt-0aaaaaaaaaaaaaaa1' },
          { ...base, trafficMirrorSessionId: 'tms-0aaaaaaaaaaaaaaa3', virtualNetworkId: 8, networkInterfaceId: 'eni-0aaaaaaaaaaaaaaa3', trafficMirrorTargetId: 'tmt-0bbbbbbbbbbbbbbb2' },
        ],
      ],
      enis: [
        { id: 'eni-0aaaaaaaaaaaaaaa1', ip: '10.0.1.11' },
        { id: 'eni-0aaaaaaaaaaaaaaa2', ip: '10.0.1.12' },
        { id: 'eni-0aaaaaaaaaaaaaaa9', ip: '10.0.9.99' }, // not a source: filtered out by EC2
      ],
      targets: [
        { id: 'tmt-0aaaaaaaaaaaaaaa1', type: 'network-interface' },
        { id: 'tmt-0bbbbbbbbbbbbbbb2', type: 'gateway-load-balancer-endpoint', gwlbe: 'vpce-0ccccccccccccccc3' },
      ],
    });
    const out = join(tmpDir(), 'm.yaml');
    const r = await runCli(cmd, ['init', '--aws', '--region', 'eu-central-1', '--endpoint', ec2.url, '--out', out]);
    expect(r.code, r.stderr).toBe(0);
    const m = checkManifestText(readFileSync(out, 'utf8'), out).manifest!;
    expect(m.sessions.map((s) => [s.id, s.vni, s.sourceIps, s.gwlbEndpointId])).toEqual([
      ['tms-0aaaaaaaaaaaaaaa1', 7, ['10.0.1.11'], undefined],
      ['tms-0aaaaaaaaaaaaaaa2', 7, ['10.0.1.12'], undefined],
      // eni-...3's IP is unknown to EC2 here: its sourceIps stay for the reviewer.
      ['tms-0aaaaaaaaaaaaaaa3', 8, undefined, 'vpce-0ccccccccccccccc3'],
    ]);
    expect(readFileSync(out, 'utf8')).toContain('# sourceIps: [?]           (the primary IP of eni-0aaaaaaaaaaaaaaa3)');
    const actions = ec2.requests.map((q) => q.form.get('Action'));
    expect(actions).toEqual(['DescribeTrafficMirrorSessions', 'DescribeNetworkInterfaces', 'DescribeTrafficMirrorTargets']);
    expect(ec2.requests[1]!.form.get('Filter.1.Name')).toBe('network-interface-id');
  });

  it('without permission for the detail calls, the manifest is still written, and stderr says what is left to fill in', async () => {
    const base = { trafficMirrorFilterId: 'tmf-0aaaaaaaaaaaaaaa1', ownerId: '111122223333', sessionNumber: 1, trafficMirrorTargetId: 'tmt-0aaaaaaaaaaaaaaa1' };
    ec2 = await fake.start({
      pages: [
        [
          { ...base, trafficMirrorSessionId: 'tms-0aaaaaaaaaaaaaaa1', virtualNetworkId: 7, networkInterfaceId: 'eni-0aaaaaaaaaaaaaaa1' },
          { ...base, trafficMirrorSessionId: 'tms-0aaaaaaaaaaaaaaa2', virtualNetworkId: 7, networkInterfaceId: 'eni-0aaaaaaaaaaaaaaa2' },
        ],
      ],
      detailError: { status: 403, code: 'UnauthorizedOperation', message: 'You are not authorized to perform this operation.' },
    });
    const out = join(tmpDir(), 'm.yaml');
    const r = await runCli(cmd, ['init', '--aws', '--region', 'eu-central-1', '--endpoint', ec2.url, '--out', out]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain('DescribeNetworkInterfaces failed, sourceIps left to fill in: UnauthorizedOperation (HTTP 403)');
    expect(r.stderr).toContain('DescribeTrafficMirrorTargets failed');
    // The shared VNI cannot be told apart without IPs: both entries are left commented, as before.
    expect(checkManifestText(readFileSync(out, 'utf8'), out).manifest!.sessions).toEqual([]);
    expect(r.stderr).toContain('left tms-0aaaaaaaaaaaaaaa1 commented out: VNI 7 is used by 2 sessions');
  });

  it('does not call AWS when --out exists and --force is absent', async () => {
    ec2 = await fake.start({ pages: [[]] });
    const out = join(tmpDir(), 'm.yaml');
    writeFileSync(out, GOOD);
    const r = await runCli(cmd, ['init', '--aws', '--region', 'eu-central-1', '--endpoint', ec2.url, '--out', out]);
    expect(r.code).toBe(73);
    expect(ec2.requests).toEqual([]);
    expect(readFileSync(out, 'utf8')).toBe(GOOD);
    expect(existsSync(`${out}.tmp-${process.pid}`)).toBe(false);
  });

  it('an AWS error exits 69 and writes nothing', async () => {
    ec2 = await fake.start({ error: { status: 403, code: 'UnauthorizedOperation', message: 'You are not authorized to perform this operation.' } });
    const out = join(tmpDir(), 'm.yaml');
    const r = await runCli(cmd, ['init', '--aws', '--region', 'eu-central-1', '--endpoint', ec2.url, '--out', out]);
    expect(r.code).toBe(69);
    expect(r.stderr).toContain('MG_ERR_INVENTORY_AWS: the EC2 DescribeTrafficMirrorSessions call failed: UnauthorizedOperation (HTTP 403)');
    expect(existsSync(out)).toBe(false);
  });
});
