import { describe, expect, it } from 'vitest';
import { sessionDeleted } from '../../../../src/detect/cloudtrail/rules/session-deleted.js';
import { AUTHORIZED, deleteSession, deleteTarget, IDS, manifestOf, serviceActor } from '../events.js';
import { ev, findings } from './helpers.js';

const manifest = manifestOf(AUTHORIZED);

describe('rule session-deleted', () => {
  it('flags deleting a manifest session: monitoring is off', () => {
    const [f, ...rest] = findings(deleteSession(IDS.session), manifest);
    expect(rest).toEqual([]);
    expect(f).toMatchObject({ kind: 'mirror-session-deleted', key: IDS.session, sessionId: IDS.session });
    expect(f!.summary).toContain('authorized by manifest session');
    expect(f!.summary).toContain('no longer mirrored');
  });

  it('flags deleting a session the manifest does not list: a rogue session existed', () => {
    const [f] = findings(deleteSession(IDS.session2), manifest);
    expect(f!.key).toBe(IDS.session2);
    expect(f!.summary).toContain('not in the manifest');
  });

  it('flags deleting a target a manifest session uses, keyed by target ID', () => {
    const [f] = findings(deleteTarget(IDS.target), manifest);
    expect(f).toMatchObject({ kind: 'mirror-session-deleted', key: IDS.target });
    expect(f!.summary).toContain(`deleted mirror target ${IDS.target}, used by manifest session ${IDS.session}`);
    expect(f!.evidence).toMatchObject({ targetId: IDS.target, manifestSessions: [IDS.session] });
  });

  it('does not flag deleting a target no manifest session uses, but does without a manifest', () => {
    expect(findings(deleteTarget(IDS.rogueTarget), manifest)).toEqual([]);
    expect(findings(deleteTarget(IDS.rogueTarget), null)[0]!.key).toBe(IDS.rogueTarget);
  });

  it('leaves failed and service-invoked deletions alone', () => {
    const failed = deleteSession(IDS.session, { error: { code: 'Client.UnauthorizedOperation', message: 'denied' } });
    expect(sessionDeleted.appliesTo(ev(failed))).toBe(false);
    expect(findings(failed, manifest).map((f) => f.kind)).toEqual(['mirror-attempt-failed']);
    expect(findings(deleteSession(IDS.session, { actor: serviceActor('cloudformation.amazonaws.com') }), manifest)).toEqual([]);
  });
});
