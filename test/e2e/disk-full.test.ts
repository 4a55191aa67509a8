/**
 * Disk full under `serve`: the data directory on a tiny tmpfs. Capture keeps running, what could not be
 * written is counted (pcap.write.enospc), every file still parses, and writing resumes by itself when
 * space returns. Needs to mount a tmpfs (root; CI runs as root): declared as the `tmpfs` need.
 */
import Database from 'better-sqlite3';
import { spawnSync } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, expect, it } from 'vitest';
import { checkIfHave, describeNeeds } from '../helpers/needs.js';
import { tsharkFields, tsharkReadsCleanly } from '../helpers/oracles.js';
import { ether, ipv4, raw, udp } from '../helpers/packets.js';
import { readBack } from '../helpers/read-back.js';
import { sendVxlan } from '../helpers/send-vxlan.js';
import { startServe } from '../helpers/serve.js';
import { makeTmpDir } from '../helpers/tmp.js';

describeNeeds(['tmpfs'], 'serve on a full disk', () => {
  let mnt: { dir: string; remove: () => void };
  beforeEach(() => {
    mnt = makeTmpDir('mg-full-');
    expect(spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=1500k', 'tmpfs', mnt.dir]).status).toBe(0);
  });
  afterEach(() => {
    spawnSync('umount', ['-l', mnt.dir]);
    mnt.remove();
  });

  it('keeps running, counts what it could not write, keeps files readable, and resumes when space returns', async () => {
    const filler = join(mnt.dir, 'filler');
    writeFileSync(filler, Buffer.alloc(900 * 1024));
    const data = join(mnt.dir, 'data');
    mkdirSync(data);
    const srv = await startServe(['--data-dir', data, '--api', 'off', '--flush-interval-ms', '100', '--receiver', 'dgram']);
    // ~1.5 MB of frames into ~0.5 MB of free space.
    await sendVxlan(srv.udpPort, [{ src: '127.31.0.238', vni: 1, inner: ether({}, ipv4({}, udp({ sport: 40000, dport: 40001 }, raw('x', 1000)))), count: 1500 }]);
    await srv.waitForLog((l) => l.msg === 'PCAP write failed; capture continues and retries on the next flush');
    expect(srv.proc.exitCode).toBeNull();

    rmSync(filler); // space returns
    await new Promise((r) => setTimeout(r, 300));
    await sendVxlan(srv.udpPort, [{ src: '127.31.0.238', vni: 1, inner: ether({}, ipv4({}, udp({ sport: 40000, dport: 40001 }, raw('y', 1000)))), count: 100 }]);
    await new Promise((r) => setTimeout(r, 800));
    expect(await srv.stop()).toBe(0);

    const counters = srv.logs.find((l) => l.msg === 'stopped; final counters')!.counters as Record<string, number>;
    expect(counters['pcap.write.enospc']).toBeGreaterThan(0);
    expect(counters.written! + counters['pcap.write.enospc']! + (counters['pcap.write.queue_full'] ?? 0)).toBe(1600);
    // Logged at a limited rate, not once per lost frame.
    expect(srv.logs.filter((l) => l.msg.startsWith('PCAP write failed')).length).toBeLessThan(10);

    const db = new Database(join(data, 'mirrorguard.db'), { readonly: true });
    const rows = db.prepare('SELECT path, packets FROM captures').all() as { path: string; packets: number }[];
    db.close();
    expect(rows.length).toBeGreaterThan(0);
    let onDisk = 0;
    for (const r of rows) {
      const file = join(data, r.path);
      const own = readBack(file);
      expect({ truncated: own.truncated, packets: own.frames.length }).toEqual({ truncated: false, packets: r.packets });
      checkIfHave('tshark', () => expect(tsharkReadsCleanly(file)).toMatchObject({ ok: true, packets: r.packets }));
      onDisk += r.packets;
    }
    expect(onDisk).toBe(counters.written);
    // The last frames on disk are from after the space came back.
    const last = rows[rows.length - 1]!;
    // The UDP payload starts after Ethernet (14), IPv4 (20) and UDP (8) headers: byte 42, hex digit 84.
    expect(readBack(join(data, last.path)).frames.at(-1)!.slice(84, 88)).toBe('7979');
    checkIfHave('tshark', () => expect(tsharkFields(join(data, last.path), ['data.data']).map(([d]) => d!.slice(0, 4)).at(-1)).toBe('7979'));
  });
});
