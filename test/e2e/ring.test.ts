/**
 * `serve --receiver af-packet` end to end on loopback (the capture ring, src/ingest/ring.ts): VXLAN from
 * several 127.x sources is written once each, byte-equal (our reader and tshark); lo's outgoing copy of
 * every packet is not taken twice; other ports and addresses are not seen; IPv4 fragments are counted;
 * a tiny ring with the process stopped counts its drops so that written + drops = sent; `receiver: auto`
 * picks and logs; --workers 2 spreads the flows over two rings (PACKET_FANOUT) and writes each packet once.
 * Needs root (CAP_NET_RAW) and the addon.
 */
import { spawn, spawnSync } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { DEFAULTS } from '../../src/config/schema.js';
import { checkIfHave, describeNeeds } from '../helpers/needs.js';
import { PYTHON, tsharkFrameHex, tsharkReadsCleanly } from '../helpers/oracles.js';
import { ether, ipv4, raw, tcp, udp, vxlanHeader } from '../helpers/packets.js';
import { readBack } from '../helpers/read-back.js';
import { sendVxlan, type VxlanSpec } from '../helpers/send-vxlan.js';
import { BIN, startServe, type LogLine } from '../helpers/serve.js';
import { useTmpDir } from '../helpers/tmp.js';

function pcapFiles(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const e of readdirSync(d)) {
      const p = join(d, e);
      if (statSync(p).isDirectory()) walk(p);
      else if (p.endsWith('.pcap')) out.push(p);
    }
  };
  walk(join(dir, 'pcap'));
  return out.sort();
}

const allFrames = (dir: string) => pcapFiles(dir).flatMap((f) => readBack(f).frames);
const sorted = (xs: string[]) => [...xs].sort();

/** Distinct inner frames (a sequence number in the payload), spread over sources and outer source ports. */
function specs(n: number, sources: string[], size = 100): VxlanSpec[] {
  return Array.from({ length: n }, (_, i) => {
    const payload = Buffer.alloc(size, 0x61);
    payload.writeUInt32BE(i, 0);
    return {
      src: sources[i % sources.length]!,
      vni: 100 + (i % sources.length),
      sport: 40000 + (i % 7),
      inner: ether({}, ipv4({ src: '172.31.0.238', dst: '10.0.0.9' }, udp({ sport: 1000 + i, dport: 80 }, payload))),
    };
  });
}

