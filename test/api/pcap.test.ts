import { createHash } from 'node:crypto';
import { readFileSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openCapture } from '../../src/pcap/reader.js';
import { toMicros } from '../../src/util/clock.js';
import { checkIfHave } from '../helpers/needs.js';
import { tsharkFields, tsharkFrameHex, tsharkReadsCleanly } from '../helpers/oracles.js';
import { makeTmpDir } from '../helpers/tmp.js';
import { createSession, IDS } from '../detect/cloudtrail/events.js';
import { bearer, buildHarness, craftFrames, manifestFrom, writeCapture, type Frame, type Harness } from './helpers.js';

/** The frames of a capture, by our reader, in hex. */
function framesHex(path: string): string[] {
  const rd = openCapture(path);
  const out: string[] = [];
  while (rd.next()) out.push(rd.record.buf.subarray(rd.record.off, rd.record.off + rd.record.caplen).toString('hex'));
  rd.close();
  return out;
}

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const T = 1_764_000_000;
const S = 'tms-0123456789abcdef0';
const VNI = 5569041;
const A = '172.31.0.238';
const B = '172.31.0.239';
const ms = (n: number) => n * 1_000_000;

interface Sent {
  name: string;
  sec: number;
  nsec: number;
}

describe('GET /v1/pcap: merged extraction', () => {
  const { dir, remove } = makeTmpDir('mg-api-pcap-');
  let h: Harness;
  let F: Record<string, Buffer>;
  let ids: { f1: number; f2: number; live: number; b: number };
  // Source A (session S) in two rotated files and a live one; source B on the same VNI, unauthorized.
  const fileA1: Sent[] = [
    { name: 'tcp443', sec: T, nsec: ms(100) },
    { name: 'tcp443r', sec: T, nsec: ms(300) },
    { name: 'dns', sec: T, nsec: ms(500) },
    { name: 'ssh_vlan', sec: T + 1, nsec: 0 },
  ];
  const fileA2: Sent[] = [
    { name: 'icmp6', sec: T + 2, nsec: 0 },
    { name: 'tcp443', sec: T + 2, nsec: ms(500) },
    { name: 'dns', sec: T + 3, nsec: 1 },
  ];
  const liveA: Sent[] = [
    { name: 'tcp443r', sec: T + 4, nsec: 0 },
    { name: 'icmp6', sec: T + 5, nsec: 999_999_999 },
  ];
  const fileB: Sent[] = [
    { name: 'dns', sec: T, nsec: ms(200) },
    { name: 'ssh_vlan', sec: T, nsec: ms(400) },
    { name: 'icmp6', sec: T + 2, nsec: ms(200) },
  ];
  const frames = (s: Sent[]): Frame[] => s.map((x) => ({ data: F[x.name]!, sec: x.sec, nsec: x.nsec }));
  const byTime = (...lists: Sent[][]) => lists.flat().sort((a, b) => a.sec - b.sec || a.nsec - b.nsec);

  beforeAll(async () => {
    h = buildHarness({ dataDir: dir, api: { maxRangeHours: 2 } });
    F = craftFrames();
    const f1 = await writeCapture(h, { vni: VNI, sourceIp: A, sessionId: S, frames: frames(fileA1), seq: 1 });
    const f2 = await writeCapture(h, { vni: VNI, sourceIp: A, sessionId: S, frames: frames(fileA2), seq: 2 });
    const b = await writeCapture(h, { vni: VNI, sourceIp: B, frames: frames(fileB), seq: 1 });
    // The live file has its first packet on disk and in the catalog; the second only in the writer's buffer.
    const live = await writeCapture(h, { vni: VNI, sourceIp: A, sessionId: S, frames: frames(liveA.slice(0, 1)), seq: 3, state: 'open' });
    const w = live.writer!;
    const x = liveA[1]!;
    w.append(F[x.name]!, 0, F[x.name]!.length, F[x.name]!.length, x.sec, x.nsec);
    h.onFlush = async () => {
      await w.drain();
      h.catalog.sync(live.id, w.committedPackets, w.committedBytes, toMicros(x.sec, x.nsec));
    };
    ids = { f1: f1.id, f2: f2.id, live: live.id, b: b.id };
  });
  afterAll(async () => {
    await h.close();
    remove();
  });

  async function extract(q: string, role: 'auditor' | 'admin' = 'auditor') {
    const r = await h.app.inject({ url: `/v1/pcap?${q}`, headers: bearer(role) });
    expect(r.statusCode, r.body.slice(0, 300)).toBe(200);
    const out = join(dir, `x-${Math.random().toString(36).slice(2)}.pcap`);
    writeFileSync(out, r.rawPayload);
    return { r, out };
  }

  /** What our reader reads back, as [time, frame hex] (tshark, where installed, checks the same files). */
  function readOwn(out: string): [string, string][] {
    const rd = openCapture(out);
    const got: [string, string][] = [];
    while (rd.next()) {
      const x = rd.record;
      got.push([`${x.tsSec}.${String(x.tsNsec).padStart(9, '0')}`, x.buf.subarray(x.off, x.off + x.caplen).toString('hex')]);
    }
    expect(rd.truncated).toBe(false);
    rd.close();
    return got;
  }

  /** What tshark reads, as [time, frame hex]: the oracle for order, timestamps and bytes. */
  function read(out: string): [string, string][] {
    const times = tsharkFields(out, ['frame.time_epoch']).map(([t]) => t!);
    const hex = tsharkFrameHex(out);
    expect(times.length).toBe(hex.length);
    return times.map((t, i) => [t, hex[i]!]);
  }
  const expected = (s: Sent[]): [string, string][] => s.map((x) => [`${x.sec}.${String(x.nsec).padStart(9, '0')}`, F[x.name]!.toString('hex')]);

  it('merges a session across rotated files and the live file, in timestamp order, byte for byte', async () => {
    const { r, out } = await extract(`session=${S}&from=${T}&to=${T + 10}`);
    expect(readOwn(out)).toEqual(expected(byTime(fileA1, fileA2, liveA)));
    checkIfHave('tshark', () => {
      expect(tsharkReadsCleanly(out)).toEqual({ ok: true, packets: 9, stderr: '' });
      expect(read(out)).toEqual(expected(byTime(fileA1, fileA2, liveA)));
    });
    expect(h.flushes).toBeGreaterThan(0);
    // The body's digest arrives as a trailer and is the one in the audit row.
    expect(r.headers['trailer']).toBe('x-content-sha256');
    expect(r.trailers['x-content-sha256']).toBe(sha256(r.rawPayload));
    expect(r.headers['content-disposition']).toBe(`attachment; filename="mirrorguard-${S}-20251124T160000Z-20251124T160010Z.pcap"`);
    expect(r.headers['x-capture-files']).toBe('3');
    const a = h.db.prepare('SELECT * FROM audit_log WHERE id = ?').get(Number(r.headers['x-audit-id'])) as Record<string, unknown>;
    expect(a).toMatchObject({ actor: 'auditor-user', action: 'pcap.extract', target: `session:${S}`, status: 200, bytes: r.rawPayload.length, sha256: sha256(r.rawPayload) });
    expect(JSON.parse(a.detail as string)).toEqual({
      from: '2025-11-24T16:00:00Z',
      to: '2025-11-24T16:00:10Z',
      session: S,
      files: [ids.f1, ids.f2, ids.live],
      complete: true,
      packets: 9,
      read: 9,
      filtered: 0,
      // The two rotated files lie inside the window and before the live one: streamed as bytes (issue 11).
      wholeFiles: 2,
    });
  });

  it('keeps from <= t < to, with ISO times to the nanosecond', async () => {
    const from = '2025-11-24T16:00:00.300000000Z';
    const to = '2025-11-24T16:00:02.5Z';
    const { out } = await extract(`session=${S}&from=${from}&to=${to}`);
    expect(readOwn(out)).toEqual(expected([fileA1[1]!, fileA1[2]!, fileA1[3]!, fileA2[0]!]));
    const edge = await extract(`session=${S}&from=${T + 3}.000000001&to=${T + 3}.000000002`);
    expect(readOwn(edge.out)).toEqual(expected([fileA2[2]!]));
  });

  it('merges every source of a VNI, or one source, by time', async () => {
    const all = await extract(`vni=${VNI}&from=${T}&to=${T + 3}`);
    expect(readOwn(all.out)).toEqual(expected(byTime(fileA1, fileA2, fileB).filter((x) => x.sec < T + 3)));
    checkIfHave('tshark', () => expect(read(all.out)).toEqual(expected(byTime(fileA1, fileA2, fileB).filter((x) => x.sec < T + 3))));
    const onlyB = await extract(`vni=${VNI}&sourceIp=${B}&from=${T}&to=${T + 3}`);
    expect(readOwn(onlyB.out)).toEqual(expected(fileB));
    expect(onlyB.r.headers['x-capture-files']).toBe('1');
  });

  it('filters inner packets with the capture filter language', async () => {
    const run = async (filter: string) => readOwn((await extract(`vni=${VNI}&from=${T}&to=${T + 10}&filter=${encodeURIComponent(filter)}`)).out);
    const everything = byTime(fileA1, fileA2, liveA, fileB);
    const only = (...names: string[]) => expected(everything.filter((x) => names.includes(x.name)));
    expect(await run('host 10.0.0.3')).toEqual(only('dns'));
    expect(await run('tcp port 443')).toEqual(only('tcp443', 'tcp443r'));
    expect(await run('ip6')).toEqual(only('icmp6'));
    expect(await run('vlan 7 and dst port 22')).toEqual(only('ssh_vlan'));
    expect(await run('net 10.0.0.0/24 and not udp')).toEqual(only('tcp443', 'tcp443r', 'ssh_vlan'));
    expect(await run('src host 10.0.0.2 or (udp and dst port 53)')).toEqual(only('tcp443r', 'dns'));
    const { r } = await extract(`vni=${VNI}&from=${T}&to=${T + 10}&filter=${encodeURIComponent('host 10.0.0.3')}`);
    const d = JSON.parse((h.db.prepare('SELECT detail FROM audit_log WHERE id = ?').get(Number(r.headers['x-audit-id'])) as { detail: string }).detail);
    expect(d).toMatchObject({ filter: 'host 10.0.0.3', packets: 3, filtered: 9 });
  });

  it('a window inside a file but with no packet is an empty, valid capture', async () => {
    const { out, r } = await extract(`session=${S}&from=${T}.6&to=${T}.7`);
    expect(r.rawPayload.length).toBe(24);
    expect(readOwn(out)).toEqual([]);
    checkIfHave('tshark', () => expect(tsharkReadsCleanly(out)).toEqual({ ok: true, packets: 0, stderr: '' }));
  });

  it('answers helpful 400s and 404s', async () => {
    const cases: [string, number, string, string][] = [
      [`from=${T}`, 400, 'MG_ERR_API_BAD_REQUEST', 'session: give session, or vni'],
      [`session=${S}&vni=1&from=${T}`, 400, 'MG_ERR_API_BAD_REQUEST', 'vni: give session or vni, not both'],
      [`session=${S}`, 400, 'MG_ERR_API_BAD_REQUEST', 'from: required'],
      [`session=${S}&from=${T}&to=${T + 3 * 3600}`, 400, 'MG_ERR_API_BAD_REQUEST', 'at most 2 hours per request (api.maxRangeHours)'],
      [`session=${S}&from=${T}&to=${T}`, 400, 'MG_ERR_API_BAD_REQUEST', 'to: must be after from'],
      [`session=${S}&from=soon`, 400, 'MG_ERR_API_BAD_REQUEST', "from: 'soon' is not a time"],
      [`vni=${VNI}&sourceIp=nope&from=${T}`, 400, 'MG_ERR_API_BAD_REQUEST', "sourceIp: 'nope' is not an IPv4 or IPv6 address"],
      [`session=${S}&from=${T}&to=${T + 9}&filter=${encodeURIComponent('port 99999')}`, 400, 'MG_ERR_FILTER_SYNTAX', 'port'],
      [`session=${S}&from=${T}&to=${T + 9}&filter=${encodeURIComponent('host 10.0.0.1 and')}`, 400, 'MG_ERR_FILTER_SYNTAX', 'invalid capture filter'],
      // docs/errors.md: over 1024 characters is a filter error, not a generic bad request (issue 17).
      [`session=${S}&from=${T}&to=${T + 9}&filter=${encodeURIComponent(`host 10.0.0.1${' or host 10.0.0.1'.repeat(70)}`)}`, 400, 'MG_ERR_FILTER_SYNTAX', 'at most 1024 characters'],
      [`session=${S}&from=${T}&to=${T + 9}&bpf=tcp`, 400, 'MG_ERR_API_BAD_REQUEST', "unknown parameter 'bpf'"],
      [`session=tms-00000000000000000&from=${T}&to=${T + 9}`, 404, 'MG_ERR_API_NOT_FOUND', 'no capture files of session tms-00000000000000000 overlap'],
      [`vni=${VNI}&from=${T - 3600}&to=${T - 1}`, 404, 'MG_ERR_API_NOT_FOUND', 'no capture files of VNI 5569041'],
    ];
    for (const [q, status, code, msg] of cases) {
      const r = await h.app.inject({ url: `/v1/pcap?${q}`, headers: bearer('auditor') });
      expect([q, r.statusCode, r.json().code]).toEqual([q, status, code]);
      expect(r.json().message).toContain(msg);
    }
  });

  it('HEAD describes the extraction without running it', async () => {
    const before = (h.db.prepare('SELECT COUNT(*) AS n FROM audit_log').get() as { n: number }).n;
    const r = await h.app.inject({ method: 'HEAD', url: `/v1/pcap?session=${S}&from=${T}&to=${T + 10}`, headers: bearer('auditor') });
    expect([r.statusCode, r.headers['content-type'], r.headers['x-capture-files'], r.rawPayload.length]).toEqual([200, 'application/vnd.tcpdump.pcap', '3', 0]);
    expect((h.db.prepare('SELECT COUNT(*) AS n FROM audit_log').get() as { n: number }).n).toBe(before);
  });
});

