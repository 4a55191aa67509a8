/**
 * The stable id of a finding: one incident (kind + incident key) always gets the same id, whether the
 * findings store writes it (serve), `cloudtrail scan` prints it (stateless) or a webhook carries it. That
 * is what lets an operator match a CLI line to an API record and lets a receiver de-duplicate.
 *
 * `f_` + the first 20 hex digits (80 bits) of SHA-256(kind, NUL, key). NUL cannot occur in a kind, so
 * ('a', 'b\0c') and ('a\0b', 'c') cannot collide.
 */
import * as crypto from 'node:crypto';
import type { FindingKind } from './finding.js';

export const FINDING_ID_PREFIX = 'f_';
export const FINDING_ID_HEX_DIGITS = 20;

/** One-shot SHA-256 (Node 20.12+: no Hash object, 2.5 times cheaper; a new pair computes three ids). */
const oneShot = (crypto as { hash?: (alg: string, data: string, enc: 'hex') => string }).hash;

export function findingId(kind: FindingKind, key: string): string {
  const hex = oneShot !== undefined ? oneShot('sha256', `${kind}\0${key}`, 'hex') : crypto.createHash('sha256').update(kind).update('\0').update(key).digest('hex');
  return FINDING_ID_PREFIX + hex.slice(0, FINDING_ID_HEX_DIGITS);
}