/** Writes whole IPv4 packets (hex) to a raw socket: for fragments, which a UDP socket cannot send as such. */
function sendRawIpv4(packets: Buffer[]): void {
  const script = String.raw`
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
for line in sys.stdin:
    pkt = bytes.fromhex(line.strip())
    s.sendto(pkt, (socket.inet_ntoa(pkt[16:20]), 0))
`;
  const r = spawnSync(PYTHON, ['-c', script], { input: packets.map((p) => p.toString('hex')).join('\n') + '\n', encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`raw send failed: ${r.stderr}`);
}

const ringClosed = (logs: LogLine[]) => logs.find((l) => l.msg === 'capture ring closed')?.counters as Record<string, number>;
const finalCounters = (logs: LogLine[]) => logs.find((l) => l.msg === 'stopped; final counters' || l.msg === 'workers stopped; final counters')?.counters as Record<string, number>;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Starts serve under a wrapper command (setpriv), waits for a log line matching `until` or the exit; returns the log lines and the exit code. */
async function serveUntil(wrap: string[], args: string[], until: (l: LogLine) => boolean, env: NodeJS.ProcessEnv = {}): Promise<{ logs: LogLine[]; code: number | null; stderr: string }> {
  const cmd = [...wrap, process.execPath, BIN, 'serve', '--listen', '127.0.0.1:0', '--api', 'off', '--log-format', 'json', ...args];
  const p = spawn(cmd[0]!, cmd.slice(1), { env: { ...process.env, ...env }, stdio: ['ignore', 'ignore', 'pipe'] });
  const logs: LogLine[] = [];
  let err = '';
  return new Promise((resolve) => {
    const done = (code: number | null) => resolve({ logs, code, stderr: err });
    const t = setTimeout(() => p.kill('SIGKILL'), 20_000);
    p.stderr!.setEncoding('utf8');
    p.stderr!.on('data', (d: string) => {
      err += d;
      for (const line of d.split('\n')) {
        try {
          const l = JSON.parse(line) as LogLine;
          logs.push(l);
          if (until(l)) p.kill('SIGTERM');
        } catch {
          /* partial or not JSON */
        }
      }
    });
    p.on('exit', (code) => {
      clearTimeout(t);
      done(code);
    });
  });
}

describeNeeds(['native', 'root'], 'serve --receiver af-packet', () => {
  const tmp = useTmpDir('mg-ring-');

  it('writes every VXLAN packet once from several sources (lo outgoing copies ignored), and nothing from other ports or addresses; counts fragments', async () => {
    const dir = tmp.path;
    const srv = await startServe(['--data-dir', dir, '--api', 'off', '--flush-interval-ms', '100', '--receiver', 'af-packet']);
    const rx = srv.logs.find((l) => l.msg === 'receiving VXLAN')!;
    expect(rx).toMatchObject({ receiver: 'af-packet', interface: 'lo', ignoreOutgoing: true, ringBytes: DEFAULTS.ring.blockBytes * DEFAULTS.ring.blockCount });
    const sent = await sendVxlan(srv.udpPort, specs(300, ['127.31.0.1', '127.31.0.2', '127.31.0.3', '127.31.0.4']));
    // VXLAN to another port, and to the right port at another address: not ours.
    const other = specs(20, ['127.31.1.1']);
    await sendVxlan(srv.udpPort + 1 === 65536 ? 1 : srv.udpPort + 1, other);
    await sendVxlan(srv.udpPort, other, { dst: '127.0.0.2' });
    // Two IPv4 fragments of a VXLAN datagram to us: the first (More Fragments) and a later one.
    const vx = Buffer.concat([vxlanHeader(77), ether({}, ipv4({}, tcp({}, raw('f', 64))))]);
    const udpSeg = Buffer.concat([Buffer.alloc(8), vx]);
    udpSeg.writeUInt16BE(40000, 0);
    udpSeg.writeUInt16BE(srv.udpPort, 2);
    udpSeg.writeUInt16BE(udpSeg.length + 1000, 4);
    const first = ipv4({ src: '127.31.2.2', dst: '127.0.0.1', proto: 17, id: 9 }, udpSeg).bytes;
    first[6]! |= 0x20;
    const later = ipv4({ src: '127.31.2.2', dst: '127.0.0.1', proto: 17, id: 9, frag: 100 }, raw('g', 64)).bytes;
    sendRawIpv4([Buffer.from(first), Buffer.from(later)]);
    await sleep(300);
    expect(await srv.stop()).toBe(0);

    expect(sorted(allFrames(dir))).toEqual(sorted(sent));
    const ring = ringClosed(srv.logs);
    expect(ring).toMatchObject({ 'ingest.ring.packets': 302, 'ingest.ring.fragments': 2, 'ingest.ring.drops': 0, 'ingest.ring.kernel_packets': 302, 'ingest.ring.malformed': 0 });
    expect(finalCounters(srv.logs)).toMatchObject({ written: 300 });
    // The never-read UDP socket's kernel drops are not reported as losses.
    expect(srv.logs.find((l) => l.msg === 'stopped; final counters')!.kernel).toBeNull();
    checkIfHave('tshark', () => {
      for (const f of pcapFiles(dir)) {
        expect(tsharkReadsCleanly(f).ok).toBe(true);
        expect(tsharkFrameHex(f)).toEqual(readBack(f).frames);
      }
    });
  });

  it('with a tiny ring and the process stopped, counts what did not fit: written + ring drops = sent', async () => {
    const dir = tmp.path;
    const srv = await startServe(['--data-dir', dir, '--api', 'off', '--flush-interval-ms', '100', '--receiver', 'af-packet', '--ring-block-bytes', '64KiB', '--ring-blocks', '2', '--ring-retire-ms', '5']);
    srv.proc.kill('SIGSTOP');
    let sent: string[] = [];
    try {
      sent = await sendVxlan(srv.udpPort, specs(3000, ['127.31.3.1', '127.31.3.2'], 200));
    } finally {
      srv.proc.kill('SIGCONT');
    }
    await sleep(500);
    expect(await srv.stop()).toBe(0);
    const ring = ringClosed(srv.logs);
    const written = finalCounters(srv.logs).written!;
    expect(ring['ingest.ring.drops']).toBeGreaterThan(0);
    expect(ring['ingest.ring.kernel_packets']).toBe(3000);
    expect(ring['ingest.ring.packets']! + ring['ingest.ring.drops']!).toBe(3000);
    expect(written).toBe(ring['ingest.ring.packets']);
    const frames = allFrames(dir);
    expect(frames.length).toBe(written);
    // What was written is a subset of what was sent, each once.
    expect(new Set(frames).size).toBe(frames.length);
    const sentSet = new Set(sent);
    expect(frames.every((f) => sentSet.has(f))).toBe(true);
  });

  it('--workers 2: two rings in one fanout group, every packet written exactly once', async () => {
    const dir = tmp.path;
    const srv = await startServe(['--data-dir', dir, '--api', 'off', '--flush-interval-ms', '100', '--receiver', 'af-packet', '--workers', '2']);
    // startServe returns at the first ring's log line; the second joins the fanout group after it.
    await srv.waitForLog((l) => l.msg === 'receive workers started');
    const sent = await sendVxlan(srv.udpPort, specs(400, ['127.31.4.1', '127.31.4.2', '127.31.4.3', '127.31.4.4', '127.31.4.5']));
    await sleep(300);
    expect(await srv.stop()).toBe(0);
    expect(srv.logs.filter((l) => l.msg === 'receiving VXLAN' && l.receiver === 'af-packet').length).toBe(2);
    expect(srv.logs.filter((l) => l.msg === 'receiving VXLAN').every((l) => typeof l.fanoutGroup === 'number')).toBe(true);
    expect(sorted(allFrames(dir))).toEqual(sorted(sent));
    const counters = finalCounters(srv.logs);
    expect(counters).toMatchObject({ written: 400, 'ingest.ring.packets': 400, 'ingest.ring.drops': 0 });
    // Both rings took a share: 35 flows (5 sources x 7 source ports) hash over the two.
    const workers = new Set(pcapFiles(dir).map((f) => /-w(\d+)-\d+\.pcap$/.exec(f)![1]));
    expect([...workers].sort()).toEqual(['1', '2']);
  });
});

describeNeeds(['native', 'root'], 'receiver auto', () => {
  const tmp = useTmpDir('mg-ring-auto-');
  const chosen = (l: LogLine) => typeof l.msg === 'string' && l.msg.startsWith('receiver auto:');
  const NO_RAW = ['setpriv', '--inh-caps=-net_raw', '--bounding-set=-net_raw', '--'];

  it('picks af-packet with CAP_NET_RAW and the addon, and says why in one line', async () => {
    const r = await serveUntil([], ['--data-dir', tmp.path], (l) => l.msg === 'receiving VXLAN');
    const lines = r.logs.filter(chosen);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ msg: 'receiver auto: af-packet', receiver: 'af-packet' });
    expect(r.logs.find((l) => l.msg === 'receiving VXLAN')).toMatchObject({ receiver: 'af-packet' });
  });

  it('without CAP_NET_RAW falls back to native (recvmmsg) and names the capability', async () => {
    const r = await serveUntil(NO_RAW, ['--data-dir', tmp.path], (l) => l.msg === 'receiving VXLAN');
    const lines = r.logs.filter(chosen);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ msg: 'receiver auto: native (recvmmsg)', receiver: 'native' });
    expect(String(lines[0]!.reason)).toContain('CAP_NET_RAW');
    expect(r.logs.find((l) => l.msg === 'receiving VXLAN')).toMatchObject({ receiver: 'native' });
  });

  it('without the addon falls back to dgram and gives both reasons', async () => {
    const r = await serveUntil([], ['--data-dir', tmp.path], (l) => l.msg === 'receiving VXLAN', { MIRRORGUARD_NATIVE_ADDON: '/nonexistent/mirrorguard_native.node' });
    const lines = r.logs.filter(chosen);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ msg: 'receiver auto: dgram (node:dgram)', receiver: 'dgram' });
    expect(String(lines[0]!.reason)).toMatch(/af-packet unavailable: .*native unavailable: /);
  });

  it('--receiver af-packet without CAP_NET_RAW refuses to start with MG_ERR_INGEST_RING (exit 69)', async () => {
    const r = await serveUntil(NO_RAW, ['--data-dir', tmp.path, '--receiver', 'af-packet'], () => false);
    expect(r.code).toBe(69);
    expect(r.stderr).toContain('MG_ERR_INGEST_RING');
    expect(r.stderr).toContain('CAP_NET_RAW');
  });
});

describe('ring test helpers', () => {
  it('specs() makes distinct frames', () => {
    const s = specs(10, ['127.0.0.1']);
    expect(new Set(s.map((x) => Buffer.from(x.inner!).toString('hex'))).size).toBe(10);
  });
});
