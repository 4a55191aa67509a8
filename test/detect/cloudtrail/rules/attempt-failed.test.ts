import { describe, expect, it } from 'vitest';
import { attemptFailed } from '../../../../src/detect/cloudtrail/rules/attempt-failed.js';
import { AUTHORIZED, createSession, createTarget, deleteSession, describeSessions, IDS, MALLORY, manifestOf, serviceActor } from '../events.js';
import { ev, findings } from './helpers.js';

const manifest = manifestOf(AUTHORIZED);
const denied = { code: 'Client.UnauthorizedOperation', message: 'You are not authorized to perform this operation.' };

describe('rule attempt-failed', () => {
  it('flags a refused create, keyed by the principal, with the error in summary and evidence', () => {
    const rec = createSession({ eni: IDS.eni2 }, { error: denied });
    const [f, ...rest] = findings(rec, manifest);
    expect(rest).toEqual([]);
    expect(f).toMatchObject({ kind: 'mirror-attempt-failed', key: 'arn:aws:iam::111122223333:user/mallory', vni: 5569041 });
    expect(f!.summary).toContain(`tried CreateTrafficMirrorSession on ${IDS.eni2} and failed: Client.UnauthorizedOperation`);
    expect(f!.evidence).toMatchObject({ errorCode: denied.code, errorMessage: denied.message, callerIp: MALLORY.sourceIPAddress, eni: IDS.eni2 });
  });

  it('gives one principal the same key across calls and ENIs (one incident, counted)', () => {
    const keys = [createSession({ eni: IDS.eni2 }, { error: denied }), createTarget(IDS.rogueTarget, IDS.eni2, { error: denied }), deleteSession(IDS.session, { error: denied })].map(
      (r) => findings(r, manifest)[0]!.key,
    );
    expect(new Set(keys).size).toBe(1);
  });

  it('falls back to the caller IP when no ARN is logged', () => {
    const anon = { ...MALLORY, userIdentity: { type: 'AWSAccount', accountId: '999988887777', principalId: 'AIDAX' } };
    expect(findings(createSession({}, { error: denied, actor: anon }), manifest)[0]!.key).toBe('ip:203.0.113.9');
  });

  it('reports a DryRun as a passed permission probe', () => {
    const rec = createSession({}, { error: { code: 'Client.DryRunOperation', message: 'Request would have succeeded, but DryRun flag is set.' } });
    const [f] = findings(rec, manifest);
    expect(f!.summary).toContain('as a DryRun');
    expect(f!.evidence.dryRun).toBe(true);
  });

  it('does not flag successful calls, failed Describe calls or failed calls by AWS services', () => {
    expect(attemptFailed.appliesTo(ev(createSession()))).toBe(false);
    expect(findings(describeSessions({ error: denied }), manifest)).toEqual([]);
    expect(findings(createSession({}, { error: denied, actor: serviceActor('cloudformation.amazonaws.com') }), manifest)).toEqual([]);
  });
});
