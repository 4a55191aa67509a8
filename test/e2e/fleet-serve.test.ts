/**
 * A fleet of two: two `serve` processes (different --node-id, data directories and UDP ports) on one
 * PostgreSQL receive the same rogue (source IP, VNI) pair at the same moment. One finding row counts
 * both occurrences, and the webhook receiver gets exactly one `finding.created` delivery: only the node
 * whose INSERT created the finding writes its outbox row.
 */
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { expect, it } from 'vitest';
import { openStore } from '../../src/store/store.js';
import { describeNeeds } from '../helpers/needs.js';
import { ether, ipv4, udp } from '../helpers/packets.js';
import { useTestPg } from '../helpers/pg.js';
import { sendVxlan } from '../helpers/send-vxlan.js';
import { startServe } from '../helpers/serve.js';
import { useTmpDir } from '../helpers/tmp.js';

describeNeeds(['postgres'], 'two serve nodes on one PostgreSQL', () => {
  const tmp = useTmpDir('mg-fleet-');
  const pg = useTestPg();

  it('the same rogue pair at both nodes at once: one finding with both occurrences, one webhook delivery', async () => {
    const dir = tmp.path;
    const bodies: string[] = [];
    const server = createServer((req: IncomingMessage, res) => {
      let body = '';
      req.on('data', (c) => (body += c));
      req.on('end', () => {
        bodies.push(body);
        res.writeHead(204).end();
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    const port = (server.address() as AddressInfo).port;
    const secret = `whsec_${randomBytes(32).toString('base64')}`;
    const manifest = join(dir, 'manifest.yaml');
    writeFileSync(manifest, ['version: 1', 'sessions:', '  - id: tms-0123456789abcdef0', '    vni: 5569041', '    sourceIps: [127.31.0.238]', ''].join('\n'));
    const config = join(dir, 'config.yaml');
    writeFileSync(config, ['webhooks:', `  - url: http://127.0.0.1:${port}/hook`, `    secret: ${secret}`, ''].join('\n'));
    const url = await pg.freshUrl();
    const args = (node: string) => ['--store', url, '--node-id', node, '--data-dir', join(dir, node), '--api', 'off', '--manifest', manifest, '--config', config];
    const [a, b] = await Promise.all([startServe(args('node-a')), startServe(args('node-b'))]);
    try {
      const rogue = { src: '127.9.9.9', vni: 777, inner: ether({}, ipv4({}, udp())) };
      await Promise.all([sendVxlan(a.udpPort, [rogue]), sendVxlan(b.udpPort, [rogue])]);
      const store = await openStore({ url, migrate: false });
      try {
        const deadline = Date.now() + 20_000;
        let rows: { count: number }[] = [];
        while (Date.now() < deadline) {
          rows = await store.engine.all<{ count: number }>(`SELECT count FROM findings WHERE kind = 'unauthorized-vni'`);
          if (rows.length === 1 && rows[0]!.count === 2 && bodies.length >= 1) break;
          await new Promise((r) => setTimeout(r, 100));
        }
        // Give a second, wrong delivery time to arrive.
        await new Promise((r) => setTimeout(r, 1500));
        expect(rows).toEqual([{ count: 2 }]);
        const outbox = await store.engine.all<{ event_type: string; state: string }>(`SELECT event_type, state FROM outbox`);
        expect(outbox).toEqual([{ event_type: 'finding.created', state: 'delivered' }]);
        const observed = await store.engine.all<{ source_ip: string; vni: number }>(`SELECT source_ip, vni FROM observed_sessions`);
        expect(observed).toEqual([{ source_ip: '127.9.9.9', vni: 777 }]);
      } finally {
        await store.close();
      }
      expect(bodies).toHaveLength(1);
      expect((JSON.parse(bodies[0]!) as { type: string; data: { kind: string; vni: number } }).data).toMatchObject({ kind: 'unauthorized-vni', vni: 777 });
    } finally {
      expect(await a.stop()).toBe(0);
      expect(await b.stop()).toBe(0);
      server.close();
    }
  });
});
