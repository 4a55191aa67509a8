/**
 * `--source pcap:lo`: the same pipeline fed by libpcap (the optional `cap` package). Skipped, with the
 * reason, when `cap` did not build or we may not capture (needs root or CAP_NET_RAW); CI runs as root
 * with libpcap-dev installed, so there it runs.
 */
import Database from 'better-sqlite3';
import { createRequire } from 'node:module';
import { createSocket } from 'node:dgram';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { tsharkFrameHex } from '../helpers/oracles.js';
import { runCli, sendVxlan, startServe } from '../helpers/serve.js';
import { useTmpDir } from '../helpers/tmp.js';

function capUsable(): string | null {
  try {
    createRequire(import.meta.url)('cap');
  } catch (e) {
    return `cap not built: ${(e as Error).message.split('\n')[0]}`;
  }
  if (process.getuid?.() !== 0) return 'not root: libpcap needs CAP_NET_RAW';
  return null;
}

async function freeUdpPort(): Promise<number> {
  const s = createSocket('udp4');
  await new Promise<void>((r) => s.bind(0, '127.0.0.1', () => r()));
  const p = s.address().port;
  await new Promise<void>((r) => s.close(() => r()));
  return p;
}

const skip = capUsable();

describe.skipIf(skip !== null)(`libpcap source${skip ? ` (skipped: ${skip})` : ''}`, () => {
  const tmp = useTmpDir('mg-pcap-');

  it('captures VXLAN on lo through libpcap and writes the same per-session files', async () => {
    const dir = tmp.path;
    const port = await freeUdpPort();
    const srv = await startServe(['--source', 'pcap:lo', '--vxlan-port', String(port), '--data-dir', dir, '--api', 'off']);
    await new Promise((r) => setTimeout(r, 300)); // libpcap is armed once 'receiving VXLAN' is logged; give the kernel a moment
    const sent = sendVxlan(port, [
      { src: '172.31.0.238', vni: 5569041, inner: "Ether()/IP(dst='10.0.0.2')/TCP(dport=22)/Raw(b'q'*50)", count: 4 },
      { src: '172.31.0.239', vni: 9, inner: "Ether()/Dot1Q(vlan=3)/IPv6()/UDP()" },
    ]);
    await srv.waitForLog((l) => l.msg === 'new mirror session seen' && l.vni === 9);
    expect(await srv.stop()).toBe(0);
    const db = new Database(join(dir, 'mirrorguard.db'), { readonly: true });
    const rows = db.prepare('SELECT path, vni, source_ip, packets FROM captures ORDER BY vni DESC').all() as { path: string; vni: number; source_ip: string; packets: number }[];
    db.close();
    expect(rows.map((r) => [r.vni, r.source_ip, r.packets])).toEqual([
      [5569041, '172.31.0.238', 4],
      [9, '172.31.0.239', 1],
    ]);
    expect(tsharkFrameHex(join(dir, rows[0]!.path))).toEqual(sent.slice(0, 4));
    expect(tsharkFrameHex(join(dir, rows[1]!.path))).toEqual(sent.slice(4));
  });

  it('says what is wrong when the interface does not exist', () => {
    const r = runCli(['serve', '--source', 'pcap:no-such-if0', '--data-dir', tmp.path, '--api', 'off']);
    expect(r.status).toBe(69);
    expect(r.stderr).toMatch(/MG_ERR_INGEST_LIBPCAP_UNAVAILABLE.*no-such-if0/);
  });
});
