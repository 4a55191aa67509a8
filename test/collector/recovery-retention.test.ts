import { createHash } from 'node:crypto';
import { appendFileSync, existsSync, mkdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { Catalog, type CaptureRow } from '../../src/collector/catalog.js';
import { captureRelPath } from '../../src/collector/layout.js';
import { recoverCatalog } from '../../src/collector/recovery.js';
import { runRetention } from '../../src/collector/retention.js';
import { PcapFileWriter } from '../../src/pcap/file-writer.js';
import { openDb } from '../../src/store/db.js';
import { silentLogger } from '../../src/util/log.js';
import { expectReadable } from '../helpers/read-back.js';
import { useTmpDir } from '../helpers/tmp.js';

async function writeCapture(abs: string, packets: number, sec = 1_800_000_000): Promise<void> {
  mkdirSync(dirname(abs), { recursive: true });
  const w = new PcapFileWriter(abs, {});
  const frame = Buffer.alloc(100, 0xab);
  for (let i = 0; i < packets; i++) w.append(frame, 0, frame.length, frame.length, sec + i, 0);
  await w.close();
}

const rowsOf = async (catalog: Catalog) => {
  await catalog.flush();
  return catalog.store.sqlite!.prepare('SELECT * FROM captures ORDER BY id').all() as CaptureRow[];
};

describe('crash recovery', () => {
  const tmp = useTmpDir();

  it('repairs a file left open with a partial record, and the catalog matches the disk', async () => {
    const dir = tmp.path;
    const catalog = new Catalog(openDb(join(dir, 'mirrorguard.db')));
    const rel = captureRelPath(42, '10.0.0.1', 1_800_000_000, 5, 0, 1);
    const abs = join(dir, rel);
    await writeCapture(abs, 7);
    // The process died mid-record: a record header promising 100 bytes, and only 30 of them.
    const hdr = Buffer.alloc(16);
    hdr.writeUInt32LE(1_800_000_010, 0);
    hdr.writeUInt32LE(100, 8);
    hdr.writeUInt32LE(100, 12);
    appendFileSync(abs, Buffer.concat([hdr, Buffer.alloc(30, 1)]));
    catalog.open({ path: rel, vni: 42, sourceIp: '10.0.0.1', sessionId: null, worker: 0, createdUs: 1, firstUs: 1 });
    // A row whose file was never created, and a stray file the catalog lost.
    catalog.open({ path: captureRelPath(42, '10.0.0.1', 1_800_000_100, 0, 0, 2), vni: 42, sourceIp: '10.0.0.1', sessionId: null, worker: 0, createdUs: 1, firstUs: 1 });
    const strayRel = captureRelPath(7, '2001:db8::7', 1_800_000_200, 0, 1, 3);
    await writeCapture(join(dir, strayRel), 3, 1_800_000_200);
    await catalog.flush();

    const report = await recoverCatalog(catalog, dir, silentLogger());
    expect(report).toMatchObject({ repaired: 1, adopted: 1, removedRows: 1, truncatedBytes: 46 });

    const rows = await rowsOf(catalog);
    expect(rows).toHaveLength(2);
    const repaired = rows.find((r) => r.path === rel)!;
    const bytes = readFileSync(abs);
    expect(repaired).toMatchObject({ state: 'closed', packets: 7, bytes: bytes.length, close_reason: 'recovered' });
    expect(repaired.sha256).toBe(createHash('sha256').update(bytes).digest('hex'));
    expectReadable(abs, 7);
    const adopted = rows.find((r) => r.path === strayRel)!;
    expect(adopted).toMatchObject({ vni: 7, source_ip: '2001:db8::7', worker: 1, packets: 3, state: 'closed', close_reason: 'adopted' });
    expect(adopted.first_us).toBe(1_800_000_200 * 1e6);

    // Running it again changes nothing.
    expect(await recoverCatalog(catalog, dir, silentLogger())).toEqual({ repaired: 0, truncatedBytes: 0, adopted: 0, removedRows: 0 });
  });
});

describe('retention', () => {
  const tmp = useTmpDir();

  async function seed(dir: string, n: number) {
    const catalog = new Catalog(openDb(join(dir, 'mirrorguard.db')));
    const rows: { rel: string; id: number }[] = [];
    const hourUs = 3_600_000_000;
    const baseUs = Date.now() * 1000 - n * hourUs;
    for (let i = 0; i < n; i++) {
      const rel = captureRelPath(1, '10.0.0.1', Math.floor(baseUs / 1e6) + i * 3600, 0, 0, i + 1);
      await writeCapture(join(dir, rel), 10, Math.floor(baseUs / 1e6) + i * 3600);
      const id = catalog.open({ path: rel, vni: 1, sourceIp: '10.0.0.1', sessionId: null, worker: 0, createdUs: baseUs + i * hourUs, firstUs: baseUs + i * hourUs });
      const size = readFileSync(join(dir, rel)).length;
      catalog.close(id, { closedUs: baseUs + i * hourUs + 1, firstUs: baseUs + i * hourUs, lastUs: baseUs + i * hourUs + 1, packets: 10, bytes: size, sha256: 'x', reason: 'size' });
      rows.push({ rel, id });
    }
    await catalog.flush();
    return { catalog, rows };
  }

  it('deletes the oldest closed files first while over the byte bound, never an open one', async () => {
    const dir = tmp.path;
    const { catalog, rows } = await seed(dir, 6);
    const openRel = captureRelPath(1, '10.0.0.1', 1_000_000_000, 0, 0, 99); // old, but open
    await writeCapture(join(dir, openRel), 10, 1_000_000_000);
    catalog.open({ path: openRel, vni: 1, sourceIp: '10.0.0.1', sessionId: null, worker: 0, createdUs: 1, firstUs: 1 });
    await catalog.flush();
    const size = readFileSync(join(dir, rows[0]!.rel)).length;
    const r = await runRetention(catalog, dir, { maxBytes: size * 3, maxAgeHours: 0, minFreeBytes: 0 }, silentLogger());
    expect(r.reasons.bytes).toBe(3);
    expect(rows.map((x) => existsSync(join(dir, x.rel)))).toEqual([false, false, false, true, true, true]);
    expect(existsSync(join(dir, openRel))).toBe(true);
    expect((await rowsOf(catalog)).map((x) => x.path)).toEqual([...rows.slice(3).map((x) => x.rel), openRel]);
  });

  it('an archived file loses only its local copy: the row stays (S3 location), marked removed, and is not counted again', async () => {
    const dir = tmp.path;
    const { catalog, rows } = await seed(dir, 4); // hourly, oldest 4 hours ago
    const archivedId = rows[0]!.id;
    const st = catalog.store;
    const job = await st.archive.enqueue({ captureId: archivedId, node: st.nodeId, path: join(dir, rows[0]!.rel), vni: 1, sourceIp: '10.0.0.1', sessionId: null, createdUs: 1, firstUs: 1, lastUs: 2, packets: 10, bytes: 1, sha256: 'x' }, 0);
    await st.archive.claim(st.nodeId, 'o', 0, 60_000);
    await st.archive.done(job.id, 'o', { bucket: 'b', key: 'k', versionId: 'v', etag: 'e', sha256: 'x', s3ChecksumSha256: 'x', parts: 1, size: 1, retainUntil: null }, 5);
    const r = await runRetention(catalog, dir, { maxBytes: 0, maxAgeHours: 2.5, minFreeBytes: 0 }, silentLogger());
    expect(r.reasons.age).toBe(2);
    expect(rows.map((x) => existsSync(join(dir, x.rel)))).toEqual([false, false, true, true]);
    const kept = (await st.captures.byId(archivedId))!;
    expect(kept).toMatchObject({ s3_key: 'k', s3_version_id: 'v' });
    expect(kept.local_removed_us).not.toBeNull();
    expect(await st.captures.byId(rows[1]!.id)).toBeUndefined();
    // A second pass does not see the removed copy again.
    expect((await runRetention(catalog, dir, { maxBytes: 0, maxAgeHours: 2.5, minFreeBytes: 0 }, silentLogger())).deletedFiles).toBe(0);
  });

  it('with an archive, a file S3 has not confirmed is never deleted: an older one is passed over for a newer archived one', async () => {
    const dir = tmp.path;
    const { catalog, rows } = await seed(dir, 4); // hourly, oldest 4 hours ago
    const st = catalog.store;
    // Only the third file is archived; the byte bound wants three files gone.
    const job = await st.archive.enqueue({ captureId: rows[2]!.id, node: st.nodeId, path: join(dir, rows[2]!.rel), vni: 1, sourceIp: '10.0.0.1', sessionId: null, createdUs: 1, firstUs: 1, lastUs: 2, packets: 10, bytes: 1, sha256: 'x' }, 0);
    await st.archive.claim(st.nodeId, 'o', 0, 60_000);
    await st.archive.done(job.id, 'o', { bucket: 'b', key: 'k', versionId: 'v', etag: 'e', sha256: 'x', s3ChecksumSha256: 'x', parts: 1, size: 1, retainUntil: null }, 5);
    const size = readFileSync(join(dir, rows[0]!.rel)).length;
    const warnings: string[] = [];
    const logger = { ...silentLogger(), warn: (_o: unknown, msg: string) => void warnings.push(msg) } as unknown as ReturnType<typeof silentLogger>;
    const r = await runRetention(catalog, dir, { maxBytes: size, maxAgeHours: 1, minFreeBytes: 2 ** 60 }, logger, { archive: true });
    expect(r.deletedFiles).toBe(1);
    expect(r.awaitingUpload).toBe(3);
    expect(r.awaitingUploadBytes).toBe(3 * size);
    expect(rows.map((x) => existsSync(join(dir, x.rel)))).toEqual([true, true, false, true]);
    expect((await st.captures.byId(rows[2]!.id))!.local_removed_us).not.toBeNull();
    for (const i of [0, 1, 3]) expect(await st.captures.byId(rows[i]!.id)).toMatchObject({ state: 'closed', local_removed_us: null });
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(/not confirmed/);
  });

  it('deletes closed files older than the age bound', async () => {
    const dir = tmp.path;
    const { catalog, rows } = await seed(dir, 5); // hourly, oldest 5 hours ago
    const r = await runRetention(catalog, dir, { maxBytes: 0, maxAgeHours: 2.5, minFreeBytes: 0 }, silentLogger());
    expect(r.reasons.age).toBe(3);
    expect(rows.map((x) => existsSync(join(dir, x.rel)))).toEqual([false, false, false, true, true]);
  });

  it('deletes oldest files while free space is below the bound', async () => {
    const dir = tmp.path;
    const { catalog } = await seed(dir, 3);
    // No file system here has an exabyte free: every closed file goes, oldest first.
    const r = await runRetention(catalog, dir, { maxBytes: 0, maxAgeHours: 0, minFreeBytes: 2 ** 60 }, silentLogger());
    expect(r.reasons.free).toBe(3);
    expect(await rowsOf(catalog)).toHaveLength(0);
  });

  it('leaves everything alone within bounds', async () => {
    const dir = tmp.path;
    const { catalog } = await seed(dir, 2);
    expect((await runRetention(catalog, dir, { maxBytes: 10 ** 12, maxAgeHours: 1000, minFreeBytes: 0 }, silentLogger())).deletedFiles).toBe(0);
    expect(await rowsOf(catalog)).toHaveLength(2);
  });
});
