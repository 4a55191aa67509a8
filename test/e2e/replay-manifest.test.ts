/**
 * `replay` into a running `serve`, and the manifest's life inside `serve`: refused at start when invalid
 * (every problem as FILE:LINE: field: message), reloaded on SIGHUP, and an invalid reload keeps the
 * manifest in force.
 */
import Database from 'better-sqlite3';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { describeWithFixtures, fixture } from '../helpers/fixtures.js';
import { tsharkFrameHex } from '../helpers/oracles.js';
import { checkIfHave } from '../helpers/needs.js';
import { ether, ipv4, udp, vxlanHeader } from '../helpers/packets.js';
import { awsOptions, ENDPOINT_ID_TEXT, gwlbMirror } from '../decode/geneve-frames.js';
import { buildPcap } from '../pcap/pcap-helpers.js';
import { readBack } from '../helpers/read-back.js';
import { sendVxlan } from '../helpers/send-vxlan.js';
import { runCli, startServe } from '../helpers/serve.js';
import { useTmpDir } from '../helpers/tmp.js';

function query<T>(dir: string, sql: string): T[] {
  const db = new Database(join(dir, 'mirrorguard.db'), { readonly: true });
  try {
    return db.prepare(sql).all() as T[];
  } finally {
    db.close();
  }
}

describeWithFixtures('replay', () => {
  const tmp = useTmpDir('mg-replay-');

  it('sends the VXLAN payloads of the real AWS capture to serve, which writes the same inner frames', async () => {
    const dir = tmp.path;
    const srv = await startServe(['--data-dir', join(dir, 'live'), '--api', 'off']);
    const r = runCli(['replay', fixture('pcap', 'suricata-verify-vxlan-decoder-03-aws-traffic-mirror.pcap'), '--to', `127.0.0.1:${srv.udpPort}`, '--rate', '2000']);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^sent 100 VXLAN datagrams/);
    await srv.waitForLog((l) => l.msg === 'new mirror session seen');
    await new Promise((res) => setTimeout(res, 300));
    expect(await srv.stop()).toBe(0);

    // The outer source becomes ours (127.0.0.1); the VNI and every inner byte are AWS's.
    const live = query<{ path: string; vni: number; source_ip: string; packets: number }>(join(dir, 'live'), 'SELECT path, vni, source_ip, packets FROM captures');
    expect(live.map((x) => [x.vni, x.source_ip, x.packets])).toEqual([[5569041, '127.0.0.1', 100]]);

    // The same frames decap writes straight from the file.
    const d = runCli(['decap', fixture('pcap', 'suricata-verify-vxlan-decoder-03-aws-traffic-mirror.pcap'), '--out', join(dir, 'decap')]);
    expect(d.status).toBe(0);
    const [direct] = query<{ path: string }>(join(dir, 'decap'), 'SELECT path FROM captures');
    const [liveFile, decapFile] = [join(dir, 'live', live[0]!.path), join(dir, 'decap', direct!.path)];
    expect(readBack(liveFile).frames).toEqual(readBack(decapFile).frames);
    checkIfHave('tshark', () => expect(tsharkFrameHex(liveFile)).toEqual(tsharkFrameHex(decapFile)));
  });

  it('with --geneve-to, sends a GWLB capture\'s GENEVE payloads to serve --geneve: mirror sources, VNIs and the endpoint arrive as captured', async () => {
    const dir = tmp.path;
    // What a GWLB target records: Ethernet / IPv4 GWLB -> target / UDP 6081 / GENEVE (AWS options) /
    // IPv4 source ENI / UDP 4789 / VXLAN / frame; and, beside it, plain VXLAN to 4789.
    const inner = ether({}, ipv4({ src: '10.1.1.1', dst: '10.1.1.2' }, udp({ sport: 1000, dport: 53 }, Buffer.from('replayed'))));
    const outer = (dport: number, payload: Buffer) => ether({}, ipv4({ src: '10.0.0.9', dst: '10.0.0.50' }, udp({ sport: 50_001, dport }, payload)));
    const recs = [
      ...[0, 1, 2].map(() => outer(6081, gwlbMirror('172.31.5.5', 700, undefined, awsOptions()))),
      outer(6081, gwlbMirror('172.31.6.6', 701, undefined, awsOptions())),
      ...[0, 1].map(() => outer(4789, Buffer.concat([vxlanHeader(800), inner]))),
    ].map((data, i) => ({ tsSec: 1_800_000_000 + i, tsNsec: 0, data }));
    const cap = join(dir, 'gwlb-target.pcap');
    writeFileSync(cap, buildPcap(recs));

    // Without --geneve-to the GENEVE datagrams are skipped, by name.
    const noGeneve = runCli(['replay', cap, '--to', '127.0.0.1:9']);
    expect(noGeneve.status, noGeneve.stderr).toBe(0);
    expect(noGeneve.stdout).toMatch(/^sent 2 VXLAN datagrams .*; skipped geneve \(no --geneve-to\)=4$/m);

    const srv = await startServe(['--data-dir', join(dir, 'live'), '--api', 'off', '--receiver', 'dgram', '--geneve', '127.0.0.1:0', '--flush-interval-ms', '100']);
    const gport = (await srv.waitForLog((l) => l.msg === 'receiving GENEVE from a Gateway Load Balancer')).port as number;
    const r = runCli(['replay', cap, '--to', `127.0.0.1:${srv.udpPort}`, '--geneve-to', `127.0.0.1:${gport}`]);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^sent 2 VXLAN datagrams \(\d+ bytes\) to 127\.0\.0\.1:\d+ and 4 GENEVE datagrams \(\d+ bytes\) to 127\.0\.0\.1:\d+ in /);
    await srv.waitForLog((l) => l.msg === 'new mirror session seen' && l.vni === 701);
    await new Promise((res) => setTimeout(res, 300));
    expect(await srv.stop()).toBe(0);

    // Through the GWLB the mirror source is the one inside GENEVE, as captured; plain VXLAN comes from us.
    const rows = query<{ vni: number; source_ip: string; packets: number; gwlb_endpoint_id: string | null }>(join(dir, 'live'), 'SELECT vni, source_ip, packets, gwlb_endpoint_id FROM captures ORDER BY vni');
    expect(rows.map((x) => [x.vni, x.source_ip, x.packets, x.gwlb_endpoint_id])).toEqual([
      [700, '172.31.5.5', 3, ENDPOINT_ID_TEXT],
      [701, '172.31.6.6', 1, ENDPOINT_ID_TEXT],
      [800, '127.0.0.1', 2, null],
    ]);
    expect(runCli(['replay', cap, '--geneve-to', '127.0.0.1:0']).status).toBe(64);
  });

  it('says what is wrong with its arguments', () => {
    expect(runCli(['replay', fixture('pcap', 'zeek-vxlan.pcap')]).status).toBe(64);
    const missing = runCli(['replay', join(tmp.path, 'nope.pcap'), '--to', '127.0.0.1:4789']);
    expect(missing.status).toBe(66);
    expect(missing.stderr).toMatch(/MG_ERR_CAPTURE_READ/);
  });
});