describe('GET /v1/pcap: sessions, limits and vanished files', () => {
  const { dir, remove } = makeTmpDir('mg-api-pcap-limits-');
  afterAll(remove);

  it('finds the traffic of a session only CloudTrail knows (the link a mirror-session-created alert carries)', async () => {
    const h = buildHarness({ dataDir: join(dir, 'rogue') });
    const F = craftFrames();
    // A rogue session created outside the manifest: its VNI comes from the CloudTrail record.
    const ingested = (await h.detector.ingestCloudTrail(createSession({ id: IDS.session2, vni: 4242 })));
    expect(ingested.findings.map((f) => [f.kind, f.sessionId])).toEqual([['mirror-session-created', IDS.session2]]);
    // Its traffic was captured unlabelled (no manifest session claims the pair), from two sources.
    await writeCapture(h, { vni: 4242, sourceIp: '10.0.0.1', frames: [{ data: F.tcp443!, sec: T, nsec: 0 }], seq: 1 });
    await writeCapture(h, { vni: 4242, sourceIp: '10.0.0.2', frames: [{ data: F.dns!, sec: T, nsec: 5 }], seq: 1 });
    await writeCapture(h, { vni: 4243, sourceIp: '10.0.0.1', frames: [{ data: F.icmp6!, sec: T, nsec: 9 }], seq: 1 });
    const r = await h.app.inject({ url: `/v1/pcap?session=${IDS.session2}&from=${T}&to=${T + 9}`, headers: bearer('auditor') });
    expect(r.statusCode, r.body.slice(0, 200)).toBe(200);
    const out = join(dir, 'rogue.pcap');
    writeFileSync(out, r.rawPayload);
    expect(framesHex(out)).toEqual([F.tcp443!.toString('hex'), F.dns!.toString('hex')]);
    checkIfHave('tshark', () => expect(tsharkFrameHex(out)).toEqual([F.tcp443!.toString('hex'), F.dns!.toString('hex')]));
    const d = JSON.parse((h.db.prepare('SELECT detail FROM audit_log WHERE id = ?').get(Number(r.headers['x-audit-id'])) as { detail: string }).detail);
    expect(d.scope).toEqual({ vni: 4242, sourceIps: null, via: 'cloudtrail' });
    await h.close();
  });

  it('a manifest session also takes unlabelled files of its listed sources, and only those', async () => {
    const S2 = 'tms-00000000000000002';
    const h = buildHarness({ dataDir: join(dir, 'manifest'), manifest: manifestFrom(`version: 1\nsessions:\n  - id: ${S2}\n    vni: 77\n    sourceIps: [10.0.0.1]\n`) });
    const F = craftFrames();
    await writeCapture(h, { vni: 77, sourceIp: '10.0.0.1', sessionId: S2, frames: [{ data: F.tcp443!, sec: T + 1, nsec: 0 }], seq: 2 });
    // Written before the manifest named the session: no label.
    await writeCapture(h, { vni: 77, sourceIp: '10.0.0.1', frames: [{ data: F.dns!, sec: T, nsec: 0 }], seq: 1 });
    // Another source on the same VNI is not the session's traffic.
    await writeCapture(h, { vni: 77, sourceIp: '10.0.0.66', frames: [{ data: F.icmp6!, sec: T, nsec: 1 }], seq: 1 });
    const r = await h.app.inject({ url: `/v1/pcap?session=${S2}&from=${T}&to=${T + 9}`, headers: bearer('auditor') });
    const out = join(dir, 'manifest.pcap');
    writeFileSync(out, r.rawPayload);
    expect(framesHex(out)).toEqual([F.dns!.toString('hex'), F.tcp443!.toString('hex')]);
    await h.close();
  });

  it('refuses a window spanning more files than api.maxExtractionFiles', async () => {
    const h = buildHarness({ dataDir: dir, api: { maxExtractionFiles: 1 } });
    const F = craftFrames();
    await writeCapture(h, { vni: 3, sourceIp: '10.0.0.1', frames: [{ data: F.dns!, sec: T, nsec: 0 }], seq: 1 });
    await writeCapture(h, { vni: 3, sourceIp: '10.0.0.1', frames: [{ data: F.dns!, sec: T + 1, nsec: 0 }], seq: 2 });
    const r = await h.app.inject({ url: `/v1/pcap?vni=3&from=${T}&to=${T + 9}`, headers: bearer('auditor') });
    expect([r.statusCode, r.json().code]).toEqual([400, 'MG_ERR_API_BAD_REQUEST']);
    expect(r.json().message).toContain('spans 2 files; at most 1 per extraction (api.maxExtractionFiles)');
    await h.close();
  });

  it('refuses to merge a closed file that changed on disk, and records the refusal', async () => {
    const h = buildHarness({ dataDir: join(dir, 'c') });
    const F = craftFrames();
    const c = await writeCapture(h, { vni: 5, sourceIp: '10.0.0.1', frames: [{ data: F.dns!, sec: T, nsec: 0 }], seq: 1 });
    // A record appended after close: someone edited the evidence.
    writeFileSync(c.abs, Buffer.concat([readFileSync(c.abs), Buffer.alloc(16 + 60)]));
    const r = await h.app.inject({ url: `/v1/pcap?vni=5&from=${T}&to=${T + 9}`, headers: bearer('auditor') });
    expect([r.statusCode, r.json().code]).toEqual([500, 'MG_ERR_API_INTEGRITY']);
    expect(r.json().message).toContain(`capture ${c.id}: `);
    const a = h.db.prepare("SELECT actor, target, status, detail FROM audit_log WHERE action = 'pcap.extract'").all() as { actor: string; target: string; status: number; detail: string }[];
    expect(a.map((x) => [x.actor, x.target, x.status])).toEqual([['auditor-user', 'vni:5', 500]]);
    expect(JSON.parse(a[0]!.detail)).toMatchObject({ error: 'MG_ERR_API_INTEGRITY', query: { vni: 5 } });
    await h.close();
  });

  it('leaves out a file retention removed meanwhile, and says so in the audit row', async () => {
    const h = buildHarness({ dataDir: join(dir, 'b') });
    const F = craftFrames();
    const gone = await writeCapture(h, { vni: 4, sourceIp: '10.0.0.1', frames: [{ data: F.dns!, sec: T, nsec: 0 }], seq: 1 });
    const kept = await writeCapture(h, { vni: 4, sourceIp: '10.0.0.1', frames: [{ data: F.icmp6!, sec: T + 1, nsec: 0 }], seq: 2 });
    unlinkSync(gone.abs);
    const r = await h.app.inject({ url: `/v1/pcap?vni=4&from=${T}&to=${T + 9}`, headers: bearer('auditor') });
    expect(r.statusCode).toBe(200);
    const out = join(dir, 'kept.pcap');
    writeFileSync(out, r.rawPayload);
    expect(framesHex(out)).toEqual([F.icmp6!.toString('hex')]);
    checkIfHave('tshark', () => expect(tsharkFrameHex(out)).toEqual([F.icmp6!.toString('hex')]));
    const d = JSON.parse((h.db.prepare('SELECT detail FROM audit_log WHERE id = ?').get(Number(r.headers['x-audit-id'])) as { detail: string }).detail);
    expect(d).toMatchObject({ files: [kept.id], missingFiles: [gone.id], complete: true });
    unlinkSync(kept.abs);
    const none = await h.app.inject({ url: `/v1/pcap?vni=4&from=${T}&to=${T + 9}`, headers: bearer('auditor') });
    expect([none.statusCode, none.json().message]).toEqual([404, 'not found: the capture files of VNI 4 in this window are no longer on disk']);
    await h.close();
  });
});
