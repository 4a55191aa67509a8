/**
 * The SQLite engine: one better-sqlite3 connection (WAL). better-sqlite3 is synchronous; its answers
 * are handed back as settled promises. One mutex per connection orders every call, so a transaction
 * whose callback awaits store calls is never interleaved with another async caller (the calls inside
 * it run while it holds the mutex). The mutex belongs to the connection, not the engine: several
 * engines over one `Db` (a test's `storeFromDb(db)` here and there) still take turns.
 */

const tails = new WeakMap<Db, { tail: Promise<unknown> }>();
import type Database from 'better-sqlite3';
import type { Db } from './db.js';
import type { Engine, Param, RunResult, Sql } from './engine.js';

type Statement = Database.Statement<Param[], unknown>;

export class SqliteEngine implements Engine {
  readonly engine = 'sqlite' as const;
  private readonly mutex: { tail: Promise<unknown> };
  private readonly stmts = new Map<string, Statement>();
  /** The handle a transaction's callback gets: no mutex (the transaction holds it). */
  private readonly inner: Sql;

  constructor(
    readonly db: Db,
    readonly display: string,
    private readonly ownsDb = true,
  ) {
    let m = tails.get(db);
    if (m === undefined) tails.set(db, (m = { tail: Promise.resolve() }));
    this.mutex = m;
    const self = this;
    this.inner = {
      engine: 'sqlite',
      all: async <R>(sql: string, params?: readonly Param[]) => self.stmt(sql).all(...((params ?? []) as Param[])) as R[],
      get: async <R>(sql: string, params?: readonly Param[]) => self.stmt(sql).get(...((params ?? []) as Param[])) as R | undefined,
      run: async (sql: string, params?: readonly Param[]): Promise<RunResult> => ({ changes: self.stmt(sql).run(...((params ?? []) as Param[])).changes }),
    };
  }

  private stmt(sql: string): Statement {
    let s = this.stmts.get(sql);
    if (s === undefined) {
      s = this.db.prepare<Param[], unknown>(sql);
      // A bounded cache: repositories use a small fixed set of texts, list queries a few hundred shapes.
      if (this.stmts.size > 500) this.stmts.clear();
      this.stmts.set(sql, s);
    }
    return s;
  }

  private locked<T>(fn: () => Promise<T> | T): Promise<T> {
    const run = this.mutex.tail.then(fn, fn);
    this.mutex.tail = run.catch(() => undefined);
    return run;
  }

  all<R>(sql: string, params?: readonly Param[]): Promise<R[]> {
    return this.locked(() => this.inner.all<R>(sql, params));
  }

  get<R>(sql: string, params?: readonly Param[]): Promise<R | undefined> {
    return this.locked(() => this.inner.get<R>(sql, params));
  }

  run(sql: string, params?: readonly Param[]): Promise<RunResult> {
    return this.locked(() => this.inner.run(sql, params));
  }

  tx<T>(fn: (q: Sql) => Promise<T>): Promise<T> {
    return this.locked(async () => {
      // Defensive: with every caller behind the mutex a transaction is never open here; if code outside
      // the store opened one on the connection, join it rather than fail on a nested BEGIN.
      if (this.db.inTransaction) return fn(this.inner);
      this.db.exec('BEGIN IMMEDIATE');
      try {
        const out = await fn(this.inner);
        this.db.exec('COMMIT');
        return out;
      } catch (e) {
        if (this.db.inTransaction) this.db.exec('ROLLBACK');
        throw e;
      }
    });
  }

  exec(sql: string): Promise<void> {
    return this.locked(() => {
      this.db.exec(sql);
    });
  }

  async close(): Promise<void> {
    await this.locked(() => undefined);
    if (this.ownsDb && this.db.open) this.db.close();
  }
}
