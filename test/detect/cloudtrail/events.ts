/**
 * CloudTrail records in their RAW form, as CloudTrail writes them to S3: ISO-8601 `Z` eventTime, string
 * account IDs, JSON numbers, EC2's `XxxRequest` / `XxxResponse` wrappers, full userIdentity. These are
 * our own events (the shared fixtures are Panther-normalized); field names follow the EC2 API Reference
 * for each call and the CloudTrail record contents reference.
 */
import type { Manifest, ManifestSession } from '../../../src/detect/manifest-types.js';

export const ACCOUNT = '111122223333';
export const REGION = 'eu-central-1';
export const EC2_XMLNS = 'http://ec2.amazonaws.com/doc/2016-11-15/';

// Valid-looking IDs (17 hex digits), used across tests.
export const IDS = {
  session: 'tms-0a1b2c3d4e5f60718',
  session2: 'tms-0f9e8d7c6b5a40312',
  eni: 'eni-0123456789abcdef0',
  eni2: 'eni-0fedcba9876543210',
  target: 'tmt-0aaaabbbbccccdddd',
  rogueTarget: 'tmt-0eeeeffff00001111',
  filter: 'tmf-0123412341234abcd',
  rogueFilter: 'tmf-0999988887777aaaa',
  filterRule: 'tmfr-0abcabcabcabcabca',
  collectorEni: 'eni-0c011ec70c011ec70',
} as const;

export const VNI = 5569041;

export interface Actor {
  userIdentity: Record<string, unknown>;
  sourceIPAddress: string;
  userAgent: string;
}

export const MALLORY: Actor = {
  userIdentity: {
    type: 'IAMUser',
    principalId: 'AIDAEXAMPLEMALLORY01',
    arn: `arn:aws:iam::${ACCOUNT}:user/mallory`,
    accountId: ACCOUNT,
    accessKeyId: 'AKIAEXAMPLEMALLORY01',
    userName: 'mallory',
  },
  sourceIPAddress: '203.0.113.9',
  userAgent: 'aws-cli/2.15.30 md/Botocore#1.34.70 ua/2.0 os/linux#6.1.0 md/arch#x86_64 lang/python#3.11.8 command/ec2.create-traffic-mirror-session',
};

/** A console user through an assumed role (SSO): arn is the STS session, the issuer the role. */
export const OPS_ROLE: Actor = {
  userIdentity: {
    type: 'AssumedRole',
    principalId: 'AROAEXAMPLEOPSROLE01:alice@example.com',
    arn: `arn:aws:sts::${ACCOUNT}:assumed-role/AWSReservedSSO_NetOps_0123456789abcdef/alice@example.com`,
    accountId: ACCOUNT,
    accessKeyId: 'ASIAEXAMPLEALICE0001',
    sessionContext: {
      sessionIssuer: {
        type: 'Role',
        principalId: 'AROAEXAMPLEOPSROLE01',
        arn: `arn:aws:iam::${ACCOUNT}:role/aws-reserved/sso.amazonaws.com/eu-central-1/AWSReservedSSO_NetOps_0123456789abcdef`,
        accountId: ACCOUNT,
        userName: 'AWSReservedSSO_NetOps_0123456789abcdef',
      },
      attributes: { creationDate: '2024-03-05T09:58:01Z', mfaAuthenticated: 'false' },
    },
  },
  sourceIPAddress: '198.51.100.20',
  userAgent: 'Mozilla/5.0 (X11; Linux x86_64) AWS-Console',
};

/** AWS Config reading (or CloudFormation acting) on a role's behalf: `invokedBy` is set. */
export function serviceActor(service = 'config.amazonaws.com'): Actor {
  return {
    userIdentity: {
      type: 'AssumedRole',
      principalId: 'AROAEXAMPLESERVICE01:AWSConfig-Describe',
      arn: `arn:aws:sts::${ACCOUNT}:assumed-role/AWSServiceRoleForConfig/AWSConfig-Describe`,
      accountId: ACCOUNT,
      invokedBy: service,
      sessionContext: {
        sessionIssuer: { type: 'Role', arn: `arn:aws:iam::${ACCOUNT}:role/aws-service-role/config.amazonaws.com/AWSServiceRoleForConfig`, accountId: ACCOUNT },
      },
    },
    sourceIPAddress: service,
    userAgent: service,
  };
}

let counter = 0;
function uuid(): string {
  counter++;
  const n = counter.toString(16).padStart(12, '0');
  return `5f0c1d2e-3a4b-4c5d-8e6f-${n}`;
}

