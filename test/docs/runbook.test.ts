/**
 * docs/runbook.md "Preserve the evidence", step 1, run as written against a real `serve` for the case
 * issue 17 found broken: a `mirror-session-modified` finding (from CloudTrail) has no sourceIp, and the
 * recipe must still fetch the VNI's packets.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect } from 'vitest';
import { AUTHORIZED_YAML, createSession, IDS, modifySession } from '../detect/cloudtrail/events.js';
import { describeWithFixtures, fixture, PROJECT_ROOT } from '../helpers/fixtures.js';
import { itNeeds } from '../helpers/needs.js';
import { runCli, startServe } from '../helpers/serve.js';
import { useTmpDir } from '../helpers/tmp.js';
import { markedScript, runScript } from './doc-blocks.js';

describeWithFixtures('docs/runbook.md: preserve the evidence', () => {
  const tmp = useTmpDir('mg-runbook-');

  itNeeds(['bash', 'curl', 'jq'], 'step 1 works for a finding without sourceIp (mirror-session-modified)', async () => {
    writeFileSync(join(tmp.path, 'manifest.yaml'), AUTHORIZED_YAML);
    const s = await startServe(['--data-dir', join(tmp.path, 'data'), '--api', '127.0.0.1:0', '--manifest', join(tmp.path, 'manifest.yaml'), '--log-format', 'json', '--log-level', 'info']);
    const api = await s.waitForLog((l) => l.msg === 'api listening');
    const url = `http://127.0.0.1:${api.port as number}`;
    const token = readFileSync(join(tmp.path, 'data', 'api-admin.token'), 'utf8').trim();
    // The authorized session's VNI is the AWS capture's (5569041): its packets are the evidence.
    expect(runCli(['replay', fixture('pcap', 'suricata-verify-vxlan-decoder-03-aws-traffic-mirror.pcap'), '--to', `127.0.0.1:${s.udpPort}`]).status).toBe(0);
    // UDP gives no receipt: wait until the collector has catalogued the pair's file.
    for (let i = 0; i < 100; i++) {
      const c = (await (await fetch(`${url}/v1/captures?vni=5569041`, { headers: { authorization: `Bearer ${token}` } })).json()) as { items: unknown[] };
      if (c.items.length > 0) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    const event = modifySession({ target: IDS.rogueTarget }, { TrafficMirrorTargetId: IDS.rogueTarget }, { time: new Date(Date.now() - 60_000).toISOString().replace(/\.\d+Z$/, 'Z') });
    const post = await fetch(`${url}/v1/cloudtrail`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: JSON.stringify(event) });
    expect(post.status).toBeLessThan(300);
    const list = (await (await fetch(`${url}/v1/findings?kind=mirror-session-modified`, { headers: { authorization: `Bearer ${token}` } })).json()) as { items: { id: string; sourceIp: string | null; vni: number | null }[] };
    const f = list.items[0]!;
    expect([f.sourceIp ?? null, f.vni]).toEqual([null, 5569041]); // jq -r .sourceIp prints "null": what the old recipe sent

    // The recipe's window ends at `date -u +%FT%TZ`, whole seconds: let the packets' second pass.
    await new Promise((r) => setTimeout(r, 1100));
    const prelude = `API_URL=${url}\nTOKEN=${token}\napi() { curl -sS --fail-with-body -H "Authorization: Bearer $TOKEN" "$API_URL$1"; }\nFID=${f.id}\n`;
    const r = runScript(prelude + markedScript('docs/runbook.md', 'runbook-evidence'), tmp.path);
    expect(r.status, r.stderr).toBe(0);
    const sha = /x-content-sha256: ([0-9a-f]{64})/i.exec(r.stdout)?.[1];
    expect(sha).toBeDefined();
    expect(r.stdout).toContain(`${sha}  evidence-${f.id}.pcap`);
    expect(await s.stop()).toBe(0);
  });

  itNeeds(['bash', 'jq'], 'step 4: lookup-events saved as JSON lines (the documented pipe) is what cloudtrail scan reads', () => {
    // What `aws cloudtrail lookup-events --query 'Events[].CloudTrailEvent' --output json` prints: a JSON array of strings.
    const events = [createSession({ id: IDS.session2, eni: IDS.eni2, target: IDS.rogueTarget, vni: 4242 }), modifySession({ target: IDS.rogueTarget }, { TrafficMirrorTargetId: IDS.rogueTarget })];
    writeFileSync(join(tmp.path, 'lookup.json'), JSON.stringify(events.map((e) => JSON.stringify(e)), null, 4));
    writeFileSync(join(tmp.path, 'manifest.yaml'), AUTHORIZED_YAML);
    const pipe = /--output json \\\n\s+(\| jq -c '\.\[\] \| fromjson') > ct-create\.jsonl/.exec(readFileSync(join(PROJECT_ROOT, 'docs', 'runbook.md'), 'utf8'));
    expect(pipe).not.toBeNull();
    const r = runScript(`cat lookup.json ${pipe![1]} > ct-create.jsonl\nmirrorguard cloudtrail scan ct-create.jsonl --manifest manifest.yaml || echo "exit $?"`, tmp.path);
    expect(r.stdout).toContain('mirror-session-created');
    expect(r.stdout).toContain('mirror-session-modified');
    expect(r.stdout).toContain('exit 1'); // findings, not an input problem (2)
  });
});
