/**
 * ArchiveService (what serve runs) for two nodes sharing one store, on SQLite and PostgreSQL, against
 * moto: each node sweeps its own closed catalog rows into the queue and uploads only its own files; the
 * two append to one ledger at once and it comes out as one unbroken chain that verifies; every catalog
 * row ends with its S3 object (checksum = catalog SHA-256) and its ledger record; with keepLocalHours 0
 * the local copies go, except one under legal hold.
 */
import { HeadObjectCommand } from '@aws-sdk/client-s3';
import { generateKeyPairSync } from 'node:crypto';
import { existsSync, mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { ARCHIVE_DEFAULTS } from '../../src/archive/config.js';
import { ArchiveService } from '../../src/archive/service.js';
import { keyIdOf, type SigningKey } from '../../src/ledger/keys.js';
import { exportJsonl } from '../../src/ledger/ledger.js';
import { verifyLedger } from '../../src/ledger/verify.js';
import { Store } from '../../src/store/store.js';
import { createLogger } from '../../src/util/log.js';
import { describeEngines } from '../helpers/engines.js';
import { startMoto, type Moto } from '../helpers/moto.js';
import { describeNeeds } from '../helpers/needs.js';
import { makeTmpDir } from '../helpers/tmp.js';
import { writeCapture } from './archive-helpers.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describeEngines('archive service, two nodes on one store', (ctx) => {
  describeNeeds(['s3'], `moto (${ctx.engine})`, () => {
    let moto: Moto;
    const tmp = makeTmpDir('mg-archive-fleet-');
    const { privateKey, publicKey } = generateKeyPairSync('ed25519');
    const key: SigningKey = { privateKey, publicKey, keyId: keyIdOf(publicKey) };
    beforeAll(async () => {
      moto = await startMoto();
      await moto.bucket('mg-fleet');
    }, 60_000);
    afterAll(async () => {
      await moto?.stop();
      tmp.remove();
    });

    it('each node uploads its own files; one chain; every row has its object and record; keep-local 0 removes copies except a held one', async () => {
      const stores = [ctx.store, ctx.engine === 'postgres' ? await ctx.open({ nodeId: 'node-b' }) : new Store(ctx.store.engine, 'node-b')];
      const services: ArchiveService[] = [];
      const ids: { store: Store; id: number; abs: string }[] = [];
      for (const [n, store] of stores.entries()) {
        const dataDir = join(tmp.dir, `${ctx.engine}-${n}`);
        for (let i = 0; i < 4; i++) {
          const rel = `pcap/vni-42/10.0.1.${n}/2025-12-03/f${i}.pcap`;
          const abs = join(dataDir, rel);
          mkdirSync(dirname(abs), { recursive: true });
          const f = await writeCapture(abs, { packets: 20 + i, t0Sec: 1_764_763_200 + i });
          const id = await store.captures.open({ path: rel, vni: 42, sourceIp: `10.0.1.${n}`, sessionId: null, worker: 0, createdUs: f.createdUs, firstUs: f.firstUs! });
          await store.captures.close(id, { closedUs: f.lastUs! + 1, firstUs: f.firstUs, lastUs: f.lastUs, packets: f.packets, bytes: f.bytes, sha256: f.sha256, reason: 'age' });
          ids.push({ store, id, abs });
        }
        services.push(
          new ArchiveService({
            config: { ...ARCHIVE_DEFAULTS, keepLocalHours: 0, s3: { bucket: 'mg-fleet', prefix: `ev-${ctx.engine}`, region: 'us-east-1', endpoint: moto.endpoint, forcePathStyle: true } },
            key,
            store,
            dataDir,
            node: store.nodeId,
            logger: createLogger('silent'),
            client: moto.client(3),
            tickMs: 100,
          }),
        );
      }
      // A legal hold on node-b's first file before anything runs.
      await stores[1]!.captures.setLegalHold(ids[4]!.id, true);
      await Promise.all(services.map((s) => s.start()));
      const end = Date.now() + 30_000;
      while ((await ctx.store.archive.pending()) > 0 || (await ctx.store.captures.archivedLocal()).length + (await stores[1]!.captures.archivedLocal()).length > 1) {
        if (Date.now() > end) throw new Error('uploads did not finish');
        await sleep(100);
      }
      for (const s of services) await s.stop(Date.now() + 5000);

      const records = await ctx.store.ledger.page(1, 100);
      expect(records.map((r) => r.seq)).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
      expect(new Set(records.map((r) => r.node))).toEqual(new Set(['node-a', 'node-b']));
      let text = '';
      await exportJsonl(ctx.store.ledger, (c) => (text += c));
      expect(verifyLedger(Buffer.from(text), publicKey, key.keyId)).toMatchObject({ ok: true, records: 8 });

      const s3 = moto.client(3);
      try {
        for (const { store, id, abs } of ids) {
          const row = (await store.captures.byId(id))!;
          const rec = records.find((r) => r.seq === row.ledger_seq)!;
          expect(rec).toMatchObject({ kind: 'archive', node: store.nodeId, sha256: row.sha256, key: row.s3_key, versionId: row.s3_version_id });
          const head = await s3.send(new HeadObjectCommand({ Bucket: 'mg-fleet', Key: row.s3_key!, VersionId: row.s3_version_id!, ChecksumMode: 'ENABLED' }));
          expect(head.ChecksumSHA256).toBe(Buffer.from(row.sha256!, 'hex').toString('base64'));
          const held = id === ids[4]!.id && store === stores[1];
          expect([id, existsSync(abs), row.local_removed_us !== null]).toEqual([id, held, !held]);
        }
      } finally {
        s3.destroy();
        for (const s of services) s.client.destroy();
      }
      const counters = services.map((s) => s.snapshot());
      expect(counters.map((c) => c['archive.upload.ok'])).toEqual([4, 4]);
      expect(counters.map((c) => c['archive.ledger.appended'])).toEqual([4, 4]);
      expect(counters.map((c) => c['archive.local.removed'])).toEqual([4, 3]);
    }, 90_000);
  });
});
