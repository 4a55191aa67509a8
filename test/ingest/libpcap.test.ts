/**
 * `--source pcap:lo`: the same pipeline fed by libpcap (the optional `cap` package). Needs `libpcap`
 * (test/helpers/needs.ts): `cap` built and root (CAP_NET_RAW); CI runs as root with libpcap-dev installed.
 */
import Database from 'better-sqlite3';
import { createSocket } from 'node:dgram';
import { join } from 'node:path';
import { expect, it } from 'vitest';
import { checkIfHave, describeNeeds } from '../helpers/needs.js';
import { tsharkFrameHex } from '../helpers/oracles.js';
import { ether, ipv4, ipv6, raw, tcp, udp } from '../helpers/packets.js';
import { readBack } from '../helpers/read-back.js';
import { sendVxlan } from '../helpers/send-vxlan.js';
import { runCli, startServe } from '../helpers/serve.js';
import { useTmpDir } from '../helpers/tmp.js';

async function freeUdpPort(): Promise<number> {
  const s = createSocket('udp4');
  await new Promise<void>((r) => s.bind(0, '127.0.0.1', () => r()));
  const p = s.address().port;
  await new Promise<void>((r) => s.close(() => r()));
  return p;
}

describeNeeds(['libpcap'], 'libpcap source', () => {
  const tmp = useTmpDir('mg-pcap-');

  it('captures VXLAN on lo through libpcap and writes the same per-session files', async () => {
    const dir = tmp.path;
    const port = await freeUdpPort();
    const srv = await startServe(['--source', 'pcap:lo', '--vxlan-port', String(port), '--data-dir', dir, '--api', 'off']);
    await new Promise((r) => setTimeout(r, 300)); // libpcap is armed once 'receiving VXLAN' is logged; give the kernel a moment
    const sent = await sendVxlan(port, [
      { src: '127.31.0.238', vni: 5569041, inner: ether({}, ipv4({ dst: '10.0.0.2' }, tcp({ dport: 22 }, raw('q', 50)))), count: 4 },
      { src: '127.31.0.239', vni: 9, inner: ether({ vlans: [3] }, ipv6({}, udp())) },
    ]);
    await srv.waitForLog((l) => l.msg === 'new mirror session seen' && l.vni === 9);
    expect(await srv.stop()).toBe(0);
    const db = new Database(join(dir, 'mirrorguard.db'), { readonly: true });
    const rows = db.prepare('SELECT path, vni, source_ip, packets FROM captures ORDER BY vni DESC').all() as { path: string; vni: number; source_ip: string; packets: number }[];
    db.close();
    expect(rows.map((r) => [r.vni, r.source_ip, r.packets])).toEqual([
      [5569041, '127.31.0.238', 4],
      [9, '127.31.0.239', 1],
    ]);
    expect(readBack(join(dir, rows[0]!.path)).frames).toEqual(sent.slice(0, 4));
    expect(readBack(join(dir, rows[1]!.path)).frames).toEqual(sent.slice(4));
    checkIfHave('tshark', () => {
      expect(tsharkFrameHex(join(dir, rows[0]!.path))).toEqual(sent.slice(0, 4));
      expect(tsharkFrameHex(join(dir, rows[1]!.path))).toEqual(sent.slice(4));
    });
  });

  it('says what is wrong when the interface does not exist', () => {
    const r = runCli(['serve', '--source', 'pcap:no-such-if0', '--data-dir', tmp.path, '--api', 'off']);
    expect(r.status).toBe(69);
    expect(r.stderr).toMatch(/MG_ERR_INGEST_LIBPCAP_UNAVAILABLE.*no-such-if0/);
  });
});
