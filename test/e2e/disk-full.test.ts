/**
 * Disk full under `serve`: the data directory on a tiny tmpfs. Capture keeps running, what could not be
 * written is counted (pcap.write.enospc), every file still parses, and writing resumes by itself when
 * space returns. Needs root to mount a tmpfs (CI runs as root); skipped with the reason otherwise.
 */
import Database from 'better-sqlite3';
import { spawnSync } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { tsharkFields, tsharkReadsCleanly } from '../helpers/oracles.js';
import { sendVxlan, startServe } from '../helpers/serve.js';
import { makeTmpDir } from '../helpers/tmp.js';

function canMount(): string | null {
  if (process.getuid?.() !== 0) return 'not root';
  const probe = makeTmpDir('mg-mount-probe-');
  const r = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=64k', 'tmpfs', probe.dir]);
  if (r.status !== 0) {
    probe.remove();
    return `cannot mount a tmpfs: ${String(r.stderr).trim()}`;
  }
  spawnSync('umount', [probe.dir]);
  probe.remove();
  return null;
}

const skip = canMount();

describe.skipIf(skip !== null)(`serve on a full disk${skip ? ` (skipped: ${skip})` : ''}`, () => {
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
    sendVxlan(srv.udpPort, [{ src: '172.31.0.238', vni: 1, inner: "Ether()/IP()/UDP(sport=40000,dport=40001)/Raw(b'x'*1000)", count: 1500 }]);
    await srv.waitForLog((l) => l.msg === 'PCAP write failed; capture continues and retries on the next flush');
    expect(srv.proc.exitCode).toBeNull();

    rmSync(filler); // space returns
    await new Promise((r) => setTimeout(r, 300));
    sendVxlan(srv.udpPort, [{ src: '172.31.0.238', vni: 1, inner: "Ether()/IP()/UDP(sport=40000,dport=40001)/Raw(b'y'*1000)", count: 100 }]);
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
      expect(tsharkReadsCleanly(file)).toMatchObject({ ok: true, packets: r.packets });
      onDisk += r.packets;
    }
    expect(onDisk).toBe(counters.written);
    // The last frames on disk are from after the space came back.
    const last = rows[rows.length - 1]!;
    const payloads = tsharkFields(join(data, last.path), ['data.data']).map(([d]) => d!.slice(0, 4));
    expect(payloads.at(-1)).toBe('7979');
  });
});
