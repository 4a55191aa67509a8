/**
 * mirror-session-deleted: mirroring was torn down. Deleting an authorized session silently disables
 * monitoring; deleting one the manifest does not list means an unauthorized session existed until then
 * (its creation may predate the logs being scanned).
 *
 *  - DeleteTrafficMirrorSession: always a finding; the summary says whether the session was in the
 *    manifest.
 *  - DeleteTrafficMirrorTarget: a finding when the manifest names the target (the destination of
 *    authorized mirroring is gone) or when no manifest is given. A target the manifest does not name is
 *    not a finding: AWS refuses to delete a target that a session still uses (EC2 API Reference,
 *    DeleteTrafficMirrorTarget), so its deletion neither stops authorized monitoring nor moves traffic,
 *    and its creation was already reported as mirror-target-created.
 *
 * Key: the session ID, or the target ID for a target (`tms-` and `tmt-` IDs cannot collide).
 */
import type { FindingInput } from '../../finding.js';
import { actorText, controlFinding, isDirectChange, manifestRef, manifestSession, sessionText, type ControlRule } from './common.js';

const CALLS = new Set(['DeleteTrafficMirrorSession', 'DeleteTrafficMirrorTarget']);

const KIND = 'mirror-session-deleted' as const;

export const sessionDeleted: ControlRule = {
  id: 'session-deleted',
  kind: KIND,
  description: 'A traffic mirror session (or a target the manifest uses) was deleted.',
  appliesTo: (ev) => isDirectChange(ev, CALLS) && ev.errorCode === undefined,
  evaluate(ev, manifest): FindingInput[] {
    const actor = actorText(ev);
    if (ev.eventName === 'DeleteTrafficMirrorTarget') {
      const target = ev.targetId ?? 'a target';
      const key = ev.targetId ?? `event:${ev.eventId}`;
      if (manifest === null) return [controlFinding(KIND, key, ev, null, `${actor} deleted mirror target ${target}; no manifest was given to check it against`)];
      const users = manifest.sessions.filter((s) => s.targetId !== undefined && s.targetId === ev.targetId);
      if (users.length === 0) return [];
      return [
        controlFinding(
          KIND,
          key,
          ev,
          manifest,
          `${actor} deleted mirror target ${target}, used by manifest session${users.length > 1 ? 's' : ''} ${users.map((s) => manifestRef(s, manifest)).join(', ')}: that monitoring has stopped`,
          { evidence: { manifestSessions: users.map((s) => s.id) } },
        ),
      ];
    }
    const key = ev.sessionId ?? `event:${ev.eventId}`;
    const what = `${actor} deleted mirror session ${sessionText(ev)}`;
    if (manifest === null) return [controlFinding(KIND, key, ev, null, `${what}; no manifest was given to check it against`)];
    const ms = manifestSession(manifest, ev.sessionId);
    if (ms !== undefined) {
      return [
        controlFinding(KIND, key, ev, manifest, `${what}, authorized by manifest session ${manifestRef(ms, manifest)}: its traffic is no longer mirrored`, {
          evidence: { manifestSession: ms.id },
        }),
      ];
    }
    return [controlFinding(KIND, key, ev, manifest, `${what}, which is not in the manifest: an unauthorized session existed until now`)];
  },
};
