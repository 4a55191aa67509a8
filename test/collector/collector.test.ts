import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pino } from 'pino';
import { describe, expect, it, vi } from 'vitest';
import { Catalog, type CaptureRow } from '../../src/collector/catalog.js';
import { Collector, NEW_SESSION_LINES, type CollectorOptions } from '../../src/collector/collector.js';
import { parseCaptureRelPath } from '../../src/collector/layout.js';
import { DROP } from '../../src/outcomes.js';
import { openDb } from '../../src/store/db.js';
import { silentLogger } from '../../src/util/log.js';
import { expectFrames, expectReadable } from '../helpers/read-back.js';
import { useTmpDir } from '../helpers/tmp.js';

const ip4 = (s: string) => s.split('.').reduce((a, b) => a * 256 + Number(b), 0);

/** An inner Ethernet/IPv4/UDP frame with `payload` bytes of data, and its IPv4 total length right. */
function innerFrame(payload: number, seq = 0): Buffer {
  const f = Buffer.alloc(14 + 20 + 8 + payload);
  f.writeUIntBE(0x020000000002, 0, 6); // dst MAC
  f.writeUIntBE(0x020000000001, 6, 6); // src MAC
  f.writeUInt16BE(0x0800, 12); // IPv4
  f[14] = 0x45; // version 4, IHL 5
  f.writeUInt16BE(20 + 8 + payload, 16); // total length
  f[22] = 64; // TTL
  f[23] = 17; // UDP
  f.writeUInt32BE(ip4('10.0.0.1'), 26);
  f.writeUInt32BE(ip4('10.0.0.2'), 30);
  f.writeUInt16BE(5000, 34);
  f.writeUInt16BE(53, 36);
  f.writeUInt16BE(8 + payload, 38);
  for (let i = 0; i < payload; i++) f[42 + i] = (seq + i) & 0xff;
  return f;
}

/** RFC 7348 section 5: flags 0x08 (I), 24 reserved bits, 24-bit VNI, 8 reserved bits. */
function vxlan(vni: number, inner: Buffer, flags = 0x08): Buffer {
  const h = Buffer.alloc(8);
  h[0] = flags;
  h.writeUIntBE(vni, 4, 3);
  return Buffer.concat([h, inner]);
}

function setup(dir: string, over: Partial<CollectorOptions> = {}) {
  const db = openDb(join(dir, 'mirrorguard.db'));
  const catalog = new Catalog(db);
  let now = 1_800_000_000;
  const collector = new Collector({
    dataDir: dir,
    catalog,
    logger: silentLogger(),
    strictVxlan: false,
    vxlanPort: 4789,
    maxSessions: 16,
    rotateBytes: 300 * 1024,
    rotateSeconds: 60,
    idleCloseSeconds: 30,
    flushIntervalMs: 1000,
    bufferBytes: 262_160,
    queueBytes: 4 * 1024 * 1024,
    nowSec: () => now,
    ...over,
  });
  const rows = async () => {
    await catalog.flush();
    return db.prepare('SELECT * FROM captures ORDER BY id').all() as CaptureRow[];
  };
  return { db, catalog, collector, rows, setNow: (t: number) => (now = t) };
}

