/**
 * One SQLite commit per event-loop turn for the writes made at the packet path's edges: the first packet
 * of a new pair (the detector's verdict, the observed-session row, the file's catalog row) and a file's
 * close (its final catalog row). Each of those used to commit on its own, about 80 µs of the main
 * thread each on the bench VM (40 µs of CPU: the WAL append and its locks), so 10,000 new sessions
 * arriving together held the receiver for about a second and the kernel dropped what it could not
 * queue. Batched, a row costs about 5 µs.
 *
 * join() opens a transaction unless one is open (a tick's batch, the detector's own transaction, or an
 * earlier join in this turn) and commits it from setImmediate: after the receive batch that made the
 * rows, before the timers of the next turn. Code that runs db.transaction() in between nests as a
 * savepoint (better-sqlite3), so it needs no change.
 *
 * Crash safety: the rows of one turn commit together, milliseconds later than before. A file whose
 * first buffer reaches the disk within those milliseconds and whose row is then lost to a crash is
 * adopted by recovery on the next start (src/collector/recovery.ts), as a file whose insert failed is.
 */
import type { Db } from '../store/db.js';
import type { Logger } from '../util/log.js';

interface State {
  open: boolean;
  begin: { run(): unknown };
  commit: { run(): unknown };
  rollback: { run(): unknown };
  logger: Logger | null;
  flush: () => void;
}

const states = new WeakMap<Db, State>();

function stateOf(db: Db): State {
  let s = states.get(db);
  if (s === undefined) {
    const st: State = {
      open: false,
      begin: db.prepare('BEGIN'),
      commit: db.prepare('COMMIT'),
      rollback: db.prepare('ROLLBACK'),
      logger: null,
      flush: () => commitNow(db, st),
    };
    s = st;
    states.set(db, s);
  }
  return s;
}

function commitNow(db: Db, s: State): void {
  if (!s.open) return;
  s.open = false;
  if (!db.inTransaction) return;
  try {
    s.commit.run();
  } catch (e) {
    s.logger?.error({ err: e }, 'catalog commit failed; the rows of this moment are lost and recovery adopts their files');
    try {
      if (db.inTransaction) s.rollback.run();
    } catch {
      /* nothing more to do */
    }
  }
}

/**
 * Before an edge write: make it part of this turn's transaction. Cheap when one is open already. Never
 * throws (a failed BEGIN leaves the write to commit on its own).
 */
export function joinEdgeCommit(db: Db, logger?: Logger): void {
  const s = stateOf(db);
  if (logger !== undefined) s.logger = logger;
  if (s.open || db.inTransaction) return;
  try {
    s.begin.run();
  } catch {
    return;
  }
  s.open = true;
  setImmediate(s.flush);
}

/** Commit this turn's edge writes now (shutdown, or a caller about to wait on something else). */
export function commitEdgeWrites(db: Db): void {
  const s = states.get(db);
  if (s !== undefined) commitNow(db, s);
}
