/**
 * mirror-target-created: a CreateTrafficMirrorTarget whose target the manifest does not use. A target is
 * where mirrored traffic lands (an ENI, a Network Load Balancer or a Gateway Load Balancer endpoint,
 * possibly shared from another account), so a new one is the attacker's collection point being set up.
 *
 * Authorized when some manifest session names the new target ID. Target IDs are assigned by AWS at
 * creation, so this holds when the manifest is updated after the target is created (the usual order:
 * create the target, then record the sessions that use it) and the logs are scanned afterwards.
 *
 * Key: the target ID (else the destination it points at, else the event ID).
 */
import type { FindingInput } from '../../finding.js';
import { actorText, controlFinding, isDirectChange, type ControlRule } from './common.js';

const CALLS = new Set(['CreateTrafficMirrorTarget']);

const KIND = 'mirror-target-created' as const;

export const targetCreated: ControlRule = {
  id: 'target-created',
  kind: KIND,
  description: 'A traffic mirror target was created that no manifest session uses.',
  appliesTo: (ev) => isDirectChange(ev, CALLS) && ev.errorCode === undefined,
  evaluate(ev, manifest): FindingInput[] {
    if (manifest !== null && ev.targetId !== undefined && manifest.sessions.some((s) => s.targetId === ev.targetId)) return [];
    const key = ev.targetId ?? (ev.targetDestination !== undefined ? `dest:${ev.targetDestination}` : `event:${ev.eventId}`);
    const what = `${actorText(ev)} created mirror target ${ev.targetId ?? '(ID not logged)'}${ev.targetDestination ? ` sending to ${ev.targetDestination}` : ''}`;
    const why = manifest === null ? 'no manifest was given to check it against' : 'no manifest session uses it';
    return [controlFinding(KIND, key, ev, manifest, `${what}; ${why}`)];
  },
};
