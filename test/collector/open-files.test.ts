/**
 * The open-file limit (issue 16 point 3): a receiver keeps at most `pcap.maxOpenFiles` capture files
 * open; one more closes the files idle longest (reason `fd-pressure`, counted in
 * `pcap.files.closed_early`), and a session whose file was closed starts a new file with its next packet.
 * Every file stays a whole PCAP file, the catalog has a closed row per file with the file's own count, and
 * every packet is in exactly one file, in order. The limit's default comes from RLIMIT_NOFILE.
 */
import Database from 'better-sqlite3';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { Catalog } from '../../src/collector/catalog.js';
import { Collector } from '../../src/collector/collector.js';
import { maxOpenFilesFor, MIN_OPEN_FILES, openFileLimit, RESERVED_FDS } from '../../src/collector/open-files.js';
import { DROP } from '../../src/outcomes.js';
import { openDb } from '../../src/store/db.js';
import { silentLogger } from '../../src/util/log.js';
import { collectorTestSettings } from '../helpers/collector.js';
import { itNeeds } from '../helpers/needs.js';
import { expectReadable, readBack } from '../helpers/read-back.js';
import { useTmpDir } from '../helpers/tmp.js';

/** VXLAN (RFC 7348 section 5: I flag, VNI) around an Ethernet/IPv4/UDP frame whose payload starts with (session, seq). */
function packet(vni: number, seq: number): Buffer {
  const b = Buffer.alloc(8 + 14 + 20 + 8 + 16);
  b[0] = 0x08;
  b.writeUIntBE(vni, 4, 3);
  const f = 8;
  b.writeUInt16BE(0x0800, f + 12);
  b[f + 14] = 0x45;
  b.writeUInt16BE(20 + 8 + 16, f + 16);
  b[f + 22] = 64;
  b[f + 23] = 17;
  b.writeUInt16BE(8 + 16, f + 38);
  b.writeUInt32BE(vni, f + 42);
  b.writeUInt32BE(seq, f + 46);
  return b;
}

const LIMITS = `Limit                     Soft Limit           Hard Limit           Units
Max cpu time              unlimited            unlimited            seconds
Max open files            20000                1048576              files
Max locked memory         8388608              8388608              bytes
`;

describe('the open-file limit', () => {
  it('reads the soft RLIMIT_NOFILE from /proc/self/limits, and derives a share per receiver', () => {
    expect(openFileLimit(LIMITS)).toBe(20_000);
    expect(openFileLimit(LIMITS.replace('20000     ', 'unlimited '))).toBeNull();
    expect(openFileLimit('nothing here')).toBeNull();
    expect(maxOpenFilesFor(0, 1, 20_000)).toBe(20_000 - RESERVED_FDS);
    // --workers 3: three workers and the main thread's GENEVE collector.
    expect(maxOpenFilesFor(0, 4, 65_536)).toBe(Math.floor((65_536 - RESERVED_FDS) / 4));
    expect(maxOpenFilesFor(0, 1, 300)).toBe(MIN_OPEN_FILES);
    expect(maxOpenFilesFor(0, 1, null)).toBe(65_536 - RESERVED_FDS);
    expect(maxOpenFilesFor(5000, 4, 1024)).toBe(5000);
  });

  itNeeds(['procfs'], 'this process has a limit to read', () => {
    expect(openFileLimit()).toBeGreaterThan(0);
  });

  const tmp = useTmpDir('mg-open-files-');

  it('closes the files idle longest at the limit; a resumed session starts a new, complete file', async () => {
    const MAX = 16;
    const SESSIONS = 40;
    const db = openDb(join(tmp.path, 'mirrorguard.db'));
    const c = new Collector({ ...collectorTestSettings(tmp.path), maxOpenFiles: MAX, catalog: new Catalog(db), logger: silentLogger(), admission: { admitPerSource: 0, admitIntervalSeconds: 10 } });
    const ts = 1_800_000_000;
    const sent = new Map<number, number>();
    const send = (vni: number, t: number) => {
      const seq = sent.get(vni) ?? 0;
      const p = packet(vni, seq);
      c.ingest4(p, 0, p.length, 0x0a640000 + vni, ts + t, 0);
      sent.set(vni, seq + 1);
    };
    let most = 0;
    // 40 sessions in turn, one a second, three packets each: at most 16 files may be open.
    for (let s = 1; s <= SESSIONS; s++) {
      for (let k = 0; k < 3; k++) send(s, s);
      most = Math.max(most, c.writers.openFiles);
      if (s % 8 === 0) c.tick();
    }
    // Session 1 (closed long ago for being idle longest) resumes; the newest sessions are still open.
    for (let k = 0; k < 5; k++) send(1, SESSIONS + 1);
    most = Math.max(most, c.writers.openFiles);
    expect(most).toBeLessThanOrEqual(MAX);
    const closedEarly = c.writers.counters['pcap.files.closed_early'];
    expect(closedEarly).toBeGreaterThanOrEqual(SESSIONS + 1 - MAX);
    // The buffer gauges at the last tick: the open sessions' buffers are in use, within what the pool holds.
    c.tick();
    const g = c.writers.counters;
    expect(g['pcap.buffers.in_use_bytes']).toBeGreaterThan(0);
    expect(g['pcap.buffers.pool_bytes']).toBeGreaterThanOrEqual(g['pcap.buffers.in_use_bytes']);
    await c.close();
    db.close();
    expect(c.drops[DROP.OK]).toBe(SESSIONS * 3 + 5);

    // The catalog: one closed row per file, each with its file's packets; session 1 has two files.
    const rows = new Database(join(tmp.path, 'mirrorguard.db'), { readonly: true })
      .prepare(`SELECT path, vni, state, packets, close_reason FROM captures ORDER BY id`)
      .all() as { path: string; vni: number; state: string; packets: number; close_reason: string }[];
    expect(rows.filter((r) => r.close_reason === 'fd-pressure').length).toBe(closedEarly);
    expect(rows.filter((r) => r.vni === 1).map((r) => [r.packets, r.close_reason])).toEqual([
      [3, 'fd-pressure'],
      [5, 'shutdown'],
    ]);
    const files = readdirSync(tmp.path, { recursive: true, encoding: 'utf8' }).filter((p) => p.endsWith('.pcap'));
    expect(files.length).toBe(rows.length);
    // Every packet once, in order within its session, across the session's files (in catalog order).
    const got = new Map<number, number[]>();
    for (const r of rows) {
      expect(r.state).toBe('closed');
      // tshark (where installed) for the resumed session's two files; our reader for all.
      if (r.vni === 1) expectReadable(join(tmp.path, r.path), r.packets);
      const back = readBack(join(tmp.path, r.path));
      expect([r.path, back.truncated, back.frames.length]).toEqual([r.path, false, r.packets]);
      for (const hex of back.frames) {
        const b = Buffer.from(hex, 'hex');
        const list = got.get(b.readUInt32BE(42)) ?? [];
        list.push(b.readUInt32BE(46));
        got.set(b.readUInt32BE(42), list);
      }
    }
    for (const [vni, n] of sent) expect([vni, got.get(vni)]).toEqual([vni, Array.from({ length: n }, (_, i) => i)]);
  });
});
