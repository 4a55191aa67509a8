import { describe, expect, it } from 'vitest';
import { sessionCreated } from '../../../../src/detect/cloudtrail/rules/session-created.js';
import { AUTHORIZED, createSession, describeSessions, IDS, manifestOf, MALLORY, OPS_ROLE, serviceActor, VNI } from '../events.js';
import { ev, findings } from './helpers.js';

const manifest = manifestOf(AUTHORIZED);

describe('rule session-created', () => {
  it('flags a session the manifest does not list, critical, keyed by session ID, with evidence', () => {
    const rogue = createSession({ id: IDS.session2, eni: IDS.eni2, target: IDS.rogueTarget, vni: 4242 });
    const [f, ...rest] = findings(rogue, manifest);
    expect(rest).toEqual([]);
    expect(f).toMatchObject({ kind: 'mirror-session-created', key: IDS.session2, sessionId: IDS.session2, vni: 4242, at: Date.UTC(2024, 2, 5, 10, 15, 42) });
    expect(f!.severity).toBeUndefined(); // the kind's default: critical
    expect(f!.summary).toContain('arn:aws:iam::111122223333:user/mallory created mirror session tms-0f9e8d7c6b5a40312');
    expect(f!.summary).toContain(`${IDS.eni2} -> ${IDS.rogueTarget}, VNI 4242`);
    expect(f!.summary).toContain('not in the manifest');
    expect(f!.evidence).toMatchObject({
      eventId: rogue.eventID,
      eventName: 'CreateTrafficMirrorSession',
      eventTime: '2024-03-05T10:15:42Z',
      actorArn: 'arn:aws:iam::111122223333:user/mallory',
      callerIp: MALLORY.sourceIPAddress,
      eni: IDS.eni2,
      vni: 4242,
      targetId: IDS.rogueTarget,
      request: { NetworkInterfaceId: IDS.eni2, VirtualNetworkId: 4242, TrafficMirrorTargetId: IDS.rogueTarget },
      manifest: { file: 'manifest.yaml', sha256: 'a'.repeat(64) },
    });
  });

  it('does not flag the creation of a manifest session (same ID, same fields)', () => {
    expect(findings(createSession({}, { actor: OPS_ROLE }), manifest)).toEqual([]);
  });

  it('flags a create whose ID is in the manifest but whose VNI or target is not', () => {
    const [f] = findings(createSession({ target: IDS.rogueTarget, vni: 99 }), manifest);
    expect(f!.kind).toBe('mirror-session-created');
    expect(f!.summary).toContain(`differs from manifest session ${IDS.session} (manifest.yaml:3)`);
    expect(f!.evidence.differences).toEqual([`VNI 99 (manifest: ${VNI})`, `target ${IDS.rogueTarget} (manifest: ${IDS.target})`]);
  });

  it('flags a create after the manifest entry expired', () => {
    const expiring = manifestOf({ ...AUTHORIZED, expires: Date.UTC(2024, 0, 1) });
    const [f] = findings(createSession(), expiring);
    expect(f!.summary).toContain('the manifest entry expired at 2024-01-01T00:00:00Z');
  });

  it('authorizes by source ENI + VNI + target when the event carries no session ID', () => {
    const rec = createSession();
    rec.responseElements = null; // CloudTrail left the response out
    expect(ev(rec).sessionId).toBeUndefined();
    expect(findings(rec, manifest)).toEqual([]);
    const other = createSession({ vni: 7 });
    other.responseElements = null;
    const [f] = findings(other, manifest);
    expect(f!.key).toBe(`${IDS.eni}|7|${IDS.target}`);
  });

  it('reports a re-created session (new ID, same ENI + VNI + target) as low, asking for a manifest update', () => {
    const [f] = findings(createSession({ id: IDS.session2 }), manifest);
    expect(f).toMatchObject({ kind: 'mirror-session-created', severity: 'low', key: IDS.session2 });
    expect(f!.summary).toMatch(/new ID; update the manifest/);
  });

  it('flags every create when no manifest is given', () => {
    const [f] = findings(createSession(), null);
    expect(f!.summary).toContain('no manifest was given');
    expect(f!.evidence.manifest).toBeNull();
  });

  it('leaves failed creates, service-invoked creates and Describe calls alone', () => {
    const failed = createSession({ id: IDS.session2, vni: 1 }, { error: { code: 'Client.UnauthorizedOperation', message: 'denied' } });
    expect(sessionCreated.appliesTo(ev(failed))).toBe(false);
    expect(findings(failed, manifest).map((f) => f.kind)).toEqual(['mirror-attempt-failed']); // only that one
    const viaCfn = createSession({ id: IDS.session2, vni: 1 }, { actor: serviceActor('cloudformation.amazonaws.com') });
    expect(findings(viaCfn, manifest)).toEqual([]);
    expect(findings(describeSessions(), manifest)).toEqual([]);
    expect(findings(describeSessions({ actor: serviceActor() }), null)).toEqual([]);
  });
});
