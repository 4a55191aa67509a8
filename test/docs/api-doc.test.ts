/**
 * docs/api.md's curl examples, run against a real `serve` (issue 17, point 1). The page's examples are
 * written for the real AWS capture (VNI 5569041 from 172.31.0.238): `decap` puts that capture in the
 * data directory, and the test rewrites only what a reader would fill in themselves (address, token,
 * date, capture id, finding id, event file names). Each block runs in order in one shell; no block may
 * hit an HTTP error.
 */
import { copyFileSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { expect } from 'vitest';
import { describeWithFixtures, fixture } from '../helpers/fixtures.js';
import { itNeeds } from '../helpers/needs.js';
import { runCli, startServe } from '../helpers/serve.js';
import { useTmpDir } from '../helpers/tmp.js';
import { docBlocks, runScript } from './doc-blocks.js';

const SESSION = 'tms-0123456789abcdef0';

describeWithFixtures('docs/api.md examples', () => {
  const tmp = useTmpDir('mg-api-doc-');

  itNeeds(['bash', 'curl', 'jq', 'openssl', 'tshark'], 'run against a real serve over the AWS capture', async () => {
    const dir = tmp.path;
    writeFileSync(join(dir, 'manifest.yaml'), `version: 1\nsessions:\n  - id: ${SESSION}\n    vni: 5569041\n    sourceIps: [172.31.0.238]\n`);
    expect(runCli(['decap', fixture('pcap', 'suricata-verify-vxlan-decoder-03-aws-traffic-mirror.pcap'), '--out', join(dir, 'data'), '--manifest', join(dir, 'manifest.yaml')]).status).toBe(0);
    const trail = readFileSync(fixture('cloudtrail', 'panther-aws_ec2_traffic_mirroring-all-tests.Records.json'));
    writeFileSync(join(dir, 'trail.json'), trail);
    writeFileSync(join(dir, '123456789012_CloudTrail_eu-central-1_20261128T2040Z_abc.json.gz'), gzipSync(trail));
    copyFileSync(fixture('cloudtrail', 'panther-aws_ec2_traffic_mirroring-CreateTrafficMirrorSession.json'), join(dir, 'event.json'));

    const s = await startServe(['--data-dir', join(dir, 'data'), '--api', '127.0.0.1:0', '--manifest', join(dir, 'manifest.yaml'), '--retain-hours', '0', '--log-format', 'json']); // the capture is from 2019: no age bound
    const port = (await s.waitForLog((l) => l.msg === 'api listening')).port as number;
    const url = `http://127.0.0.1:${port}`;
    const auth = { authorization: `Bearer ${readFileSync(join(dir, 'data', 'api-admin.token'), 'utf8').trim()}` };
    const id = /"id":(\d+)/.exec(await (await fetch(`${url}/v1/captures`, { headers: auth })).text())![1]!;
    // Findings for the examples that read one (the page's own POST /v1/cloudtrail comes later and adds nothing).
    await fetch(`${url}/v1/cloudtrail`, { method: 'POST', headers: { ...auth, 'content-type': 'application/json' }, body: trail });
    const fid = /"id":"(f_[0-9a-f]+)"/.exec(await (await fetch(`${url}/v1/findings?severity=high`, { headers: auth })).text())![1]!;

    const blocks = docBlocks('docs/api.md').filter((b) => b.lang === 'sh');
    expect(blocks.length).toBeGreaterThan(10);
    const script = blocks
      .map((b) => `echo '### docs/api.md:${b.line}'\n${b.code}`)
      .join('\n')
      .replaceAll('http://127.0.0.1:8080', url)
      .replaceAll('https://mirrorguard.internal:8443', url)
      .replace("export TOKEN='paste-your-token'", 'export TOKEN=$(cat data/api-admin.token)')
      .replaceAll('2026-11-28T', '2019-06-27T')
      .replace(/2019-06-27T(1[2-8]|2\d):\d\d:\d\d(\.\d+)?Z/g, (m, h: string) => (Number(h) < 14 || m.startsWith('2019-06-27T12') ? '2019-06-27T14:00:00Z' : '2019-06-27T14:30:00Z'))
      .replaceAll('/v1/captures/42', `/v1/captures/${id}`)
      .replaceAll('_20261128T*.pcap', '_2019*.pcap')
      .replaceAll('f_5c38f349f923adbae9b4', fid);
    // Blocks are examples at a prompt, not one program: no `set -e`; each curl failure shows in the output.
    const r = runScript(`set +e +o pipefail\n${script}`, dir);
    await s.stop();
    const out = `${r.stdout}\n${r.stderr}`;
    const errors = out.split('\n').filter((l) => /^curl: \(\d+\)|command not found|No such file|^jq: error|"statusCode":\s*4\d\d/.test(l));
    expect(errors, out.slice(-4000)).toEqual([]);
    expect(out).toMatch(/x-content-sha256: [0-9a-f]{64}/i);
    expect(out).toContain(`"id": "${fid}"`);
  }, 120_000);
});
