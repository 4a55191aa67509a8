/**
 * Versioned schema migrations, append-only, one list per engine with the same numbering. SQLite keeps
 * its version in PRAGMA user_version (as before the store layer, so existing databases carry on);
 * PostgreSQL in the table `schema_migrations`, applied under an advisory lock so that several nodes
 * starting at once apply each version once (src/store/migrate.ts).
 */
export const SQLITE_MIGRATIONS: readonly string[] = [
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

  // 9: the store layer (src/store/): the node that wrote a row (one node on SQLite: node.id), and the
  // outbox lease (who is delivering a row, until when) so that a fleet sharing PostgreSQL delivers
  // each row from one node at a time. SQLite carries the same columns so that \`store copy\` moves them.
  `ALTER TABLE captures ADD COLUMN node TEXT NOT NULL DEFAULT '';
   ALTER TABLE observed_sessions ADD COLUMN node TEXT NOT NULL DEFAULT '';
   ALTER TABLE audit_log ADD COLUMN node TEXT NOT NULL DEFAULT '';
   ALTER TABLE outbox ADD COLUMN lease_owner TEXT;
   ALTER TABLE outbox ADD COLUMN lease_until INTEGER;`,

  // 10: the archive (src/archive/) and the evidence ledger (src/ledger/). archive_jobs is the upload
  // queue (ArchiveJobs): one row per (node, capture), claimed by lease. ledger is the signed hash chain
  // (LedgerChain): seq is the primary key, so two appenders that built on the same head cannot both
  // land; \`line\` is the record's canonical export line (src/ledger/record.ts). The catalog gets the S3
  // location of an archived file, when its local copy was removed, and the legal hold.
  `CREATE TABLE archive_jobs (
     id             INTEGER PRIMARY KEY,
     node           TEXT NOT NULL,
     capture_id     INTEGER NOT NULL,
     file           TEXT NOT NULL,             -- JSON ArchiveFile
     state          TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'claimed', 'done', 'failed')),
     attempts       INTEGER NOT NULL DEFAULT 0,
     not_before_ms  INTEGER NOT NULL,
     owner          TEXT,
     lease_until_ms INTEGER,
     last_error     TEXT,
     result         TEXT,                      -- JSON UploadResult once done
     done_ms        INTEGER,
     UNIQUE (node, capture_id)
   );
   CREATE INDEX archive_jobs_due ON archive_jobs (node, state, not_before_ms, id);
   CREATE TABLE ledger (
     seq     INTEGER PRIMARY KEY,
     hash    TEXT NOT NULL UNIQUE,
     kind    TEXT NOT NULL,
     sha256  TEXT NOT NULL,
     line    TEXT NOT NULL
   );
   CREATE INDEX ledger_sha256 ON ledger (sha256);
   ALTER TABLE captures ADD COLUMN s3_bucket TEXT;
   ALTER TABLE captures ADD COLUMN s3_key TEXT;
   ALTER TABLE captures ADD COLUMN s3_version_id TEXT;
   ALTER TABLE captures ADD COLUMN archived_us INTEGER;
   ALTER TABLE captures ADD COLUMN ledger_seq INTEGER;
   ALTER TABLE captures ADD COLUMN local_removed_us INTEGER;
   ALTER TABLE captures ADD COLUMN legal_hold INTEGER NOT NULL DEFAULT 0;`,
];

/**
 * The same schema in PostgreSQL, version for version (`store status` compares numbers across engines).
 * INTEGER PRIMARY KEY becomes an identity column; times and counts are BIGINT (read back as numbers,
 * src/store/postgres.ts). Applied under an advisory lock, each version in its own transaction with
 * its row in `schema_migrations`.
 */
