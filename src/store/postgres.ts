/**
 * The PostgreSQL engine (`pg`): a small pool, `?` placeholders numbered for the server, BIGINT and
 * NUMERIC read back as JS numbers (every integer we store is below 2^53: microseconds until 2255,
 * counts, byte totals). TLS (RDS): with `ca`, the server certificate must chain to it and match the
 * host name (verify-full). The password never reaches a log line or an error message.
 */
import pg from 'pg';
import { MgError } from '../errors.js';
import type { Engine, Param, RunResult, Sql } from './engine.js';
import { redactSecret } from './url.js';

const INT8_OID = 20;
const NUMERIC_OID = 1700;

const TYPES = {
  getTypeParser(oid: number, format?: string): (v: string) => unknown {
    if (oid === INT8_OID || oid === NUMERIC_OID) return (v: string) => Number(v);
    return (pg.types.getTypeParser as (o: number, f?: string) => (v: string) => unknown)(oid, format);
  },
};

const numbered = new Map<string, string>();

/** `?` to `$1, $2 ...`, once per text. */
export function numberPlaceholders(sql: string): string {
  let out = numbered.get(sql);
  if (out === undefined) {
    let i = 0;
    out = sql.replace(/\?/g, () => `$${++i}`);
    if (numbered.size > 2000) numbered.clear();
    numbered.set(sql, out);
  }
  return out;
}

export interface PgOptions {
  url: string;
  display: string;
  /** From PGPASSWORD or store.passwordFile when the URL has none. */
  password?: string;
  /** PEM of the CA that signed the server certificate; turns TLS on with verify-full. */
  ca?: string;
  /** Pool size (default 4). */
  max?: number;
  /** Connect timeout (default 5000 ms). */
  connectTimeoutMs?: number;
  /**
   * Client-side query timeout (default 30,000 ms): a server that stops answering without closing the
   * connection (a network partition) fails the query instead of hanging the API request or the queue.
   */
  queryTimeoutMs?: number;
  /** Idle connection errors (the server went away); the pool replaces the connection. */
  onError?: (e: Error) => void;
}

type Queryable = pg.Pool | pg.PoolClient;

function handle(c: Queryable): Sql {
  return {
    engine: 'postgres',
    all: async <R>(sql: string, params?: readonly Param[]) => (await c.query(numberPlaceholders(sql), params as Param[] | undefined)).rows as R[],
    get: async <R>(sql: string, params?: readonly Param[]) => (await c.query(numberPlaceholders(sql), params as Param[] | undefined)).rows[0] as R | undefined,
    run: async (sql: string, params?: readonly Param[]): Promise<RunResult> => ({ changes: (await c.query(numberPlaceholders(sql), params as Param[] | undefined)).rowCount ?? 0 }),
  };
}

export class PgEngine implements Engine {
  readonly engine = 'postgres' as const;
  readonly display: string;
  readonly pool: pg.Pool;
  private readonly q: Sql;
  private readonly password: string | undefined;

  constructor(opts: PgOptions) {
    this.display = opts.display;
    const u = new URL(opts.url);
    this.password = u.password ? decodeURIComponent(u.password) : opts.password;
    const sslmode = u.searchParams.get('sslmode');
    // The driver reads sslmode itself and would override `ssl`; we decide TLS here.
    u.searchParams.delete('sslmode');
    const tls = opts.ca !== undefined || (sslmode !== null && sslmode !== 'disable');
    this.pool = new pg.Pool({
      connectionString: u.toString(),
      ...(this.password !== undefined ? { password: this.password } : {}),
      ...(tls ? { ssl: { rejectUnauthorized: true, ...(opts.ca !== undefined ? { ca: opts.ca } : {}) } } : {}),
      max: opts.max ?? 4,
      connectionTimeoutMillis: opts.connectTimeoutMs ?? 5000,
      query_timeout: opts.queryTimeoutMs ?? 30_000,
      idleTimeoutMillis: 30_000,
      types: TYPES,
      application_name: 'mirrorguard',
    });
    this.pool.on('error', (e) => opts.onError?.(this.clean(e)));
    this.q = handle(this.pool);
  }

  /** The error with the password cut out of its message. */
  clean(e: unknown): Error {
    const err = e instanceof Error ? e : new Error(String(e));
    if (this.password) err.message = redactSecret(err.message, this.password);
    return err;
  }

  private async wrap<T>(p: Promise<T>): Promise<T> {
    try {
      return await p;
    } catch (e) {
      throw this.clean(e);
    }
  }

  all<R>(sql: string, params?: readonly Param[]): Promise<R[]> {
    return this.wrap(this.q.all<R>(sql, params));
  }

  get<R>(sql: string, params?: readonly Param[]): Promise<R | undefined> {
    return this.wrap(this.q.get<R>(sql, params));
  }

  run(sql: string, params?: readonly Param[]): Promise<RunResult> {
    return this.wrap(this.q.run(sql, params));
  }

  async tx<T>(fn: (q: Sql) => Promise<T>): Promise<T> {
    const c = await this.wrap(this.pool.connect());
    let broken = false;
    try {
      await c.query('BEGIN');
      const out = await fn(handle(c));
      await c.query('COMMIT');
      return out;
    } catch (e) {
      // A connection that cannot even roll back (the server went away) is not returned to the pool.
      await c.query('ROLLBACK').catch(() => (broken = true));
      throw this.clean(e);
    } finally {
      c.release(broken);
    }
  }

  /** Run `fn` on one connection holding a session advisory lock (migrations: one node at a time). */
  async withAdvisoryLock<T>(key: number, fn: (q: Sql & { exec(sql: string): Promise<void> }) => Promise<T>): Promise<T> {
    const c = await this.wrap(this.pool.connect());
    try {
      await c.query('SELECT pg_advisory_lock($1)', [key]);
      try {
        const h = handle(c);
        return await fn({ ...h, exec: async (sql: string) => void (await c.query(sql)) });
      } finally {
        await c.query('SELECT pg_advisory_unlock($1)', [key]).catch(() => undefined);
      }
    } catch (e) {
      throw this.clean(e);
    } finally {
      c.release();
    }
  }

  async exec(sql: string): Promise<void> {
    await this.wrap(this.pool.query(sql));
  }

  /** Connect once, or throw MG_ERR_STORE_UNREACHABLE naming the URL without its password. */
  async ping(): Promise<void> {
    try {
      await this.pool.query('SELECT 1');
    } catch (e) {
      const err = this.clean(e);
      throw new MgError('MG_ERR_STORE_UNREACHABLE', `${this.display}: ${err.message}`, { cause: err });
    }
  }

  async close(): Promise<void> {
    await this.pool.end();
  }
}
