/**
 * The auditor API end to end, the way an auditor meets it: `mirrorguard serve` as a process with
 * `--api 127.0.0.1:0`, mirror traffic over real UDP, and HTTP from outside. PCAP out of the API is read
 * back (by our reader, and by tshark where installed) and compared byte for byte with what was sent.
 * No token is configured, so this also covers the secure default: the generated admin token in <dataDir>/api-admin.token.
 */
import { createHash } from 'node:crypto';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { fixture, HAVE_FIXTURES } from '../helpers/fixtures.js';
import { tsharkFrameHex, tsharkReadsCleanly } from '../helpers/oracles.js';
import { checkIfHave } from '../helpers/needs.js';
import { dnsQuery, ether, ipv4, raw, tcp, udp } from '../helpers/packets.js';
import { readBack } from '../helpers/read-back.js';
import { sendVxlan } from '../helpers/send-vxlan.js';
import { startServe, type ServeHandle } from '../helpers/serve.js';
import { useTmpDir } from '../helpers/tmp.js';

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const VNI = 5569041;
const SRC = '127.31.0.238';

/** An HTTP client for the API of a running serve. */
function client(srv: ServeHandle, token: string) {
  expect(srv.apiPort, 'serve did not log "api listening": the API is not wired into serve').not.toBeNull();
  const base = `http://127.0.0.1:${srv.apiPort}`;
  return async (path: string, init: RequestInit = {}) => {
    const res = await fetch(`${base}${path}`, { ...init, headers: { authorization: `Bearer ${token}`, ...(init.headers as Record<string, string>) } });
    return { res, body: Buffer.from(await res.arrayBuffer()) };
  };
}

