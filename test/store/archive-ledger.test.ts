/**
 * The store's ArchiveJobs (store.archive) and LedgerChain (store.ledger) on both engines: the same
 * contract suites as the in-memory implementations, plus what only a shared database shows: two Store
 * instances (two nodes) appending to one chain at once make one unbroken chain, two nodes claiming at
 * once never take the same job, and a confirmed upload puts its S3 location into the catalog.
 */
import { createHash, generateKeyPairSync } from 'node:crypto';
import { expect, it } from 'vitest';
import { keyIdOf, type SigningKey } from '../../src/ledger/keys.js';
import { exportJsonl, Ledger } from '../../src/ledger/ledger.js';
import { verifyLedger } from '../../src/ledger/verify.js';
import { contractFile, contractResult, jobsContract } from '../archive/jobs-contract.js';
import { Store } from '../../src/store/store.js';
import { describeEngines, type EngineContext } from '../helpers/engines.js';
import { ledgerChainContract } from '../ledger/chain-contract.js';

const sha = (s: string) => createHash('sha256').update(s).digest('hex');

/**
 * Another node's Store on the same database. PostgreSQL: its own pool. SQLite: the same connection (a
 * second better-sqlite3 connection in the same thread would block the event loop in BEGIN IMMEDIATE while
 * the first waits to commit; SQLite is the one-node store, where other processes and worker threads
 * wait on the file lock instead).
 */
async function otherNode(ctx: EngineContext, nodeId: string): Promise<Store> {
  return ctx.engine === 'postgres' ? ctx.open({ nodeId }) : new Store(ctx.store.engine, nodeId);
}

describeEngines('store archive and ledger', (ctx) => {
  jobsContract(`store (${ctx.engine})`, () => ctx.store.archive);

  ledgerChainContract(`store (${ctx.engine})`, async (n) => {
    const out = [ctx.store.ledger];
    for (let i = 1; i < n; i++) out.push((await otherNode(ctx, `node-${i}`)).ledger);
    return out;
  });

  it('two Store instances (two nodes; on PostgreSQL two pools) appending concurrently make one unbroken chain that verifies', async () => {
    const { privateKey, publicKey } = generateKeyPairSync('ed25519');
    const key: SigningKey = { privateKey, publicKey, keyId: keyIdOf(publicKey) };
    const other = await otherNode(ctx, 'node-b');
    const a = new Ledger(ctx.store.ledger, key, 'node-a');
    const b = new Ledger(other.ledger, key, 'node-b');
    const n = 40;
    const made = await Promise.all(
      Array.from({ length: n }, (_, i) => (i % 2 ? a : b).appendExtraction({ sha256: sha(`c${i}`), size: i, firstUs: null, lastUs: null, session: null, merged: [] })),
    );
    expect(new Set(made.map((r) => r.seq)).size).toBe(n);
    const all = await other.ledger.page(1, 1000);
    expect(all.map((r) => r.seq)).toEqual(Array.from({ length: n }, (_, i) => i + 1));
    for (let i = 1; i < n; i++) expect(all[i]!.prev).toBe(all[i - 1]!.hash);
    expect(new Set(all.map((r) => r.node))).toEqual(new Set(['node-a', 'node-b']));
    let text = '';
    await exportJsonl(ctx.store.ledger, (s) => (text += s), 9);
    expect(verifyLedger(Buffer.from(text), publicKey, key.keyId)).toMatchObject({ ok: true, records: n });
  });

  it('a record reads back byte for byte as signed; a second insert of a taken seq fails instead of forking', async () => {
    const { privateKey, publicKey } = generateKeyPairSync('ed25519');
    const key: SigningKey = { privateKey, publicKey, keyId: keyIdOf(publicKey) };
    const l = new Ledger(ctx.store.ledger, key, 'node-a');
    const r1 = await l.appendExtraction({ sha256: sha('one'), size: 1, firstUs: 5, lastUs: 6, session: 'tms-1', merged: [] });
    expect(await ctx.store.ledger.get(1)).toEqual(r1);
    // A builder that ignores the head (a stale view) cannot land a second seq 1.
    await expect(ctx.store.ledger.append(() => ({ ...r1 }))).rejects.toThrow();
    expect((await ctx.store.ledger.page(1, 10)).length).toBe(1);
  });

  it('two nodes claiming at once never take the same job; done() writes the S3 location into the catalog', async () => {
    const other = await otherNode(ctx, 'node-a');
    const ids: number[] = [];
    for (let i = 0; i < 12; i++) {
      const id = await ctx.store.captures.open({ path: `pcap/f${i}.pcap`, vni: 1, sourceIp: '10.0.0.1', sessionId: null, worker: 0, createdUs: i, firstUs: i });
      ids.push(id);
      await ctx.store.archive.enqueue({ ...contractFile(id, 'node-a'), path: `pcap/f${i}.pcap` }, 0);
    }
    const claims = await Promise.all(Array.from({ length: 16 }, (_, i) => (i % 2 ? other : ctx.store).archive.claim('node-a', `node-a/${i}/0`, 1, 60_000)));
    const got = claims.filter((c) => c !== null).map((c) => c!.file.captureId);
    expect(got.sort((x, y) => x - y)).toEqual([...ids].sort((x, y) => x - y));
    const first = claims.find((c) => c !== null)!;
    expect(await ctx.store.archive.done(first.id, first.owner!, contractResult('pcap/key'), 1234)).toBe(true);
    expect(await ctx.store.captures.byId(first.file.captureId)).toMatchObject({ s3_bucket: 'b', s3_key: 'pcap/key', s3_version_id: 'v1', archived_us: 1_234_000 });
    expect(await ctx.store.archive.pendingFor('node-a')).toBe(11);
    expect((await ctx.store.archive.byCapture('node-a', first.file.captureId))?.state).toBe('done');
  });

  it('releaseOwner matches the prefix literally (LIKE wildcards in a node name match nothing else)', async () => {
    await ctx.store.archive.enqueue(contractFile(1, 'n_1'), 0);
    await ctx.store.archive.enqueue(contractFile(2, 'nx1'), 0);
    await ctx.store.archive.claim('n_1', 'n_1/1/0', 0, 60_000);
    await ctx.store.archive.claim('nx1', 'nx1/1/0', 0, 60_000);
    expect(await ctx.store.archive.releaseOwner('n_1/')).toBe(1);
    expect((await ctx.store.archive.byCapture('nx1', 2))?.state).toBe('claimed');
  });
});
