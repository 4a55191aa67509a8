/** The archive's counters (docs/counters.md, "Archive"). Plain numbers on one object, as the detector's. */
export function newArchiveCounters() {
  return {
    /** Files whose upload S3 confirmed and the queue recorded. */
    'archive.upload.ok': 0,
    /** Bytes of those files. */
    'archive.upload.bytes': 0,
    /** Failed attempts that will be retried (S3, network, credentials). */
    'archive.upload.retry': 0,
    /** Files not archived because they no longer match their catalog SHA-256 or size, or are gone. */
    'archive.upload.integrity': 0,
    /** Uploads finished after another worker had taken the job over (its lease had ended). */
    'archive.upload.lost_lease': 0,
    /** Jobs a previous process of this node left claimed, queued again at start. */
    'archive.upload.recovered': 0,
    /** The job queue (the store) failed a claim or an update. */
    'archive.jobs.errors': 0,
    /** Ledger records appended for archived files (serve's archive, src/archive/service.ts). */
    'archive.ledger.appended': 0,
    /** Local copies removed archive.keepLocalHours after S3 confirmed them. */
    'archive.local.removed': 0,
  };
}

export type ArchiveCounters = ReturnType<typeof newArchiveCounters>;
