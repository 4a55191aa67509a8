/**
 * mirror-session-created: a CreateTrafficMirrorSession the manifest does not authorize. This is the
 * earliest sign of mirroring exfiltration: the session exists before any packet flows.
 *
 * Matching, in order:
 *  1. By session ID (the response's trafficMirrorSessionId). The manifest entry must also agree on every
 *     field both state (VNI, target, filter, source ENI) and not be expired at eventTime; if it does not,
 *     the manifest describes another session than the one created, which is a finding.
 *  2. Without an ID in the event (no responseElements, which CloudTrail omits for some records): the same
 *     source ENI + VNI + target as a live manifest entry authorizes it. AWS assigns session IDs at
 *     creation, so a manifest written ahead of the change can only name the ENI, VNI and target.
 *  3. With an ID that is not in the manifest but the same ENI + VNI + target as a live entry: a session
 *     deleted and re-created (new ID, same plumbing). Traffic still goes to the authorized target, so it is
 *     not exfiltration, but the manifest is stale: a `low` finding asking for the manifest to be updated.
 *  Anything else (and every create when no manifest is given) is `critical`.
 *
 * Key: the session ID (else `eni|vni|target`, else the event ID). The session is the incident: a later
 * Modify or Delete of it is a different kind and so a separate finding, but the same create seen twice
 * (the same log delivered in two trails, an EventBridge copy) counts as a repeat, not a new incident.
 */
import type { FindingInput } from '../../finding.js';
import type { Manifest, ManifestSession } from '../../manifest-types.js';
import type { ControlEvent } from '../types.js';
import { actorText, controlFinding, isDirectChange, manifestRef, manifestSession, sessionDifferences, sessionText, type ControlRule } from './common.js';

const CALLS = new Set(['CreateTrafficMirrorSession']);

/** A live manifest entry with the same source ENI, VNI and target (and no conflicting filter). */
function sameMirror(m: Manifest, ev: ControlEvent): ManifestSession | undefined {
  if (ev.eni === undefined || ev.vni === undefined || ev.targetId === undefined) return undefined;
  return m.sessions.find(
    (s) =>
      s.sourceEni === ev.eni &&
      s.vni === ev.vni &&
      s.targetId === ev.targetId &&
      (s.filterId === undefined || ev.filterId === undefined || s.filterId === ev.filterId) &&
      (s.region === undefined || ev.awsRegion === undefined || s.region === ev.awsRegion) &&
      (s.expires === undefined || ev.eventTime <= s.expires),
  );
}

const KIND = 'mirror-session-created' as const;

export const sessionCreated: ControlRule = {
  id: 'session-created',
  kind: KIND,
  description: 'A traffic mirror session was created that the manifest does not authorize.',
  appliesTo: (ev) => isDirectChange(ev, CALLS) && ev.errorCode === undefined,
  evaluate(ev, manifest): FindingInput[] {
    const key =
      ev.sessionId ?? (ev.eni !== undefined && ev.vni !== undefined && ev.targetId !== undefined ? `${ev.eni}|${ev.vni}|${ev.targetId}` : `event:${ev.eventId}`);
    const what = `${actorText(ev)} created mirror session ${sessionText(ev)}`;
    if (manifest === null) return [controlFinding(KIND, key, ev, null, `${what}; no manifest was given to check it against`)];

    const byId = manifestSession(manifest, ev.sessionId);
    if (byId !== undefined) {
      const diffs = sessionDifferences(byId, ev);
      if (diffs.length === 0) return [];
      return [
        controlFinding(KIND, key, ev, manifest, `${what}, which differs from manifest session ${manifestRef(byId, manifest)}: ${diffs.join('; ')}`, {
          evidence: { manifestSession: byId.id, differences: diffs },
        }),
      ];
    }
    const twin = sameMirror(manifest, ev);
    if (twin !== undefined && ev.sessionId === undefined) return [];
    if (twin !== undefined) {
      return [
        controlFinding(
          KIND,
          key,
          ev,
          manifest,
          `${what}: same source ENI, VNI and target as manifest session ${manifestRef(twin, manifest)} but a new ID; update the manifest if the session was re-created`,
          { severity: 'low', evidence: { manifestSession: twin.id } },
        ),
      ];
    }
    return [controlFinding(KIND, key, ev, manifest, `${what}, which is not in the manifest`)];
  },
};
