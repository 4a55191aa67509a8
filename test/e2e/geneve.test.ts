/**
 * Issue 14 end to end: the same mirror traffic reaches `mirrorguard serve` straight over VXLAN (the mirror
 * source sends to UDP 4789) and through a Gateway Load Balancer (GENEVE to `--geneve`, with AWS's
 * options); and, captured on the wire, through `decap`. Every path must give the same per-session files
 * (byte-equal frames, read back by tshark) and the same findings; the GWLB path adds the endpoint id to
 * the catalog and can raise unexpected-gwlb-endpoint. Nothing is ever sent back to the GWLB.
 *
 * Packets are built in TypeScript and sent with node:dgram from loopback sources (test/helpers/udp-source.ts).
 */
import Database from 'better-sqlite3';
import { spawn } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { cat, hex } from '../decode/bytes.js';
import { INNER_TCP4_PADDED, INNER_TCP6, INNER_UDP4, vxlan } from '../decode/frames.js';
import { awsOptions, ENDPOINT_ID_TEXT, ATTACHMENT_ID_TEXT, geneve, ipv4Udp } from '../decode/geneve-frames.js';
import { describeNeeds, itNeeds } from '../helpers/needs.js';
import { tsharkFields, tsharkFrameHex, tsharkReadsCleanly } from '../helpers/oracles.js';
import { runCli, startServe, type ServeHandle } from '../helpers/serve.js';
import { useTmpDir } from '../helpers/tmp.js';
import { udpSource, type UdpSource } from '../helpers/udp-source.js';
import { buildPcap } from '../pcap/pcap-helpers.js';

const SRC_A = '127.0.0.11'; // a mirror source ENI
const SRC_B = '127.0.0.12';
const GWLB = '127.0.0.99'; // the Gateway Load Balancer's address, never a session
const OTHER_ENDPOINT = 'vpce-0ffffffffffffffff';

/** (source, VNI, mirrored frame), in sending order. */
const TRAFFIC: [string, number, Buffer][] = [
  [SRC_A, 5569041, INNER_UDP4],
  [SRC_A, 5569041, INNER_TCP4_PADDED],
  [SRC_A, 5569041, INNER_TCP6],
  [SRC_B, 42, INNER_UDP4],
  [SRC_B, 42, INNER_TCP6],
  [SRC_A, 777, INNER_TCP4_PADDED], // no session authorizes VNI 777
];

const MANIFEST = [
  'version: 1',
  'sessions:',
  '  - id: tms-0aaaaaaaaaaaaaaa1',
  '    vni: 5569041',
  `    sourceIps: [${SRC_A}]`,
  `    gwlbEndpointId: ${ENDPOINT_ID_TEXT}`, // the endpoint the GWLB path uses: no finding
  '  - id: tms-0aaaaaaaaaaaaaaa2',
  '    vni: 42',
  `    sourceIps: [${SRC_B}]`,
  `    gwlbEndpointId: ${OTHER_ENDPOINT}`, // another endpoint: a finding on the GWLB path only
  '',
].join('\n');

/** What a GWLB sends to its target for one mirrored packet: GENEVE / IPv4 (mirror source) / UDP 4789 / VXLAN. */
function gwlbPacket(src: string, vni: number, frame: Buffer): Buffer {
  return geneve(ipv4Udp(src, '127.0.0.1', 65408, 4789, vxlan(vni, frame)), { options: awsOptions() });
}

interface Outcome {
  /** `source|VNI` -> frames (hex) in the session's files. */
  files: Record<string, string[]>;
  /** `kind source|VNI` of the findings raised. */
  findings: string[];
  gwlb: Record<string, string | null>;
}

function outcome(dataDir: string): Outcome {
  const db = new Database(join(dataDir, 'mirrorguard.db'), { readonly: true });
  try {
    const files: Record<string, string[]> = {};
    const gwlb: Record<string, string | null> = {};
    for (const r of db.prepare('SELECT * FROM captures ORDER BY id').all() as { path: string; source_ip: string; vni: number; gwlb_endpoint_id: string | null; gwlb_attachment_id: string | null }[]) {
      const file = join(dataDir, r.path);
      expect(tsharkReadsCleanly(file).ok).toBe(true);
      const key = `${r.source_ip}|${r.vni}`;
      (files[key] ??= []).push(...tsharkFrameHex(file));
      gwlb[key] = r.gwlb_endpoint_id === null ? null : `${r.gwlb_endpoint_id}/${r.gwlb_attachment_id}`;
    }
    const findings = (db.prepare('SELECT kind, source_ip, vni FROM findings').all() as { kind: string; source_ip: string; vni: number }[]).map((f) => `${f.kind} ${f.source_ip}|${f.vni}`).sort();
    return { files, findings, gwlb };
  } finally {
    db.close();
  }
}

