/**
 * End to end, the way a user runs it: `mirrorguard serve` as a process, packets crafted by scapy and sent
 * over real UDP with the outer source IP a mirror session would have, PCAP files read back by tshark.
 */
import Database from 'better-sqlite3';
import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { nativeAvailable } from '../../src/ingest/native.js';
import { tsharkFields, tsharkFrameHex, tsharkReadsCleanly } from '../helpers/oracles.js';
import { runCli, sendVxlan, startServe } from '../helpers/serve.js';
import { useTmpDir } from '../helpers/tmp.js';

interface Row {
  path: string;
  vni: number;
  source_ip: string;
  session_id: string | null;
  state: string;
  packets: number;
  bytes: number;
  sha256: string | null;
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

  // Both receivers, same expectations: the native recvmmsg addon (when built) and the node:dgram fallback.
  for (const receiver of ['native', 'dgram'] as const) it.skipIf(receiver === 'native' && !nativeAvailable().ok)(`writes scapy-crafted mirror traffic per session, byte-equal, and stops cleanly on SIGTERM (${receiver})`, async () => {
    const dir = tmp.path;
    const srv = await startServe(['--data-dir', dir, '--api', 'off', '--flush-interval-ms', '200', '--receiver', receiver]);
    expect(srv.logs.find((l) => l.msg === 'receiving VXLAN')!.receiver).toBe(receiver);
    const sent = sendVxlan(srv.udpPort, [
      // An AWS-like session: several flows, outer source port from a flow hash.
      { src: '172.31.0.238', vni: 5569041, sport: 65408, inner: "Ether(src='02:00:00:00:00:01',dst='02:00:00:00:00:02')/IP(src='172.31.0.238',dst='18.196.145.224')/TCP(sport=40000,dport=22,flags='PA')/Raw(b'x'*200)", count: 5 },
      { src: '172.31.0.238', vni: 5569041, sport: 65465, inner: "Ether()/IP(src='172.31.0.238',dst='172.31.0.2')/UDP(sport=5353,dport=53)/DNS(qd=DNSQR(qname='example.com'))" },
      // 802.1Q and 802.1ad tags inside.
      { src: '172.31.5.5', vni: 42, inner: "Ether()/Dot1Q(vlan=100)/IP(dst='10.1.1.1')/ICMP()", count: 2 },
      { src: '172.31.5.5', vni: 42, inner: "Ether()/Dot1AD(vlan=7)/Dot1Q(vlan=8)/IP(dst='10.1.1.2')/UDP(dport=514)" },
      // IPv6 inner.
      { src: '172.31.5.5', vni: 13314501, inner: "Ether()/IPv6(src='2001:db8::1',dst='2001:db8::2')/TCP(dport=443)/Raw(b'y'*64)", count: 3 },
      // Truncated by the session's PacketLength (AWS cuts the mirrored packet; the IP length says more).
      { src: '172.31.7.7', vni: 7159709, inner: "Ether()/IP(dst='10.9.9.9')/TCP(dport=80)/Raw(b'z'*1000)", truncate: 100, count: 2 },
      // Garbage that must be counted, not written: no I flag, and a header cut short.
      { src: '172.31.7.7', vni: 7159709, vxlanHex: '0000000000000000', innerHex: '00'.repeat(60) },
      { src: '172.31.7.7', vni: 7159709, vxlanHex: '0800', innerHex: '' },
    ]);
    await srv.waitForLog((l) => l.msg === 'new mirror session seen' && l.vni === 7159709);
    const code = await srv.stop('SIGTERM');
    expect(code).toBe(0);

    const stopLog = srv.logs.find((l) => l.msg === 'stopped; final counters')!;
    expect(stopLog.counters).toMatchObject({ written: 14, 'decode.vxlan.no_i_flag': 1, 'decode.vxlan.too_short': 1, 'weird.inner.truncated': 2 });

    const rows = catalog(dir);
    const byPair = new Map(rows.map((r) => [`${r.source_ip}|${r.vni}`, r]));
    expect([...byPair.keys()].sort()).toEqual(['172.31.0.238|5569041', '172.31.5.5|13314501', '172.31.5.5|42', '172.31.7.7|7159709']);
    const expected: Record<string, string[]> = {
      '172.31.0.238|5569041': sent.slice(0, 6),
      '172.31.5.5|42': sent.slice(6, 9),
      '172.31.5.5|13314501': sent.slice(9, 12),
      '172.31.7.7|7159709': sent.slice(12, 14),
    };
    for (const [pair, frames] of Object.entries(expected)) {
      const row = byPair.get(pair)!;
      const file = join(dir, row.path);
      expect(tsharkReadsCleanly(file)).toMatchObject({ ok: true, packets: frames.length });
      expect(tsharkFrameHex(file)).toEqual(frames);
      const content = readFileSync(file);
      expect(row).toMatchObject({ state: 'closed', packets: frames.length, bytes: content.length });
      expect(row.sha256).toBe(createHash('sha256').update(content).digest('hex'));
    }
    // Truncated frames keep their wire length, so tshark reports "Packet size limited during capture".
    const trunc = join(dir, byPair.get('172.31.7.7|7159709')!.path);
    expect(tsharkFields(trunc, ['frame.len', 'frame.cap_len'])).toEqual([
      ['1054', '100'],
      ['1054', '100'],
    ]);
    expect(tsharkFields(join(dir, byPair.get('172.31.5.5|42')!.path), ['ieee8021ad.id', 'vlan.id'])).toEqual([
      ['', '100'],
      ['', '100'],
      ['7', '8'],
    ]);
  });

  it('survives kill -9 mid-capture: on restart every file parses and the catalog matches the disk', async () => {
    const dir = tmp.path;
    const srv = await startServe(['--data-dir', dir, '--api', 'off', '--flush-interval-ms', '100', '--rotate-bytes', '300KiB']);
    // A steady stream on three sessions, big enough to rotate, still going when the process dies.
    const sender = new Promise<void>((resolve) => {
      setImmediate(() => {
        try {
          sendVxlan(srv.udpPort, [
            { src: '172.31.1.1', vni: 1, inner: "Ether()/IP()/TCP()/Raw(b'a'*1200)", count: 400 },
            { src: '172.31.1.2', vni: 2, inner: "Ether()/IP()/UDP()/Raw(b'b'*700)", count: 400 },
          ], { inter: 0.002 });
        } catch {
          /* the collector may be gone mid-send; that is the point */
        }
        resolve();
      });
    });
    await srv.waitForLog((l) => l.msg === 'new mirror session seen' && l.vni === 2);
    await new Promise((r) => setTimeout(r, 700));
    srv.proc.kill('SIGKILL');
    await srv.exited;
    await sender;

    const before = catalog(dir);
    expect(before.some((r) => r.state === 'open')).toBe(true);

    const again = await startServe(['--data-dir', dir, '--api', 'off']);
    await again.waitForLog((l) => l.msg === 'recovered the catalog after an unclean stop');
    expect(await again.stop()).toBe(0);

    const rows = catalog(dir);
    expect(rows.length).toBeGreaterThan(0);
    for (const r of rows) {
      const file = join(dir, r.path);
      const check = tsharkReadsCleanly(file);
      expect(check, r.path).toMatchObject({ ok: true, packets: r.packets });
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
