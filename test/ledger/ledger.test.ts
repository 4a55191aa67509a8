/**
 * The evidence ledger: records appended by several nodes through one chain, signed with Ed25519 and
 * hash-chained; the JSONL export verifies offline, and any change to a file, a record, a signature, the
 * order, or any single bit of the export is detected and named.
 */
import { createHash, generateKeyPairSync } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { MemoryLedgerChain } from '../../src/ledger/chain.js';
import { keyIdOf, type SigningKey } from '../../src/ledger/keys.js';
import { exportJsonl, Ledger } from '../../src/ledger/ledger.js';
import { GENESIS, recordLine, type LedgerRecord } from '../../src/ledger/record.js';
import { verifyLedger } from '../../src/ledger/verify.js';
import type { ArchiveFile, UploadResult } from '../../src/archive/types.js';

function newKey(): SigningKey {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  return { privateKey, publicKey, keyId: keyIdOf(publicKey) };
}

const sha = (s: string) => createHash('sha256').update(s).digest('hex');

function archived(i: number, node: string): [ArchiveFile, UploadResult] {
  const f: ArchiveFile = { captureId: i, node, path: `/data/pcap/f${i}.pcap`, vni: 42, sourceIp: '10.0.1.5', sessionId: i % 2 ? 'tms-0123456789abcdef0' : null, createdUs: 1_764_763_200_000_000, firstUs: 1_764_763_200_000_000 + i, lastUs: 1_764_763_260_000_000 + i, packets: 10 + i, bytes: 1000 + i, sha256: sha(`file ${i}`) };
  const u: UploadResult = { bucket: 'evidence', key: `mg/vni=42/src=10.0.1.5/2025/12/03/12/${node}-f${i}.pcap`, versionId: `v${i}`, etag: '"e"', sha256: f.sha256, s3ChecksumSha256: '', parts: 1, size: f.bytes, retainUntil: null };
  return [f, u];
}

async function buildChain(n: number, key = newKey()) {
  const chain = new MemoryLedgerChain();
  const nodes = ['i-0aaa', 'i-0bbb', 'i-0ccc'].map((node) => new Ledger(chain, key, node, () => 1_764_763_300_000));
  // Three nodes append at once: the chain serializes them.
  await Promise.all(Array.from({ length: n }, (_, i) => nodes[i % 3]!.appendArchive(...archived(i + 1, nodes[i % 3]!.node))));
  let text = '';
  await exportJsonl(chain, (s) => (text += s), 4);
  return { chain, key, text, bytes: Buffer.from(text), nodes };
}

