import { normalizeRecord } from '../../../../src/detect/cloudtrail/normalize.js';
import { evaluateControlEvent } from '../../../../src/detect/cloudtrail/rules/index.js';
import type { ControlEvent } from '../../../../src/detect/cloudtrail/types.js';
import type { FindingInput } from '../../../../src/detect/finding.js';
import type { Manifest } from '../../../../src/detect/manifest-types.js';

export function ev(rec: unknown): ControlEvent {
  const e = normalizeRecord(rec);
  if (e === null) throw new Error('not a traffic-mirroring event');
  return e;
}

/** Every finding all rules give for a raw record: what the detector would store. */
export function findings(rec: unknown, manifest: Manifest | null): FindingInput[] {
  return evaluateControlEvent(ev(rec), manifest);
}