export const POSTGRES_MIGRATIONS: readonly string[] = [
  `CREATE TABLE captures (
     id          BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
     path        TEXT NOT NULL,
     vni         BIGINT NOT NULL,
     source_ip   TEXT NOT NULL,
     session_id  TEXT,
     worker      BIGINT NOT NULL DEFAULT 0,
     state       TEXT NOT NULL CHECK (state IN ('open', 'closed')),
     created_us  BIGINT NOT NULL,
     closed_us   BIGINT,
     first_us    BIGINT,
     last_us     BIGINT,
     packets     BIGINT NOT NULL DEFAULT 0,
     bytes       BIGINT NOT NULL DEFAULT 0,
     sha256      TEXT,
     close_reason TEXT,
     CONSTRAINT captures_path_key UNIQUE (path)
   );
   CREATE INDEX captures_pair ON captures (vni, source_ip, first_us);
   CREATE INDEX captures_session ON captures (session_id, first_us);
   CREATE INDEX captures_closed ON captures (state, closed_us);`,

  `CREATE TABLE observed_sessions (
     source_ip   TEXT NOT NULL,
     vni         BIGINT NOT NULL,
     session_id  TEXT,
     first_seen  BIGINT NOT NULL,
     last_seen   BIGINT NOT NULL,
     packets     BIGINT NOT NULL DEFAULT 0,
     bytes       BIGINT NOT NULL DEFAULT 0,
     PRIMARY KEY (source_ip, vni)
   );`,

  `CREATE TABLE findings (
     id          TEXT PRIMARY KEY,
     kind        TEXT NOT NULL,
     severity    TEXT NOT NULL,
     status      TEXT NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'resolved')),
     first_seen  BIGINT NOT NULL,
     last_seen   BIGINT NOT NULL,
     count       BIGINT NOT NULL DEFAULT 1,
     vni         BIGINT,
     source_ip   TEXT,
     session_id  TEXT,
     summary     TEXT NOT NULL,
     evidence    TEXT NOT NULL,
     correlated  TEXT,
     updated_at  BIGINT NOT NULL
   );
   CREATE INDEX findings_kind ON findings (kind, last_seen);
   CREATE INDEX findings_last ON findings (last_seen);
   CREATE INDEX findings_vni ON findings (vni);`,

  `CREATE TABLE control_events (
     event_id    TEXT PRIMARY KEY,
     event_name  TEXT NOT NULL,
     event_time  BIGINT NOT NULL,
     actor_arn   TEXT,
     source_ip   TEXT,
     session_id  TEXT,
     eni         TEXT,
     vni         BIGINT,
     target_id   TEXT,
     filter_id   TEXT,
     error_code  TEXT,
     record      TEXT NOT NULL
   );
   CREATE INDEX control_events_vni ON control_events (vni, event_time);
   CREATE INDEX control_events_session ON control_events (session_id, event_time);`,

  `CREATE TABLE outbox (
     id              BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
     msg_id          TEXT NOT NULL,
     endpoint        TEXT NOT NULL,
     event_type      TEXT NOT NULL,
     finding_id      TEXT,
     payload         TEXT NOT NULL,
     created_at      BIGINT NOT NULL,
     next_attempt_at BIGINT NOT NULL,
     attempts        BIGINT NOT NULL DEFAULT 0,
     state           TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'delivered', 'failed')),
     last_status     BIGINT,
     last_error      TEXT,
     delivered_at    BIGINT,
     UNIQUE (msg_id, endpoint)
   );
   CREATE INDEX outbox_due ON outbox (state, next_attempt_at);
   CREATE TABLE webhook_endpoints (
     name         TEXT PRIMARY KEY,
     disabled_at  BIGINT,
     reason       TEXT
   );`,

  `CREATE TABLE audit_log (
     id          BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
     at          BIGINT NOT NULL,
     actor       TEXT NOT NULL,
     role        TEXT NOT NULL,
     remote_ip   TEXT,
     action      TEXT NOT NULL,
     target      TEXT NOT NULL,
     status      BIGINT NOT NULL,
     bytes       BIGINT,
     sha256      TEXT,
     detail      TEXT
   );
   CREATE INDEX audit_at ON audit_log (at);`,

  `CREATE INDEX outbox_finding ON outbox (finding_id, endpoint, id);
   CREATE INDEX outbox_endpoint_due ON outbox (endpoint, state, next_attempt_at);`,

  `ALTER TABLE captures ADD COLUMN gwlb_endpoint_id TEXT;
   ALTER TABLE captures ADD COLUMN gwlb_attachment_id TEXT;
   ALTER TABLE observed_sessions ADD COLUMN gwlb_endpoint_id TEXT;
   ALTER TABLE observed_sessions ADD COLUMN gwlb_attachment_id TEXT;`,

  // 9: node ids; a capture path is unique per node (every collector numbers its own files).
  `ALTER TABLE captures ADD COLUMN node TEXT NOT NULL DEFAULT '';
   ALTER TABLE captures DROP CONSTRAINT captures_path_key;
   ALTER TABLE captures ADD CONSTRAINT captures_node_path UNIQUE (node, path);
   ALTER TABLE observed_sessions ADD COLUMN node TEXT NOT NULL DEFAULT '';
   ALTER TABLE audit_log ADD COLUMN node TEXT NOT NULL DEFAULT '';
   ALTER TABLE outbox ADD COLUMN lease_owner TEXT;
   ALTER TABLE outbox ADD COLUMN lease_until BIGINT;`,

  // 10: archive upload queue, evidence ledger, catalog S3 location and legal hold.
  `CREATE TABLE archive_jobs (
     id             BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
     node           TEXT NOT NULL,
     capture_id     BIGINT NOT NULL,
     file           TEXT NOT NULL,
     state          TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'claimed', 'done', 'failed')),
     attempts       BIGINT NOT NULL DEFAULT 0,
     not_before_ms  BIGINT NOT NULL,
     owner          TEXT,
     lease_until_ms BIGINT,
     last_error     TEXT,
     result         TEXT,
     done_ms        BIGINT,
     UNIQUE (node, capture_id)
   );
   CREATE INDEX archive_jobs_due ON archive_jobs (node, state, not_before_ms, id);
   CREATE TABLE ledger (
     seq     BIGINT PRIMARY KEY,
     hash    TEXT NOT NULL UNIQUE,
     kind    TEXT NOT NULL,
     sha256  TEXT NOT NULL,
     line    TEXT NOT NULL
   );
   CREATE INDEX ledger_sha256 ON ledger (sha256);
   ALTER TABLE captures ADD COLUMN s3_bucket TEXT;
   ALTER TABLE captures ADD COLUMN s3_key TEXT;
   ALTER TABLE captures ADD COLUMN s3_version_id TEXT;
   ALTER TABLE captures ADD COLUMN archived_us BIGINT;
   ALTER TABLE captures ADD COLUMN ledger_seq BIGINT;
   ALTER TABLE captures ADD COLUMN local_removed_us BIGINT;
   ALTER TABLE captures ADD COLUMN legal_hold BIGINT NOT NULL DEFAULT 0;`,
];

/** One line per version, for `store status`. */
export const MIGRATION_NAMES: readonly string[] = [
  'capture catalog',
  'observed sessions',
  'findings',
  'control-plane events',
  'webhook outbox and endpoints',
  'audit log',
  'outbox lookup indexes',
  'GWLB endpoint and attachment columns',
  'node ids and outbox leases',
  'archive jobs, evidence ledger, S3 location and legal hold',
];

if (SQLITE_MIGRATIONS.length !== POSTGRES_MIGRATIONS.length || MIGRATION_NAMES.length !== SQLITE_MIGRATIONS.length) {
  throw new Error('src/store/migrations.ts: the engines must have the same versions');
}

export const SCHEMA_VERSION = SQLITE_MIGRATIONS.length;
