/**
 * The LedgerChain contract (src/ledger/chain.ts) as a reusable suite. `open(n)` returns n handles on ONE
 * chain, as n nodes would each open the shared store: appends through all of them at once must come out
 * as one unbroken chain that verifies. Run it for the in-memory chain now and the store's SQLite and
 * PostgreSQL chains later.
 */
import { createHash, generateKeyPairSync } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import type { LedgerChain } from '../../src/ledger/chain.js';
import { keyIdOf, type SigningKey } from '../../src/ledger/keys.js';
import { exportJsonl, Ledger } from '../../src/ledger/ledger.js';
import { GENESIS } from '../../src/ledger/record.js';
import { verifyLedger } from '../../src/ledger/verify.js';

const sha = (s: string) => createHash('sha256').update(s).digest('hex');

export function ledgerChainContract(name: string, open: (handles: number) => Promise<LedgerChain[]> | LedgerChain[]): void {
  describe(`LedgerChain contract: ${name}`, () => {
    const { privateKey, publicKey } = generateKeyPairSync('ed25519');
    const key: SigningKey = { privateKey, publicKey, keyId: keyIdOf(publicKey) };

    it('starts empty; appends from several handles at once make one unbroken chain that verifies', async () => {
      const handles = await open(3);
      expect(await handles[0]!.head()).toBeNull();
      const ledgers = handles.map((h, i) => new Ledger(h, key, `node-${i}`));
      const n = 30;
      await Promise.all(
        Array.from({ length: n }, (_, i) =>
          ledgers[i % 3]!.appendExtraction({ sha256: sha(`x${i}`), size: i, firstUs: null, lastUs: null, session: null, merged: [] }),
        ),
      );
      const all = await handles[1]!.page(1, 1000);
      expect(all.map((r) => r.seq)).toEqual(Array.from({ length: n }, (_, i) => i + 1));
      expect(all[0]!.prev).toBe(GENESIS);
      for (let i = 1; i < n; i++) expect(all[i]!.prev).toBe(all[i - 1]!.hash);
      expect(await handles[2]!.head()).toEqual({ seq: n, hash: all[n - 1]!.hash });
      let text = '';
      await exportJsonl(handles[0]!, (s) => (text += s), 7);
      expect(verifyLedger(Buffer.from(text), publicKey, key.keyId)).toMatchObject({ ok: true, records: n });
    });

    it('pages by seq and finds records by SHA-256', async () => {
      const [h] = await open(1);
      const l = new Ledger(h!, key, 'n');
      for (let i = 0; i < 5; i++) await l.appendExtraction({ sha256: sha(i === 3 ? 'dup' : `y${i}`), size: 1, firstUs: 1, lastUs: 2, session: 's', merged: [] });
      await l.appendExtraction({ sha256: sha('dup'), size: 1, firstUs: 1, lastUs: 2, session: 's', merged: [4] });
      expect((await h!.page(2, 2)).map((r) => r.seq)).toEqual([2, 3]);
      expect(await h!.page(7, 10)).toEqual([]);
      expect((await h!.findBySha256(sha('dup'))).map((r) => r.seq)).toEqual([4, 6]);
      expect(await h!.findBySha256(sha('none'))).toEqual([]);
    });

    it('a build that throws appends nothing, and the chain goes on from the same head', async () => {
      const [h] = await open(1);
      const l = new Ledger(h!, key, 'n');
      await l.appendExtraction({ sha256: sha('a'), size: 1, firstUs: null, lastUs: null, session: null, merged: [] });
      await expect(h!.append(() => { throw new Error('signing failed'); })).rejects.toThrow('signing failed');
      const r = await l.appendExtraction({ sha256: sha('b'), size: 1, firstUs: null, lastUs: null, session: null, merged: [] });
      expect(r.seq).toBe(2);
      expect(r.prev).toBe((await h!.page(1, 1))[0]!.hash);
    });
  });
}
