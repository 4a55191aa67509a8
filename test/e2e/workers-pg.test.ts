/**
 * `serve --workers 2` on PostgreSQL: each worker thread opens its own connection to the store serve
 * migrated, writes its own files and rows under the node's name, and the detector (main thread) raises
 * one finding for the rogue pair however many workers saw it. Read back: every packet sent is in the
 * files, once, and the catalog's counts and SHA-256 match the disk.
 */
import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect, it } from 'vitest';
import { openStore } from '../../src/store/store.js';
import { describeNeeds } from '../helpers/needs.js';
import { ether, ipv4, raw, udp } from '../helpers/packets.js';
import { useTestPg } from '../helpers/pg.js';
import { readBack } from '../helpers/read-back.js';
import { sendVxlan, type VxlanSpec } from '../helpers/send-vxlan.js';
import { startServe } from '../helpers/serve.js';
import { useTmpDir } from '../helpers/tmp.js';

describeNeeds(['postgres', 'native'], 'serve --workers 2 on PostgreSQL', () => {
  const tmp = useTmpDir('mg-workers-pg-');
  const pg = useTestPg();

  it('both workers write rows on the shared store; one finding for the rogue pair; every packet once', async () => {
    const dir = tmp.path;
    const manifest = join(dir, 'manifest.yaml');
    writeFileSync(manifest, ['version: 1', 'sessions:', '  - id: tms-0123456789abcdef0', '    vni: 5569041', '    sourceIps: [127.31.0.238]', ''].join('\n'));
    const url = await pg.freshUrl();
    const dataDir = join(dir, 'data');
    const srv = await startServe(['--store', url, '--node-id', 'node-w', '--workers', '2', '--data-dir', dataDir, '--api', 'off', '--manifest', manifest, '--flush-interval-ms', '100']);
    const N = 64;
    const specs: VxlanSpec[] = [];
    // Many outer source ports: the kernel's flow hash spreads them over both workers.
    for (let i = 0; i < N; i++) {
      const inner = ether({}, ipv4({ src: '172.31.0.10', dst: '172.31.0.20' }, udp({ sport: 30000 + i, dport: 53 }, raw(i, 64))));
      specs.push({ src: '127.31.0.238', vni: 5569041, sport: 41000 + i, inner });
      specs.push({ src: '127.9.9.9', vni: 777, sport: 42000 + i, inner });
    }
    try {
      await sendVxlan(srv.udpPort, specs);
      await new Promise((r) => setTimeout(r, 1000));
    } finally {
      expect(await srv.stop()).toBe(0);
    }
    const store = await openStore({ url, nodeId: 'node-w', migrate: false });
    try {
      const rows = await store.engine.all<{ path: string; vni: number; source_ip: string; worker: number; state: string; packets: number; bytes: number; sha256: string; node: string; session_id: string | null }>(
        `SELECT path, vni, source_ip, worker, state, packets, bytes, sha256, node, session_id FROM captures ORDER BY id`,
      );
      expect(new Set(rows.map((r) => r.worker))).toEqual(new Set([1, 2]));
      for (const r of rows) {
        expect(r).toMatchObject({ node: 'node-w', state: 'closed' });
        const bytes = readFileSync(join(dataDir, r.path));
        expect(bytes.length).toBe(r.bytes);
        expect(createHash('sha256').update(bytes).digest('hex')).toBe(r.sha256);
        expect(readBack(join(dataDir, r.path)).frames).toHaveLength(r.packets);
      }
      for (const [vni, session] of [[5569041, 'tms-0123456789abcdef0'], [777, null]] as const) {
        const mine = rows.filter((r) => r.vni === vni);
        expect(mine.every((r) => r.session_id === session)).toBe(true);
        // Every inner frame once: the UDP source port (30000 + i) tells them apart.
        const seen = mine.flatMap((r) => readBack(join(dataDir, r.path)).frames.map((hex) => parseInt(hex.slice(68, 72), 16)));
        expect(seen.sort((a, b) => a - b)).toEqual(Array.from({ length: N }, (_, i) => 30000 + i));
      }
      const findings = await store.engine.all<{ kind: string; vni: number; source_ip: string }>(`SELECT kind, vni, source_ip FROM findings`);
      expect(findings).toEqual([{ kind: 'unauthorized-vni', vni: 777, source_ip: '127.9.9.9' }]);
    } finally {
      await store.close();
    }
  }, 60_000);
});
