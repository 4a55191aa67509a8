/**
 * When the local copy of an archived file may go: `archive.keepLocalHours` after S3 confirmed the upload
 * (until then reads prefer the local copy). A pure decision over catalog-style rows, so the store's
 * retention pass can call it with whatever query it runs; deleting is the caller's.
 * Never a file whose upload is not confirmed: the local copy is then the only one.
 */
export interface LocalCopy {
  captureId: number;
  path: string;
  /** When S3 confirmed the upload (ms since the epoch); null when not (yet) archived. */
  archivedMs: number | null;
  /** The file is still being written. */
  open: boolean;
  /** The local file is already removed. */
  removed?: boolean;
}

export function localCopiesToRemove<T extends LocalCopy>(rows: Iterable<T>, nowMs: number, keepLocalHours: number): T[] {
  const keepMs = keepLocalHours * 3_600_000;
  const out: T[] = [];
  for (const r of rows) {
    if (r.open || r.removed || r.archivedMs === null) continue;
    if (r.archivedMs + keepMs <= nowMs) out.push(r);
  }
  return out;
}
