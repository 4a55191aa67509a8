/**
 * GET /v1/captures/:id/pcap of an archived file whose local copy is gone: streamed from its S3 version
 * (moto), whole and by Range, byte for byte the file that was written, with the catalog SHA-256 as ETag,
 * the ledger seq, and an audit row saying it came from S3; and the admin legal hold on the object version.
 */
import { GetObjectLegalHoldCommand } from '@aws-sdk/client-s3';
import { createHash, generateKeyPairSync } from 'node:crypto';
import { readFileSync, unlinkSync } from 'node:fs';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { ARCHIVE_DEFAULTS } from '../../src/archive/config.js';
import { ArchiveService } from '../../src/archive/service.js';
import { Store } from '../../src/store/store.js';
import { keyIdOf } from '../../src/ledger/keys.js';
import { createLogger } from '../../src/util/log.js';
import { startMoto, type Moto } from '../helpers/moto.js';
import { describeNeeds } from '../helpers/needs.js';
import { makeTmpDir } from '../helpers/tmp.js';
import { bearer, buildHarness, craftFrames, writeCapture, type Harness } from './helpers.js';

const T = 1_764_000_000;

describeNeeds(['s3'], 'downloads of archived files from S3', () => {
  const { dir, remove } = makeTmpDir('mg-api-s3-');
  let h: Harness;
  let moto: Moto;
  let svc: ArchiveService;
  let id = 0;
  let original: Buffer;

  beforeAll(async () => {
    moto = await startMoto();
    await moto.bucket('mg-ev', { objectLock: true });
    h = buildHarness({ dataDir: dir });
    const F = craftFrames();
    const c = await writeCapture(h, { vni: 9, sourceIp: '10.0.0.9', frames: [0, 1, 2, 3].map((i) => ({ data: F.tcp443!, sec: T + i, nsec: i })), seq: 1 });
    id = c.id;
    await h.catalog.flush();
    original = readFileSync(c.abs);
    const { privateKey, publicKey } = generateKeyPairSync('ed25519');
    const node = (await h.deps.store.captures.byId(id))!.node!;
    svc = new ArchiveService({
      config: { ...ARCHIVE_DEFAULTS, s3: { bucket: 'mg-ev', prefix: 'ev', region: 'us-east-1', endpoint: moto.endpoint, forcePathStyle: true } },
      key: { privateKey, publicKey, keyId: keyIdOf(publicKey) },
      store: new Store(h.deps.store.engine, node), // the catalog's node (the harness's API store is another)
      dataDir: dir,
      node,
      logger: createLogger('silent'),
      client: moto.client(3),
    });
    // The real path: sweep the closed row into the queue, upload, sign, mark done.
    expect(await svc.sweep()).toBe(1);
    expect(await svc.worker.runOnce()).toBe(true);
    expect((await h.deps.store.captures.byId(id))!.ledger_seq).toBe(1);
    h.deps.archive = svc;
    unlinkSync(c.abs);
  }, 60_000);
  afterAll(async () => {
    await h?.close();
    svc?.client.destroy();
    await moto?.stop();
    remove();
  });

  it('whole file and a Range come from S3, byte for byte, audited with source s3', async () => {
    const r = await h.app.inject({ url: `/v1/captures/${id}/pcap`, headers: bearer('auditor') });
    expect(r.statusCode, r.body).toBe(200);
    expect(r.rawPayload.equals(original)).toBe(true);
    const sha = createHash('sha256').update(original).digest('hex');
    expect(r.headers).toMatchObject({ etag: `"${sha}"`, 'x-content-sha256': sha, 'x-capture-source': 's3', 'x-ledger-seq': '1' });
    const part = await h.app.inject({ url: `/v1/captures/${id}/pcap`, headers: { ...bearer('auditor'), range: 'bytes=24-63' } });
    expect(part.statusCode).toBe(206);
    expect(part.headers['content-range']).toBe(`bytes 24-63/${original.length}`);
    expect(part.rawPayload.equals(original.subarray(24, 64))).toBe(true);
    const audit = (await h.app.inject({ url: `/v1/audit/${r.headers['x-audit-id']}`, headers: bearer('admin') })).json() as { bytes: number; sha256: string; detail: Record<string, unknown> };
    expect(audit).toMatchObject({ bytes: original.length, sha256: sha, detail: { source: 's3', complete: true, verified: true } });
    const listed = (await h.app.inject({ url: `/v1/captures/${id}`, headers: bearer('auditor') })).json();
    expect(listed).toMatchObject({ location: 'both', ledgerSeq: 1 }); // the row was not told: the file vanished under it
  });

  it('a legal hold through the API sets the Object Lock hold on the archived version, and clears it', async () => {
    const post = (on: boolean) =>
      h.app.inject({ method: 'POST', url: `/v1/captures/${id}/legal-hold`, headers: { ...bearer('admin'), 'content-type': 'application/json' }, payload: JSON.stringify({ on }) });
    const row = (await h.deps.store.captures.byId(id))!;
    const status = async () => {
      const c = moto.client(3);
      try {
        return (await c.send(new GetObjectLegalHoldCommand({ Bucket: 'mg-ev', Key: row.s3_key!, VersionId: row.s3_version_id! }))).LegalHold?.Status;
      } finally {
        c.destroy();
      }
    };
    const on = await post(true);
    expect(on.statusCode, on.body).toBe(200);
    expect(on.json()).toMatchObject({ legalHold: true });
    expect(await status()).toBe('ON');
    expect((await post(false)).statusCode).toBe(200);
    expect(await status()).toBe('OFF');
  });
});
