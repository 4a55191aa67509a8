/**
 * Correlation in both directions. Control events are built as the CloudTrail normalizer builds them
 * from raw records (src/detect/cloudtrail/normalize.ts), with the real record kept as evidence; one
 * test feeds a real (Panther-exported) ModifyTrafficMirrorSession record through the whole path.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import type { ControlEvent } from '../../src/detect/cloudtrail/types.js';
import type { Db } from '../../src/store/db.js';
import { storeFromDb } from '../../src/store/store.js';
import { settledStore } from '../helpers/settled.js';
import * as correlate from '../../src/detect/correlate.js';
import { Detector } from '../../src/detect/detector.js';
import type { FindingEvent } from '../../src/detect/finding.js';
import { checkManifestText } from '../../src/detect/manifest.js';
import { findingId } from '../../src/detect/store.js';
import { openDb } from '../../src/store/db.js';
import { describeWithFixtures, fixture } from '../helpers/fixtures.js';

const T0 = Date.UTC(2025, 5, 1, 12);
const MIN = 60_000;
const EVE = 'arn:aws:iam::111122223333:user/eve';

let seq = 0;
/** A control event shaped like the normalizer's output for a raw CloudTrail record. */
function ev(name: string, at: number, fields: Partial<ControlEvent> = {}): ControlEvent {
  const eventId = fields.eventId ?? `evt-${++seq}`;
  const sessionId = fields.sessionId;
  const record = {
    eventVersion: '1.09',
    userIdentity: { type: 'IAMUser', arn: fields.actorArn ?? EVE, accountId: '111122223333' },
    eventTime: new Date(at).toISOString().replace(/\.\d{3}Z$/, 'Z'),
    eventSource: 'ec2.amazonaws.com',
    eventName: name,
    awsRegion: 'eu-central-1',
    sourceIPAddress: fields.callerIp ?? '203.0.113.9',
    userAgent: 'aws-cli/2.15.0',
    requestParameters: { [`${name}Request`]: { NetworkInterfaceId: fields.eni, VirtualNetworkId: fields.vni, TrafficMirrorSessionId: sessionId } },
    responseElements: fields.errorCode ? null : { [`${name}Response`]: { trafficMirrorSession: { trafficMirrorSessionId: sessionId, virtualNetworkId: fields.vni } } },
    eventID: eventId,
    eventType: 'AwsApiCall',
    recipientAccountId: '111122223333',
  };
  return {
    eventId,
    eventName: name,
    eventTime: at,
    eventSource: 'ec2.amazonaws.com',
    awsRegion: 'eu-central-1',
    accountId: '111122223333',
    actorArn: EVE,
    actorType: 'IAMUser',
    callerIp: '203.0.113.9',
    userAgent: 'aws-cli/2.15.0',
    ...fields,
    record,
  };
}

function setup(manifestText?: string) {
  const db = openDb(':memory:');
  const events: FindingEvent[] = [];
  let now = T0;
  const manifest = manifestText ? checkManifestText(`version: 1\nsessions:\n${manifestText}`, 'm.yaml').manifest! : null;
  const det = new Detector({ db, manifest, onChange: (e) => void events.push(e), clock: () => now });
  return { db, det, events, setNow: (t: number) => (now = t) };
}

// The correlation queries on the store's repositories, each in a transaction of its own.
function recordControlEvent(db: Db, e: ControlEvent): Promise<boolean> {
  const st = storeFromDb(db);
  return st.tx((q) => correlate.recordControlEvent(st, e, q));
}
function controlEvidenceForTraffic(db: Db, query: Parameters<typeof correlate.controlEvidenceForTraffic>[1]) {
  const st = storeFromDb(db);
  return st.tx((q) => correlate.controlEvidenceForTraffic(st, query, q));
}
function trafficEvidence(db: Db, query: Parameters<typeof correlate.trafficEvidence>[1]) {
  const st = storeFromDb(db);
  return st.tx((q) => correlate.trafficEvidence(st, query, q));
}