export interface CallOptions {
  actor?: Actor;
  time?: string;
  eventId?: string | null;
  error?: { code: string; message: string };
  region?: string;
}

/** A raw record for an EC2 Query API call: wrappers added, response left out when the call failed. */
export function ec2Call(eventName: string, request: Record<string, unknown>, response: Record<string, unknown> | null, o: CallOptions = {}): Record<string, unknown> {
  const actor = o.actor ?? MALLORY;
  const requestId = uuid();
  const rec: Record<string, unknown> = {
    eventVersion: '1.09',
    userIdentity: actor.userIdentity,
    eventTime: o.time ?? '2024-03-05T10:15:42Z',
    eventSource: 'ec2.amazonaws.com',
    eventName,
    awsRegion: o.region ?? REGION,
    sourceIPAddress: actor.sourceIPAddress,
    userAgent: actor.userAgent,
    requestParameters: { [`${eventName}Request`]: request },
    responseElements: o.error || response === null ? null : { [`${eventName}Response`]: { requestId, xmlns: EC2_XMLNS, ...response } },
    requestID: requestId,
    eventID: o.eventId === null ? undefined : (o.eventId ?? uuid()),
    readOnly: /^Describe/.test(eventName),
    eventType: 'AwsApiCall',
    managementEvent: true,
    recipientAccountId: ACCOUNT,
    eventCategory: 'Management',
    tlsDetails: { tlsVersion: 'TLSv1.3', cipherSuite: 'TLS_AES_128_GCM_SHA256', clientProvidedHostHeader: `ec2.${REGION}.amazonaws.com` },
  };
  if (o.error) {
    rec.errorCode = o.error.code;
    rec.errorMessage = o.error.message;
  }
  if (rec.eventID === undefined) delete rec.eventID;
  return rec;
}

export interface SessionSpec {
  id?: string;
  eni?: string;
  target?: string;
  filter?: string;
  vni?: number;
}

const sessionDefaults = (s: SessionSpec): Required<SessionSpec> => ({
  id: s.id ?? IDS.session,
  eni: s.eni ?? IDS.eni,
  target: s.target ?? IDS.target,
  filter: s.filter ?? IDS.filter,
  vni: s.vni ?? VNI,
});

function sessionResource(s: Required<SessionSpec>): Record<string, unknown> {
  return {
    trafficMirrorSession: {
      trafficMirrorSessionId: s.id,
      trafficMirrorTargetId: s.target,
      trafficMirrorFilterId: s.filter,
      networkInterfaceId: s.eni,
      ownerId: ACCOUNT,
      sessionNumber: 1,
      virtualNetworkId: s.vni,
      tagSet: '',
    },
  };
}

export function createSession(spec: SessionSpec = {}, o: CallOptions = {}): Record<string, unknown> {
  const s = sessionDefaults(spec);
  return ec2Call(
    'CreateTrafficMirrorSession',
    { NetworkInterfaceId: s.eni, TrafficMirrorTargetId: s.target, TrafficMirrorFilterId: s.filter, SessionNumber: 1, VirtualNetworkId: s.vni, ClientToken: uuid() },
    { clientToken: uuid(), ...sessionResource(s) },
    o,
  );
}

/** A Modify: the request carries only `changes`; the response the whole session after the change. */
export function modifySession(after: SessionSpec, changes: Record<string, unknown>, o: CallOptions = {}): Record<string, unknown> {
  const s = sessionDefaults(after);
  return ec2Call('ModifyTrafficMirrorSession', { TrafficMirrorSessionId: s.id, ...changes }, sessionResource(s), o);
}

export function deleteSession(id: string = IDS.session, o: CallOptions = {}): Record<string, unknown> {
  return ec2Call('DeleteTrafficMirrorSession', { TrafficMirrorSessionId: id }, { trafficMirrorSessionId: id }, o);
}

export function createTarget(id: string = IDS.rogueTarget, eni: string = IDS.eni2, o: CallOptions = {}): Record<string, unknown> {
  return ec2Call(
    'CreateTrafficMirrorTarget',
    { NetworkInterfaceId: eni, Description: 'collector', ClientToken: uuid() },
    { clientToken: uuid(), trafficMirrorTarget: { trafficMirrorTargetId: id, networkInterfaceId: eni, ownerId: ACCOUNT, type: 'network-interface', description: 'collector', tagSet: '' } },
    o,
  );
}