describe('collector', () => {
  const tmp = useTmpDir();

  it('writes one file per (source IP, VNI) with the inner frames byte for byte', async () => {
    const dir = tmp.path;
    const { collector, rows, db } = setup(dir);
    const sent = new Map<string, Buffer[]>();
    for (let i = 0; i < 30; i++) {
      const src = i % 3 === 0 ? '172.31.0.238' : '172.31.9.9';
      const vni = i % 2 === 0 ? 5569041 : 42;
      const f = innerFrame(40 + i, i);
      collector.ingest4(vxlan(vni, f), 0, f.length + 8, ip4(src), 1_800_000_000 + i, 123_456_789);
      const k = `${src}|${vni}`;
      sent.set(k, [...(sent.get(k) ?? []), f]);
    }
    await collector.close();
    expect(collector.drops[DROP.OK]).toBe(30);
    const r = (await rows());
    expect(r).toHaveLength(4);
    for (const row of r) {
      expect(row.state).toBe('closed');
      const abs = join(dir, row.path);
      expect(parseCaptureRelPath(row.path)).toMatchObject({ vni: row.vni, sourceIp: row.source_ip });
      const frames = sent.get(`${row.source_ip}|${row.vni}`)!;
      expect(row.packets).toBe(frames.length);
      expectFrames(abs, frames.map((f) => f.toString('hex')));
      const bytes = readFileSync(abs);
      expect(row.bytes).toBe(bytes.length);
      expect(row.sha256).toBe(createHash('sha256').update(bytes).digest('hex'));
      expect(row.first_us).toBeLessThanOrEqual(row.last_us!);
    }
    await rows(); // waits for the catalog queue, observed deltas included
    const observed = db.prepare('SELECT SUM(packets) AS n FROM observed_sessions').get() as { n: number };
    expect(observed.n).toBe(30);
  });

  it('judges a pair the full table refuses, and evicts an idle unauthorized pair (file closed as evicted) for an authorized one', async () => {
    const dir = tmp.path;
    const judged: string[] = [];
    const { collector, rows } = setup(dir, {
      maxSessions: 2,
      onNewPair: (ip, vni) => (judged.push(`${ip}|${vni}`), vni === 42 ? { sessionId: 'tms-1', status: 'authorized' } : { sessionId: null, status: 'unauthorized-vni' }),
    });
    const f = innerFrame(20);
    const t = 1_800_000_000;
    collector.ingest4(vxlan(1, f), 0, 8 + f.length, ip4('10.0.0.1'), t, 0);
    collector.ingest4(vxlan(2, f), 0, 8 + f.length, ip4('10.0.0.2'), t, 0);
    // Full, both active: an unauthorized newcomer is judged (once) and refused.
    for (let i = 0; i < 3; i++) collector.ingest4(vxlan(3, f), 0, 8 + f.length, ip4('10.0.0.3'), t + 1, 0);
    expect(collector.drops[DROP.SESSION_LIMIT]).toBe(3);
    expect(collector.sessions.counters['session.judged_untracked']).toBe(1);
    collector.ingest4(vxlan(2, f), 0, 8 + f.length, ip4('10.0.0.2'), t + 9, 0); // 10.0.0.2 stays active
    // The authorized pair arrives: 10.0.0.1 (idle since t) goes, 10.0.0.2 stays.
    collector.ingest4(vxlan(42, f), 0, 8 + f.length, ip4('10.0.0.42'), t + 10, 0);
    expect(collector.sessions.get4(ip4('10.0.0.42'), 42)).toMatchObject({ status: 'authorized', sessionId: 'tms-1' });
    expect(collector.sessions.get4(ip4('10.0.0.1'), 1)).toBeUndefined();
    expect(judged).toEqual(['10.0.0.1|1', '10.0.0.2|2', '10.0.0.3|3', '10.0.0.42|42']); // each once
    await collector.close();
    const byPair = Object.fromEntries((await rows()).map((r) => [`${r.source_ip}|${r.vni}`, r]));
    expect(byPair['10.0.0.1|1']).toMatchObject({ close_reason: 'evicted', packets: 1 });
    expect(byPair['10.0.0.42|42']).toMatchObject({ session_id: 'tms-1', packets: 1 });
    expect(byPair['10.0.0.3|3']).toBeUndefined();
  });

  it('decodes at a non-zero offset and drops malformed VXLAN by reason without writing', async () => {
    const dir = tmp.path;
    const { collector, rows } = setup(dir);
    const f = innerFrame(20);
    const pkt = Buffer.concat([Buffer.alloc(7, 0xee), vxlan(7, f), Buffer.alloc(5, 0xee)]);
    collector.ingest4(pkt, 7, 7 + 8 + f.length, ip4('10.1.1.1'), 1_800_000_000, 0);
    collector.ingest4(vxlan(7, f, 0x00), 0, 8 + f.length, ip4('10.1.1.1'), 1_800_000_000, 0); // no I flag
    collector.ingest4(Buffer.from([0x08, 0, 0]), 0, 3, ip4('10.1.1.1'), 1_800_000_000, 0); // too short
    collector.ingest4(vxlan(7, Buffer.alloc(10)), 0, 18, ip4('10.1.1.1'), 1_800_000_000, 0); // inner < Ethernet
    collector.ingestAddress(vxlan(7, f), 0, 8 + f.length, 'not-an-ip', 1_800_000_000, 0);
    await collector.close();
    const c = collector.counters();
    expect(c).toMatchObject({
      written: 1,
      'decode.vxlan.no_i_flag': 1,
      'decode.vxlan.too_short': 1,
      'decode.inner.too_short': 1,
      'decode.outer.not_ip': 1,
    });
    expect((await rows())).toHaveLength(1);
    expectFrames(join(dir, (await rows())[0]!.path), [f.toString('hex')]);
  });

  it('treats a dual-stack ::ffff: source and an IPv4 source as the same session; IPv6 sources get their own', async () => {
    const dir = tmp.path;
    const { collector, rows } = setup(dir);
    const f = innerFrame(10);
    const p = vxlan(9, f);
    collector.ingestAddress(p, 0, p.length, '172.31.0.238', 1_800_000_000, 0);
    collector.ingestAddress(p, 0, p.length, '::ffff:172.31.0.238', 1_800_000_001, 0);
    collector.ingestAddress(p, 0, p.length, '2001:db8::1', 1_800_000_002, 0);
    collector.ingestAddress(p, 0, p.length, '2001:0db8:0::1', 1_800_000_003, 0);
    await collector.close();
    expect((await rows()).map((r) => [r.source_ip, r.packets])).toEqual([
      ['172.31.0.238', 2],
      ['2001:db8::1', 2],
    ]);
    expect((await rows())[1]!.path).toMatch(/^pcap\/\d{4}-\d\d-\d\d\/\d\d\/vni-9_2001_db8__1_\d{8}T/);
  });

  it('rotates by size and by age, and every file parses', async () => {
    const dir = tmp.path;
    const { collector, rows } = setup(dir, { rotateBytes: 300 * 1024, rotateSeconds: 60 });
    const f = innerFrame(4000);
    const p = vxlan(1, f);
    // 200 records of 4058 bytes: about 790 KiB, so at least 2 size rotations within the first minute.
    for (let i = 0; i < 200; i++) collector.ingest4(p, 0, p.length, ip4('10.0.0.9'), 1_800_000_000 + Math.floor(i / 10), i);
    // Then one packet two minutes later: an age rotation.
    collector.ingest4(p, 0, p.length, ip4('10.0.0.9'), 1_800_000_200, 0);
    await collector.close();
    const r = (await rows());
    expect(r.length).toBeGreaterThanOrEqual(4);
    expect(r.reduce((a, b) => a + b.packets, 0)).toBe(201);
    for (const row of r) {
      expect(row.bytes).toBeLessThanOrEqual(300 * 1024);
      expectReadable(join(dir, row.path), row.packets);
    }
    expect(r.map((x) => x.close_reason)).toContain('size');
    expect(r.map((x) => x.close_reason)).toContain('age');
  });

  it('closes idle files and keeps the catalog live for the open file', async () => {
    const dir = tmp.path;
    const { collector, rows, setNow } = setup(dir, { idleCloseSeconds: 30 });
    const p = vxlan(3, innerFrame(64));
    collector.ingest4(p, 0, p.length, ip4('10.0.0.3'), 1_800_000_000, 0);
    collector.ingest4(p, 0, p.length, ip4('10.0.0.3'), 1_800_000_000, 1);
    collector.tick(); // flush: the open row gets its packets and flushed size
    await collector.drain();
    collector.tick();
    expect((await rows())[0]).toMatchObject({ state: 'open', packets: 2, bytes: 24 + 2 * (16 + 106) });
    setNow(1_800_000_100);
    collector.tick();
    await collector.close();
    expect((await rows())[0]).toMatchObject({ state: 'closed', close_reason: 'idle', packets: 2 });
    expect(collector.sessions.size).toBe(0);
  });

  it('bounds the session table and counts what it had to drop', async () => {
    const dir = tmp.path;
    const { collector } = setup(dir, { maxSessions: 2 });
    const p = vxlan(1, innerFrame(10));
    for (let i = 1; i <= 4; i++) collector.ingest4(p, 0, p.length, ip4(`10.0.0.${i}`), 1_800_000_000, 0);
    await collector.close();
    expect(collector.counters()).toMatchObject({ written: 2, 'session.table_full': 2 });
  });

  it('asks the detector once per new pair and records its session ID', async () => {
    const dir = tmp.path;
    const calls: string[] = [];
    const { collector, rows } = setup(dir, {
      onNewPair: (ip, vni) => {
        calls.push(`${ip}|${vni}`);
        return vni === 5569041 ? { sessionId: 'tms-0123456789abcdef0', status: 'authorized' } : { sessionId: null, status: 'unauthorized-vni' };
      },
    });
    const a = vxlan(5569041, innerFrame(10));
    const b = vxlan(77, innerFrame(10));
    for (let i = 0; i < 5; i++) {
      collector.ingest4(a, 0, a.length, ip4('172.31.0.238'), 1_800_000_000, i);
      collector.ingest4(b, 0, b.length, ip4('172.31.0.238'), 1_800_000_000, i);
    }
    await collector.close();
    expect(calls).toEqual(['172.31.0.238|5569041', '172.31.0.238|77']);
    expect((await rows()).map((r) => r.session_id)).toEqual(['tms-0123456789abcdef0', null]);
  });

  it('keeps a frame with reserved VXLAN bits by default and drops it in strict mode', async () => {
    const dir = tmp.path;
    const f = innerFrame(10);
    const p = vxlan(11, f, 0xff);
    const lax = setup(join(dir));
    lax.collector.ingest4(p, 0, p.length, ip4('10.0.0.1'), 1_800_000_000, 0);
    await lax.collector.close();
    expect(lax.collector.counters()).toMatchObject({ written: 1, 'weird.vxlan.reserved_bits': 1 });
    const strict = setup(join(dir), { strictVxlan: true });
    strict.collector.ingest4(p, 0, p.length, ip4('10.0.0.1'), 1_800_000_000, 0);
    await strict.collector.close();
    expect(strict.collector.counters()).toMatchObject({ written: 0, 'decode.vxlan.reserved_bits': 1 });
  });

  it('logs new pairs one by one up to NEW_SESSION_LINES a minute, then one line a minute with how many more came', async () => {
    const lines: { msg: string; vni?: number; notLogged?: number }[] = [];
    const logger = pino({ level: 'info' }, { write: (l: string) => void lines.push(JSON.parse(l)) });
    vi.useFakeTimers({ toFake: ['Date'], now: 1_800_000_000_000 });
    try {
      const { collector } = setup(tmp.path, { logger, maxSessions: 1024 });
      const f = innerFrame(20);
      const n = NEW_SESSION_LINES + 50;
      // One source per pair: the per-source admission budget is not what this is about.
      for (let v = 1; v <= n; v++) collector.ingest4(vxlan(v, f), 0, f.length + 8, ip4('10.0.0.1') + v, 1_800_000_000, 0);
      const seen = () => lines.filter((l) => l.msg === 'new mirror session seen');
      expect(seen().map((l) => l.vni)).toEqual(Array.from({ length: NEW_SESSION_LINES }, (_, i) => i + 1));
      vi.setSystemTime(1_800_000_061_000);
      collector.ingest4(vxlan(n + 1, f), 0, f.length + 8, ip4('10.0.0.1') + n + 1, 1_800_000_061, 0);
      expect(lines.find((l) => l.msg.startsWith('more new mirror sessions seen'))).toMatchObject({ notLogged: 50 });
      expect(seen().at(-1)!.vni).toBe(n + 1);
      expect(collector.sessions.size).toBe(n + 1);
      await collector.close();
    } finally {
      vi.useRealTimers();
    }
  });
});

