/**
 * Applying migrations (src/store/migrations.ts) and reporting where a database stands.
 *
 * PostgreSQL: under `pg_advisory_lock(MIGRATION_LOCK)` on one connection, so that of several nodes
 * starting at once one applies each version and the others wait, then find nothing pending. Each
 * version runs in its own transaction together with its `schema_migrations` row: a failure leaves
 * the database at the previous version. SQLite: PRAGMA user_version, one transaction per version.
 */
import { MgError } from '../errors.js';
import { migrate as migrateSqlite, sqliteVersion } from './db.js';
import { MIGRATION_NAMES, POSTGRES_MIGRATIONS, SCHEMA_VERSION } from './migrations.js';
import type { PgEngine } from './postgres.js';
import type { SqliteEngine } from './sqlite.js';

/** "mirrorguard" as an int4, the key of the migration lock. */
export const MIGRATION_LOCK = 0x6d697272;

export interface MigrationStatus {
  engine: 'sqlite' | 'postgres';
  /** The database's schema version. */
  version: number;
  /** The version this mirrorguard brings. */
  latest: number;
  pending: { version: number; name: string }[];
}

function pendingFrom(version: number): { version: number; name: string }[] {
  const out: { version: number; name: string }[] = [];
  for (let v = version + 1; v <= SCHEMA_VERSION; v++) out.push({ version: v, name: MIGRATION_NAMES[v - 1]! });
  return out;
}

async function pgVersion(e: PgEngine): Promise<number> {
  const t = await e.get<{ t: string | null }>(`SELECT to_regclass('schema_migrations')::text AS t`);
  if (!t?.t) return 0;
  return (await e.get<{ v: number | null }>(`SELECT MAX(version) AS v FROM schema_migrations`))?.v ?? 0;
}

export async function migrationStatus(e: SqliteEngine | PgEngine): Promise<MigrationStatus> {
  const version = e.engine === 'sqlite' ? sqliteVersion(e.db) : await pgVersion(e);
  return { engine: e.engine, version, latest: SCHEMA_VERSION, pending: pendingFrom(version) };
}

/** Apply what is pending; the versions applied by this call. */
export async function applyMigrations(e: SqliteEngine | PgEngine): Promise<number[]> {
  if (e.engine === 'sqlite') {
    const before = sqliteVersion(e.db);
    if (before > SCHEMA_VERSION) throw newer(e.display, before);
    migrateSqlite(e.db);
    return pendingFrom(before).map((p) => p.version);
  }
  return e.withAdvisoryLock(MIGRATION_LOCK, async (c) => {
    await c.exec(`CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)`);
    const current = (await c.get<{ v: number | null }>(`SELECT MAX(version) AS v FROM schema_migrations`))?.v ?? 0;
    if (current > SCHEMA_VERSION) throw newer(e.display, current);
    const applied: number[] = [];
    for (let v = current + 1; v <= SCHEMA_VERSION; v++) {
      await c.exec('BEGIN');
      try {
        await c.exec(POSTGRES_MIGRATIONS[v - 1]!);
        await c.run(`INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)`, [v, MIGRATION_NAMES[v - 1]!, Date.now()]);
        await c.exec('COMMIT');
      } catch (err) {
        await c.exec('ROLLBACK').catch(() => undefined);
        throw new MgError('MG_ERR_STORE_MIGRATE', `${e.display}: migration ${v} (${MIGRATION_NAMES[v - 1]}): ${(err as Error).message}`, { cause: err });
      }
      applied.push(v);
    }
    return applied;
  });
}

function newer(display: string, v: number): MgError {
  return new MgError('MG_ERR_CATALOG_OPEN', `${display}: schema version ${v} is newer than this mirrorguard (${SCHEMA_VERSION}); upgrade mirrorguard`);
}
