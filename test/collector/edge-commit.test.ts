/**
 * One commit per event-loop turn for the first-packet edge (src/collector/edge-commit.ts): rows written
 * after joinEdgeCommit are visible to another connection only once the turn ends; a db.transaction()
 * inside nests (as a savepoint) and its rollback undoes only its own rows; commitEdgeWrites commits now.
 */
import Database from 'better-sqlite3';
import { join } from 'node:path';
import { expect, it } from 'vitest';
import { commitEdgeWrites, joinEdgeCommit } from '../../src/collector/edge-commit.js';
import { openDb } from '../../src/store/db.js';
import { useTmpDir } from '../helpers/tmp.js';

const tmp = useTmpDir('mg-edge-commit-');
const turn = () => new Promise((r) => setImmediate(r));

it('commits the rows of one turn together, after the turn; nested transactions are savepoints', async () => {
  const file = join(tmp.path, 'mirrorguard.db');
  const db = openDb(file);
  db.exec('CREATE TABLE t (n INTEGER)');
  const other = new Database(file, { readonly: true });
  const count = () => (other.prepare('SELECT COUNT(*) AS c FROM t').get() as { c: number }).c;
  const insert = db.prepare('INSERT INTO t (n) VALUES (?)');

  for (let i = 0; i < 100; i++) {
    joinEdgeCommit(db);
    insert.run(i);
  }
  // A transaction of its own inside the turn's (the detector's): it nests; a failing one rolls back alone.
  db.transaction(() => insert.run(100))();
  expect(() =>
    db.transaction(() => {
      insert.run(101);
      throw new Error('rolled back');
    })(),
  ).toThrow('rolled back');
  expect(db.inTransaction).toBe(true);
  expect(count()).toBe(0);
  await turn();
  expect(db.inTransaction).toBe(false);
  expect(count()).toBe(101);

  // commitEdgeWrites commits at once (shutdown), and the pending setImmediate then finds nothing to do.
  joinEdgeCommit(db);
  insert.run(200);
  commitEdgeWrites(db);
  expect(count()).toBe(102);
  await turn();
  expect(count()).toBe(102);
  other.close();
  db.close();
});