describe('control events table', () => {
  it('is idempotent on eventId', async () => {
    const { db } = setup();
    const e = ev('CreateTrafficMirrorSession', T0, { sessionId: 'tms-0aaaaaaaaaaaaaaaa', vni: 100, eni: 'eni-0bbbbbbbbbbbbbbbb' });
    expect((await recordControlEvent(db, e))).toBe(true);
    expect((await recordControlEvent(db, e))).toBe(false);
    expect(db.prepare('SELECT event_id, vni, session_id, actor_arn, source_ip, record FROM control_events').all()).toEqual([
      { event_id: e.eventId, vni: 100, session_id: 'tms-0aaaaaaaaaaaaaaaa', actor_arn: EVE, source_ip: '203.0.113.9', record: JSON.stringify(e.record) },
    ]);
  });
});

describe('forward: control event first, traffic later', () => {
  it('the data-plane finding carries who created the session, when, from where, which session and ENI', async () => {
    const { det, db } = setup();
    const create = ev('CreateTrafficMirrorSession', T0 - 5 * MIN, { sessionId: 'tms-0aaaaaaaaaaaaaaaa', vni: 100, eni: 'eni-0bbbbbbbbbbbbbbbb', targetId: 'tmt-0cccccccccccccccc' });
    await recordControlEvent(db, create);
    det.onNewPair('10.1.1.1', 100, T0);
    const f = (await settledStore(det).get(findingId('unauthorized-vni', '10.1.1.1|100')))!;
    expect(f.correlated?.control).toEqual([
      {
        eventId: create.eventId,
        eventName: 'CreateTrafficMirrorSession',
        eventTime: new Date(T0 - 5 * MIN).toISOString(),
        actorArn: EVE,
        callerIp: '203.0.113.9',
        sessionId: 'tms-0aaaaaaaaaaaaaaaa',
        eni: 'eni-0bbbbbbbbbbbbbbbb',
        vni: 100,
        targetId: 'tmt-0cccccccccccccccc',
      },
    ]);
    // Traffic on another VNI is not explained by it.
    det.onNewPair('10.1.1.1', 101, T0);
    expect((await settledStore(det).get(findingId('unauthorized-vni', '10.1.1.1|101')))!.correlated).toBeUndefined();
  });

  it('does not cite a session deleted before the traffic, a failed create, or a session moved to another VNI', async () => {
    const { db } = setup();
    const A = 'tms-0aaaaaaaaaaaaaaa1';
    const B = 'tms-0aaaaaaaaaaaaaaa2';
    await recordControlEvent(db, ev('CreateTrafficMirrorSession', T0 - 60 * MIN, { sessionId: A, vni: 100 }));
    await recordControlEvent(db, ev('DeleteTrafficMirrorSession', T0 - 30 * MIN, { sessionId: A }));
    await recordControlEvent(db, ev('CreateTrafficMirrorSession', T0 - 20 * MIN, { vni: 100, errorCode: 'Client.NetworkInterfaceNotSupported' }));
    await recordControlEvent(db, ev('CreateTrafficMirrorSession', T0 - 10 * MIN, { sessionId: B, vni: 100 }));
    await recordControlEvent(db, ev('ModifyTrafficMirrorSession', T0 - 5 * MIN, { sessionId: B, vni: 200 }));
    expect((await controlEvidenceForTraffic(db, { vni: 100, atMs: T0 }))).toEqual([]);
    expect((await controlEvidenceForTraffic(db, { vni: 200, atMs: T0 })).map((c) => [c.eventName, c.sessionId, c.vni])).toEqual([
      ['CreateTrafficMirrorSession', B, 100],
      ['ModifyTrafficMirrorSession', B, 200],
    ]);
    // Before A was deleted, A explained traffic on 100.
    expect((await controlEvidenceForTraffic(db, { vni: 100, atMs: T0 - 45 * MIN })).map((c) => c.sessionId)).toEqual([A]);
    // An event hours after the traffic did not cause it (beyond the clock-skew allowance).
    expect((await controlEvidenceForTraffic(db, { vni: 200, atMs: T0 - 60 * MIN }))).toEqual([]);
  });

  it('an open mirror-session-created finding learns that traffic now flows on its VNI', async () => {
    const { det } = setup();
    const create = ev('CreateTrafficMirrorSession', T0 - MIN, { sessionId: 'tms-0aaaaaaaaaaaaaaaa', vni: 100, eni: 'eni-0bbbbbbbbbbbbbbbb', targetId: 'tmt-0cccccccccccccccc' });
    const r = (await det.ingestControlEvents([create]));
    expect(r.findings.map((f) => f.kind)).toEqual(['mirror-session-created']);
    expect(r.findings[0]!.correlated).toBeUndefined();
    det.onNewPair('10.1.1.1', 100, T0);
    const cf = (await settledStore(det).get(r.findings[0]!.id))!;
    expect(cf.correlated?.traffic).toEqual([{ sourceIp: '10.1.1.1', vni: 100, firstSeen: new Date(T0).toISOString(), lastSeen: new Date(T0).toISOString() }]);
  });
});

