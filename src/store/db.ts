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

export type Db = Database.Database;

const MIGRATIONS: readonly string[] = [
  // 1: capture catalog. Times are microseconds since the epoch (exact in a JS number until year 2255).
  `CREATE TABLE captures (
     id          INTEGER PRIMARY KEY,
     path        TEXT NOT NULL UNIQUE,      -- relative to the data directory
     vni         INTEGER NOT NULL,
     source_ip   TEXT NOT NULL,
     session_id  TEXT,                      -- from the manifest when the (source IP, VNI) pair maps to one
     worker      INTEGER NOT NULL DEFAULT 0,
     state       TEXT NOT NULL CHECK (state IN ('open', 'closed')),
     created_us  INTEGER NOT NULL,
     closed_us   INTEGER,
     first_us    INTEGER,
     last_us     INTEGER,
     packets     INTEGER NOT NULL DEFAULT 0,
     bytes       INTEGER NOT NULL DEFAULT 0, -- file size, header included
     sha256      TEXT,                       -- of the whole file, once closed
     close_reason TEXT
   );
   CREATE INDEX captures_pair ON captures (vni, source_ip, first_us);
   CREATE INDEX captures_session ON captures (session_id, first_us);
   CREATE INDEX captures_closed ON captures (state, closed_us);`,

  // 2: sessions observed on the data plane, (source IP, VNI) pairs; flushed from memory on a timer.
  `CREATE TABLE observed_sessions (
     source_ip   TEXT NOT NULL,
     vni         INTEGER NOT NULL,
     session_id  TEXT,
     first_seen  INTEGER NOT NULL,          -- ms since the epoch
     last_seen   INTEGER NOT NULL,
     packets     INTEGER NOT NULL DEFAULT 0,
     bytes       INTEGER NOT NULL DEFAULT 0,
     PRIMARY KEY (source_ip, vni)
   );`,

  // 3: findings. id is stable per incident; repeats bump count and last_seen.
  `CREATE TABLE findings (
     id          TEXT PRIMARY KEY,
     kind        TEXT NOT NULL,
     severity    TEXT NOT NULL,
     status      TEXT NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'resolved')),
     first_seen  INTEGER NOT NULL,          -- ms since the epoch
     last_seen   INTEGER NOT NULL,
     count       INTEGER NOT NULL DEFAULT 1,
     vni         INTEGER,
     source_ip   TEXT,
     session_id  TEXT,
     summary     TEXT NOT NULL,
     evidence    TEXT NOT NULL,             -- JSON
     correlated  TEXT,                      -- JSON: evidence from the other plane
     updated_at  INTEGER NOT NULL
   );
   CREATE INDEX findings_kind ON findings (kind, last_seen);
   CREATE INDEX findings_last ON findings (last_seen);
   CREATE INDEX findings_vni ON findings (vni);`,

  // 4: control-plane events kept for correlation with later traffic (and the reverse).
  `CREATE TABLE control_events (
     event_id    TEXT PRIMARY KEY,
     event_name  TEXT NOT NULL,
     event_time  INTEGER NOT NULL,          -- ms since the epoch
     actor_arn   TEXT,
     source_ip   TEXT,                      -- the caller's IP (sourceIPAddress)
     session_id  TEXT,
     eni         TEXT,
     vni         INTEGER,
     target_id   TEXT,
     filter_id   TEXT,
     error_code  TEXT,
     record      TEXT NOT NULL              -- JSON of the CloudTrail record
   );
   CREATE INDEX control_events_vni ON control_events (vni, event_time);
   CREATE INDEX control_events_session ON control_events (session_id, event_time);`,

  // 5: webhook outbox. One row per (event, endpoint); written in the transaction that writes the finding.
  `CREATE TABLE outbox (
     id              INTEGER PRIMARY KEY,
     msg_id          TEXT NOT NULL,         -- webhook-id: the same across retries (receiver idempotency key)
     endpoint        TEXT NOT NULL,         -- webhook name
     event_type      TEXT NOT NULL,
     finding_id      TEXT,
     payload         TEXT NOT NULL,         -- JSON body as sent
     created_at      INTEGER NOT NULL,      -- ms since the epoch
     next_attempt_at INTEGER NOT NULL,
     attempts        INTEGER NOT NULL DEFAULT 0,
     state           TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'delivered', 'failed')),
     last_status     INTEGER,
     last_error      TEXT,
     delivered_at    INTEGER,
     UNIQUE (msg_id, endpoint)
   );
   CREATE INDEX outbox_due ON outbox (state, next_attempt_at);
   CREATE TABLE webhook_endpoints (
     name         TEXT PRIMARY KEY,
     disabled_at  INTEGER,
     reason       TEXT
   );`,

  // 6: chain of custody: every download and extraction.
  `CREATE TABLE audit_log (
     id          INTEGER PRIMARY KEY,
     at          INTEGER NOT NULL,          -- ms since the epoch
     actor       TEXT NOT NULL,             -- token name
     role        TEXT NOT NULL,
     remote_ip   TEXT,
     action      TEXT NOT NULL,
     target      TEXT NOT NULL,
     status      INTEGER NOT NULL,
     bytes       INTEGER,
     sha256      TEXT,
     detail      TEXT                       -- JSON
   );
   CREATE INDEX audit_at ON audit_log (at);`,

  // 7: alert outbox lookups (src/alert/): the newest row per (finding, endpoint), read on every finding
  // event to rate-limit and coalesce updates; and each endpoint's due rows, read by the dispatcher.
  `CREATE INDEX outbox_finding ON outbox (finding_id, endpoint, id);
   CREATE INDEX outbox_endpoint_due ON outbox (endpoint, state, next_attempt_at);`,

  // 8: the Gateway Load Balancer endpoint (and attachment) a session's packets arrived through, from
  // AWS's GENEVE options (docs/decoding.md, GENEVE); NULL for packets sent straight to the collector.
  `ALTER TABLE captures ADD COLUMN gwlb_endpoint_id TEXT;
   ALTER TABLE captures ADD COLUMN gwlb_attachment_id TEXT;
   ALTER TABLE observed_sessions ADD COLUMN gwlb_endpoint_id TEXT;
   ALTER TABLE observed_sessions ADD COLUMN gwlb_attachment_id TEXT;`,
];

export const SCHEMA_VERSION = MIGRATIONS.length;

/** Open (creating when needed) and migrate the database. `:memory:` works for tests. */
export function openDb(file: string): Db {
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
    migrate(db);
  } catch (e) {
    db.close();
    if (e instanceof MgError) throw e;
    const code = (e as { code?: string }).code;
    throw new MgError('MG_ERR_CATALOG_OPEN', `${file}: ${(e as Error).message}${code ? ` (${code})` : ''}`, { cause: e });
  }
  return db;
}

function migrate(db: Db): void {
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
