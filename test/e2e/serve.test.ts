/**
 * End to end, the way a user runs it: `mirrorguard serve` as a process, packets built in TypeScript and
 * sent over real UDP from the outer source IP a mirror session would have (127.x.y.z on loopback), PCAP
 * files read back by our reader and, where installed, by tshark.
 */
import Database from 'better-sqlite3';
import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkIfHave, describeNeeds, itNeeds } from '../helpers/needs.js';
import { tsharkFields, tsharkFrameHex, tsharkReadsCleanly } from '../helpers/oracles.js';
import { dnsQuery, ether, icmp, ipv4, ipv6, raw, tcp, udp } from '../helpers/packets.js';
import { readBack } from '../helpers/read-back.js';
import { sendVxlan } from '../helpers/send-vxlan.js';
import { runCli, startServe, type ServeHandle } from '../helpers/serve.js';
import { makeTmpDir, useTmpDir } from '../helpers/tmp.js';

interface Row {
  path: string;
  vni: number;
  source_ip: string;
  session_id: string | null;
  state: string;
  packets: number;
  bytes: number;
  sha256: string | null;
  node: string;
}

function catalog(dir: string): Row[] {
  const db = new Database(join(dir, 'mirrorguard.db'), { readonly: true });
  try {
    return db.prepare('SELECT * FROM captures ORDER BY id').all() as Row[];
  } finally {
    db.close();
  }
}

