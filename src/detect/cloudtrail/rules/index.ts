/**
 * The control-plane rules, one per file, and the one entry point the detector (serve) and
 * `cloudtrail scan` call. Rules are independent: an event may match several, and each decides alone.
 * In practice the call name and errorCode partition events so that at most one rule applies.
 */
import type { FindingInput } from '../../finding.js';
import type { Manifest } from '../../manifest-types.js';
import type { ControlEvent } from '../types.js';
import { attemptFailed } from './attempt-failed.js';
import type { ControlRule } from './common.js';
import { filterChanged } from './filter-changed.js';
import { sessionCreated } from './session-created.js';
import { sessionDeleted } from './session-deleted.js';
import { sessionModified } from './session-modified.js';
import { targetCreated } from './target-created.js';

export type { ControlRule } from './common.js';
export { isServiceInvoked } from './common.js';

export const CONTROL_RULES: readonly ControlRule[] = [sessionCreated, sessionModified, sessionDeleted, targetCreated, filterChanged, attemptFailed];

/** The findings for one control event; `manifest` null means none is loaded (every change is suspect). */
export function evaluateControlEvent(ev: ControlEvent, manifest: Manifest | null): FindingInput[] {
  const out: FindingInput[] = [];
  for (const rule of CONTROL_RULES) if (rule.appliesTo(ev)) out.push(...rule.evaluate(ev, manifest));
  return out;
}
