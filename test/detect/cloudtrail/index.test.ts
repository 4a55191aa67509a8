/** The transport-independent entry points that `serve` (POST /v1/cloudtrail) calls with a request body. */
import { describe, expect, it } from 'vitest';
import { controlEventsFromJson, controlEventsFromText, evaluateControlEvent } from '../../../src/detect/cloudtrail/index.js';
import { MgError } from '../../../src/errors.js';
import { createSession, describeSessions, IDS } from './events.js';

describe('controlEventsFromJson / controlEventsFromText', () => {
  it('normalizes any accepted body and counts what it skipped, by reason', () => {
    const body = {
      Records: [createSession(), describeSessions(), { ...createSession(), eventName: 'RunInstances' }, { eventSource: 's3.amazonaws.com', eventName: 'GetObject' }, { ...createSession(), eventTime: 'x' }],
    };
    const r = controlEventsFromJson(body);
    expect(r.records).toBe(5);
    expect(r.events.map((e) => e.eventName)).toEqual(['CreateTrafficMirrorSession', 'DescribeTrafficMirrorSessions']);
    expect(r.skipped).toEqual({ 'other-call': 1, 'other-service': 1, 'bad-event-time': 1 });
    expect(evaluateControlEvent(r.events[0]!, null)[0]!.key).toBe(IDS.session);

    const eb = controlEventsFromJson({ 'detail-type': 'AWS API Call via CloudTrail', source: 'aws.ec2', detail: createSession() });
    expect(eb.events).toHaveLength(1);
    expect(controlEventsFromText(`${JSON.stringify(createSession())}\n${JSON.stringify(describeSessions())}\n`).events).toHaveLength(2);
  });

  it('answers a body that is no accepted shape with a coded 400', () => {
    let err: unknown;
    try {
      controlEventsFromJson({ hello: 'world' });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(MgError);
    expect((err as MgError).code).toBe('MG_ERR_CLOUDTRAIL_FORMAT');
    expect((err as MgError).statusCode).toBe(400);
  });
});
