/**
 * The CloudTrail side of the detector, independent of transport: `cloudtrail scan` feeds it files,
 * `serve` feeds it HTTP bodies (POST /v1/cloudtrail), and both get the same ControlEvents and the same
 * findings. Nothing here does I/O except the file readers re-exported from parse.ts.
 */
import { classifyRecord, type SkipReason } from './normalize.js';
import { recordsFromJson, recordsFromText } from './parse.js';
import type { ControlEvent } from './types.js';

export type { ControlEvent } from './types.js';
export { classifyRecord, normalizeRecord, type SkipReason } from './normalize.js';
export {
  listCloudTrailFiles,
  readCloudTrailFile,
  readCloudTrailPath,
  readCloudTrailStream,
  recordsFromJson,
  recordsFromText,
  MAX_DECOMPRESSED_BYTES,
  type ReadItem,
  type ReadOptions,
} from './parse.js';
export { CONTROL_RULES, evaluateControlEvent, type ControlRule } from './rules/index.js';
export { FindingAggregator } from './aggregate.js';

export interface ControlEventBatch {
  /** Traffic-mirroring calls (read-only ones included: the rules decide what is a finding). */
  events: ControlEvent[];
  /** Records found in the input. */
  records: number;
  /** Records that are not traffic-mirroring calls, or that we could not read, by reason. */
  skipped: Partial<Record<SkipReason, number>>;
}

/** Normalize a batch of raw records. Never throws. */
export function controlEventsFromRecords(records: readonly unknown[]): ControlEventBatch {
  const out: ControlEventBatch = { events: [], records: records.length, skipped: {} };
  for (const r of records) {
    const c = classifyRecord(r);
    if (c.ok) out.events.push(c.event);
    else out.skipped[c.reason] = (out.skipped[c.reason] ?? 0) + 1;
  }
  return out;
}

/**
 * A parsed JSON body in any accepted shape (one record, a Records file, an EventBridge event,
 * lookup-events output, an array of these) -> control events. Throws MG_ERR_CLOUDTRAIL_FORMAT
 * (HTTP 400) when the body is none of them.
 */
export function controlEventsFromJson(body: unknown): ControlEventBatch {
  return controlEventsFromRecords(recordsFromJson(body, 'body'));
}

/** The same for a text body (JSON or JSON lines, e.g. `Content-Type: application/x-ndjson`). */
export function controlEventsFromText(text: string): ControlEventBatch {
  return controlEventsFromRecords(recordsFromText(text, 'body'));
}
