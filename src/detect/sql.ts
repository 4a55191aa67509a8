/**
 * Prepared statements cached per database and SQL text. Preparing costs tens of microseconds, which
 * would dominate the first-packet path (a handful of small queries); the set of SQL texts the detector
 * uses is small and fixed, so the cache stays small.
 */
import type Database from 'better-sqlite3';
import type { Db } from '../store/db.js';

const cache = new WeakMap<Db, Map<string, Database.Statement<unknown[], unknown>>>();

export function prepared<P extends unknown[] = unknown[], R = unknown>(db: Db, sql: string): Database.Statement<P, R> {
  let byText = cache.get(db);
  if (byText === undefined) {
    byText = new Map();
    cache.set(db, byText);
  }
  let st = byText.get(sql);
  if (st === undefined) {
    st = db.prepare<unknown[], unknown>(sql);
    byText.set(sql, st);
  }
  return st as unknown as Database.Statement<P, R>;
}