describe('an authorized pair', () => {
  it('still reaches an open finding on its VNI (the quick check for open findings lets it through), and writes none where nothing is open', async () => {
    const { det, db } = setup(`  - id: tms-0aaaaaaaaaaaaaaaa\n    vni: 100\n    sourceIps: [10.1.1.1]\n  - id: tms-0dddddddddddddddd\n    vni: 300\n    sourceIps: [10.3.3.3]\n`);
    // A session the manifest does not list is created on the manifest session's VNI: a finding on it, open.
    const create = ev('CreateTrafficMirrorSession', T0 - MIN, { sessionId: 'tms-0eeeeeeeeeeeeeeee', vni: 100, eni: 'eni-0bbbbbbbbbbbbbbbb', targetId: 'tmt-0cccccccccccccccc' });
    const r = await det.ingestControlEvents([create]);
    expect(r.findings.map((f) => [f.kind, f.status, f.vni])).toEqual([['mirror-session-created', 'open', 100]]);
    expect(det.onNewPair('10.1.1.1', 100, T0).status).toBe('authorized');
    expect(det.onNewPair('10.3.3.3', 300, T0).status).toBe('authorized');
    const cf = (await settledStore(det).get(r.findings[0]!.id))!;
    expect(cf.correlated?.traffic?.map((t) => [t.sourceIp, t.vni])).toEqual([['10.1.1.1', 100]]);
    const st = storeFromDb(db);
    expect((await st.findings.list({ limit: 100 })).map((f) => f.kind)).toEqual(['mirror-session-created']);
    expect((await st.observed.all()).map((o) => [o.source_ip, o.vni, o.session_id])).toEqual([
      ['10.1.1.1', 100, 'tms-0aaaaaaaaaaaaaaaa'],
      ['10.3.3.3', 300, 'tms-0dddddddddddddddd'],
    ]);
  });
});

describe('reverse: traffic first, control event later', () => {
  it('attaches the event to the open data-plane finding and the traffic to the control-plane finding', async () => {
    const { det, events } = setup();
    det.onNewPair('10.1.1.1', 100, T0);
    const dpId = findingId('unauthorized-vni', '10.1.1.1|100');
    expect((await settledStore(det).get(dpId))!.correlated).toBeUndefined();

    // CloudTrail delivers the create about 10 minutes after the call.
    const create = ev('CreateTrafficMirrorSession', T0 - MIN, { sessionId: 'tms-0aaaaaaaaaaaaaaaa', vni: 100, eni: 'eni-0bbbbbbbbbbbbbbbb' });
    const r = (await det.ingestControlEvents([create]));
    expect(r.correlated.map((f) => f.id)).toEqual([dpId]);
    const dp = (await settledStore(det).get(dpId))!;
    expect(dp.correlated?.control?.map((c) => [c.actorArn, c.callerIp, c.sessionId, c.eni, c.eventTime])).toEqual([
      [EVE, '203.0.113.9', 'tms-0aaaaaaaaaaaaaaaa', 'eni-0bbbbbbbbbbbbbbbb', new Date(T0 - MIN).toISOString()],
    ]);
    expect(dp.count).toBe(1); // new evidence, not a new occurrence
    const cf = r.findings[0]!;
    expect(cf.kind).toBe('mirror-session-created');
    expect(cf.correlated?.traffic?.map((t) => [t.sourceIp, t.vni])).toEqual([['10.1.1.1', 100]]);
    await det.settled();
    expect(events.filter((e) => e.finding.id === dpId).map((e) => `${e.type}:${e.reason ?? ''}`)).toEqual(['finding.created:', 'finding.updated:correlated']);

    // The same CloudTrail event delivered again (a second trail, an EventBridge copy) does nothing.
    const again = (await det.ingestControlEvents([create]));
    expect(again).toMatchObject({ duplicates: 1, findings: [], correlated: [] });
    expect((await settledStore(det).get(cf.id))!.count).toBe(1);
  });

  it('a session created well after the traffic began did not start it', async () => {
    const { det } = setup();
    det.onNewPair('10.1.1.1', 100, T0);
    const late = ev('CreateTrafficMirrorSession', T0 + 30 * MIN, { sessionId: 'tms-0aaaaaaaaaaaaaaaa', vni: 100 });
    expect((await det.ingestControlEvents([late])).correlated).toEqual([]);
    expect((await settledStore(det).get(findingId('unauthorized-vni', '10.1.1.1|100')))!.correlated).toBeUndefined();
  });

  it('a failed create is not attached to traffic', async () => {
    const { det } = setup();
    det.onNewPair('10.1.1.1', 100, T0);
    const failed = ev('CreateTrafficMirrorSession', T0 + MIN, { vni: 100, errorCode: 'Client.UnauthorizedOperation' });
    expect((await det.ingestControlEvents([failed])).correlated).toEqual([]);
  });

  it('traffic that stopped before the session was created is not its traffic', async () => {
    const { det, db } = setup();
    db.prepare('INSERT INTO observed_sessions (source_ip, vni, first_seen, last_seen) VALUES (?, ?, ?, ?)').run('10.2.2.2', 100, T0 - 120 * MIN, T0 - 90 * MIN);
    expect((await trafficEvidence(db, { vni: 100, sinceMs: T0 }))).toEqual([]);
    expect((await trafficEvidence(db, { vni: 100, sinceMs: T0 - 100 * MIN })).map((t) => t.sourceIp)).toEqual(['10.2.2.2']);
    expect((await det.ingestControlEvents([ev('CreateTrafficMirrorSession', T0, { sessionId: 'tms-0aaaaaaaaaaaaaaaa', vni: 100 })])).findings[0]!.correlated).toBeUndefined();
  });
});