const EXPECTED_FILES: Record<string, string[]> = {};
for (const [src, vni, frame] of TRAFFIC) (EXPECTED_FILES[`${src}|${vni}`] ??= []).push(frame.toString('hex'));

/** A UDP port nothing is bound to right now (the capture ring needs --geneve with a fixed port). */
async function freeUdpPort(): Promise<number> {
  const s = createSocket('udp4');
  await new Promise<void>((r) => s.bind(0, '127.0.0.1', () => r()));
  const { port } = s.address();
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

async function stopCleanly(srv: ServeHandle, lastVni: number): Promise<Record<string, number>> {
  await srv.waitForLog((l) => l.msg === 'new mirror session seen' && l.vni === lastVni);
  await new Promise((r) => setTimeout(r, 300)); // the last datagrams of the burst
  expect(await srv.stop('SIGTERM')).toBe(0);
  return srv.logs.find((l) => l.msg === 'stopped; final counters')!.counters as Record<string, number>;
}

describeNeeds(['tshark'], 'GENEVE from a Gateway Load Balancer, end to end', () => {
  const tmp = useTmpDir('mg-geneve-');

  /** The reference: the same traffic straight over VXLAN, one datagram per mirrored packet from its source. */
  async function overVxlan(dir: string): Promise<Outcome> {
    const manifest = join(dir, 'manifest.yaml');
    writeFileSync(manifest, MANIFEST);
    const srv = await startServe(['--data-dir', join(dir, 'vxlan'), '--api', 'off', '--flush-interval-ms', '200', '--manifest', manifest, '--receiver', 'dgram']);
    const sources: Record<string, UdpSource> = { [SRC_A]: await udpSource(SRC_A), [SRC_B]: await udpSource(SRC_B) };
    for (const [src, vni, frame] of TRAFFIC) await sources[src]!.send(srv.udpPort, [vxlan(vni, frame)]);
    const counters = await stopCleanly(srv, 777);
    for (const s of Object.values(sources)) await s.close();
    expect(counters.written).toBe(TRAFFIC.length);
    return outcome(join(dir, 'vxlan'));
  }

  for (const receiver of ['af-packet', 'native', 'dgram'] as const) {
    itNeeds(receiver === 'af-packet' ? ['native', 'root'] : receiver === 'native' ? ['native'] : [], `serve --geneve writes the same files and findings as VXLAN, and sends nothing back (${receiver})`, async () => {
      const dir = tmp.path;
      const reference = await overVxlan(dir);
      expect(reference.files).toEqual(EXPECTED_FILES);
      expect(reference.findings).toEqual([`unauthorized-vni ${SRC_A}|777`]);
      expect(Object.values(reference.gwlb).every((v) => v === null)).toBe(true);

      const manifest = join(dir, 'manifest.yaml');
      const srv = await startServe([
        '--data-dir', join(dir, 'geneve'), '--api', 'off', '--flush-interval-ms', '200', '--manifest', manifest,
        // The capture ring's filter names a fixed GENEVE port; the socket receivers may take any.
        '--receiver', receiver, '--geneve', `127.0.0.1:${receiver === 'af-packet' ? await freeUdpPort() : 0}`,
      ]);
      const rx = await srv.waitForLog((l) => l.msg === 'receiving GENEVE from a Gateway Load Balancer');
      expect(rx.receiver).toBe(receiver);
      const gwlb = await udpSource(GWLB);
      await gwlb.send(rx.port as number, TRAFFIC.map(([src, vni, frame]) => gwlbPacket(src, vni, frame)));
      // Garbage on the GENEVE port is counted by name, never written, never answered.
      await gwlb.send(rx.port as number, [hex('08 00'), geneve(INNER_UDP4.subarray(14), { options: [] }), geneve(ipv4Udp(SRC_A, '127.0.0.1', 1, 4789, vxlan(5, INNER_UDP4)), { options: [{ cls: 0, type: 0x80, data: Buffer.alloc(4) }] })]);
      const counters = await stopCleanly(srv, 777);
      await new Promise((r) => setTimeout(r, 100));
      expect(gwlb.received).toEqual([]); // a GWLB appliance returns packets; a collector of mirrored copies must not
      await gwlb.close();

      expect(counters).toMatchObject({ written: TRAFFIC.length, 'decode.geneve.too_short': 1, 'decode.geneve.not_mirror': 1, 'decode.geneve.critical_option': 1 });
      const through = outcome(join(dir, 'geneve'));
      expect(through.files).toEqual(reference.files);
      // The same findings, plus the one the manifest's gwlbEndpointId asks for.
      expect(through.findings).toEqual([...reference.findings, `unexpected-gwlb-endpoint ${SRC_B}|42`].sort());
      for (const key of Object.keys(EXPECTED_FILES)) expect(through.gwlb[key]).toBe(`${ENDPOINT_ID_TEXT}/${ATTACHMENT_ID_TEXT}`);
      // The GWLB's own address is no session.
      expect(Object.keys(through.files).some((k) => k.startsWith(GWLB))).toBe(false);
    });
  }

  it('decap of a capture of the GWLB traffic (UDP 6081) gives the same files and findings', async () => {
    const dir = tmp.path;
    const reference = await overVxlan(dir);
    // What tcpdump on the collector sees: Ethernet / IPv4 GWLB -> target / UDP 6081 / GENEVE ...
    const eth = hex('02 00 00 00 00 0b 02 00 00 00 00 0a 08 00');
    const capture = join(dir, 'gwlb.pcap');
    writeFileSync(
      capture,
      buildPcap(TRAFFIC.map(([src, vni, frame], i) => ({ tsSec: 1_800_000_000 + i, tsNsec: 0, data: cat(eth, ipv4Udp('10.0.9.9', '10.0.1.5', 40000 + i, 6081, gwlbPacket(src, vni, frame))) }))),
    );
    const r = runCli(['decap', capture, '--out', join(dir, 'decap'), '--json', '--manifest', join(dir, 'manifest.yaml')]);
    expect(r.status, r.stderr).toBe(1); // it raised findings (the unauthorized VNI), as decap's exit status says
    const res = JSON.parse(r.stdout) as { counters: Record<string, number>; sessions: { gwlbEndpointId: string | null }[] };
    expect(res.counters.written).toBe(TRAFFIC.length);
    expect(res.sessions.every((s) => s.gwlbEndpointId === ENDPOINT_ID_TEXT)).toBe(true);
    const through = outcome(join(dir, 'decap'));
    expect(through.files).toEqual(reference.files);
    expect(through.findings).toEqual([...reference.findings, `unexpected-gwlb-endpoint ${SRC_B}|42`].sort());
  });
});

describeNeeds(['tshark'], 'GENEVE through the API and the health check', () => {
  const tmp = useTmpDir('mg-geneve-api-');

  itNeeds(['tcpdump', 'root'], '/healthz checks the GENEVE socket; /v1/sessions and /v1/captures name the GWLB endpoint; tcpdump sees nothing leave the GENEVE port', async () => {
    const dir = tmp.path;
    const srv = await startServe(['--data-dir', dir, '--api', '127.0.0.1:0', '--flush-interval-ms', '100', '--receiver', 'dgram', '--geneve', '127.0.0.1:0']);
    const port = (await srv.waitForLog((l) => l.msg === 'receiving GENEVE from a Gateway Load Balancer')).port as number;
    const base = `http://127.0.0.1:${srv.apiPort}`;
    // What a GWLB target group's HTTPS/HTTP health check gets: no token, 200, the GENEVE socket among the checks.
    const health = await fetch(`${base}/healthz`);
    expect(health.status).toBe(200);
    expect(await health.json()).toEqual({ status: 'ok', checks: { catalog: true, receiver: true, geneve: true }, store: 'ok' });

    // Everything to and from the GENEVE port, on any interface of this host: what comes in proves the
    // capture works; nothing may go out.
    const pcap = join(dir, 'geneve-port.pcap');
    const dump = spawn('tcpdump', ['-i', 'any', '--immediate-mode', '-U', '-n', '-w', pcap, `udp and port ${port}`], { stdio: ['ignore', 'ignore', 'pipe'] });
    await new Promise<void>((resolve, reject) => {
      let err = '';
      dump.stderr!.on('data', (d: Buffer) => ((err += d.toString()), /listening on/.test(err) && resolve()));
      dump.on('exit', (code) => reject(new Error(`tcpdump exited ${code}: ${err}`)));
    });
    await new Promise((r) => setTimeout(r, 500)); // "listening" comes a moment before the first packet is seen
    const gwlb = await udpSource(GWLB);
    await gwlb.send(port, TRAFFIC.map(([src, vni, frame]) => gwlbPacket(src, vni, frame)));
    await srv.waitForLog((l) => l.msg === 'new mirror session seen' && l.vni === 777);

    const token = readFileSync(join(dir, 'api-admin.token'), 'utf8').trim();
    const get = async (path: string) => (await fetch(`${base}${path}`, { headers: { authorization: `Bearer ${token}` } })).json() as Promise<{ items: Record<string, unknown>[] }>;
    await new Promise((r) => setTimeout(r, 400)); // one flush interval and a catalog sync
    const sessions = (await get('/v1/sessions')).items;
    expect(sessions.map((r) => `${r.sourceIp}|${r.vni} ${r.gwlbEndpointId} ${r.gwlbAttachmentId}`).sort()).toEqual(
      Object.keys(EXPECTED_FILES).map((k) => `${k} ${ENDPOINT_ID_TEXT} ${ATTACHMENT_ID_TEXT}`).sort(),
    );
    const captures = (await get('/v1/captures')).items;
    expect(captures.length).toBe(Object.keys(EXPECTED_FILES).length);
    for (const c of captures) expect(c).toMatchObject({ gwlbEndpointId: ENDPOINT_ID_TEXT, gwlbAttachmentId: ATTACHMENT_ID_TEXT });

    expect(await srv.stop('SIGTERM')).toBe(0);
    await new Promise((r) => setTimeout(r, 200));
    dump.kill('SIGINT');
    await new Promise((r) => dump.once('exit', r));
    expect(gwlb.received).toEqual([]);
    await gwlb.close();
    expect(tsharkReadsCleanly(pcap).ok).toBe(true);
    const seen = tsharkFields(pcap, ['udp.srcport', 'udp.dstport']);
    expect(seen.filter(([, d]) => Number(d) === port).length).toBeGreaterThan(0); // the capture saw the GWLB's packets
    expect(seen.filter(([sp]) => Number(sp) === port)).toEqual([]);
  });
});

describeNeeds(['native'], 'serve --geneve with --workers', () => {
  const tmp = useTmpDir('mg-geneve-workers-');

  it('feeds GENEVE to the main thread collector (worker 0) and reports its counters with the workers\'', async () => {
    const dir = tmp.path;
    const srv = await startServe(['--data-dir', dir, '--api', 'off', '--flush-interval-ms', '100', '--workers', '2', '--geneve', '127.0.0.1:0']);
    const port = (await srv.waitForLog((l) => l.msg === 'receiving GENEVE from a Gateway Load Balancer')).port as number;
    const gwlb = await udpSource(GWLB);
    await gwlb.send(port, TRAFFIC.map(([src, vni, frame]) => gwlbPacket(src, vni, frame)));
    await srv.waitForLog((l) => l.msg === 'new mirror session seen' && l.vni === 777);
    await new Promise((r) => setTimeout(r, 300));
    await gwlb.close();
    expect(await srv.stop('SIGTERM')).toBe(0);
    const final = srv.logs.find((l) => l.msg === 'workers stopped; final counters')!;
    expect((final.counters as Record<string, number>).written).toBe(TRAFFIC.length);
    const db = new Database(join(dir, 'mirrorguard.db'), { readonly: true });
    const rows = db.prepare('SELECT DISTINCT worker FROM captures').all();
    db.close();
    expect(rows).toEqual([{ worker: 0 }]);
  });
});

describe('serve --geneve configuration', () => {
  it('refuses a GENEVE port equal to the VXLAN port', () => {
    const r = runCli(['decap', '/nonexistent.pcap', '--out', '/tmp/x', '--geneve-port', '4789']);
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(/--geneve-port: must differ from vxlanPort/);
  });
});
