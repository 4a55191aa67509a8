import { describe, expect, it } from 'vitest';
import { targetCreated } from '../../../../src/detect/cloudtrail/rules/target-created.js';
import { AUTHORIZED, createNlbTarget, createTarget, IDS, manifestOf, serviceActor } from '../events.js';
import { ev, findings } from './helpers.js';

const manifest = manifestOf(AUTHORIZED);

describe('rule target-created', () => {
  it('flags a target no manifest session uses, saying where it sends traffic', () => {
    const nlb = 'arn:aws:elasticloadbalancing:eu-central-1:444455556666:loadbalancer/net/exfil/0123456789abcdef';
    const [f, ...rest] = findings(createNlbTarget(IDS.rogueTarget, nlb), manifest);
    expect(rest).toEqual([]);
    expect(f).toMatchObject({ kind: 'mirror-target-created', key: IDS.rogueTarget });
    expect(f!.summary).toContain(`created mirror target ${IDS.rogueTarget} sending to ${nlb}; no manifest session uses it`);
    expect(f!.evidence).toMatchObject({ targetId: IDS.rogueTarget, targetDestination: nlb, request: { NetworkLoadBalancerArn: nlb } });
  });

  it('does not flag a target a manifest session uses', () => {
    expect(findings(createTarget(IDS.target, IDS.collectorEni), manifest)).toEqual([]);
  });

  it('flags every new target without a manifest; keys by destination when the ID is missing', () => {
    expect(findings(createTarget(IDS.target), null)[0]!.summary).toContain('no manifest was given');
    const rec = createTarget(IDS.rogueTarget, IDS.collectorEni);
    rec.responseElements = null;
    expect(findings(rec, manifest)[0]!.key).toBe(`dest:${IDS.collectorEni}`);
  });

  it('leaves failed and service-invoked target creation alone', () => {
    const failed = createTarget(IDS.rogueTarget, IDS.eni2, { error: { code: 'Client.InvalidNetworkInterfaceID.NotFound', message: 'x' } });
    expect(targetCreated.appliesTo(ev(failed))).toBe(false);
    expect(findings(failed, manifest).map((f) => f.kind)).toEqual(['mirror-attempt-failed']);
    expect(findings(createTarget(IDS.rogueTarget, IDS.eni2, { actor: serviceActor('cloudformation.amazonaws.com') }), manifest)).toEqual([]);
  });
});
