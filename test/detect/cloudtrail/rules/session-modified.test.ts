import { describe, expect, it } from 'vitest';
import { sessionModified } from '../../../../src/detect/cloudtrail/rules/session-modified.js';
import { AUTHORIZED, IDS, manifestOf, modifySession, serviceActor, VNI } from '../events.js';
import { ev, findings } from './helpers.js';

const manifest = manifestOf(AUTHORIZED);

describe('rule session-modified', () => {
  it('does not flag a modification that keeps a manifest session matching', () => {
    expect(findings(modifySession({}, { Description: 'renamed', PacketLength: 128 }), manifest)).toEqual([]);
    expect(findings(modifySession({}, { RemoveField: [{ content: 'packet-length', tag: 1 }] }), manifest)).toEqual([]);
  });

  it('flags repointing a manifest session at another target, keyed by session ID', () => {
    const rec = modifySession({ target: IDS.rogueTarget }, { TrafficMirrorTargetId: IDS.rogueTarget });
    const [f, ...rest] = findings(rec, manifest);
    expect(rest).toEqual([]);
    expect(f).toMatchObject({ kind: 'mirror-session-modified', key: IDS.session, sessionId: IDS.session, vni: VNI });
    expect(f!.summary).toContain(`away from manifest session ${IDS.session} (manifest.yaml:3): target ${IDS.rogueTarget} (manifest: ${IDS.target})`);
    expect(f!.evidence).toMatchObject({ request: { TrafficMirrorSessionId: IDS.session, TrafficMirrorTargetId: IDS.rogueTarget }, manifestSession: IDS.session });
  });

  it('flags a VNI change, and a filter change', () => {
    expect(findings(modifySession({ vni: 12348395 }, { VirtualNetworkId: 12348395 }), manifest)[0]!.evidence.differences).toEqual([`VNI 12348395 (manifest: ${VNI})`]);
    expect(findings(modifySession({ filter: IDS.rogueFilter }, { TrafficMirrorFilterId: IDS.rogueFilter }), manifest)[0]!.summary).toContain(`filter ${IDS.rogueFilter}`);
  });

  it('flags resetting the VNI when the response does not say the new one', () => {
    const rec = modifySession({}, { RemoveField: [{ content: 'virtual-network-id', tag: 1 }] });
    rec.responseElements = null;
    const [f] = findings(rec, manifest);
    expect(f!.summary).toContain('VNI reset to a value AWS chooses');
    expect(f!.evidence.removedFields).toEqual(['virtual-network-id']);
  });

  it('flags modifying a session that is not in the manifest, and any modification without a manifest', () => {
    expect(findings(modifySession({ id: IDS.session2 }, { Description: 'x' }), manifest)[0]!.summary).toContain('not in the manifest');
    expect(findings(modifySession({}, { Description: 'x' }), null)[0]!.summary).toContain('no manifest was given');
  });

  it('leaves failed and service-invoked modifications to other rules or to nobody', () => {
    const failed = modifySession({ target: IDS.rogueTarget }, { TrafficMirrorTargetId: IDS.rogueTarget }, { error: { code: 'Client.InvalidTrafficMirrorTargetId.NotFound', message: 'x' } });
    expect(sessionModified.appliesTo(ev(failed))).toBe(false);
    expect(findings(failed, manifest).map((f) => f.kind)).toEqual(['mirror-attempt-failed']);
    expect(findings(modifySession({ target: IDS.rogueTarget }, { TrafficMirrorTargetId: IDS.rogueTarget }, { actor: serviceActor('cloudformation.amazonaws.com') }), manifest)).toEqual([]);
  });
});