async function until<T>(what: string, fn: () => Promise<T | undefined>, ms = 15_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

interface Capture {
  id: number;
  state: string;
  packets: number;
  bytes: number;
  sha256: string | null;
}

describe('auditor API end to end', () => {
  const tmp = useTmpDir('mg-e2e-api-');

  it('traffic in, PCAP out: a session window across a rotation boundary, a Range download, the audit trail', async () => {
    const dir = tmp.path;
    const started = Date.now();
    const srv = await startServe(['--data-dir', dir, '--api', '127.0.0.1:0', '--flush-interval-ms', '100', '--rotate-seconds', '1', '--idle-close-seconds', '60']);
    const tokenFile = join(dir, 'api-admin.token');
    expect(statSync(tokenFile).mode & 0o777).toBe(0o600);
    expect(srv.logs.some((l) => typeof l.msg === 'string' && l.msg.includes(tokenFile))).toBe(true);
    const api = client(srv, readFileSync(tokenFile, 'utf8').trim());

    // Unauthenticated: only the health check answers.
    expect((await fetch(`http://127.0.0.1:${srv.apiPort}/healthz`)).status).toBe(200);
    expect((await fetch(`http://127.0.0.1:${srv.apiPort}/v1/captures`)).status).toBe(401);

    const flow = (i: number) => ether({}, ipv4({ src: '10.0.0.1', dst: '10.0.0.2' }, tcp({ sport: 40000 + i, dport: 443, flags: 'PA' }, Buffer.concat([raw('a', 10), raw(i, 100 + i)]))));
    const dns = ether({}, ipv4({ src: '10.0.0.3', dst: '8.8.8.8' }, udp({ sport: 5353, dport: 53 }, dnsQuery('example.com'))));
    const first = await sendVxlan(srv.udpPort, [0, 1, 2].map((i) => ({ src: SRC, vni: VNI, inner: flow(i) })).concat([{ src: SRC, vni: VNI, inner: dns }]));
    // rotateSeconds 1: the first file closes on its own; the next packets open a second one.
    const closed = await until('the first file to rotate', async () => {
      const { body } = await api(`/v1/captures?vni=${VNI}&sourceIp=${SRC}&state=closed`);
      return (JSON.parse(body.toString()) as { items: Capture[] }).items[0];
    });
    expect(closed).toMatchObject({ packets: 4 });
    const second = await sendVxlan(srv.udpPort, [3, 4, 5].map((i) => ({ src: SRC, vni: VNI, inner: flow(i) })));
    const sent = [...first, ...second];

    // One merged PCAP over both files, the second possibly still being written.
    const from = new Date(started - 60_000).toISOString();
    const to = new Date(Date.now() + 60_000).toISOString();
    const x = await until('all packets in the extraction', async () => {
      const r = await api(`/v1/pcap?vni=${VNI}&sourceIp=${SRC}&from=${from}&to=${to}`);
      expect(r.res.status).toBe(200);
      const out = join(dir, 'extract.pcap');
      writeFileSync(out, r.body);
      return readBack(out).frames.length === sent.length ? { ...r, out } : undefined;
    });
    expect(readBack(x.out)).toMatchObject({ truncated: false, frames: sent });
    checkIfHave('tshark', () => {
      expect(tsharkReadsCleanly(x.out)).toEqual({ ok: true, packets: sent.length, stderr: '' });
      expect(tsharkFrameHex(x.out)).toEqual(sent);
    });
    expect(Number(x.res.headers.get('x-capture-files'))).toBeGreaterThanOrEqual(2);

    // A filter over the inner packets.
    const filtered = await api(`/v1/pcap?vni=${VNI}&from=${from}&to=${to}&filter=${encodeURIComponent('udp port 53')}`);
    writeFileSync(join(dir, 'dns.pcap'), filtered.body);
    expect(readBack(join(dir, 'dns.pcap')).frames).toEqual([first[3]]);

    // The closed file: its SHA-256 in the listing, the header and the bytes agree; a Range is a slice of it.
    const whole = await api(`/v1/captures/${closed.id}/pcap`);
    expect(whole.res.status).toBe(200);
    expect(sha256(whole.body)).toBe(closed.sha256);
    expect(whole.res.headers.get('x-content-sha256')).toBe(closed.sha256);
    const part = await api(`/v1/captures/${closed.id}/pcap`, { headers: { range: 'bytes=24-119' } });
    expect(part.res.status).toBe(206);
    expect(part.res.headers.get('content-range')).toBe(`bytes 24-119/${whole.body.length}`);
    expect(part.body.equals(whole.body.subarray(24, 120))).toBe(true);
    writeFileSync(join(dir, 'whole.pcap'), whole.body);
    expect(readBack(join(dir, 'whole.pcap')).frames).toEqual(first);
    checkIfHave('tshark', () => expect(tsharkFrameHex(join(dir, 'whole.pcap'))).toEqual(first));

    // The chain of custody: the extraction's row holds the SHA-256 of exactly what was sent.
    const audit = JSON.parse((await api('/v1/audit')).body.toString()) as { items: { id: number; action: string; actor: string; bytes: number; sha256: string; detail: { complete: boolean } }[] };
    const extraction = audit.items.find((a) => a.id === Number(x.res.headers.get('x-audit-id')))!;
    expect(extraction).toMatchObject({ action: 'pcap.extract', actor: 'admin', bytes: x.body.length, sha256: sha256(x.body), detail: { complete: true } });
    expect(audit.items.filter((a) => a.action === 'capture.download').length).toBe(2);

    // Metrics see the traffic.
    const metrics = (await api('/metrics')).body.toString();
    expect(metrics).toMatch(new RegExp(`^mirrorguard_frames_written_total ${sent.length}$`, 'm'));

    expect(await srv.stop('SIGTERM')).toBe(0);
  }, 90_000);

  it.skipIf(!HAVE_FIXTURES)('a CloudTrail POST raises a finding the API then serves', async () => {
    const dir = tmp.path;
    const srv = await startServe(['--data-dir', dir, '--api', '127.0.0.1:0']);
    const api = client(srv, readFileSync(join(dir, 'api-admin.token'), 'utf8').trim());
    const record = readFileSync(fixture('cloudtrail', 'panther-aws_ec2_traffic_mirroring-CreateTrafficMirrorTarget.json'));
    const event = `{"detail-type":"AWS API Call via CloudTrail","source":"aws.ec2","detail":${record.toString()}}`;
    const r = await api('/v1/cloudtrail', { method: 'POST', body: event, headers: { 'content-type': 'application/json' } });
    expect(r.res.status).toBe(200);
    const out = JSON.parse(r.body.toString()) as { events: number; findings: { id: string; kind: string }[] };
    expect(out.events).toBe(1);
    expect(out.findings.map((f) => f.kind)).toEqual(['mirror-target-created']);
    const f = await api(`/v1/findings/${out.findings[0]!.id}`);
    expect(f.res.status).toBe(200);
    expect(JSON.parse(f.body.toString())).toMatchObject({ id: out.findings[0]!.id, kind: 'mirror-target-created', status: 'open' });
    const listed = JSON.parse((await api('/v1/findings?kind=mirror-target-created')).body.toString()) as { items: { id: string }[] };
    expect(listed.items.map((i) => i.id)).toEqual([out.findings[0]!.id]);
    expect(await srv.stop('SIGTERM')).toBe(0);
  }, 60_000);
});
