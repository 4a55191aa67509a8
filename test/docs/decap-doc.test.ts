/** docs/decap.md's example, run as written on the real AWS capture: exit status 1 for the finding, tshark reads the output. */
import { copyFileSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect } from 'vitest';
import { describeWithFixtures, fixture } from '../helpers/fixtures.js';
import { itNeeds } from '../helpers/needs.js';
import { useTmpDir } from '../helpers/tmp.js';
import { markedScript, runScript } from './doc-blocks.js';

describeWithFixtures('docs/decap.md', () => {
  const tmp = useTmpDir('mg-decap-doc-');
  itNeeds(['bash', 'tshark'], 'the example exits 1 with the finding, and tshark reads what it wrote', () => {
    copyFileSync(fixture('pcap', 'suricata-verify-vxlan-decoder-03-aws-traffic-mirror.pcap'), join(tmp.path, 'aws-traffic-mirror.pcap'));
    writeFileSync(join(tmp.path, 'manifest.yaml'), 'version: 1\nsessions: []\n');
    // `set -e` would stop at the documented non-zero status: the example is meant for a prompt.
    const r = runScript(`set +e\n${markedScript('docs/decap.md', 'decap')}`, tmp.path);
    expect(r.stdout, r.stderr).toContain('exit status 1');
    expect(r.stdout.trim().split('\n').length).toBeGreaterThanOrEqual(4); // the echo and 3 tshark lines
    const summary = JSON.parse(readFileSync(join(tmp.path, 'decap.json'), 'utf8'));
    expect(summary.findings.map((f: { kind: string }) => f.kind)).toContain('unauthorized-vni');
  });
});