describe('serve and the manifest', () => {
  const tmp = useTmpDir('mg-manifest-');

  const good = (vni: number) => ['version: 1', 'sessions:', '  - id: tms-0123456789abcdef0', `    vni: ${vni}`, '    sourceIps: [127.31.0.238]', ''].join('\n');

  it('refuses to start on an invalid manifest, naming every problem', () => {
    const m = join(tmp.path, 'm.yaml');
    writeFileSync(m, ['version: 1', 'sessions:', '  - id: tms-XYZ', '    vni: 99999999', '    colour: blue', ''].join('\n'));
    const r = runCli(['serve', '--manifest', m, '--data-dir', join(tmp.path, 'd'), '--api', 'off', '--listen', '127.0.0.1:0']);
    expect(r.status).toBe(78);
    expect(r.stderr).toContain(`${m}:3: sessions[0].id:`);
    expect(r.stderr).toContain(`${m}:4: sessions[0].vni:`);
    expect(r.stderr).toContain(`${m}:5: sessions[0].colour:`);
  });

  it('reloads on SIGHUP; an invalid reload keeps the manifest in force', async () => {
    const dir = tmp.path;
    const m = join(dir, 'm.yaml');
    writeFileSync(m, good(100));
    const srv = await startServe(['--manifest', m, '--data-dir', join(dir, 'd'), '--api', 'off']);

    // VNI 200 is not authorized yet.
    await sendVxlan(srv.udpPort, [{ src: '127.31.0.238', vni: 200, inner: ether({}, ipv4({}, udp())) }]);
    await srv.waitForLog((l) => l.msg === 'new mirror session seen' && l.vni === 200);
    expect(srv.logs.find((l) => l.msg === 'new mirror session seen')!.status).toBe('unauthorized-vni');

    // A broken edit is refused and logged with its line; the old manifest stays.
    writeFileSync(m, 'version: 1\nsessions:\n  - id: tms-0123456789abcdef0\n    vni: -1\n');
    srv.proc.kill('SIGHUP');
    const refused = await srv.waitForLog((l) => l.msg.includes('manifest reload refused'));
    expect(refused.msg).toContain(`${m}:4: sessions[0].vni:`);

    // A good edit authorizing VNI 200 resolves the open finding and relabels the live session.
    writeFileSync(m, good(200));
    srv.proc.kill('SIGHUP');
    await srv.waitForLog((l) => l.msg === 'manifest reloaded');
    await sendVxlan(srv.udpPort, [{ src: '127.31.0.238', vni: 200, inner: ether({}, ipv4({}, udp())) }]);
    await new Promise((r) => setTimeout(r, 1500));
    expect(await srv.stop()).toBe(0);

    const findings = query<{ kind: string; vni: number; status: string }>(join(dir, 'd'), 'SELECT kind, vni, status FROM findings');
    expect(findings).toEqual([{ kind: 'unauthorized-vni', vni: 200, status: 'resolved' }]);
    const files = query<{ session_id: string | null; packets: number }>(join(dir, 'd'), 'SELECT session_id, packets FROM captures WHERE vni = 200');
    expect(files).toEqual([{ session_id: 'tms-0123456789abcdef0', packets: 2 }]);
  });
});
