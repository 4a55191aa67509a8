/**
 * The evidence ledger: every archived file and every extraction appends one signed, hash-chained record
 * (record.ts) through a LedgerChain shared by the fleet. Wiring: the archive worker's `onUploaded` calls
 * appendArchive; the `/v1/pcap` route calls appendExtraction with the SHA-256 of the bytes it sent and
 * puts the record's seq in a response header.
 */
import { sign } from 'node:crypto';
import type { ArchiveFile, UploadResult } from '../archive/types.js';
import type { ChainHead, LedgerChain } from './chain.js';
import type { SigningKey } from './keys.js';
import { bodyHash, canonicalBody, GENESIS, LEDGER_VERSION, recordLine, type LedgerBody, type LedgerRecord } from './record.js';

export interface ExtractionInfo {
  /** SHA-256 (hex) and size of the bytes sent. */
  sha256: string;
  size: number;
  firstUs: number | null;
  lastUs: number | null;
  session: string | null;
  /** Seqs of the archive records of the files merged. */
  merged: number[];
}

/** Sign a body: the complete record. */
export function sealRecord(body: LedgerBody, key: SigningKey): LedgerRecord {
  return { ...body, hash: bodyHash(body), sig: sign(null, canonicalBody(body), key.privateKey).toString('base64') };
}

export class Ledger {
  constructor(
    private readonly chain: LedgerChain,
    private readonly key: SigningKey,
    readonly node: string,
    private readonly now: () => number = Date.now,
  ) {}

  private append(fields: Omit<LedgerBody, 'v' | 'seq' | 'time' | 'node' | 'keyId' | 'prev'>): Promise<LedgerRecord> {
    return this.chain.append((head: ChainHead | null) =>
      sealRecord(
        {
          v: LEDGER_VERSION,
          seq: (head?.seq ?? 0) + 1,
          time: new Date(this.now()).toISOString(),
          kind: fields.kind,
          node: this.node,
          bucket: fields.bucket,
          key: fields.key,
          versionId: fields.versionId,
          size: fields.size,
          sha256: fields.sha256,
          firstUs: fields.firstUs,
          lastUs: fields.lastUs,
          session: fields.session,
          merged: fields.merged,
          keyId: this.key.keyId,
          prev: head?.hash ?? GENESIS,
        },
        this.key,
      ),
    );
  }

  appendArchive(file: ArchiveFile, upload: UploadResult): Promise<LedgerRecord> {
    return this.append({
      kind: 'archive',
      bucket: upload.bucket,
      key: upload.key,
      versionId: upload.versionId,
      size: upload.size,
      sha256: file.sha256.toLowerCase(),
      firstUs: file.firstUs,
      lastUs: file.lastUs,
      session: file.sessionId,
      merged: [],
    });
  }

  appendExtraction(x: ExtractionInfo): Promise<LedgerRecord> {
    return this.append({
      kind: 'extraction',
      bucket: null,
      key: null,
      versionId: null,
      size: x.size,
      sha256: x.sha256.toLowerCase(),
      firstUs: x.firstUs,
      lastUs: x.lastUs,
      session: x.session,
      merged: [...x.merged].sort((a, b) => a - b),
    });
  }
}

/** The whole chain as JSON lines (one record a line, `\n` after each), page by page. */
export async function exportJsonl(chain: LedgerChain, write: (chunk: string) => unknown | Promise<unknown>, pageSize = 1000): Promise<number> {
  let from = 1;
  let n = 0;
  for (;;) {
    const page = await chain.page(from, pageSize);
    if (page.length === 0) return n;
    await write(page.map((r) => `${recordLine(r)}\n`).join(''));
    n += page.length;
    from = page.at(-1)!.seq + 1;
  }
}
