/**
 * Where the chain lives. Appends must be serialized across every node of the fleet: each record's `prev`
 * is the hash of the record before it, so two nodes must never both build on the same head. The store
 * implements LedgerChain on PostgreSQL (or SQLite for one node) by running `build` inside one transaction
 * that holds a lock on the chain head (e.g. `SELECT seq, hash FROM ledger ORDER BY seq DESC LIMIT 1 FOR
 * UPDATE` on a one-row head table, or pg_advisory_xact_lock), with `seq` the primary key so a lost race
 * can only fail, never fork. MemoryLedgerChain is the same contract in one process.
 */
import type { LedgerRecord } from './record.js';

export interface ChainHead {
  seq: number;
  hash: string;
}

export interface LedgerChain {
  /**
   * Append atomically: call `build` with the current head (null for an empty chain), store the record it
   * returns, which must have seq = head.seq + 1 (1 first) and prev = head.hash, and resolve with it.
   * `build` is synchronous (it signs); appends from every node are serialized.
   */
  append(build: (head: ChainHead | null) => LedgerRecord): Promise<LedgerRecord>;
  head(): Promise<ChainHead | null>;
  /** Records with seq >= fromSeq, ascending, at most `limit` (GET /v1/ledger pages with this). */
  page(fromSeq: number, limit: number): Promise<LedgerRecord[]>;
  /** Records whose sha256 is this hex digest (a file archived, or an extraction's bytes). */
  findBySha256(sha256: string): Promise<LedgerRecord[]>;
}

export class MemoryLedgerChain implements LedgerChain {
  private readonly records: LedgerRecord[] = [];
  private tail: Promise<unknown> = Promise.resolve();

  append(build: (head: ChainHead | null) => LedgerRecord): Promise<LedgerRecord> {
    const run = this.tail.then(async () => {
      // Yield once, as a database round trip would, so concurrent appenders really interleave here.
      await new Promise((r) => setImmediate(r));
      const last = this.records.at(-1);
      const head = last ? { seq: last.seq, hash: last.hash } : null;
      const rec = build(head);
      if (rec.seq !== (head?.seq ?? 0) + 1 || (head && rec.prev !== head.hash)) throw new Error(`ledger append out of order: seq ${rec.seq} on head ${head?.seq ?? 0}`);
      this.records.push(structuredClone(rec));
      return structuredClone(rec);
    });
    this.tail = run.catch(() => undefined);
    return run;
  }

  async head(): Promise<ChainHead | null> {
    const last = this.records.at(-1);
    return last ? { seq: last.seq, hash: last.hash } : null;
  }

  async page(fromSeq: number, limit: number): Promise<LedgerRecord[]> {
    return this.records.filter((r) => r.seq >= fromSeq).slice(0, limit).map((r) => structuredClone(r));
  }

  async findBySha256(sha256: string): Promise<LedgerRecord[]> {
    return this.records.filter((r) => r.sha256 === sha256).map((r) => structuredClone(r));
  }
}
