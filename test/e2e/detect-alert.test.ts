/**
 * Issue 3 and 4 end to end: `serve` with a manifest; authorized and unauthorized mirror traffic over real
 * UDP (from 127.x.y.z outer sources on loopback); findings as expected, none for the authorized session; and each
 * finding arrives at a real webhook receiver with a Standard Webhooks signature we verify ourselves.
 */
import Database from 'better-sqlite3';
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage } from 'node:http';
import { writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openStore } from '../../src/store/store.js';
import { describeNeeds } from '../helpers/needs.js';
import { startTestPg, type TestPg } from '../helpers/pg.js';
import { ether, ipv4, tcp, udp } from '../helpers/packets.js';
import { sendVxlan } from '../helpers/send-vxlan.js';
import { startServe } from '../helpers/serve.js';
import { useTmpDir } from '../helpers/tmp.js';

interface Delivery {
  id: string;
  timestamp: string;
  signature: string;
  body: string;
}

function verify(secret: string, d: Delivery): boolean {
  const key = Buffer.from(secret.slice('whsec_'.length), 'base64');
  const expected = createHmac('sha256', key).update(`${d.id}.${d.timestamp}.${d.body}`).digest();
  return d.signature.split(' ').some((s) => {
    const [v, b64] = s.split(',');
    const got = Buffer.from(b64 ?? '', 'base64');
    return v === 'v1' && got.length === expected.length && timingSafeEqual(got, expected);
  });
}

