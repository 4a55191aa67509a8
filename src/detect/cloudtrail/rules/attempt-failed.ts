/**
 * mirror-attempt-failed: a traffic-mirroring change that AWS refused (any `errorCode`: AccessDenied /
 * UnauthorizedOperation, an unsupported ENI, a limit ...) or a DryRun, whose `Client.DryRunOperation`
 * error means "you would have been allowed" (EC2 API Reference, common DryRun parameter). Someone tried;
 * an attacker probing permissions usually fails before succeeding. Such an event gets only this finding,
 * never also the create/modify/delete one: nothing changed.
 *
 * Key: the principal (actor ARN, else the caller IP, else the account), so one principal's run of
 * failures across many calls and ENIs is one incident with a count rather than a flood.
 */
import type { FindingInput } from '../../finding.js';
import { MUTATING_CALLS } from '../normalize.js';
import { actorText, controlFinding, isDirectChange, type ControlRule } from './common.js';

const KIND = 'mirror-attempt-failed' as const;

export const attemptFailed: ControlRule = {
  id: 'attempt-failed',
  kind: KIND,
  description: 'A traffic-mirroring change was attempted and failed (or was a DryRun permission probe).',
  appliesTo: (ev) => isDirectChange(ev, MUTATING_CALLS) && ev.errorCode !== undefined,
  evaluate(ev, manifest): FindingInput[] {
    const key = ev.actorArn ?? (ev.callerIp !== undefined ? `ip:${ev.callerIp}` : ev.accountId !== undefined ? `account:${ev.accountId}` : `event:${ev.eventId}`);
    const on = ev.sessionId ?? ev.eni ?? ev.targetId ?? ev.filterRuleId ?? ev.filterId;
    const summary =
      ev.errorCode === 'Client.DryRunOperation'
        ? `${actorText(ev)} ran ${ev.eventName} as a DryRun${on ? ` on ${on}` : ''}: the permission check passed`
        : `${actorText(ev)} tried ${ev.eventName}${on ? ` on ${on}` : ''} and failed: ${ev.errorCode}${ev.errorMessage ? ` (${ev.errorMessage})` : ''}`;
    return [controlFinding(KIND, key, ev, manifest, summary)];
  },
};