describeWithFixtures('correlation with a real CloudTrail record (Panther export of ModifyTrafficMirrorSession)', () => {
  const raw = JSON.parse(readFileSync(fixture('cloudtrail', 'panther-aws_ec2_traffic_mirroring-ModifyTrafficMirrorSession.json'), 'utf8'));
  // The record's eventTime is 2022-11-15 23:10:17 (UTC); VNI 12348395, tms-05e1e21760419ecb6 on eni-08dd7ebbda3b01770.
  const EVENT_AT = Date.UTC(2022, 10, 15, 23, 10, 17);

  it('forward: traffic after the modify carries the actor, time, caller, session and ENI', async () => {
    const { det } = setup();
    const r = (await det.ingestCloudTrail(raw));
    expect(r.events).toHaveLength(1);
    expect(r.findings.map((f) => f.kind)).toEqual(['mirror-session-modified']);
    det.onNewPair('172.31.0.238', 12348395, EVENT_AT + 2 * MIN);
    const f = (await settledStore(det).get(findingId('unauthorized-vni', '172.31.0.238|12348395')))!;
    expect(f.correlated?.control).toEqual([
      {
        eventId: '66c0fb61-804e-4cee-9f2e-c1d23c406a78',
        eventName: 'ModifyTrafficMirrorSession',
        eventTime: '2022-11-15T23:10:17.000Z',
        actorArn: 'arn:aws:sts::123123123123:assumed-role/MakeStuffPublic',
        callerIp: 'AWS Internal',
        sessionId: 'tms-05e1e21760419ecb6',
        eni: 'eni-08dd7ebbda3b01770',
        vni: 12348395,
        targetId: 'tmt-0a45c694b91bcea54',
        filterId: 'tmf-010db9a7d8056cc2d',
      },
    ]);
    expect((await settledStore(det).get(r.findings[0]!.id))!.correlated?.traffic?.[0]).toMatchObject({ sourceIp: '172.31.0.238', vni: 12348395 });
  });

  it('reverse: the record arriving after the traffic updates the data-plane finding', async () => {
    const { det } = setup();
    det.onNewPair('172.31.0.238', 12348395, EVENT_AT + 2 * MIN);
    const r = (await det.ingestCloudTrail({ Records: [raw] }));
    expect(r.correlated).toHaveLength(1);
    expect(r.correlated[0]!.correlated?.control?.[0]).toMatchObject({ actorArn: 'arn:aws:sts::123123123123:assumed-role/MakeStuffPublic', sessionId: 'tms-05e1e21760419ecb6' });
    expect(r.findings[0]!.correlated?.traffic?.[0]).toMatchObject({ sourceIp: '172.31.0.238', vni: 12348395 });
  });
});
