/**
 * The two receivers are interchangeable: the same VXLAN traffic through the native receiver and through
 * node:dgram, each into its own Collector, gives the same PCAP files, frame for frame (bytes, captured
 * and original lengths), apart from the timestamps (kernel receive time vs. the time JavaScript saw it).
 * Our reader digests every frame, and tshark too where installed. Needs the addon (the `native` need).
 */
import { createHash } from 'node:crypto';
import { readdirSync } from 'node:fs';
import { join, sep } from 'node:path';
import { expect, it } from 'vitest';
import { Catalog } from '../../src/collector/catalog.js';
import { Collector } from '../../src/collector/collector.js';
import { CATALOG_FILE, parseCaptureRelPath } from '../../src/collector/layout.js';
import { startNativeReceiver } from '../../src/ingest/native.js';
import { nativeWriterParts } from '../../src/ingest/native-addon.js';
import { SessionWriters } from '../../src/collector/session-writer.js';
import { startUdpReceiver, type BoundReceiver } from '../../src/ingest/udp.js';
import { openDb, type Db } from '../../src/store/db.js';
import { silentLogger } from '../../src/util/log.js';
import { checkIfHave, describeNeeds } from '../helpers/needs.js';
import { tsharkFrameDigests } from '../helpers/oracles.js';
import { dnsQuery, ether, icmp, icmp6Echo, ipv4, ipv6, raw, tcp, udp } from '../helpers/packets.js';
import { readBack } from '../helpers/read-back.js';
import { sendVxlan, type VxlanSpec } from '../helpers/send-vxlan.js';
import { tmpDir } from '../helpers/tmp.js';
import { collectorTestSettings } from '../helpers/collector.js';

const MiB = 1024 * 1024;
const logger = silentLogger();

/**
 * `native`: the session writers as serve composes them for the native receiver (src/app.ts): the addon's
 * per-batch planned copy (src/pcap/copy.ts), its batched writes and opens, and write buffers cut from the
 * pool's region (src/pcap/region.ts), addressed through the region's one registration.
 */
function collectorIn(dir: string, native = false): { c: Collector; db: Db } {
  const db = openDb(join(dir, CATALOG_FILE));
  const catalog = new Catalog(db);
  const settings = collectorTestSettings(dir);
  const writers = native ? new SessionWriters({ ...settings, catalog, logger, ...nativeWriterParts() }) : undefined;
  const c = new Collector({ ...settings, catalog, logger, writers });
  return { c, db };
}

/** PCAP files grouped by session (`vni-N_SOURCE`, from each path, src/collector/layout.ts), each group's frames in file order. */
function framesBySession(dir: string): Map<string, { md5: string[]; lens: string[] }> {
  const out = new Map<string, { md5: string[]; lens: string[] }>();
  const files = readdirSync(dir, { recursive: true, encoding: 'utf8' })
    .filter((f) => f.endsWith('.pcap'))
    .sort();
  for (const f of files) {
    const id = parseCaptureRelPath(f.split(sep).join('/'))!;
    const key = `vni-${id.vni}_${id.sourceIp}`;
    const g = out.get(key) ?? { md5: [], lens: [] };
    const own = readBack(join(dir, f));
    g.md5.push(...own.frames.map((h) => createHash('md5').update(Buffer.from(h, 'hex')).digest('hex')));
    g.lens.push(...own.lens);
    checkIfHave('tshark', () => {
      // tshark's digest and lengths of the same frames, as the independent reader.
      const theirs = tsharkFrameDigests(join(dir, f));
      expect(theirs.map((d) => d.md5)).toEqual(g.md5.slice(-theirs.length));
      expect(theirs.map((d) => `${d.capLen}/${d.len}`)).toEqual(own.lens);
    });
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

describeNeeds(['native'], 'native and dgram receivers', () => {
  it('write the same PCAP frames for the same traffic', async () => {
    const dirA = tmpDir();
    const dirB = tmpDir();
    const a = collectorIn(dirA, true);
    const b = collectorIn(dirB);
    let ra: BoundReceiver | null = null;
    let rb: BoundReceiver | null = null;
    try {
      ra = await startNativeReceiver(a.c, { host: '127.0.0.1', port: 0, recvBufferBytes: 4 * MiB, logger });
      rb = await startUdpReceiver(b.c, { host: '127.0.0.1', port: 0, recvBufferBytes: 4 * MiB, logger });
      const spec: VxlanSpec[] = [
        { src: '127.31.0.238', vni: 5569041, inner: ether({}, ipv4({ src: '10.0.0.1', dst: '10.0.0.2' }, tcp({ sport: 1234, dport: 443, flags: 'S' }))), count: 3 },
        { src: '127.31.0.238', vni: 42, inner: ether({ vlans: [100] }, ipv4({}, udp({ dport: 53 }, dnsQuery('example.com')))) },
        { src: '127.20.30.40', vni: 5569041, inner: ether({}, ipv6({ src: '2001:db8::1', dst: '2001:db8::2' }, icmp6Echo())), count: 2 },
        // Cut by the mirror session's PacketLength: original length from the inner IP header.
        { src: '127.20.30.40', vni: 7, inner: ether({}, ipv4({}, udp({}, raw('x', 400)))), truncate: 100 },
        // Reserved bits set: permissive mode keeps it (a weird, not a drop).
        { src: '127.168.1.9', vni: 9, vxlan: Buffer.from('0c00000000000900', 'hex'), inner: ether({}, ipv4({}, icmp())) },
        // Dropped by both: no I flag, and too short for an inner frame.
        { src: '127.168.1.9', vni: 9, flags: 0, inner: ether({}, ipv4()) },
        { src: '127.168.1.9', vni: 9, inner: Buffer.from('0200', 'hex') },
        // Frames past the word-copy size, all different, from two sessions in turn: copied once per batch
        // (planned), across buffers that fill and go to the disk in the middle of a batch (4 KiB at first).
        ...Array.from({ length: 40 }, (_, i): VxlanSpec => ({
          src: i % 2 === 0 ? '127.31.0.238' : '127.20.30.40',
          vni: 5569041,
          inner: ether({}, ipv4({ src: '10.0.0.1', dst: '10.0.0.2' }, udp({ sport: 1000 + i, dport: 9 }, raw(String.fromCharCode(97 + (i % 26)), 129 + i * 37)))),
          count: 5,
        })),
      ];
      const n = spec.reduce((x, p) => x + (p.count ?? 1), 0);
      await sendVxlan(ra.address.port, spec);
      await sendVxlan(rb.address.port, spec);
      // `written` counts records on disk: hand the buffers over while waiting.
      await waitFor(() => (a.c.flushAll(), b.c.flushAll(), total(a.c) === n && total(b.c) === n), 'both collectors to take every datagram');
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
    expect(fa.get('vni-7_127.20.30.40')!.lens).toEqual(['100/442']);
  });
});
