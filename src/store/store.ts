/**
 * The store: one object with a repository per table group, on either engine. Nothing outside
 * src/store/ writes SQL; everything else asks a repository.
 *
 *   captures       the capture catalog          CapturesRepo       (captures.ts)
 *   observed       observed sessions            ObservedRepo       (observed.ts)
 *   findings       findings, one row per incident fleet-wide       FindingsRepo (findings.ts)
 *   outbox         webhook outbox and endpoints OutboxRepo         (outbox.ts)
 *   audit          the chain of custody         AuditRepo          (audit.ts)
 *   controlEvents  CloudTrail events for correlation  ControlEventsRepo (control-events.ts)
 *   archive        the S3 upload queue (ArchiveJobs)     ArchiveRepo  (archive.ts)
 *   ledger         the signed evidence chain (LedgerChain) LedgerRepo (ledger.ts)
 *
 * `tx(fn)` runs repository calls (each takes an optional transaction handle as its last argument)
 * in one transaction.
 */
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { MgError } from '../errors.js';
import { ArchiveRepo } from './archive.js';
import { AuditRepo } from './audit.js';
import { CapturesRepo } from './captures.js';
import { ControlEventsRepo } from './control-events.js';
import { openDb, type Db } from './db.js';
import type { EngineName, Sql } from './engine.js';
import { FindingsRepo } from './findings.js';
import { LedgerRepo } from './ledger.js';
import { applyMigrations, migrationStatus, type MigrationStatus } from './migrate.js';
import { ObservedRepo } from './observed.js';
import { OutboxRepo } from './outbox.js';
import type { PgEngine } from './postgres.js';
import { SqliteEngine } from './sqlite.js';
import { parseStoreUrl, redactUrl } from './url.js';

/** The SQLite file under the data directory when store.url is not set. */
export const DEFAULT_DB_FILE = 'mirrorguard.db';

export interface StoreOptions {
  /** `sqlite:PATH` or `postgres://...`. */
  url: string;
  /** This node's id (default: the host name). */
  nodeId?: string;
  /** A file holding the PostgreSQL password (when the URL and PGPASSWORD have none). */
  passwordFile?: string;
  /** PEM file of the CA for the server certificate; turns on TLS with verify-full. */
  tlsCa?: string;
  /** Apply pending migrations at open (default true). */
  migrate?: boolean;
  /** PostgreSQL pool size. */
  poolSize?: number;
  /** PostgreSQL connect timeout, ms. */
  connectTimeoutMs?: number;
  /** Idle connection errors (PostgreSQL), already without the password. */
  onError?: (e: Error) => void;
}

export class Store {
  readonly captures: CapturesRepo;
  readonly observed: ObservedRepo;
  readonly findings: FindingsRepo;
  readonly outbox: OutboxRepo;
  readonly audit: AuditRepo;
  readonly controlEvents: ControlEventsRepo;
  readonly archive: ArchiveRepo;
  readonly ledger: LedgerRepo;

  constructor(
    readonly engine: SqliteEngine | PgEngine,
    readonly nodeId: string,
  ) {
    this.captures = new CapturesRepo(engine, nodeId);
    this.observed = new ObservedRepo(engine, nodeId);
    this.findings = new FindingsRepo(engine);
    this.outbox = new OutboxRepo(engine, nodeId);
    this.audit = new AuditRepo(engine, nodeId);
    this.controlEvents = new ControlEventsRepo(engine);
    this.archive = new ArchiveRepo(engine);
    this.ledger = new LedgerRepo(engine);
  }

  get kind(): EngineName {
    return this.engine.engine;
  }

  /** The URL without its password. */
  get display(): string {
    return this.engine.display;
  }

  /** The better-sqlite3 connection on SQLite (the synchronous code that still holds it), else null. */
  get sqlite(): Db | null {
    return this.engine.engine === 'sqlite' ? this.engine.db : null;
  }

  tx<T>(fn: (q: Sql) => Promise<T>): Promise<T> {
    return this.engine.tx(fn);
  }

  /** One round trip (healthz). */
  async ping(): Promise<boolean> {
    try {
      await this.engine.get('SELECT 1 AS one');
      return true;
    } catch {
      return false;
    }
  }

  status(): Promise<MigrationStatus> {
    return migrationStatus(this.engine);
  }

  migrate(): Promise<number[]> {
    return applyMigrations(this.engine);
  }

  close(): Promise<void> {
    return this.engine.close();
  }
}

export function defaultNodeId(): string {
  return hostname();
}

/** store.url's default: the SQLite file in the data directory. */
export function defaultStoreUrl(dataDir: string): string {
  return `sqlite:${join(dataDir, DEFAULT_DB_FILE)}`;
}

/**
 * Open the store named by `opts.url` and (by default) migrate it. PostgreSQL unreachable:
 * MG_ERR_STORE_UNREACHABLE naming the URL without its password.
 */
export async function openStore(opts: StoreOptions): Promise<Store> {
  const u = parseStoreUrl(opts.url);
  const nodeId = opts.nodeId ?? defaultNodeId();
  if (u.engine === 'sqlite') {
    const db = openDb(u.target, { migrate: opts.migrate !== false });
    return new Store(new SqliteEngine(db, u.display), nodeId);
  }
  let password = process.env.PGPASSWORD || undefined;
  if (password === undefined && opts.passwordFile !== undefined) {
    try {
      password = readFileSync(opts.passwordFile, 'utf8').replace(/\r?\n$/, '');
    } catch (e) {
      throw new MgError('MG_ERR_STORE_URL', `store.passwordFile ${opts.passwordFile}: ${(e as Error).message}`, { cause: e });
    }
  }
  let ca: string | undefined;
  if (opts.tlsCa !== undefined) {
    try {
      ca = readFileSync(opts.tlsCa, 'utf8');
    } catch (e) {
      throw new MgError('MG_ERR_STORE_URL', `store.tls.ca ${opts.tlsCa}: ${(e as Error).message}`, { cause: e });
    }
  }
  // Loaded only for a PostgreSQL store: pg and its modules cost the embedded default about 7 MB of RSS.
  const { PgEngine } = await import('./postgres.js');
  const engine = new PgEngine({
    url: u.target,
    display: u.display,
    ...(password !== undefined ? { password } : {}),
    ...(ca !== undefined ? { ca } : {}),
    ...(opts.poolSize !== undefined ? { max: opts.poolSize } : {}),
    ...(opts.connectTimeoutMs !== undefined ? { connectTimeoutMs: opts.connectTimeoutMs } : {}),
    ...(opts.onError !== undefined ? { onError: opts.onError } : {}),
  });
  try {
    await engine.ping();
    if (opts.migrate !== false) await applyMigrations(engine);
  } catch (e) {
    await engine.close().catch(() => undefined);
    throw e;
  }
  return new Store(engine, nodeId);
}

/** A store over a better-sqlite3 connection someone else opened (and closes). */
export function storeFromDb(db: Db, nodeId: string = defaultNodeId(), display = 'sqlite:'): Store {
  return new Store(new SqliteEngine(db, display, false), nodeId);
}

export { redactUrl };
