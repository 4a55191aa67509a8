/**
 * GET /v1/ledger, the capture's archive location, X-Ledger-Seq on downloads, and the admin legal hold,
 * through app.inject() on a real catalog and the store's real ledger and archive queue.
 */
import { createHash, generateKeyPairSync } from 'node:crypto';
import { unlinkSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { keyIdOf, type SigningKey } from '../../src/ledger/keys.js';
import { Ledger } from '../../src/ledger/ledger.js';
import { recordLine, type LedgerRecord } from '../../src/ledger/record.js';
import { verifyLedger } from '../../src/ledger/verify.js';
import { makeTmpDir } from '../helpers/tmp.js';
import { bearer, buildHarness, craftFrames, writeCapture, type Harness } from './helpers.js';

const T = 1_764_000_000;

describe('evidence routes', () => {
  const { dir, remove } = makeTmpDir('mg-api-evidence-');
  let h: Harness;
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  const key: SigningKey = { privateKey, publicKey, keyId: keyIdOf(publicKey) };
  const holds: { key: string; versionId: string | null; on: boolean }[] = [];
  let archivedId = 0;
  let archivedAbs = '';
  let plainId = 0;
  let archivedRec: LedgerRecord;

  beforeAll(async () => {
    h = buildHarness({ dataDir: dir });
    const F = craftFrames();
    plainId = (await writeCapture(h, { vni: 7, sourceIp: '10.0.0.1', frames: [{ data: F.dns!, sec: T, nsec: 0 }], seq: 1 })).id;
    const c = await writeCapture(h, { vni: 7, sourceIp: '10.0.0.1', frames: [{ data: F.tcp443!, sec: T + 1, nsec: 0 }], seq: 2 });
    archivedId = c.id;
    archivedAbs = c.abs;
    await h.catalog.flush();
    const store = h.deps.store;
    const row = (await store.captures.byId(archivedId))!;
    const ledger = new Ledger(store.ledger, key, 'test-node');
    for (let i = 0; i < 3; i++) await ledger.appendExtraction({ sha256: `${i}`.repeat(64), size: i, firstUs: null, lastUs: null, session: null, merged: [] });
    const file = { captureId: archivedId, node: row.node!, path: c.abs, vni: 7, sourceIp: '10.0.0.1', sessionId: null, createdUs: row.created_us, firstUs: row.first_us, lastUs: row.last_us, packets: row.packets, bytes: row.bytes, sha256: row.sha256! };
    const job = await store.archive.enqueue(file, 1000);
    await store.archive.claim(row.node!, `${row.node}/1/1`, 1000, 60_000);
    const result = { bucket: 'ev', key: 'evidence/k.pcap', versionId: 'v-1', etag: '"e"', sha256: row.sha256!, s3ChecksumSha256: 'x', parts: 1, size: row.bytes, retainUntil: null };
    archivedRec = await ledger.appendArchive(file, result);
    expect(await store.archive.done(job.id, `${row.node}/1/1`, result, 1_764_000_100_000)).toBe(true);
    await store.captures.setLedgerSeq(archivedId, archivedRec.seq);
  });
  afterAll(async () => {
    await h.close();
    remove();
  });

  it('GET /v1/ledger pages by seq, records come back as signed and verify offline; ingest tokens are refused', async () => {
    const p1 = (await h.app.inject({ url: '/v1/ledger?limit=3', headers: bearer('auditor') })).json() as { items: LedgerRecord[]; nextFrom: number | null };
    expect(p1.items.map((r) => r.seq)).toEqual([1, 2, 3]);
    expect(p1.nextFrom).toBe(4);
    const p2 = (await h.app.inject({ url: `/v1/ledger?from=${p1.nextFrom}&limit=3`, headers: bearer('auditor') })).json() as { items: LedgerRecord[]; nextFrom: number | null };
    expect(p2.items.map((r) => r.seq)).toEqual([4]);
    expect(p2.nextFrom).toBeNull();
    const text = [...p1.items, ...p2.items].map((r) => `${recordLine(r)}\n`).join('');
    expect(verifyLedger(Buffer.from(text), publicKey, key.keyId)).toMatchObject({ ok: true, records: 4 });
    const bySha = (await h.app.inject({ url: `/v1/ledger?sha256=${archivedRec.sha256.toUpperCase()}`, headers: bearer('auditor') })).json() as { items: LedgerRecord[] };
    expect(bySha.items.map((r) => [r.seq, r.kind, r.key])).toEqual([[4, 'archive', 'evidence/k.pcap']]);
    expect((await h.app.inject({ url: '/v1/ledger', headers: bearer('ingest') })).statusCode).toBe(403);
    expect((await h.app.inject({ url: '/v1/ledger?limit=0', headers: bearer('auditor') })).statusCode).toBe(400);
  });

  it('captures show node, location and the S3 object; a download names its ledger record', async () => {
    const one = (await h.app.inject({ url: `/v1/captures/${archivedId}`, headers: bearer('auditor') })).json();
    expect(one).toMatchObject({ node: expect.any(String), location: 'both', s3: { bucket: 'ev', key: 'evidence/k.pcap', versionId: 'v-1', archivedAt: '2025-11-24T16:01:40Z' }, ledgerSeq: 4, legalHold: false });
    const plain = (await h.app.inject({ url: `/v1/captures/${plainId}`, headers: bearer('auditor') })).json();
    expect(plain).toMatchObject({ location: 'local', s3: null, ledgerSeq: null });
    const dl = await h.app.inject({ url: `/v1/captures/${archivedId}/pcap`, headers: bearer('auditor') });
    expect(dl.statusCode).toBe(200);
    expect(dl.headers['x-ledger-seq']).toBe('4');
    expect(dl.headers['x-content-sha256']).toBe(archivedRec.sha256);
    expect((await h.app.inject({ url: `/v1/captures/${plainId}/pcap`, headers: bearer('auditor') })).headers['x-ledger-seq']).toBeUndefined();
  });

  it('legal hold: admin only, audited; an archived file needs serve archive to hold the S3 object', async () => {
    const post = (id: number, body: unknown, role: 'admin' | 'auditor' = 'admin') =>
      h.app.inject({ method: 'POST', url: `/v1/captures/${id}/legal-hold`, headers: { ...bearer(role), 'content-type': 'application/json' }, payload: JSON.stringify(body) });
    expect((await post(plainId, { on: true }, 'auditor')).statusCode).toBe(403);
    const r = await post(plainId, { on: true, note: 'case 42' });
    expect(r.statusCode, r.body).toBe(200);
    expect(r.json()).toMatchObject({ id: plainId, legalHold: true });
    expect((await post(999, { on: true })).statusCode).toBe(404);
    expect((await post(archivedId, { on: true })).statusCode).toBe(409);
    h.deps.archive = { setLegalHold: async (k, versionId, on) => void holds.push({ key: k, versionId, on }) };
    const a = await post(archivedId, { on: true });
    expect(a.statusCode, a.body).toBe(200);
    expect(holds).toEqual([{ key: 'evidence/k.pcap', versionId: 'v-1', on: true }]);
    const audit = (await h.app.inject({ url: '/v1/audit?action=capture.legal_hold', headers: bearer('admin') })).json() as { items: { target: string; status: number; detail: Record<string, unknown> }[] };
    expect(audit.items.map((i) => [i.target, i.status])).toEqual([
      [`capture:${archivedId}`, 200],
      [`capture:${archivedId}`, 409],
      ['capture:999', 404],
      [`capture:${plainId}`, 200],
    ]);
    expect(audit.items[3]!.detail).toMatchObject({ on: true, note: 'case 42', s3: false });
    // Held copies are never removed by the keep-local pass; once removed otherwise, the location says archived.
    await h.deps.store.captures.markLocalRemoved(archivedId, 1);
    expect((await h.app.inject({ url: `/v1/captures/${archivedId}`, headers: bearer('auditor') })).json()).toMatchObject({ location: 'archived', legalHold: true });
  });

  it('a complete extraction appends a signed extraction record merging the archived files; its seq is the X-Ledger-Seq trailer', async () => {
    h.deps.ledger = new Ledger(h.deps.store.ledger, key, 'test-node');
    const before = (await h.deps.store.ledger.head())!.seq;
    const r = await h.app.inject({ url: `/v1/pcap?vni=7&from=${T - 10}&to=${T + 10}`, headers: bearer('auditor') });
    expect(r.statusCode, r.body).toBe(200);
    const sent = createHash('sha256').update(r.rawPayload).digest('hex');
    expect(r.trailers['x-content-sha256']).toBe(sent);
    expect(r.trailers['x-ledger-seq']).toBe(String(before + 1));
    const [rec] = await h.deps.store.ledger.findBySha256(sent);
    // Both files are on disk: the archived one's record is merged.
    expect(r.headers['x-missing-captures']).toBeUndefined();
    expect(rec).toMatchObject({ seq: before + 1, kind: 'extraction', size: r.rawPayload.length, merged: [archivedRec.seq] });
    const audit = (await h.app.inject({ url: `/v1/audit/${r.headers['x-audit-id']}`, headers: bearer('admin') })).json() as { detail: Record<string, unknown> };
    expect(audit.detail).toMatchObject({ ledgerSeq: before + 1, complete: true });
    // A file not on this node's disk is named in a header and the audit row, and left out of the record.
    unlinkSync(archivedAbs);
    const r2 = await h.app.inject({ url: `/v1/pcap?vni=7&from=${T - 10}&to=${T + 10}`, headers: bearer('auditor') });
    expect(r2.statusCode).toBe(200);
    expect(r2.headers['x-missing-captures']).toBe(String(archivedId));
    const [rec2] = await h.deps.store.ledger.findBySha256(createHash('sha256').update(r2.rawPayload).digest('hex'));
    expect(rec2).toMatchObject({ kind: 'extraction', merged: [] });
    const audit2 = (await h.app.inject({ url: `/v1/audit/${r2.headers['x-audit-id']}`, headers: bearer('admin') })).json() as { detail: Record<string, unknown> };
    expect(audit2.detail).toMatchObject({ missingFiles: [archivedId], ledgerSeq: rec2!.seq });
  });
});
