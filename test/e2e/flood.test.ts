/**
 * Issue 16 points 2 and 3 end to end, through `mirrorguard serve` with default detection settings: a flood
 * of 20,000 forged (source IP, VNI) pairs, then one rogue pair from another source. The rogue pair must
 * raise its own finding within a second of its first packet; the flood must raise one session-flood
 * finding; finding rows and webhooks stay bounded (the forged pairs are coalesced); an authorized session
 * keeps its slot and loses nothing. (The flood comes from one source, so admission (16 pairs per 10 s) keeps
 * it from filling even this small table (64); eviction is covered by test/collector/session-table.test.ts.)
 * MG_FLOOD_WORKERS=2 runs the same through `serve --workers 2` (native receiver, detector in the main thread).
 */
import Database from 'better-sqlite3';
import { randomBytes } from 'node:crypto';
import { createServer } from 'node:http';
import { writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ether, ipv4, udp, vxlanHeader } from '../helpers/packets.js';
import { startServe } from '../helpers/serve.js';
import { useTmpDir } from '../helpers/tmp.js';
import { udpSource } from '../helpers/udp-source.js';

const FLOODER = '127.66.0.1';
const ROGUE = '127.31.0.99';
const AUTHORIZED = '127.31.0.238';
const FLOOD_PAIRS = 20_000;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('a flood of forged pairs does not blind the detector', () => {
  const tmp = useTmpDir('mg-flood-');

  it('raises the rogue pair within a second and one session-flood, with bounded rows and webhooks', { timeout: 120_000 }, async () => {
    const dir = tmp.path;
    const kinds: string[] = [];
    const server = createServer((req, res) => {
      let body = '';
      req.on('data', (c) => (body += c));
      req.on('end', () => {
        kinds.push((JSON.parse(body) as { data: { kind: string } }).data.kind);
        res.writeHead(204).end();
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    const hook = (server.address() as AddressInfo).port;
    const manifest = join(dir, 'manifest.yaml');
    writeFileSync(manifest, ['version: 1', 'sessions:', '  - id: tms-0123456789abcdef0', '    vni: 5569041', `    sourceIps: [${AUTHORIZED}]`, ''].join('\n'));
    const config = join(dir, 'config.yaml');
    writeFileSync(config, ['maxSessions: 64', 'webhooks:', `  - url: http://127.0.0.1:${hook}/hook`, `    secret: whsec_${randomBytes(32).toString('base64')}`, ''].join('\n'));
    const dbFile = join(dir, 'data', 'mirrorguard.db');

    const srv = await startServe(['--data-dir', join(dir, 'data'), '--api', 'off', '--manifest', manifest, '--config', config, ...(process.env.MG_FLOOD_WORKERS ? ['--workers', process.env.MG_FLOOD_WORKERS] : [])]);
    const inner = ether({}, ipv4({}, udp()));
    const datagram = (vni: number) => Buffer.concat([vxlanHeader(vni), inner]);
    const flooder = await udpSource(FLOODER);
    const rogue = await udpSource(ROGUE);
    const authorized = await udpSource(AUTHORIZED);
    let rogueMs = -1;
    let authorizedSent = 0;
    try {
      await authorized.send(srv.udpPort, [datagram(5569041)]);
      authorizedSent++;
      const t0 = Date.now();
      for (let i = 0; i < FLOOD_PAIRS; i += 100) {
        await flooder.send(srv.udpPort, Array.from({ length: 100 }, (_, j) => datagram(100_000 + i + j)));
        if (i % 2000 === 0) {
          await authorized.send(srv.udpPort, [datagram(5569041)]);
          authorizedSent++;
        }
        await sleep(1); // the kernel buffer, not the collector, would drop a faster sender on a small machine
      }
      const floodMs = Date.now() - t0;
      // Let the collector work through what is queued in its socket, then the rogue pair.
      await sleep(500);
      const sentAt = Date.now();
      for (let i = 0; i < 5; i++) await rogue.send(srv.udpPort, [datagram(4242)]);
      const db = new Database(dbFile, { readonly: true });
      try {
        const q = db.prepare('SELECT id FROM findings WHERE source_ip = ? AND vni = ?');
        while (Date.now() - sentAt < 10_000) {
          if (q.get(ROGUE, 4242) !== undefined) {
            rogueMs = Date.now() - sentAt;
            break;
          }
          await sleep(20);
        }
      } finally {
        db.close();
      }
      await authorized.send(srv.udpPort, [datagram(5569041)]);
      authorizedSent++;
      console.log(`flood of ${FLOOD_PAIRS} pairs sent in ${floodMs} ms; rogue finding after ${rogueMs} ms`);
      // The webhooks of what was raised, and the one-second flush of the coalesced counts.
      const deadline = Date.now() + 15_000;
      while (Date.now() < deadline && !(kinds.includes('session-flood') && kinds.filter((k) => k === 'unauthorized-vni').length >= 2)) await sleep(100);
      await sleep(1500);
    } finally {
      await Promise.all([flooder.close(), rogue.close(), authorized.close()]);
      expect(await srv.stop()).toBe(0);
      server.close();
    }

    expect(rogueMs).toBeGreaterThanOrEqual(0);
    expect(rogueMs).toBeLessThan(1000);

    const db = new Database(dbFile, { readonly: true });
    const rows = db.prepare('SELECT kind, severity, source_ip, vni, count, evidence FROM findings').all() as { kind: string; severity: string; source_ip: string | null; vni: number | null; count: number; evidence: string }[];
    const captures = db.prepare('SELECT SUM(packets) AS packets FROM captures WHERE source_ip = ? AND vni = ?').get(AUTHORIZED, 5569041) as { packets: number };
    db.close();
    const final = srv.logs.find((l) => l.msg === 'stopped; final counters') as { counters: Record<string, number> } | undefined;
    console.log('findings by kind', rows.reduce<Record<string, number>>((m, r) => ((m[r.kind] = (m[r.kind] ?? 0) + 1), m), {}), 'webhooks', kinds.length, 'counters', final?.counters);

    // The rogue pair has its own finding, not one coalesced with the flood.
    expect(rows.filter((r) => r.source_ip === ROGUE)).toMatchObject([{ kind: 'unauthorized-vni', severity: 'critical', vni: 4242 }]);
    const flood = rows.filter((r) => r.kind === 'session-flood');
    expect(flood).toHaveLength(1);
    expect(flood[0]!.severity).toBe('critical');
    const ev = JSON.parse(flood[0]!.evidence) as { topSources: { sourceIp: string; newPairs: number }[]; trigger: { threshold: string } };
    expect(ev.topSources[0]!.sourceIp).toBe(FLOODER);
    expect(ev.trigger.threshold).toBe('perSource');
    // Every forged pair that reached the detector is accounted for: individually or in one coalesced row.
    const forged = rows.filter((r) => r.kind === 'unauthorized-vni' && r.source_ip !== ROGUE);
    const coalesced = forged.filter((r) => r.source_ip === null);
    expect(coalesced).toHaveLength(1);
    expect(forged.reduce((n, r) => n + r.count, 0)).toBeGreaterThan(FLOOD_PAIRS * 0.9);
    // Bounded: a few dozen rows and webhooks for 20,000 forged pairs.
    expect(rows.length).toBeLessThan(50);
    expect(kinds.length).toBeLessThan(50);
    expect(kinds.filter((k) => k === 'session-flood')).toHaveLength(1);
    // The authorized session kept its slot throughout.
    expect(captures.packets).toBe(authorizedSent);
    // With workers (MG_FLOOD_WORKERS=2) the tables live in the workers, whose table counters are not published yet.
    if (!process.env.MG_FLOOD_WORKERS) expect(final?.counters['session.judged_untracked']).toBeGreaterThan(0);
  });
});
