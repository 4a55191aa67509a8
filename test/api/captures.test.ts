import { createHash } from 'node:crypto';
import { appendFileSync, readFileSync, renameSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { toMicros } from '../../src/util/clock.js';
import { checkIfHave } from '../helpers/needs.js';
import { tsharkFields, tsharkFrameHex, tsharkReadsCleanly } from '../helpers/oracles.js';
import { readBack } from '../helpers/read-back.js';
import { makeTmpDir } from '../helpers/tmp.js';
import { bearer, buildHarness, craftFrames, writeCapture, type Frame, type Harness } from './helpers.js';

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const T = 1_764_000_000;
const SESSION = 'tms-0123456789abcdef0';

describe('GET /v1/captures and /v1/captures/:id/pcap', () => {
  const { dir, remove } = makeTmpDir('mg-api-captures-');
  let h: Harness;
  let F: Record<string, Buffer>;
  let c1: Awaited<ReturnType<typeof writeCapture>>;
  let c2: Awaited<ReturnType<typeof writeCapture>>;
  let c3: Awaited<ReturnType<typeof writeCapture>>;
  const auditor = bearer('auditor');

  beforeAll(async () => {
    h = buildHarness({ dataDir: dir });
    F = craftFrames();
    const fr = (name: string, sec: number, nsec = 0): Frame => ({ data: F[name]!, sec, nsec });
    c1 = await writeCapture(h, { vni: 5569041, sourceIp: '172.31.0.238', sessionId: SESSION, frames: [fr('tcp443', T, 1), fr('tcp443r', T, 2), fr('dns', T + 1, 500)], seq: 1 });
    c2 = await writeCapture(h, { vni: 5569041, sourceIp: '172.31.0.238', sessionId: SESSION, frames: [fr('ssh_vlan', T + 60), fr('icmp6', T + 61)], seq: 2 });
    c3 = await writeCapture(h, { vni: 99, sourceIp: 'fd00::10', frames: [fr('icmp6', T + 120, 123_456_789)], seq: 1 });
  });
  afterAll(async () => {
    await h.close();
    remove();
  });

  const list = async (q: string) => {
    const r = await h.app.inject({ url: `/v1/captures${q}`, headers: auditor });
    expect(r.statusCode, r.body).toBe(200);
    return r.json() as { items: { id: number; [k: string]: unknown }[]; nextCursor: string | null };
  };

  it('lists the catalog newest first with times, counts, sizes and SHA-256', async () => {
    const all = await list('');
    expect(all.items.map((i) => i.id)).toEqual([c3.id, c2.id, c1.id]);
    const one = all.items.find((i) => i.id === c1.id)!;
    const bytes = readFileSync(c1.abs);
    expect(one).toEqual({
      id: c1.id,
      name: c1.path.split('/').pop(),
      vni: 5569041,
      sourceIp: '172.31.0.238',
      sessionId: SESSION,
      worker: 0,
      state: 'closed',
      // The catalog keeps microseconds: the 1 ns and 500 ns stamps round down.
      createdAt: '2025-11-24T16:00:00Z',
      closedAt: '2025-11-24T16:00:01.000001Z',
      firstPacketAt: '2025-11-24T16:00:00Z',
      lastPacketAt: '2025-11-24T16:00:01Z',
      packets: 3,
      bytes: bytes.length,
      sha256: sha256(bytes),
      closeReason: 'size',
      download: `/v1/captures/${c1.id}/pcap`,
      gwlbEndpointId: null,
      gwlbAttachmentId: null,
      node: expect.any(String),
      location: 'local',
      s3: null,
      ledgerSeq: null,
      legalHold: false,
    });
  });

  it('filters by VNI, source IP (any spelling), session, state and time overlap', async () => {
    expect((await list('?vni=99')).items.map((i) => i.id)).toEqual([c3.id]);
    expect((await list('?sourceIp=FD00:0:0::10')).items.map((i) => i.id)).toEqual([c3.id]);
    expect((await list(`?session=${SESSION}`)).items.map((i) => i.id)).toEqual([c2.id, c1.id]);
    expect((await list('?state=open')).items).toEqual([]);
    // c1 spans T..T+1.0000005; c2 T+60..T+61; c3 T+120.
    expect((await list(`?from=${T + 30}&to=${T + 90}`)).items.map((i) => i.id)).toEqual([c2.id]);
    expect((await list(`?from=${new Date((T + 1) * 1000).toISOString()}`)).items.map((i) => i.id)).toEqual([c3.id, c2.id, c1.id]);
    expect((await list(`?to=${T}.5`)).items.map((i) => i.id)).toEqual([c1.id]);
  });

  it('pages with limit and an opaque cursor', async () => {
    const p1 = await list('?limit=2');
    expect(p1.items.map((i) => i.id)).toEqual([c3.id, c2.id]);
    expect(p1.nextCursor).toEqual(expect.any(String));
    const p2 = await list(`?limit=2&cursor=${p1.nextCursor}`);
    expect(p2.items.map((i) => i.id)).toEqual([c1.id]);
    expect(p2.nextCursor).toBeNull();
  });

  it('answers helpful 400s naming the parameter', async () => {
    const cases: [string, string][] = [
      ['?vni=abc', 'vni: must be integer'],
      ['?vni=16777216', 'vni: must be <= 16777215'],
      ['?sourceIp=10.0.0.256', "sourceIp: '10.0.0.256' is not an IPv4 or IPv6 address"],
      ['?session=tms-xyz', 'session: must match pattern'],
      ['?from=yesterday', "from: 'yesterday' is not a time"],
      ['?from=2025-11-24T16:00:00', 'has no time zone'],
      ['?from=2025-02-30T00:00:00Z', 'is not a valid date and time'],
      [`?from=${T + 10}&to=${T}`, 'to: must be after from'],
      ['?cursor=bm9wZQ', 'cursor: not a cursor this server returned'],
      ['?limit=0', 'limit: must be >= 1'],
      ['?state=gone', 'state: must be one of open, closed'],
      ['?sourceip=10.0.0.1', "unknown parameter 'sourceip'"],
    ];
    for (const [q, msg] of cases) {
      const r = await h.app.inject({ url: `/v1/captures${q}`, headers: auditor });
      expect([q, r.statusCode, r.json().code]).toEqual([q, 400, 'MG_ERR_API_BAD_REQUEST']);
      expect(r.json().message).toContain(msg);
    }
  });

  it('accepts ISO-8601 with fractional seconds and offsets, and epoch seconds, as the same instant', async () => {
    // T + 60 is 2025-11-24T16:01:00Z: c2's first packet.
    for (const from of ['2025-11-24T16:00:59.999999999Z', '2025-11-24T17:00:59.999999999+01:00', '2025-11-24T17:00:59.999999999 01:00', `${T + 59}.999999999`]) {
      expect((await list(`?from=${encodeURIComponent(from).replace('%20', '+')}&to=${T + 61}`)).items.map((i) => i.id)).toEqual([c2.id]);
    }
  });

  it('GET /v1/captures/:id returns one row, 404 for an unknown id, 400 for a non-number', async () => {
    const r = await h.app.inject({ url: `/v1/captures/${c3.id}`, headers: auditor });
    expect(r.json()).toMatchObject({ id: c3.id, vni: 99, sourceIp: 'fd00::10', firstPacketAt: '2025-11-24T16:02:00.123456Z' });
    const nf = await h.app.inject({ url: '/v1/captures/999', headers: auditor });
    expect([nf.statusCode, nf.json().code, nf.json().message]).toEqual([404, 'MG_ERR_API_NOT_FOUND', 'not found: no capture 999']);
    expect((await h.app.inject({ url: '/v1/captures/abc', headers: auditor })).statusCode).toBe(400);
  });

  it('downloads a closed file byte for byte, with ETag, SHA-256, a file name and an audit row', async () => {
    const file = readFileSync(c1.abs);
    const r = await h.app.inject({ url: `/v1/captures/${c1.id}/pcap`, headers: auditor });
    expect(r.statusCode).toBe(200);
    expect(r.rawPayload.equals(file)).toBe(true);
    expect(r.headers['content-type']).toBe('application/vnd.tcpdump.pcap');
    expect(r.headers['content-length']).toBe(String(file.length));
    expect(r.headers['x-content-sha256']).toBe(sha256(file));
    expect(r.headers['etag']).toBe(`"${sha256(file)}"`);
    expect(r.headers['accept-ranges']).toBe('bytes');
    expect(r.headers['content-disposition']).toBe(`attachment; filename="${c1.path.split('/').pop()}"`);
    // What our reader, and tshark where installed, read from the download is what was written.
    const out = join(dir, 'dl.pcap');
    writeFileSync(out, r.rawPayload);
    const want = [F.tcp443!, F.tcp443r!, F.dns!].map((b) => b.toString('hex'));
    expect(readBack(out)).toMatchObject({ truncated: false, frames: want });
    checkIfHave('tshark', () => expect(tsharkFrameHex(out)).toEqual(want));

    const a = h.db.prepare('SELECT * FROM audit_log WHERE id = ?').get(Number(r.headers['x-audit-id'])) as Record<string, unknown>;
    expect(a).toMatchObject({ actor: 'auditor-user', role: 'auditor', remote_ip: '127.0.0.1', action: 'capture.download', target: `capture:${c1.id}`, status: 200, bytes: file.length, sha256: sha256(file) });
    expect(JSON.parse(a.detail as string)).toMatchObject({ complete: true, verified: true, state: 'closed', size: file.length });
  });

  it('serves one byte range (206), a suffix and an open-ended range, clamped to the file', async () => {
    const file = readFileSync(c1.abs);
    const get = (range: string) => h.app.inject({ url: `/v1/captures/${c1.id}/pcap`, headers: { ...auditor, range } });
    const r = await get('bytes=24-99');
    expect(r.statusCode).toBe(206);
    expect(r.headers['content-range']).toBe(`bytes 24-99/${file.length}`);
    expect(r.headers['content-length']).toBe('76');
    expect(r.rawPayload.equals(file.subarray(24, 100))).toBe(true);
    // The whole file's digest still names the representation.
    expect(r.headers['x-content-sha256']).toBe(sha256(file));
    const suffix = await get('bytes=-16');
    expect([suffix.statusCode, suffix.headers['content-range']]).toEqual([206, `bytes ${file.length - 16}-${file.length - 1}/${file.length}`]);
    expect(suffix.rawPayload.equals(file.subarray(file.length - 16))).toBe(true);
    const open = await get('bytes=100-');
    expect(open.rawPayload.equals(file.subarray(100))).toBe(true);
    const past = await get(`bytes=100-${file.length + 1000}`);
    expect(past.rawPayload.equals(file.subarray(100))).toBe(true);

    const audit = h.db.prepare('SELECT bytes, sha256, detail FROM audit_log WHERE id = ?').get(Number(r.headers['x-audit-id'])) as { bytes: number; sha256: string; detail: string };
    expect([audit.bytes, audit.sha256]).toEqual([76, sha256(file.subarray(24, 100))]);
    expect(JSON.parse(audit.detail)).toMatchObject({ range: { start: 24, end: 99 }, complete: true });
  });

  it('answers 416 MG_ERR_API_RANGE with Content-Range for a range past the end or malformed, and ignores multi-range and other units', async () => {
    const size = readFileSync(c1.abs).length;
    for (const range of [`bytes=${size}-`, `bytes=${size + 5}-${size + 9}`, 'bytes=9-3', 'bytes=x-y', 'bytes=-0', 'bytes']) {
      const r = await h.app.inject({ url: `/v1/captures/${c1.id}/pcap`, headers: { ...auditor, range } });
      expect([range, r.statusCode, r.json().code]).toEqual([range, 416, 'MG_ERR_API_RANGE']);
      expect(r.headers['content-range']).toBe(`bytes */${size}`);
      // An error body does not pretend to be the file.
      expect(r.headers['etag']).toBeUndefined();
      expect(r.headers['content-disposition']).toBeUndefined();
    }
    for (const range of ['bytes=0-1,5-6', 'items=0-1']) {
      const r = await h.app.inject({ url: `/v1/captures/${c1.id}/pcap`, headers: { ...auditor, range } });
      expect([range, r.statusCode, r.rawPayload.length]).toEqual([range, 200, size]);
    }
  });

  it('honours If-None-Match (304) and If-Range (range only while the strong ETag matches)', async () => {
    const file = readFileSync(c1.abs);
    const etag = `"${sha256(file)}"`;
    const nm = await h.app.inject({ url: `/v1/captures/${c1.id}/pcap`, headers: { ...auditor, 'if-none-match': `"other", ${etag}` } });
    expect([nm.statusCode, nm.rawPayload.length, nm.headers['etag']]).toEqual([304, 0, etag]);
    expect((await h.app.inject({ url: `/v1/captures/${c1.id}/pcap`, headers: { ...auditor, 'if-none-match': '*' } })).statusCode).toBe(304);
    expect((await h.app.inject({ url: `/v1/captures/${c1.id}/pcap`, headers: { ...auditor, 'if-none-match': '"other"' } })).statusCode).toBe(200);
    const ir = await h.app.inject({ url: `/v1/captures/${c1.id}/pcap`, headers: { ...auditor, range: 'bytes=0-9', 'if-range': etag } });
    expect([ir.statusCode, ir.rawPayload.length]).toEqual([206, 10]);
    const stale = await h.app.inject({ url: `/v1/captures/${c1.id}/pcap`, headers: { ...auditor, range: 'bytes=0-9', 'if-range': '"stale"' } });
    expect([stale.statusCode, stale.rawPayload.length]).toEqual([200, file.length]);
    const date = await h.app.inject({ url: `/v1/captures/${c1.id}/pcap`, headers: { ...auditor, range: 'bytes=0-9', 'if-range': new Date().toUTCString() } });
    expect(date.statusCode).toBe(200);
  });

  it('HEAD gives the headers of the download without a body or an audit row', async () => {
    const before = (h.db.prepare('SELECT COUNT(*) AS n FROM audit_log').get() as { n: number }).n;
    const r = await h.app.inject({ method: 'HEAD', url: `/v1/captures/${c2.id}/pcap`, headers: auditor });
    expect(r.statusCode).toBe(200);
    expect(r.headers['content-length']).toBe(String(readFileSync(c2.abs).length));
    expect(r.rawPayload.length).toBe(0);
    expect((h.db.prepare('SELECT COUNT(*) AS n FROM audit_log').get() as { n: number }).n).toBe(before);
  });

  it('downloads an IPv6 source\'s file, with its nanosecond timestamp', async () => {
    const r = await h.app.inject({ url: `/v1/captures/${c3.id}/pcap`, headers: auditor });
    const out = join(dir, 'v6.pcap');
    writeFileSync(out, r.rawPayload);
    expect(readBack(out)).toMatchObject({ truncated: false, times: [`${T + 120}.123456789`], frames: [F.icmp6!.toString('hex')] });
    checkIfHave('tshark', () => expect(tsharkFields(out, ['frame.time_epoch', 'ipv6.src'])).toEqual([[`${T + 120}.123456789`, 'fd00::1']]));
  });
});

describe('the file being written', () => {
  const { dir, remove } = makeTmpDir('mg-api-live-');
  let h: Harness;
  let F: Record<string, Buffer>;
  afterAll(remove);

  it('is listed and downloadable up to its last flushed record, flushed first, with the SHA-256 as a trailer', async () => {
    h = buildHarness({ dataDir: dir });
    F = craftFrames();
    const frames: Frame[] = [0, 1, 2].map((i) => ({ data: F.tcp443!, sec: T + i, nsec: 7 }));
    const live = await writeCapture(h, { vni: 7, sourceIp: '10.0.0.9', frames, state: 'open' });
    const w = live.writer!;
    // Two more packets arrive and sit in the writer's buffer: not on disk, not in the catalog.
    w.append(F.dns!, 0, F.dns!.length, F.dns!.length, T + 3, 0);
    w.append(F.icmp6!, 0, F.icmp6!.length, F.icmp6!.length, T + 4, 0);
    // serve's flushLive: hand the buffers to the disk, wait, sync the row (what the collector's tick does).
    h.onFlush = async () => {
      await w.drain();
      h.catalog.sync(live.id, w.committedPackets, w.committedBytes, toMicros(T + 4, 0));
    };
    const listed = (await h.app.inject({ url: '/v1/captures?state=open', headers: bearer('auditor') })).json() as { items: { id: number; state: string; sha256: null }[] };
    expect(listed.items.map((i) => [i.id, i.state, i.sha256])).toEqual([[live.id, 'open', null]]);

    const r = await h.app.inject({ url: `/v1/captures/${live.id}/pcap`, headers: bearer('auditor') });
    expect(r.statusCode).toBe(200);
    expect(h.flushes).toBe(1);
    expect(r.headers['x-capture-state']).toBe('open');
    expect(r.headers['etag']).toMatch(/^W\/"[0-9a-f]+-[0-9a-f]+"$/);
    expect(r.headers['content-length']).toBeUndefined();
    expect(r.headers['trailer']).toBe('x-content-sha256');
    expect(r.trailers['x-content-sha256']).toBe(sha256(r.rawPayload));
    const out = join(dir, 'live.pcap');
    writeFileSync(out, r.rawPayload);
    const want = [F.tcp443!, F.tcp443!, F.tcp443!, F.dns!, F.icmp6!].map((b) => b.toString('hex'));
    expect(readBack(out)).toMatchObject({ truncated: false, frames: want });
    checkIfHave('tshark', () => {
      expect(tsharkFrameHex(out)).toEqual(want);
      expect(tsharkReadsCleanly(out).ok).toBe(true);
    });

    // Bytes on disk past the catalog's count (written after the last sync) are not served: the row's
    // byte count is the end of the last record the catalog vouches for.
    h.onFlush = null;
    const synced = readFileSync(live.abs).length;
    w.append(F.ssh_vlan!, 0, F.ssh_vlan!.length, F.ssh_vlan!.length, T + 5, 0);
    await w.drain();
    expect(readFileSync(live.abs).length).toBeGreaterThan(synced);
    const r2 = await h.app.inject({ url: `/v1/captures/${live.id}/pcap`, headers: bearer('auditor') });
    expect(r2.rawPayload.equals(readFileSync(live.abs).subarray(0, synced))).toBe(true);
    const a = h.db.prepare('SELECT bytes, sha256, detail FROM audit_log WHERE id = ?').get(Number(r2.headers['x-audit-id'])) as { bytes: number; sha256: string; detail: string };
    expect([a.bytes, a.sha256]).toEqual([synced, sha256(r2.rawPayload)]);
    expect(JSON.parse(a.detail)).toMatchObject({ state: 'open', complete: true });
    await w.close();
    await h.close();
  });
});

describe('integrity: the file must be what the catalog says', () => {
  const { dir, remove } = makeTmpDir('mg-api-integrity-');
  let h: Harness;
  let F: Record<string, Buffer>;
  beforeAll(() => {
    h = buildHarness({ dataDir: dir });
    F = craftFrames();
  });
  afterAll(async () => {
    await h.close();
    remove();
  });
  const audited = (id: number) => h.db.prepare('SELECT status, detail FROM audit_log WHERE target = ? ORDER BY id DESC LIMIT 1').get(`capture:${id}`) as { status: number; detail: string };

  it('refuses a closed file whose size changed (500 MG_ERR_API_INTEGRITY) and records the attempt', async () => {
    const c = await writeCapture(h, { vni: 1, sourceIp: '10.0.0.1', frames: [{ data: F.dns!, sec: T, nsec: 0 }], seq: 1 });
    appendFileSync(c.abs, Buffer.alloc(10));
    const r = await h.app.inject({ url: `/v1/captures/${c.id}/pcap`, headers: bearer('auditor') });
    expect([r.statusCode, r.json().code]).toEqual([500, 'MG_ERR_API_INTEGRITY']);
    expect(r.json().message).toContain(`capture ${c.id}: ${readFileSync(c.abs).length} bytes on disk, the catalog recorded`);
    expect(audited(c.id).status).toBe(500);
    expect(JSON.parse(audited(c.id).detail)).toMatchObject({ error: 'MG_ERR_API_INTEGRITY' });
  });

  it('refuses a symbolic link planted in place of a file', async () => {
    const c = await writeCapture(h, { vni: 1, sourceIp: '10.0.0.2', frames: [{ data: F.dns!, sec: T, nsec: 0 }], seq: 1 });
    const elsewhere = join(dir, 'elsewhere.pcap');
    renameSync(c.abs, elsewhere);
    symlinkSync(elsewhere, c.abs);
    const r = await h.app.inject({ url: `/v1/captures/${c.id}/pcap`, headers: bearer('auditor') });
    expect([r.statusCode, r.json().code]).toEqual([500, 'MG_ERR_API_INTEGRITY']);
    expect(r.json().message).toContain('symbolic link');
  });

  it('never opens a catalog path outside <dataDir>/pcap', async () => {
    const id = h.catalog.open({ path: 'pcap/../../../etc/passwd', vni: 1, sourceIp: '10.0.0.3', sessionId: null, worker: 0, createdUs: 1, firstUs: 1 });
    const r = await h.app.inject({ url: `/v1/captures/${id}/pcap`, headers: bearer('auditor') });
    expect([r.statusCode, r.json().code]).toEqual([500, 'MG_ERR_API_INTEGRITY']);
    expect(r.body).not.toContain('root:');
  });

  it('says 404 when retention removed the file after the listing', async () => {
    const c = await writeCapture(h, { vni: 1, sourceIp: '10.0.0.4', frames: [{ data: F.dns!, sec: T, nsec: 0 }], seq: 1 });
    unlinkSync(c.abs);
    const r = await h.app.inject({ url: `/v1/captures/${c.id}/pcap`, headers: bearer('auditor') });
    expect([r.statusCode, r.json().code]).toEqual([404, 'MG_ERR_API_NOT_FOUND']);
    expect(r.json().message).toContain('no longer on disk');
    expect(audited(c.id).status).toBe(404);
  });
});
