/**
 * mirror-filter-changed: a traffic mirror filter, one of its rules or its network services was created,
 * modified or deleted. Filters decide what a session copies: a new accept-everything rule prepares
 * exfiltration, and a reject rule added to an authorized session's filter blinds the collector.
 *
 * Always a finding (filters carry no identity the manifest could authorize ahead of time). The severity
 * is raised to `high` when a manifest session uses the filter, because then authorized monitoring is
 * what changes.
 *
 * Key: the filter ID, so every change to one filter (its rules included) is one incident with a count.
 * DeleteTrafficMirrorFilterRule logs only the rule ID; those are keyed `rule:<tmfr-...>`.
 */
import type { FindingInput } from '../../finding.js';
import { FILTER_CALLS } from '../normalize.js';
import { actorText, controlFinding, isDirectChange, manifestRef, type ControlRule } from './common.js';

const VERB: Record<string, string> = {
  CreateTrafficMirrorFilter: 'created mirror filter',
  DeleteTrafficMirrorFilter: 'deleted mirror filter',
  CreateTrafficMirrorFilterRule: 'added a rule to mirror filter',
  ModifyTrafficMirrorFilterRule: 'modified a rule of mirror filter',
  DeleteTrafficMirrorFilterRule: 'deleted a rule of mirror filter',
  ModifyTrafficMirrorFilterNetworkServices: 'changed the network services of mirror filter',
};

const KIND = 'mirror-filter-changed' as const;

export const filterChanged: ControlRule = {
  id: 'filter-changed',
  kind: KIND,
  description: 'A traffic mirror filter, filter rule or filter network service was created, modified or deleted.',
  appliesTo: (ev) => isDirectChange(ev, FILTER_CALLS) && ev.errorCode === undefined,
  evaluate(ev, manifest): FindingInput[] {
    const key = ev.filterId ?? (ev.filterRuleId !== undefined ? `rule:${ev.filterRuleId}` : `event:${ev.eventId}`);
    const filter = ev.filterId ?? '(ID not logged)';
    const rule = ev.filterRuleId !== undefined ? ` (rule ${ev.filterRuleId})` : '';
    const users = manifest === null || ev.filterId === undefined ? [] : manifest.sessions.filter((s) => s.filterId === ev.filterId);
    const used = users.length > 0 ? `; used by manifest session${users.length > 1 ? 's' : ''} ${users.map((s) => manifestRef(s, manifest!)).join(', ')}` : '';
    const summary = `${actorText(ev)} ${VERB[ev.eventName] ?? `${ev.eventName} on mirror filter`} ${filter}${rule}${used}`;
    return [
      controlFinding(KIND, key, ev, manifest, summary, {
        ...(users.length > 0 ? { severity: 'high' as const, evidence: { manifestSessions: users.map((s) => s.id) } } : {}),
      }),
    ];
  },
};
