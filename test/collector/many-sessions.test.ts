/**
 * Ten thousand sessions active within one flush interval (issue 16 point 1): every session's first
 * write buffer is small, so a default-sized pool holds them all and nothing is dropped; a few busy
 * sessions in the same interval grow their buffers. Every packet is read back by session and sequence.
 */
import { readdirSync } from 'node:fs';
import { join, relative } from 'node:path';
import { expect, it } from 'vitest';
import { Catalog } from '../../src/collector/catalog.js';
import { Collector } from '../../src/collector/collector.js';
import { parseCaptureRelPath } from '../../src/collector/layout.js';
import { DROP } from '../../src/outcomes.js';
import { openCapture } from '../../src/pcap/reader.js';
import { openDb } from '../../src/store/db.js';
import { silentLogger } from '../../src/util/log.js';
import { collectorTestSettings } from '../helpers/collector.js';
import { useTmpDir } from '../helpers/tmp.js';

const MiB = 1024 * 1024;
const SESSIONS = 10_000;
const ROUNDS = 3;
const HEAVY = 4;
const HEAVY_PACKETS = 2_000;

/** VXLAN (RFC 7348 section 5: I flag, VNI) around an Ethernet/IPv4/UDP frame whose payload starts with (session, seq). */
function packet(vni: number, session: number, seq: number, payload: number): Buffer {
  const b = Buffer.alloc(8 + 14 + 20 + 8 + payload);
  b[0] = 0x08;
  b.writeUIntBE(vni, 4, 3);
  const f = 8;
  b.writeUInt16BE(0x0800, f + 12);
  b[f + 14] = 0x45;
  b.writeUInt16BE(20 + 8 + payload, f + 16);
  b[f + 22] = 64;
  b[f + 23] = 17;
  b.writeUInt16BE(8 + payload, f + 38);
  b.writeUInt32BE(session, f + 42);
  b.writeUInt32BE(seq, f + 46);
  return b;
}

function pcapFiles(dir: string): string[] {
  return readdirSync(dir, { recursive: true, encoding: 'utf8' })
    .filter((p) => p.endsWith('.pcap'))
    .map((p) => join(dir, p));
}

const tmp = useTmpDir();

it(`keeps every packet of ${SESSIONS} sessions active in one flush interval, with default pool bounds and small memory`, async () => {
  const db = openDb(join(tmp.path, 'mirrorguard.db'));
  // The defaults of the pool (src/config/schema.ts): 512 KiB largest buffer, 64 MiB for all of them.
  const c = new Collector({
    ...collectorTestSettings(tmp.path, { maxSessions: SESSIONS + HEAVY, bufferBytes: 512 * 1024, queueBytes: 64 * MiB }),
    catalog: new Catalog(db),
    logger: silentLogger(),
    admission: { admitPerSource: 0, admitIntervalSeconds: 10 },
  });
  const base = 0x0a640000; // 10.100.0.0: a source per session, VNI = session number
  const pkts = Array.from({ length: SESSIONS }, (_, i) => packet(i + 1, i + 1, 0, 64));
  const ts = 1_800_000_000;
  // All within one flush interval: no tick until the end.
  for (let r = 0; r < ROUNDS; r++) {
    for (let i = 0; i < SESSIONS; i++) {
      const p = pkts[i]!;
      p.writeUInt32BE(r, 8 + 46);
      c.ingest4(p, 0, p.length, base + i, ts, r * 1000 + i);
    }
  }
  // A few busy sessions in the same interval: their buffers grow from the smallest to bufferBytes.
  const heavy = Array.from({ length: HEAVY }, (_, h) => packet(20_000 + h, 20_000 + h, 0, 1000));
  for (let s = 0; s < HEAVY_PACKETS; s++) {
    for (let h = 0; h < HEAVY; h++) {
      const p = heavy[h]!;
      p.writeUInt32BE(s, 8 + 46);
      c.ingest4(p, 0, p.length, 0x0a650000 + h, ts, s);
    }
  }
  // 10,000 quiet sessions hold one 4 KiB buffer each; 10,000 x 512 KiB would be 5 GiB.
  const poolBytes = c.writers.poolBytes;
  expect(poolBytes).toBeLessThan(64 * MiB);
  expect(c.drops[DROP.WRITE_QUEUE_FULL]).toBe(0);
  c.tick();
  await c.drain();
  await c.close();
  db.close();

  const total = SESSIONS * ROUNDS + HEAVY * HEAVY_PACKETS;
  expect(c.drops[DROP.OK]).toBe(total);
  // Read back: every (session, seq) once, in order within a session.
  const seen = new Map<number, number[]>();
  for (const path of pcapFiles(tmp.path)) {
    const id = parseCaptureRelPath(relative(tmp.path, path));
    expect(id).not.toBeNull();
    const r = openCapture(path);
    while (r.next()) {
      const { buf, off } = r.record;
      const session = buf.readUInt32BE(off + 42);
      expect(session).toBe(id!.vni);
      let list = seen.get(session);
      if (list === undefined) seen.set(session, (list = []));
      list.push(buf.readUInt32BE(off + 46));
    }
    expect(r.truncated).toBe(false);
    r.close();
  }
  expect(seen.size).toBe(SESSIONS + HEAVY);
  const quiet = Array.from({ length: ROUNDS }, (_, r) => r);
  const busy = Array.from({ length: HEAVY_PACKETS }, (_, s) => s);
  for (const [session, seqs] of seen) expect(seqs).toEqual(session >= 20_000 ? busy : quiet);
}, 120_000);
