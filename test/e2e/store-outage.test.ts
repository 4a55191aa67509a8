/**
 * serve on PostgreSQL, and PostgreSQL goes away: the API answers 503 MG_ERR_STORE_UNREACHABLE with
 * Retry-After (not a 500, not a hang), /healthz stays 200 with `store: degraded` so a load balancer keeps
 * sending traffic, packets received meanwhile are written, and their rows land once the store is back.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect, it } from 'vitest';
import { describeNeeds } from '../helpers/needs.js';
import { ether, ipv4, udp } from '../helpers/packets.js';
import { useTestPg } from '../helpers/pg.js';
import { sendVxlan } from '../helpers/send-vxlan.js';
import { startServe } from '../helpers/serve.js';
import { useTmpDir } from '../helpers/tmp.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describeNeeds(['postgres'], 'serve while PostgreSQL is away', () => {
  const tmp = useTmpDir('mg-outage-');
  const pg = useTestPg();

  it('the API answers 503 with Retry-After, /healthz says degraded, and the rows land when it is back', async () => {
    if (process.env.MIRRORGUARD_TEST_PG_URL) return; // pause() needs a cluster of our own
    const url = await pg.freshUrl();
    const dataDir = join(tmp.path, 'data');
    const srv = await startServe(['--store', url, '--node-id', 'node-a', '--data-dir', dataDir, '--api', '127.0.0.1:0', '--flush-interval-ms', '200']);
    try {
      const token = readFileSync(join(dataDir, 'api-admin.token'), 'utf8').trim();
      const api = `http://127.0.0.1:${srv.apiPort}`;
      const get = (path: string) => fetch(`${api}${path}`, { headers: { authorization: `Bearer ${token}` }, signal: AbortSignal.timeout(20_000) });
      expect((await get('/v1/captures')).status).toBe(200);

      await pg.pause();
      const down = await get('/v1/captures');
      expect(down.status).toBe(503);
      expect(down.headers.get('retry-after')).toBe('5');
      expect(await down.json()).toMatchObject({ statusCode: 503, code: 'MG_ERR_STORE_UNREACHABLE' });
      // Capture goes on: a new pair's file is written while its row waits in the queue.
      await sendVxlan(srv.udpPort, [{ src: '127.0.0.9', vni: 4242, inner: ether({}, ipv4({}, udp())) }]);
      let health: { status: string; store: string } | null = null;
      for (let i = 0; i < 50 && health?.store !== 'degraded'; i++) {
        const h = await fetch(`${api}/healthz`, { signal: AbortSignal.timeout(20_000) });
        expect(h.status).toBe(200);
        health = (await h.json()) as { status: string; store: string };
        if (health.store !== 'degraded') await sleep(200);
      }
      expect(health).toMatchObject({ status: 'ok', store: 'degraded' });

      await pg.resume();
      let rows: { vni: number }[] = [];
      for (let i = 0; i < 100 && !rows.some((r) => r.vni === 4242); i++) {
        const r = await get('/v1/captures');
        if (r.status === 200) rows = ((await r.json()) as { items: { vni: number }[] }).items;
        if (!rows.some((x) => x.vni === 4242)) await sleep(200);
      }
      expect(rows.map((r) => r.vni)).toContain(4242);
    } finally {
      await srv.stop();
    }
  }, 60_000);
});
