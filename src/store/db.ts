/**
 * The SQLite database under the data directory (better-sqlite3, synchronous, WAL). It holds the capture
 * catalog, findings, the webhook outbox, observed sessions, control-plane events and the audit log.
 * Nothing on the per-packet path touches it: writes happen when a file opens or closes, on the first
 * packet of a new session, on a timer, or from the API.
 *
 * Schema changes are append-only migrations keyed by PRAGMA user_version.
 */
import Database from 'better-sqlite3';
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { MgError } from '../errors.js';
import { SQLITE_MIGRATIONS } from './migrations.js';

export type Db = Database.Database;

const MIGRATIONS = SQLITE_MIGRATIONS;

export const SCHEMA_VERSION = MIGRATIONS.length;

/** Open (creating when needed) and migrate the database. `:memory:` works for tests. */
export function openDb(file: string, opts: { migrate?: boolean } = {}): Db {
  let db: Db;
  try {
    if (file !== ':memory:') mkdirSync(dirname(file), { recursive: true });
    db = new Database(file);
  } catch (e) {
    throw new MgError('MG_ERR_CATALOG_OPEN', `${file}: ${(e as Error).message}`, { cause: e });
  }
  try {
    // The first statement reads the file: a corrupt or foreign file fails here (SQLITE_NOTADB), not at open.
    db.pragma('journal_mode = WAL');
    // NORMAL in WAL mode: a committed transaction survives a process crash; only power loss can roll
    // back the last few, which the recovery scan on start reconciles against the files.
    db.pragma('synchronous = NORMAL');
    db.pragma('foreign_keys = ON');
    db.pragma('busy_timeout = 5000');
    if (opts.migrate !== false) migrate(db);
  } catch (e) {
    db.close();
    if (e instanceof MgError) throw e;
    const code = (e as { code?: string }).code;
    throw new MgError('MG_ERR_CATALOG_OPEN', `${file}: ${(e as Error).message}${code ? ` (${code})` : ''}`, { cause: e });
  }
  return db;
}

/**
 * Check, without writing, that an existing file is a SQLite database this process can read (startup
 * probe of the data directory). Throws MG_ERR_CATALOG_OPEN.
 */
export function probeDb(file: string): void {
  let db: Db | undefined;
  try {
    db = new Database(file, { readonly: true, fileMustExist: true });
    db.pragma('user_version', { simple: true });
    db.prepare('SELECT count(*) FROM sqlite_master').get();
  } catch (e) {
    const code = (e as { code?: string }).code;
    throw new MgError('MG_ERR_CATALOG_OPEN', `${file}: ${(e as Error).message}${code ? ` (${code})` : ''}`, { cause: e });
  } finally {
    db?.close();
  }
}

/** The schema version of a SQLite database (PRAGMA user_version). */
export function sqliteVersion(db: Db): number {
  return db.pragma('user_version', { simple: true }) as number;
}

export function migrate(db: Db): void {
  const current = db.pragma('user_version', { simple: true }) as number;
  if (current > MIGRATIONS.length) {
    throw new MgError('MG_ERR_CATALOG_OPEN', `schema version ${current} is newer than this mirrorguard (${MIGRATIONS.length}); upgrade mirrorguard`);
  }
  for (let v = current; v < MIGRATIONS.length; v++) {
    db.transaction(() => {
      db.exec(MIGRATIONS[v]!);
      db.pragma(`user_version = ${v + 1}`);
    })();
  }
}