describe('ledger', () => {
  it('chains records from three nodes appending concurrently; the export verifies', async () => {
    const { chain, key, bytes, nodes } = await buildChain(12);
    const all = await chain.page(1, 100);
    expect(all.map((r) => r.seq)).toEqual(Array.from({ length: 12 }, (_, i) => i + 1));
    expect(all[0]!.prev).toBe(GENESIS);
    for (let i = 1; i < all.length; i++) expect(all[i]!.prev).toBe(all[i - 1]!.hash);
    expect(new Set(all.map((r) => r.node))).toEqual(new Set(['i-0aaa', 'i-0bbb', 'i-0ccc']));
    const x = await nodes[0]!.appendExtraction({ sha256: sha('merged bytes'), size: 5000, firstUs: 1, lastUs: 2, session: null, merged: [3, 1, 2] });
    expect(x).toMatchObject({ seq: 13, kind: 'extraction', merged: [1, 2, 3], bucket: null });
    let text = '';
    await exportJsonl(chain, (s) => (text += s));
    const r = verifyLedger(Buffer.from(text), key.publicKey, key.keyId, sha('file 5'));
    expect(r).toMatchObject({ ok: true, records: 13, problems: [] });
    expect(r.matches.map((m) => m.seq)).toEqual([5]);
    expect(verifyLedger(Buffer.from(text), key.publicKey, key.keyId, sha('merged bytes')).matches.map((m) => m.seq)).toEqual([13]);
    expect(bytes.toString().split('\n').length).toBe(13); // 12 lines and the final newline
  });

  it("names a file whose SHA-256 is in no record (a one-byte change in the file)", async () => {
    const { key, bytes } = await buildChain(5);
    const r = verifyLedger(bytes, key.publicKey, key.keyId, sha('file 3!'));
    expect(r.ok).toBe(false);
    expect(r.problems).toEqual([`the file's SHA-256 ${sha('file 3!')} is in no ledger record`]);
  });

  it('names a changed record: its hash no longer matches its contents', async () => {
    const { key, text } = await buildChain(5);
    const lines = text.split('\n');
    lines[2] = lines[2]!.replace('"size":1003', '"size":1004');
    const r = verifyLedger(Buffer.from(lines.join('\n')), key.publicKey, key.keyId);
    expect(r.problems).toContain('line 3 (seq 3): record hash does not match its contents (the record was changed)');
    expect(r.problems).toContain('line 3 (seq 3): signature does not verify');
  });

  it('names a changed signature', async () => {
    const { key, text } = await buildChain(5);
    const lines = text.split('\n');
    const rec = JSON.parse(lines[3]!) as LedgerRecord;
    const sig = Buffer.from(rec.sig, 'base64');
    sig[10] ^= 0x01;
    lines[3] = recordLine({ ...rec, sig: sig.toString('base64') });
    expect(verifyLedger(Buffer.from(lines.join('\n')), key.publicKey, key.keyId).problems).toEqual(['line 4 (seq 4): signature does not verify']);
  });

  it('names a re-signed forgery by another key, a removed record and a reordering', async () => {
    const { key, text } = await buildChain(5);
    const other = await buildChain(5);
    expect(verifyLedger(other.bytes, key.publicKey, key.keyId).problems[0]).toBe(`line 1 (seq 1): signed by key ${other.key.keyId}, not by the given public key (${key.keyId})`);
    const lines = text.split('\n');
    const dropped = [...lines.slice(0, 2), ...lines.slice(3)].join('\n');
    expect(verifyLedger(Buffer.from(dropped), key.publicKey, key.keyId).problems).toEqual([
      'line 3 (seq 4): seq 4 follows seq 2: the chain has a gap or is out of order',
      'line 3 (seq 4): prev does not match the hash of the record before it: the chain is broken',
    ]);
    const swapped = [lines[1], lines[0], ...lines.slice(2)].join('\n');
    expect(verifyLedger(Buffer.from(swapped), key.publicKey, key.keyId).problems).toContain('line 1 (seq 2): seq 2 follows seq 0: the chain has a gap or is out of order');
    expect(verifyLedger(Buffer.from(text.slice(0, -1)), key.publicKey, key.keyId).problems).toEqual(['the ledger export does not end with a newline (cut short?)']);
  });

  it('detects every single-bit flip of a one-record export, exhaustively (signature padding bits included)', async () => {
    const { key, bytes } = await buildChain(1);
    const missed: number[] = [];
    for (let bit = 0; bit < bytes.length * 8; bit++) {
      const b = Buffer.from(bytes);
      b[bit >> 3] ^= 1 << (bit & 7);
      if (verifyLedger(b, key.publicKey, key.keyId).ok) missed.push(bit);
    }
    expect(missed).toEqual([]);
    // The case that once slipped through: the last base64 digit of the signature spelled with other unused bits.
    const rec = JSON.parse(bytes.toString()) as LedgerRecord;
    const last = rec.sig[85]!;
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
    const twin = alphabet[alphabet.indexOf(last) ^ 0b0001]!; // same top bits, another unused low bit
    const forged = `${recordLine({ ...rec, sig: rec.sig.slice(0, 85) + twin + '==' })}\n`;
    expect(Buffer.from(rec.sig, 'base64').equals(Buffer.from(JSON.parse(forged).sig, 'base64'))).toBe(true);
    expect(verifyLedger(Buffer.from(forged), key.publicKey, key.keyId).problems).toEqual(['line 1: sig: must be a canonical base64 Ed25519 signature (88 characters)']);
  });

  it('detects any single-bit flip anywhere in a longer export (property)', async () => {
    const { key, bytes } = await buildChain(4);
    expect(verifyLedger(bytes, key.publicKey, key.keyId).ok).toBe(true);
    fc.assert(
      fc.property(fc.integer({ min: 0, max: bytes.length * 8 - 1 }), (bit) => {
        const b = Buffer.from(bytes);
        b[bit >> 3] ^= 1 << (bit & 7);
        const r = verifyLedger(b, key.publicKey, key.keyId);
        return !r.ok && r.problems.length > 0;
      }),
      { numRuns: 2000 },
    );
  });
});
