/**
 * docs/quickstart.md runs as written: its `doc-test: quickstart` blocks in order, in a fresh folder,
 * against the real CLI, with free ports instead of 4789/8080/9000 and the fixture capture instead of
 * the download.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect } from 'vitest';
import { describeWithFixtures, fixture } from '../helpers/fixtures.js';
import { itNeeds } from '../helpers/needs.js';
import { useTmpDir } from '../helpers/tmp.js';
import { freePort, markedScript, runScript } from './doc-blocks.js';

const AWS_CAPTURE = 'suricata-verify-vxlan-decoder-03-aws-traffic-mirror.pcap';

describeWithFixtures('docs/quickstart.md', () => {
  const tmp = useTmpDir('mg-quickstart-');

  itNeeds(['bash', 'curl', 'jq', 'openssl'], 'runs from the capture to the finding, the webhook and the evidence PCAP', async () => {
    const [udp, api, hook] = [await freePort('udp'), await freePort('tcp'), await freePort('tcp')];
    let script = markedScript('docs/quickstart.md', 'quickstart');
    const download = /curl -fsSL -o aws-traffic-mirror\.pcap \\\n\s+\S+\n/;
    expect(script).toMatch(download);
    script = script
      .replace(download, `cp '${fixture('pcap', AWS_CAPTURE)}' aws-traffic-mirror.pcap\n`)
      .replaceAll(':4789', `:${udp}`)
      .replaceAll(':8080', `:${api}`)
      .replaceAll(':9000', `:${hook}`)
      .replaceAll('listen(9000,', `listen(${hook},`);
    const r = runScript(script, tmp.path);
    const serveLog = existsSync(join(tmp.path, 'serve.log')) ? readFileSync(join(tmp.path, 'serve.log'), 'utf8').slice(-3000) : '';
    expect(r.status, `${r.stderr}\n--- serve.log\n${serveLog}`).toBe(0);
    expect(r.stdout).toContain('sent 100 VXLAN datagrams');
    expect(r.stdout).toContain('"kind": "unauthorized-vni"');
    const sha = /x-content-sha256: ([0-9a-f]{64})/i.exec(r.stdout)?.[1];
    expect(sha).toBeDefined();
    expect(r.stdout).toContain(`${sha}  evidence.pcap`);
    expect(readFileSync(join(tmp.path, 'webhooks.log'), 'utf8')).toContain('unauthorized-vni');
    const effective = JSON.parse(readFileSync(join(tmp.path, 'effective-config.json'), 'utf8'));
    expect(effective.webhooks[0].url).toBe(`http://127.0.0.1:${hook}/…`);
  });
});
