/**
 * The evidence ledger (table `ledger`): LedgerChain (src/ledger/chain.ts) in the store, one chain for the
 * whole fleet. An append runs in one transaction that first takes the chain's lock, reads the head,
 * calls `build` (which signs) and inserts the record:
 *   - PostgreSQL: pg_advisory_xact_lock(LEDGER_LOCK), released at commit or rollback, so appends from
 *     every node are serialized; `seq` is the primary key, so even without the lock a lost race fails
 *     rather than forks the chain.
 *   - SQLite: the transaction is BEGIN IMMEDIATE, which already excludes every other writer.
 * `line` holds the canonical export line, so what is read back is byte for byte what was signed.
 */
import type { ChainHead, LedgerChain } from '../ledger/chain.js';
import { recordLine, type LedgerRecord } from '../ledger/record.js';
import type { Engine } from './engine.js';

/** The advisory lock key of the chain head (any constant distinct from the migration lock). */
export const LEDGER_LOCK = 0x6d67_6c64; // 'mgld'

const parse = (line: string) => JSON.parse(line) as LedgerRecord;

export class LedgerRepo implements LedgerChain {
  constructor(private readonly q: Engine) {}

  append(build: (head: ChainHead | null) => LedgerRecord): Promise<LedgerRecord> {
    return this.q.tx(async (q) => {
      if (q.engine === 'postgres') await q.get(`SELECT pg_advisory_xact_lock(?)`, [LEDGER_LOCK]);
      const head = (await q.get<ChainHead>(`SELECT seq, hash FROM ledger ORDER BY seq DESC LIMIT 1`)) ?? null;
      const rec = build(head);
      if (rec.seq !== (head?.seq ?? 0) + 1 || (head !== null && rec.prev !== head.hash)) throw new Error(`ledger append out of order: seq ${rec.seq} on head ${head?.seq ?? 0}`);
      const line = recordLine(rec);
      await q.run(`INSERT INTO ledger (seq, hash, kind, sha256, line) VALUES (?, ?, ?, ?, ?)`, [rec.seq, rec.hash, rec.kind, rec.sha256, line]);
      return parse(line);
    });
  }

  async head(): Promise<ChainHead | null> {
    return (await this.q.get<ChainHead>(`SELECT seq, hash FROM ledger ORDER BY seq DESC LIMIT 1`)) ?? null;
  }

  async page(fromSeq: number, limit: number): Promise<LedgerRecord[]> {
    const rows = await this.q.all<{ line: string }>(`SELECT line FROM ledger WHERE seq >= ? ORDER BY seq LIMIT ?`, [fromSeq, limit]);
    return rows.map((r) => parse(r.line));
  }

  async get(seq: number): Promise<LedgerRecord | null> {
    const r = await this.q.get<{ line: string }>(`SELECT line FROM ledger WHERE seq = ?`, [seq]);
    return r ? parse(r.line) : null;
  }

  async findBySha256(sha256: string): Promise<LedgerRecord[]> {
    const rows = await this.q.all<{ line: string }>(`SELECT line FROM ledger WHERE sha256 = ? ORDER BY seq`, [sha256]);
    return rows.map((r) => parse(r.line));
  }
}
