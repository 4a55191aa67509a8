/**
 * The one seam between mirrorguard and a database: a handful of async calls that both engines answer
 * (better-sqlite3 in `sqlite.ts`, `pg` in `postgres.ts`). Repositories (`captures.ts`, `findings.ts`
 * ...) are written against it and are the only place SQL is written.
 *
 * SQL uses `?` placeholders (the PostgreSQL engine numbers them `$1, $2 ...`); a `?` never appears in
 * a literal. Where the two dialects differ, a repository asks `q.engine` and picks its text.
 */
export type EngineName = 'sqlite' | 'postgres';

export type Param = string | number | null;

export interface RunResult {
  /** Rows inserted, updated or deleted. */
  changes: number;
}

/** Queries on a connection: the engine itself, or a transaction's handle. */
export interface Sql {
  readonly engine: EngineName;
  all<R>(sql: string, params?: readonly Param[]): Promise<R[]>;
  get<R>(sql: string, params?: readonly Param[]): Promise<R | undefined>;
  run(sql: string, params?: readonly Param[]): Promise<RunResult>;
}

export interface Engine extends Sql {
  /**
   * Run `fn` in one transaction: committed when it resolves, rolled back when it throws. `fn` does
   * store work only (no file or network I/O): on SQLite the transaction holds the one connection.
   */
  tx<T>(fn: (q: Sql) => Promise<T>): Promise<T>;
  /** Several statements separated by `;`, no parameters (migrations). */
  exec(sql: string): Promise<void>;
  close(): Promise<void>;
  /** What to show in logs and errors: the URL without its password. */
  readonly display: string;
}
