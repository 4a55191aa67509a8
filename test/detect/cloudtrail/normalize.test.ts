import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { classifyRecord, normalizeRecord, removedFields, requestSummary } from '../../../src/detect/cloudtrail/normalize.js';
import { ACCOUNT, createNlbTarget, createSession, createTarget, deleteFilterRule, deleteSession, describeSessions, IDS, modifySession, OPS_ROLE, REGION, VNI } from './events.js';

describe('normalizeRecord on raw CloudTrail records', () => {
  it('reads a CreateTrafficMirrorSession: IDs from the response, actor, caller, account, region, time', () => {
    const rec = createSession();
    const ev = normalizeRecord(rec)!;
    expect(ev).toMatchObject({
      eventId: rec.eventID,
      eventName: 'CreateTrafficMirrorSession',
      eventTime: Date.UTC(2024, 2, 5, 10, 15, 42),
      eventSource: 'ec2.amazonaws.com',
      awsRegion: REGION,
      accountId: ACCOUNT,
      actorArn: `arn:aws:iam::${ACCOUNT}:user/mallory`,
      actorType: 'IAMUser',
      callerIp: '203.0.113.9',
      sessionId: IDS.session,
      eni: IDS.eni,
      vni: VNI,
      targetId: IDS.target,
      filterId: IDS.filter,
    });
    expect(ev.userAgent).toMatch(/^aws-cli\//);
    expect(ev.errorCode).toBeUndefined();
    expect(ev.invokedBy).toBeUndefined();
    expect(ev.record).toBe(rec);
  });

  it('keeps the STS session as the actor and the role behind it for AssumedRole', () => {
    const ev = normalizeRecord(createSession({}, { actor: OPS_ROLE }))!;
    expect(ev.actorArn).toContain(':assumed-role/AWSReservedSSO_NetOps');
    expect(ev.actorArn).toContain('alice@example.com');
    expect(ev.roleArn).toMatch(/^arn:aws:iam::111122223333:role\/.*AWSReservedSSO_NetOps/);
    expect(ev.actorType).toBe('AssumedRole');
  });

  it('falls back to the session issuer when userIdentity has no arn', () => {
    const rec = createSession({}, { actor: { ...OPS_ROLE, userIdentity: { ...OPS_ROLE.userIdentity, arn: undefined } } });
    expect(normalizeRecord(rec)!.actorArn).toMatch(/:role\//);
  });

  it('reads a Modify: the response is the state after the call, the request only what changed', () => {
    const ev = normalizeRecord(modifySession({ vni: 77 }, { VirtualNetworkId: 77, RemoveField: [{ content: 'description', tag: 1 }] }))!;
    expect(ev).toMatchObject({ sessionId: IDS.session, vni: 77, eni: IDS.eni, targetId: IDS.target });
    expect(removedFields(ev)).toEqual(['description']);
  });

  it('reads a Delete: the session ID from request and response', () => {
    const ev = normalizeRecord(deleteSession(IDS.session2))!;
    expect(ev.sessionId).toBe(IDS.session2);
    expect(ev.vni).toBeUndefined();
  });

  it('puts a target ENI in targetDestination, never in eni (eni is the mirrored interface)', () => {
    const ev = normalizeRecord(createTarget(IDS.rogueTarget, IDS.collectorEni))!;
    expect(ev.targetId).toBe(IDS.rogueTarget);
    expect(ev.targetDestination).toBe(IDS.collectorEni);
    expect(ev.eni).toBeUndefined();
    const nlb = 'arn:aws:elasticloadbalancing:eu-central-1:444455556666:loadbalancer/net/exfil/0123456789abcdef';
    expect(normalizeRecord(createNlbTarget(IDS.rogueTarget, nlb))!.targetDestination).toBe(nlb);
  });

  it('reads a filter rule deletion, which logs only the rule ID', () => {
    const ev = normalizeRecord(deleteFilterRule(IDS.filterRule))!;
    expect(ev.filterRuleId).toBe(IDS.filterRule);
    expect(ev.filterId).toBeUndefined();
  });

  it('reads a failed call from the request alone', () => {
    const ev = normalizeRecord(createSession({}, { error: { code: 'Client.UnauthorizedOperation', message: 'You are not authorized to perform this operation.' } }))!;
    expect(ev.errorCode).toBe('Client.UnauthorizedOperation');
    expect(ev.errorMessage).toMatch(/not authorized/);
    expect(ev.sessionId).toBeUndefined(); // AWS assigns it; a failed call has none
    expect(ev).toMatchObject({ eni: IDS.eni, vni: VNI, targetId: IDS.target, filterId: IDS.filter });
  });

  it('marks DryRun calls', () => {
    const rec = createSession({}, { error: { code: 'Client.DryRunOperation', message: 'Request would have succeeded, but DryRun flag is set.' } });
    ((rec.requestParameters as Record<string, Record<string, unknown>>).CreateTrafficMirrorSessionRequest!).DryRun = true;
    expect(normalizeRecord(rec)!.dryRun).toBe(true);
    expect(normalizeRecord(createSession())!.dryRun).toBeUndefined();
  });

  it('returns Describe calls (the rules decide) and null for other calls and services', () => {
    expect(normalizeRecord(describeSessions())!.eventName).toBe('DescribeTrafficMirrorSessions');
    expect(classifyRecord({ ...createSession(), eventName: 'RunInstances' })).toEqual({ ok: false, reason: 'other-call' });
    expect(classifyRecord({ ...createSession(), eventSource: 's3.amazonaws.com' })).toEqual({ ok: false, reason: 'other-service' });
  });

  it('summarizes the request without the idempotency token', () => {
    const s = requestSummary(normalizeRecord(createSession())!)!;
    expect(s).toMatchObject({ NetworkInterfaceId: IDS.eni, VirtualNetworkId: VNI });
    expect(Object.keys(s)).not.toContain('ClientToken');
  });
});

describe('normalizeRecord on variant shapes', () => {
  const unwrappedCreate = (over: Record<string, unknown> = {}): Record<string, unknown> => {
    const rec = createSession();
    const req = (rec.requestParameters as Record<string, unknown>).CreateTrafficMirrorSessionRequest as Record<string, unknown>;
    const resp = (rec.responseElements as Record<string, unknown>).CreateTrafficMirrorSessionResponse as Record<string, unknown>;
    return { ...rec, requestParameters: req, responseElements: resp, ...over };
  };

  it('reads requests and responses without their wrappers', () => {
    expect(normalizeRecord(unwrappedCreate())).toMatchObject({ sessionId: IDS.session, vni: VNI, eni: IDS.eni });
  });

  it('reads keys in either case', () => {
    const rec = unwrappedCreate({
      requestParameters: { networkInterfaceId: IDS.eni, virtualNetworkId: '42', TRAFFICMIRRORTARGETID: IDS.target },
      responseElements: { TrafficMirrorSession: { TrafficMirrorSessionId: IDS.session, VirtualNetworkId: 42 } },
    });
    expect(normalizeRecord(rec)).toMatchObject({ sessionId: IDS.session, vni: 42, eni: IDS.eni, targetId: IDS.target });
    const upper = { ...createSession() } as Record<string, unknown>;
    upper.EventSource = upper.eventSource;
    delete upper.eventSource;
    expect(normalizeRecord(upper)?.eventName).toBe('CreateTrafficMirrorSession');
  });

  it('reads numbers as strings, floats and exponents; refuses fractional or out-of-range VNIs', () => {
    const withVni = (v: unknown): Record<string, unknown> =>
      unwrappedCreate({ requestParameters: { NetworkInterfaceId: IDS.eni, VirtualNetworkId: v }, responseElements: null });
    expect(normalizeRecord(withVni('12348395'))!.vni).toBe(12348395);
    expect(normalizeRecord(withVni(1.2348395e7))!.vni).toBe(12348395);
    expect(normalizeRecord(withVni('1.2348395e+07'))!.vni).toBe(12348395);
    for (const bad of [12348395.5, 16777216, -3, 'twelve']) {
      const ev = normalizeRecord(withVni(bad))!;
      expect(ev.vni).toBeUndefined();
      expect(ev.weird?.[0]).toMatch(/VirtualNetworkId .* is not an integer in 0\.\.16777215/);
    }
  });

  it('reads ownerId as a float, and recipientAccountId as a number', () => {
    const rec = unwrappedCreate({ recipientAccountId: undefined, userIdentity: { type: 'IAMUser', arn: 'arn:aws:iam::123123123123:user/x' } });
    (rec.responseElements as Record<string, Record<string, unknown>>).trafficMirrorSession!.ownerId = 1.23123123123e11;
    expect(normalizeRecord(rec)!.accountId).toBe('123123123123');
    expect(normalizeRecord({ ...createSession(), recipientAccountId: 12345678901 })!.accountId).toBe('012345678901');
  });

  it('reads every plausible eventTime form, and skips the record with a reason when it cannot', () => {
    const at = (t: unknown): number | undefined => normalizeRecord({ ...createSession(), eventTime: t })?.eventTime;
    const t = Date.UTC(2024, 2, 5, 10, 15, 42);
    expect(at('2024-03-05 10:15:42')).toBe(t);
    expect(at('2024-03-05T10:15:42.000Z')).toBe(t);
    expect(at('2024-03-05T11:15:42+01:00')).toBe(t);
    expect(at(t / 1000)).toBe(t);
    expect(at(t)).toBe(t);
    expect(classifyRecord({ ...createSession(), eventTime: 'last tuesday' })).toMatchObject({ ok: false, reason: 'bad-event-time' });
    expect(classifyRecord({ ...createSession(), eventTime: undefined })).toMatchObject({ ok: false, reason: 'bad-event-time' });
  });

  it('derives a stable event ID from the record when eventID is missing', () => {
    const rec = createSession({}, { eventId: null });
    const a = normalizeRecord(rec)!.eventId;
    expect(a).toMatch(/^derived-[0-9a-f]{32}$/);
    // The same record with its keys in another order (another exporter) gets the same ID ...
    const reordered = Object.fromEntries(Object.entries(rec).reverse());
    expect(normalizeRecord(reordered)!.eventId).toBe(a);
    // ... and a different record another one.
    expect(normalizeRecord({ ...rec, eventTime: '2024-03-05T10:15:43Z' })!.eventId).not.toBe(a);
  });

  it('never throws and returns null for garbage', () => {
    for (const g of [null, undefined, 0, 'CreateTrafficMirrorSession', [], [createSession()], {}, { eventSource: 5 }, { eventSource: 'ec2.amazonaws.com' }, { eventSource: 'ec2.amazonaws.com', eventName: 42 }]) {
      expect(normalizeRecord(g)).toBeNull();
    }
    const hostile = new Proxy(createSession(), {
      get(target, p) {
        if (p === 'requestParameters') throw new Error('boom');
        return Reflect.get(target, p);
      },
    });
    expect(classifyRecord(hostile)).toMatchObject({ ok: false, reason: 'malformed' });
  });

  it('never throws on random JSON, and still reads a good record afterwards', () => {
    const fields = fc.record(
      {
        eventSource: fc.oneof(fc.constant('ec2.amazonaws.com'), fc.string()),
        eventName: fc.oneof(fc.constant('CreateTrafficMirrorSession'), fc.constant('ModifyTrafficMirrorSession'), fc.string()),
        eventTime: fc.oneof(fc.string(), fc.double(), fc.constant('2022-11-15 22:58:13')),
        userIdentity: fc.jsonValue(),
        requestParameters: fc.jsonValue(),
        responseElements: fc.jsonValue(),
        eventID: fc.jsonValue(),
        recipientAccountId: fc.jsonValue(),
      },
      { requiredKeys: [] },
    );
    fc.assert(
      fc.property(fc.oneof(fields, fc.jsonValue()), (rec) => {
        const ev = normalizeRecord(rec);
        if (ev !== null) {
          expect(Number.isFinite(ev.eventTime)).toBe(true);
          expect(typeof ev.eventId).toBe('string');
          if (ev.vni !== undefined) expect(Number.isInteger(ev.vni) && ev.vni >= 0 && ev.vni <= 0xffffff).toBe(true);
        }
      }),
      { numRuns: 500 },
    );
    expect(normalizeRecord(createSession())!.sessionId).toBe(IDS.session);
  });
});