describe('serve end to end', () => {
  const tmp = useTmpDir('mg-e2e-');

  // Every receiver, same expectations: the af-packet capture ring, the native recvmmsg addon and the node:dgram fallback.
  for (const receiver of ['af-packet', 'native', 'dgram'] as const) {
    const suite =
      receiver === 'af-packet'
        ? (name: string, body: () => void) => describeNeeds(['native', 'root'], name, body)
        : receiver === 'native'
          ? (name: string, body: () => void) => describeNeeds(['native'], name, body)
          : describe;
    suite(`mirror traffic through serve (${receiver})`, () => {
      const tmpAll = makeTmpDir('mg-e2e-');
      const dir = tmpAll.dir;
      afterAll(() => tmpAll.remove());
      let sent: string[] = [];
      let srv: ServeHandle;
      let byPair = new Map<string, Row>();
      beforeAll(async () => {
        srv = await startServe(['--data-dir', dir, '--api', 'off', '--flush-interval-ms', '200', '--receiver', receiver]);
        sent = await sendVxlan(srv.udpPort, [
          // An AWS-like session: several flows, outer source port from a flow hash.
          { src: '127.31.0.238', vni: 5569041, sport: 65408, inner: ether({}, ipv4({ src: '172.31.0.238', dst: '18.196.145.224' }, tcp({ sport: 40000, dport: 22, flags: 'PA' }, raw('x', 200)))), count: 5 },
          { src: '127.31.0.238', vni: 5569041, sport: 65465, inner: ether({}, ipv4({ src: '172.31.0.238', dst: '172.31.0.2' }, udp({ sport: 5353, dport: 53 }, dnsQuery('example.com')))) },
          // 802.1Q and 802.1ad tags inside.
          { src: '127.31.5.5', vni: 42, inner: ether({ vlans: [100] }, ipv4({ dst: '10.1.1.1' }, icmp())), count: 2 },
          { src: '127.31.5.5', vni: 42, inner: ether({ vlans: [{ vid: 7, tpid: 0x88a8 }, 8] }, ipv4({ dst: '10.1.1.2' }, udp({ dport: 514 }))) },
          // IPv6 inner.
          { src: '127.31.5.5', vni: 13314501, inner: ether({}, ipv6({ src: '2001:db8::1', dst: '2001:db8::2' }, tcp({ dport: 443 }, raw('y', 64)))), count: 3 },
          // Truncated by the session's PacketLength (AWS cuts the mirrored packet; the IP length says more).
          { src: '127.31.7.7', vni: 7159709, inner: ether({}, ipv4({ dst: '10.9.9.9' }, tcp({ dport: 80 }, raw('z', 1000)))), truncate: 100, count: 2 },
          // Garbage that must be counted, not written: no I flag, and a header cut short.
          { src: '127.31.7.7', vni: 7159709, vxlan: Buffer.alloc(8), inner: Buffer.alloc(60) },
          { src: '127.31.7.7', vni: 7159709, vxlan: Buffer.from([0x08, 0]) },
        ]);
        await srv.waitForLog((l) => l.msg === 'new mirror session seen' && l.vni === 7159709);
        byPair = new Map(catalog(dir).map((r) => [`${r.source_ip}|${r.vni}`, r]));
      });

      const expected = () => ({
        '127.31.0.238|5569041': sent.slice(0, 6),
        '127.31.5.5|42': sent.slice(6, 9),
        '127.31.5.5|13314501': sent.slice(9, 12),
        '127.31.7.7|7159709': sent.slice(12, 14),
      });

      it('writes the traffic per session, byte-equal, and stops cleanly on SIGTERM', async () => {
        expect(srv.logs.find((l) => l.msg === 'receiving VXLAN')!.receiver).toBe(receiver);
        expect(await srv.stop('SIGTERM')).toBe(0);
        const stopLog = srv.logs.find((l) => l.msg === 'stopped; final counters')!;
        expect(stopLog.counters).toMatchObject({ written: 14, 'decode.vxlan.no_i_flag': 1, 'decode.vxlan.too_short': 1, 'weird.inner.truncated': 2 });

        byPair = new Map(catalog(dir).map((r) => [`${r.source_ip}|${r.vni}`, r]));
        expect([...byPair.keys()].sort()).toEqual(['127.31.0.238|5569041', '127.31.5.5|13314501', '127.31.5.5|42', '127.31.7.7|7159709']);
        for (const [pair, frames] of Object.entries(expected())) {
          const row = byPair.get(pair)!;
          const file = join(dir, row.path);
          const own = readBack(file);
          expect(own).toMatchObject({ truncated: false, frames });
          const content = readFileSync(file);
          expect(row).toMatchObject({ state: 'closed', packets: frames.length, bytes: content.length });
          expect(row.sha256).toBe(createHash('sha256').update(content).digest('hex'));
        }
        // Truncated frames keep their wire length: Ethernet 14 + IPv4 20 + TCP 20 + 1000.
        expect(readBack(join(dir, byPair.get('127.31.7.7|7159709')!.path)).lens).toEqual(['100/1054', '100/1054']);
      });

      itNeeds(['tshark'], 'writes files tshark reads byte-equal, with the wire length of cut frames and the VLAN tags', () => {
        for (const [pair, frames] of Object.entries(expected())) {
          const file = join(dir, byPair.get(pair)!.path);
          expect(tsharkReadsCleanly(file)).toMatchObject({ ok: true, packets: frames.length });
          expect(tsharkFrameHex(file)).toEqual(frames);
        }
        // Truncated frames keep their wire length, so tshark reports "Packet size limited during capture".
        const trunc = join(dir, byPair.get('127.31.7.7|7159709')!.path);
        expect(tsharkFields(trunc, ['frame.len', 'frame.cap_len'])).toEqual([
          ['1054', '100'],
          ['1054', '100'],
        ]);
        expect(tsharkFields(join(dir, byPair.get('127.31.5.5|42')!.path), ['ieee8021ad.id', 'vlan.id'])).toEqual([
          ['', '100'],
          ['', '100'],
          ['7', '8'],
        ]);
      });
    });
  }

  it('survives kill -9 mid-capture: on restart every file parses and the catalog matches the disk', async () => {
    const dir = tmp.path;
    const srv = await startServe(['--data-dir', dir, '--api', 'off', '--flush-interval-ms', '100', '--rotate-bytes', '300KiB', '--node-id', 'collector-a']);
    // A steady stream on three sessions, big enough to rotate, still going when the process dies.
    const sender = new Promise<void>((resolve) => {
      setImmediate(() => {
        try {
          void sendVxlan(srv.udpPort, [
            { src: '127.31.1.1', vni: 1, inner: ether({}, ipv4({}, tcp({}, raw('a', 1200)))), count: 400 },
            { src: '127.31.1.2', vni: 2, inner: ether({}, ipv4({}, udp({}, raw('b', 700)))), count: 400 },
          ], { interMs: 2 })
            // The collector may be gone mid-send; that is the point.
            .catch(() => undefined)
            .then(() => resolve());
        } catch {
          resolve();
        }
      });
    });
    await srv.waitForLog((l) => l.msg === 'new mirror session seen' && l.vni === 2);
    await new Promise((r) => setTimeout(r, 700));
    srv.proc.kill('SIGKILL');
    await srv.exited;
    await sender;

    const before = catalog(dir);
    expect(before.some((r) => r.state === 'open')).toBe(true);
    // Rows carry the node that wrote them; recovery repairs its own node's files.
    expect(new Set(before.map((r) => r.node))).toEqual(new Set(['collector-a']));

    const again = await startServe(['--data-dir', dir, '--api', 'off', '--node-id', 'collector-a']);
    await again.waitForLog((l) => l.msg === 'recovered the catalog after an unclean stop');
    expect(await again.stop()).toBe(0);

    const rows = catalog(dir);
    expect(rows.length).toBeGreaterThan(0);
    for (const r of rows) {
      const file = join(dir, r.path);
      const own = readBack(file);
      expect({ truncated: own.truncated, packets: own.frames.length }, r.path).toEqual({ truncated: false, packets: r.packets });
      checkIfHave('tshark', () => expect(tsharkReadsCleanly(file), r.path).toMatchObject({ ok: true, packets: r.packets }));
      const content = readFileSync(file);
      expect(r).toMatchObject({ state: 'closed', bytes: content.length });
      expect(r.sha256).toBe(createHash('sha256').update(content).digest('hex'));
    }
  });

  it('refuses bad flags and bad config with clear errors and non-zero exits', () => {
    const dir = tmp.path;
    const help = runCli(['serve', '--help']);
    expect(help.status).toBe(0);
    for (const flag of ['--listen', '--recv-buffer', '--data-dir', '--config', '--manifest', '--api', '--webhook', '--strict-vxlan', '--rotate-bytes', '--rotate-seconds', '--flush-interval-ms', '--retain-bytes', '--retain-hours']) {
      expect(help.stdout).toContain(flag);
    }
    const unknown = runCli(['serve', '--no-such-flag']);
    expect(unknown.status).toBe(64);
    expect(unknown.stderr).toMatch(/MG_ERR_CLI_USAGE.*no-such-flag/);

    const bad = runCli(['serve', '--recv-buffer', 'huge', '--data-dir', dir]);
    expect(bad.status).toBe(78);
    expect(bad.stderr).toMatch(/--recv-buffer: recvBufferBytes must be a byte size/);

    const cfg = join(dir, 'config.yaml');
    writeFileSync(cfg, `dataDir: ${dir}\npcap:\n  rotateBytes: 1GiB\n  rotateEvery: 5\n`);
    const badFile = runCli(['serve', '--config', cfg]);
    expect(badFile.status).toBe(78);
    expect(badFile.stderr).toContain(`${cfg}:4: pcap.rotateEvery: unknown key`);

    const notCmd = runCli(['serv']);
    expect(notCmd.status).toBe(64);
  });
});