export function createNlbTarget(id: string, nlbArn: string, o: CallOptions = {}): Record<string, unknown> {
  return ec2Call(
    'CreateTrafficMirrorTarget',
    { NetworkLoadBalancerArn: nlbArn, ClientToken: uuid() },
    { clientToken: uuid(), trafficMirrorTarget: { trafficMirrorTargetId: id, networkLoadBalancerArn: nlbArn, ownerId: ACCOUNT, type: 'network-load-balancer', tagSet: '' } },
    o,
  );
}

export function deleteTarget(id: string, o: CallOptions = {}): Record<string, unknown> {
  return ec2Call('DeleteTrafficMirrorTarget', { TrafficMirrorTargetId: id }, { trafficMirrorTargetId: id }, o);
}

export function createFilter(id: string = IDS.rogueFilter, o: CallOptions = {}): Record<string, unknown> {
  return ec2Call(
    'CreateTrafficMirrorFilter',
    { Description: 'all tcp', ClientToken: uuid() },
    { clientToken: uuid(), trafficMirrorFilter: { trafficMirrorFilterId: id, description: 'all tcp', egressFilterRuleSet: '', ingressFilterRuleSet: '', networkServiceSet: '', tagSet: '' } },
    o,
  );
}

export function createFilterRule(filter: string, ruleId: string = IDS.filterRule, o: CallOptions = {}): Record<string, unknown> {
  const rule = { TrafficMirrorFilterId: filter, TrafficDirection: 'ingress', RuleNumber: 100, RuleAction: 'accept', Protocol: 6, DestinationCidrBlock: '0.0.0.0/0', SourceCidrBlock: '0.0.0.0/0' };
  return ec2Call(
    'CreateTrafficMirrorFilterRule',
    { ...rule, ClientToken: uuid() },
    {
      clientToken: uuid(),
      trafficMirrorFilterRule: {
        trafficMirrorFilterRuleId: ruleId,
        trafficMirrorFilterId: filter,
        trafficDirection: 'ingress',
        ruleNumber: 100,
        ruleAction: 'accept',
        protocol: 6,
        destinationCidrBlock: '0.0.0.0/0',
        sourceCidrBlock: '0.0.0.0/0',
      },
    },
    o,
  );
}

export function modifyFilterRule(filter: string, ruleId: string, o: CallOptions = {}): Record<string, unknown> {
  return ec2Call(
    'ModifyTrafficMirrorFilterRule',
    { TrafficMirrorFilterRuleId: ruleId, RuleAction: 'reject' },
    { trafficMirrorFilterRule: { trafficMirrorFilterRuleId: ruleId, trafficMirrorFilterId: filter, trafficDirection: 'ingress', ruleNumber: 100, ruleAction: 'reject', protocol: 6 } },
    o,
  );
}

export function deleteFilterRule(ruleId: string, o: CallOptions = {}): Record<string, unknown> {
  return ec2Call('DeleteTrafficMirrorFilterRule', { TrafficMirrorFilterRuleId: ruleId }, { trafficMirrorFilterRuleId: ruleId }, o);
}

export function deleteFilter(id: string, o: CallOptions = {}): Record<string, unknown> {
  return ec2Call('DeleteTrafficMirrorFilter', { TrafficMirrorFilterId: id }, { trafficMirrorFilterId: id }, o);
}

export function modifyNetworkServices(filter: string, o: CallOptions = {}): Record<string, unknown> {
  return ec2Call(
    'ModifyTrafficMirrorFilterNetworkServices',
    { TrafficMirrorFilterId: filter, AddNetworkService: [{ content: 'amazon-dns', tag: 1 }] },
    { trafficMirrorFilter: { trafficMirrorFilterId: filter, networkServiceSet: { item: 'amazon-dns' } } },
    o,
  );
}

export function describeSessions(o: CallOptions = {}): Record<string, unknown> {
  return ec2Call('DescribeTrafficMirrorSessions', { MaxResults: 1000 }, null, o);
}

/** The authorized session of the tests' manifest, and a manifest holding it. */
export const AUTHORIZED: ManifestSession = {
  id: IDS.session,
  vni: VNI,
  sourceEni: IDS.eni,
  targetId: IDS.target,
  filterId: IDS.filter,
  region: REGION,
  line: 3,
};

export function manifestOf(...sessions: ManifestSession[]): Manifest {
  return { file: 'manifest.yaml', version: 1, sessions, sha256: 'a'.repeat(64) };
}

/** The YAML text of a manifest holding AUTHORIZED, for CLI tests that load a real file. */
export const AUTHORIZED_YAML = `version: 1
sessions:
  - id: ${IDS.session}
    vni: ${VNI}
    sourceEni: ${IDS.eni}
    targetId: ${IDS.target}
    filterId: ${IDS.filter}
    region: ${REGION}
`;
