/**
 * mirror-session-modified: a ModifyTrafficMirrorSession that leaves the session different from what the
 * manifest authorizes. Repointing an authorized session at another target or VNI is as good as creating a
 * rogue one, and keeps the session ID the manifest trusts.
 *
 * The state after the call is read from the response (it carries the whole session); the request only
 * carries the fields that change. A modification that keeps the session matching its manifest entry
 * (a new description, packet length or session number) is not a finding. Modifying a session that is not
 * in the manifest is one (that session should not exist), and so is every modification when no manifest
 * is given.
 *
 * Key: the session ID. Repeated modifications of one session are one incident with a count.
 */
import type { FindingInput } from '../../finding.js';
import { removedFields } from '../normalize.js';
import { actorText, controlFinding, isDirectChange, manifestRef, manifestSession, sessionDifferences, sessionText, type ControlRule } from './common.js';

const CALLS = new Set(['ModifyTrafficMirrorSession']);

const KIND = 'mirror-session-modified' as const;

export const sessionModified: ControlRule = {
  id: 'session-modified',
  kind: KIND,
  description: 'A traffic mirror session was modified so that it no longer matches the manifest.',
  appliesTo: (ev) => isDirectChange(ev, CALLS) && ev.errorCode === undefined,
  evaluate(ev, manifest): FindingInput[] {
    const key = ev.sessionId ?? `event:${ev.eventId}`;
    const removed = removedFields(ev);
    const extra = removed.length > 0 ? { removedFields: removed } : {};
    const what = `${actorText(ev)} modified mirror session ${sessionText(ev)}`;
    if (manifest === null) return [controlFinding(KIND, key, ev, null, `${what}; no manifest was given to check it against`, { evidence: extra })];
    const ms = manifestSession(manifest, ev.sessionId);
    if (ms === undefined) return [controlFinding(KIND, key, ev, manifest, `${what}, which is not in the manifest`, { evidence: extra })];
    const diffs = sessionDifferences(ms, ev);
    // Removing the VNI (older API versions allowed `virtual-network-id`) makes AWS pick a random one.
    if (ev.vni === undefined && removed.includes('virtual-network-id')) diffs.push(`VNI reset to a value AWS chooses (manifest: ${ms.vni})`);
    if (diffs.length === 0) return [];
    return [
      controlFinding(KIND, key, ev, manifest, `${what} away from manifest session ${manifestRef(ms, manifest)}: ${diffs.join('; ')}`, {
        evidence: { ...extra, manifestSession: ms.id, differences: diffs },
      }),
    ];
  },
};
