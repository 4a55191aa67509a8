import { describe, expect, it } from 'vitest';
import { filterChanged } from '../../../../src/detect/cloudtrail/rules/filter-changed.js';
import { AUTHORIZED, createFilter, createFilterRule, deleteFilter, deleteFilterRule, IDS, manifestOf, modifyFilterRule, modifyNetworkServices, serviceActor } from '../events.js';
import { ev, findings } from './helpers.js';

const manifest = manifestOf(AUTHORIZED);

describe('rule filter-changed', () => {
  it('flags each filter call, keyed by filter ID so one filter is one incident', () => {
    const calls = [createFilter(IDS.rogueFilter), createFilterRule(IDS.rogueFilter), modifyFilterRule(IDS.rogueFilter, IDS.filterRule), modifyNetworkServices(IDS.rogueFilter), deleteFilter(IDS.rogueFilter)];
    const out = calls.flatMap((c) => findings(c, manifest));
    expect(out.map((f) => [f.kind, f.key])).toEqual(calls.map(() => ['mirror-filter-changed', IDS.rogueFilter]));
    expect(out.every((f) => f.severity === undefined)).toBe(true); // medium: no manifest session uses it
    expect(out[1]!.summary).toContain(`added a rule to mirror filter ${IDS.rogueFilter} (rule ${IDS.filterRule})`);
    expect(out[1]!.evidence.request).toMatchObject({ RuleAction: 'accept', SourceCidrBlock: '0.0.0.0/0', TrafficDirection: 'ingress' });
    expect(out[3]!.summary).toContain('changed the network services of mirror filter');
  });

  it('raises a change to a filter a manifest session uses to high: authorized monitoring changes', () => {
    const [f] = findings(modifyFilterRule(IDS.filter, IDS.filterRule), manifest);
    expect(f).toMatchObject({ kind: 'mirror-filter-changed', severity: 'high', key: IDS.filter });
    expect(f!.summary).toContain(`used by manifest session ${IDS.session} (manifest.yaml:3)`);
  });

  it('keys a rule deletion (which logs only the rule ID) by rule', () => {
    expect(findings(deleteFilterRule(IDS.filterRule), manifest)[0]!.key).toBe(`rule:${IDS.filterRule}`);
  });

  it('is a finding without a manifest too', () => {
    expect(findings(createFilter(IDS.filter), null)).toHaveLength(1);
  });

  it('leaves failed and service-invoked filter changes alone', () => {
    const failed = createFilter(IDS.rogueFilter, { error: { code: 'Client.TrafficMirrorFilterLimitExceeded', message: 'x' } });
    expect(filterChanged.appliesTo(ev(failed))).toBe(false);
    expect(findings(failed, manifest).map((f) => f.kind)).toEqual(['mirror-attempt-failed']);
    expect(findings(createFilter(IDS.rogueFilter, { actor: serviceActor('cloudformation.amazonaws.com') }), manifest)).toEqual([]);
  });
});
