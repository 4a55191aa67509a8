/**
 * What the archive needs from persistence, as async interfaces, so that the store (SQLite or PostgreSQL,
 * src/store/) can implement them and several nodes can share one queue. The in-memory implementations
 * here (memory-jobs.ts) define the contract and serve the tests; a store-backed one must behave the same
 * (test/archive/jobs-contract.ts runs the same checks against any implementation).
 */

/** A closed PCAP file to archive: what the catalog knows about it. */
export interface ArchiveFile {
  /** Catalog row id (unique per node's catalog; with a shared store, unique in the fleet). */
  captureId: number;
  /** Node (collector) that wrote the file: the instance ID or the configured node name. */
  node: string;
  /** Local path of the closed file. */
  path: string;
  vni: number;
  sourceIp: string;
  /** Manifest session ID when the pair was authorized, else null. */
  sessionId: string | null;
  /** When the file was opened (catalog created_us), microseconds since the epoch: the key's hour for an empty file. */
  createdUs: number;
  /** First and last packet time, microseconds since the epoch (null for an empty file). */
  firstUs: number | null;
  lastUs: number | null;
  packets: number;
  /** File size in bytes, global header included. */
  bytes: number;
  /** Hex SHA-256 of the whole file, as the catalog recorded it at close. */
  sha256: string;
}

/** Where an upload landed and what S3 said about it. */
export interface UploadResult {
  bucket: string;
  key: string;
  /** S3 version ID (versioned bucket), or null. */
  versionId: string | null;
  etag: string;
  /** Hex SHA-256 of the whole file (equal to ArchiveFile.sha256). */
  sha256: string;
  /**
   * The checksum S3 stored and verified, as S3 reports it: for a single PUT the base64 SHA-256 of the
   * whole object; for multipart the composite `base64(SHA-256(part digests))-N`.
   */
  s3ChecksumSha256: string;
  /** 1 for a single PUT, else the number of parts. */
  parts: number;
  size: number;
  /** Retention set on the object, or null. */
  retainUntil: Date | null;
}

export type ArchiveJobState = 'pending' | 'claimed' | 'done' | 'failed';

export interface ArchiveJob {
  id: number;
  file: ArchiveFile;
  state: ArchiveJobState;
  /** Failed attempts so far. */
  attempts: number;
  /** Not claimable before this time (ms since the epoch): the retry backoff. */
  notBeforeMs: number;
  /** Claiming worker (`node/pid/n`) and when its lease ends; a claimed job whose lease has ended is claimable again. */
  owner: string | null;
  leaseUntilMs: number | null;
  lastError: string | null;
  /** Set when done. */
  result: UploadResult | null;
  /** When the upload was confirmed (ms since the epoch), else null. */
  doneMs: number | null;
}

/**
 * The upload queue. Every method is atomic on its own; claim() is the one that must be atomic across
 * nodes (PostgreSQL: `UPDATE ... WHERE id = (SELECT id ... FOR UPDATE SKIP LOCKED LIMIT 1) RETURNING *`).
 *
 * Recovery after kill -9 is by lease: claim() hands out a job for leaseMs; the worker renews the lease
 * while it uploads; a job whose lease ended without done()/failed() (its process died) is handed out
 * again by the node's next claim(). A node that restarts (its owner prefix is `NODE/`) also calls
 * releaseOwner() at start, so its interrupted jobs go back at once instead of after the lease. Several
 * upload workers of one node (or a second process during a restart) share the node's jobs by lease.
 */
export interface ArchiveJobs {
  /** Queue a closed file. Idempotent per (node, captureId): a second call returns the existing job. */
  enqueue(file: ArchiveFile, nowMs: number): Promise<ArchiveJob>;
  /**
   * The oldest job of `node` (file.node) that is pending with notBeforeMs <= now, or claimed with an
   * ended lease; it becomes claimed by `owner` until now + leaseMs. null when none is due. Only the node
   * that wrote a file has it on disk, so a node claims only its own files.
   */
  claim(node: string, owner: string, nowMs: number, leaseMs: number): Promise<ArchiveJob | null>;
  /** Extend the lease of a job this owner holds; false when it no longer holds it (the lease ended and another took it). */
  renew(id: number, owner: string, leaseUntilMs: number): Promise<boolean>;
  /** Confirmed upload. false (and no change) when `owner` no longer holds the job. */
  done(id: number, owner: string, result: UploadResult, nowMs: number): Promise<boolean>;
  /**
   * A failed attempt: back to pending, claimable from retryAtMs; or, with retryAtMs null, failed for good
   * (the file no longer matches its catalog SHA-256, or is gone). false when `owner` no longer holds it.
   */
  failed(id: number, owner: string, error: string, retryAtMs: number | null): Promise<boolean>;
  /** Return every job claimed by an owner starting with `ownerPrefix` to pending (a restarted node's own). Returns how many. */
  releaseOwner(ownerPrefix: string): Promise<number>;
  /** Jobs not yet done or failed for good. */
  pending(): Promise<number>;
  get(id: number): Promise<ArchiveJob | null>;
  /** Done jobs of one node, for the local-copy decision (local-retention.ts). */
  doneFor(node: string): Promise<ArchiveJob[]>;
}