function detectionAndAlerts(engine: 'sqlite' | 'postgres'): void {
  const tmp = useTmpDir('mg-detect-');
  let pg: TestPg | null = null;
  if (engine === 'postgres') {
    beforeAll(async () => {
      pg = await startTestPg();
    });
    afterAll(async () => {
      await pg?.stop();
    });
  }

  it('raises findings for unauthorized sessions only, and delivers them as signed webhooks', async () => {
    const dir = tmp.path;
    const deliveries: Delivery[] = [];
    const server = createServer((req: IncomingMessage, res) => {
      let body = '';
      req.on('data', (c) => (body += c));
      req.on('end', () => {
        deliveries.push({
          id: String(req.headers['webhook-id']),
          timestamp: String(req.headers['webhook-timestamp']),
          signature: String(req.headers['webhook-signature']),
          body,
        });
        res.writeHead(204).end();
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    const port = (server.address() as AddressInfo).port;
    const secret = `whsec_${randomBytes(32).toString('base64')}`;

    const manifest = join(dir, 'manifest.yaml');
    writeFileSync(
      manifest,
      [
        'version: 1',
        'sessions:',
        '  - id: tms-0123456789abcdef0',
        '    vni: 5569041',
        '    sourceIps: [127.31.0.238]',
        '    owner: netops',
        '  - id: tms-0fedcba9876543210',
        '    vni: 888',
        '    expires: 2020-01-01T00:00:00Z',
        '',
      ].join('\n'),
    );
    const config = join(dir, 'config.yaml');
    writeFileSync(config, ['webhooks:', `  - url: http://127.0.0.1:${port}/hook`, `    secret: ${secret}`, ''].join('\n'));

    const url = pg ? await pg.freshUrl() : `sqlite:${join(dir, 'data', 'mirrorguard.db')}`;
    const srv = await startServe(['--data-dir', join(dir, 'data'), '--api', 'off', '--manifest', manifest, '--config', config, ...(pg ? ['--store', url] : [])]);
    try {
      const ssh = ether({}, ipv4({}, tcp({ dport: 22 })));
      const dgram = ether({}, ipv4({}, udp()));
      await sendVxlan(srv.udpPort, [
        { src: '127.31.0.238', vni: 5569041, inner: ssh, count: 3 }, // authorized
        { src: '127.31.0.99', vni: 5569041, inner: ssh }, // right VNI, wrong source
        { src: '127.31.0.238', vni: 777, inner: dgram, count: 2 }, // nobody authorized VNI 777
        { src: '127.0.0.5', vni: 888, inner: dgram }, // session past its expiry
      ]);
      const deadline = Date.now() + 20_000;
      while (deliveries.length < 3 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    } finally {
      expect(await srv.stop()).toBe(0);
      server.close();
    }

    // Read back through the store, on whichever engine serve wrote.
    const store = await openStore({ url, migrate: false });
    const findings = await store.engine.all('SELECT kind, severity, source_ip, vni, count FROM findings ORDER BY kind');
    const captures = await store.engine.all('SELECT source_ip, vni, session_id FROM captures ORDER BY vni, source_ip');
    await store.close();
    expect(findings).toEqual([
      { kind: 'expired-session', severity: 'high', source_ip: '127.0.0.5', vni: 888, count: 1 },
      { kind: 'unauthorized-vni', severity: 'critical', source_ip: '127.31.0.238', vni: 777, count: 1 },
      { kind: 'unexpected-source', severity: 'high', source_ip: '127.31.0.99', vni: 5569041, count: 1 },
    ]);
    // The authorized pair's files carry its session ID; the others none.
    expect(captures).toContainEqual({ source_ip: '127.31.0.238', vni: 5569041, session_id: 'tms-0123456789abcdef0' });
    expect(captures).toContainEqual({ source_ip: '127.31.0.99', vni: 5569041, session_id: null });

    expect(deliveries).toHaveLength(3);
    for (const d of deliveries) {
      expect(verify(secret, d)).toBe(true);
      const body = JSON.parse(d.body) as { type: string; data: { kind: string; vni: number } };
      expect(body.type).toBe('finding.created');
    }
    expect(new Set(deliveries.map((d) => d.id)).size).toBe(3);
    expect(deliveries.map((d) => (JSON.parse(d.body) as { data: { kind: string } }).data.kind).sort()).toEqual([
      'expired-session',
      'unauthorized-vni',
      'unexpected-source',
    ]);
  });
}

describe('detection and alerts end to end [sqlite]', () => detectionAndAlerts('sqlite'));
describeNeeds(['postgres'], 'detection and alerts end to end [postgres]', () => detectionAndAlerts('postgres'));

describe('silent sessions under serve', () => {
  const tmp = useTmpDir('mg-silent-');

  it('raises silent-session for an authorized session that sends nothing, and not for one that does', async () => {
    const dir = tmp.path;
    const manifest = join(dir, 'manifest.yaml');
    writeFileSync(
      manifest,
      ['version: 1', 'sessions:', '  - id: tms-0123456789abcdef0', '    vni: 10', '  - id: tms-0fedcba9876543210', '    vni: 20', ''].join('\n'),
    );
    const config = join(dir, 'config.yaml');
    writeFileSync(config, 'detect:\n  silentAfterSeconds: 2\n');
    const srv = await startServe(['--data-dir', join(dir, 'data'), '--api', 'off', '--manifest', manifest, '--config', config]);
    const db = () => new Database(join(dir, 'data', 'mirrorguard.db'), { readonly: true });
    let kinds: { kind: string; session_id: string }[] = [];
    try {
      const deadline = Date.now() + 15_000;
      while (Date.now() < deadline) {
        await sendVxlan(srv.udpPort, [{ src: '127.0.0.11', vni: 20, inner: ether({}, ipv4({}, udp())) }]); // session 20 keeps talking
        const d = db();
        kinds = d.prepare("SELECT kind, session_id FROM findings WHERE status = 'open'").all() as typeof kinds;
        d.close();
        if (kinds.length > 0) break;
        await new Promise((r) => setTimeout(r, 500));
      }
    } finally {
      expect(await srv.stop()).toBe(0);
    }
    expect(kinds).toEqual([{ kind: 'silent-session', session_id: 'tms-0123456789abcdef0' }]);
  });
});
