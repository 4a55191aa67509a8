/**
 * The two receivers are interchangeable: the same VXLAN traffic through the native receiver and through
 * node:dgram, each into its own Collector, gives the same PCAP files, frame for frame (bytes, captured
 * and original lengths), apart from the timestamps (kernel receive time vs. the time JavaScript saw it).
 * tshark reads the files and digests every frame. Skipped when the addon is not built.
 */
import { readdirSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';
import { Catalog } from '../../src/collector/catalog.js';
import { Collector } from '../../src/collector/collector.js';
import { CATALOG_FILE } from '../../src/collector/layout.js';
import { nativeAvailable, startNativeReceiver } from '../../src/ingest/native.js';
import { startUdpReceiver, type BoundReceiver } from '../../src/ingest/udp.js';
import { openDb, type Db } from '../../src/store/db.js';
import { silentLogger } from '../../src/util/log.js';
import { tsharkFrameDigests } from '../helpers/oracles.js';
import { sendVxlan, type PacketSpec } from '../helpers/serve.js';
import { tmpDir } from '../helpers/tmp.js';
import { collectorTestSettings } from '../helpers/collector.js';

const MiB = 1024 * 1024;
const logger = silentLogger();
const avail = nativeAvailable();
const suite = avail.ok ? describe : describe.skip;

function collectorIn(dir: string): { c: Collector; db: Db } {
  const db = openDb(join(dir, CATALOG_FILE));
  const c = new Collector({ ...collectorTestSettings(dir), catalog: new Catalog(db), logger });
  return { c, db };
}

/** PCAP files grouped by session folder (pcap/vni-N/SOURCE), each group's frames in file order. */
function framesBySession(dir: string): Map<string, { md5: string[]; lens: string[] }> {
  const out = new Map<string, { md5: string[]; lens: string[] }>();
  const files = readdirSync(dir, { recursive: true, encoding: 'utf8' })
    .filter((f) => f.endsWith('.pcap'))
    .sort();
  for (const f of files) {
    const key = relative(dir, dirname(dirname(join(dir, f))));
    const g = out.get(key) ?? { md5: [], lens: [] };
    for (const d of tsharkFrameDigests(join(dir, f))) {
      g.md5.push(d.md5);
      g.lens.push(`${d.capLen}/${d.len}`);
    }
    out.set(key, g);
  }
  return out;
}

async function waitFor(pred: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!pred()) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

const total = (c: Collector) => c.drops.reduce((a, b) => a + b, 0);

suite(`native and dgram receivers${avail.ok ? '' : ` (skipped: ${avail.reason})`}`, () => {
  it('write the same PCAP frames for the same traffic', async () => {
    const dirA = tmpDir();
    const dirB = tmpDir();
    const a = collectorIn(dirA);
    const b = collectorIn(dirB);
    let ra: BoundReceiver | null = null;
    let rb: BoundReceiver | null = null;
    try {
      ra = await startNativeReceiver(a.c, { host: '127.0.0.1', port: 0, recvBufferBytes: 4 * MiB, logger });
      rb = await startUdpReceiver(b.c, { host: '127.0.0.1', port: 0, recvBufferBytes: 4 * MiB, logger });
      const spec: PacketSpec[] = [
        { src: '172.31.0.238', vni: 5569041, inner: 'Ether()/IP(src="10.0.0.1",dst="10.0.0.2")/TCP(sport=1234,dport=443,flags="S")', count: 3 },
        { src: '172.31.0.238', vni: 42, inner: 'Ether()/Dot1Q(vlan=100)/IP()/UDP(dport=53)/DNS(qd=DNSQR(qname="example.com"))' },
        { src: '10.20.30.40', vni: 5569041, inner: 'Ether()/IPv6(src="2001:db8::1",dst="2001:db8::2")/ICMPv6EchoRequest()', count: 2 },
        // Cut by the mirror session's PacketLength: original length from the inner IP header.
        { src: '10.20.30.40', vni: 7, inner: 'Ether()/IP()/UDP()/Raw(b"x"*400)', truncate: 100 },
        // Reserved bits set: permissive mode keeps it (a weird, not a drop).
        { src: '192.168.1.9', vni: 9, vxlanHex: '0c00000000000900', inner: 'Ether()/IP()/ICMP()' },
        // Dropped by both: no I flag, and too short for an inner frame.
        { src: '192.168.1.9', vni: 9, flags: 0, inner: 'Ether()/IP()' },
        { src: '192.168.1.9', vni: 9, innerHex: '0200' },
      ];
      const n = spec.reduce((x, p) => x + (p.count ?? 1), 0);
      sendVxlan(ra.address.port, spec);
      sendVxlan(rb.address.port, spec);
      await waitFor(() => total(a.c) === n && total(b.c) === n, 'both collectors to take every datagram');
      expect(Array.from(a.c.drops)).toEqual(Array.from(b.c.drops));
      expect(Array.from(a.c.weird)).toEqual(Array.from(b.c.weird));
    } finally {
      await ra?.close();
      await rb?.close();
      await a.c.close();
      await b.c.close();
      a.db.close();
      b.db.close();
    }
    const fa = framesBySession(dirA);
    const fb = framesBySession(dirB);
    expect([...fa.keys()].sort()).toEqual([...fb.keys()].sort());
    expect(fa.size).toBe(5);
    for (const [k, g] of fa) {
      expect(g.md5, k).toEqual(fb.get(k)!.md5);
      expect(g.lens, k).toEqual(fb.get(k)!.lens);
    }
    // The truncated frame kept its original length: Ethernet 14 + IPv4 20 + UDP 8 + 400.
    expect(fa.get(join('pcap', 'vni-7', '10.20.30.40'))!.lens).toEqual(['100/442']);
  });
});
