/**
 * One CloudTrail record (any provenance) -> one ControlEvent, or a reason it is not one.
 *
 * EC2 logs the traffic-mirroring APIs with their Query-API wrappers: `requestParameters` holds
 * `{ "CreateTrafficMirrorSessionRequest": { "NetworkInterfaceId": ..., "VirtualNetworkId": ... } }` and
 * `responseElements` holds `{ "CreateTrafficMirrorSessionResponse": { "trafficMirrorSession": {...},
 * "requestId", "xmlns" } }`. Exports and SDK-shaped tooling drop the wrappers or change the key case
 * (`VirtualNetworkId` / `virtualNetworkId`), so every lookup here is wrapper-optional and
 * case-insensitive. Values go through values.ts (numbers as strings or floats, SIEM time formats).
 *
 * Nothing here throws on a record: a record we cannot read is a `skip` with a reason.
 */
import type { ControlEvent } from './types.js';
import { canonicalHash, parseAccountId, parseEventTime, parseInteger, parseVni, str, VNI_MAX } from './values.js';

export const EC2_EVENT_SOURCE = 'ec2.amazonaws.com';

/** The calls that change traffic mirroring, by what they change (EC2 API Reference, "Traffic Mirroring"). */
export const SESSION_CALLS = new Set(['CreateTrafficMirrorSession', 'ModifyTrafficMirrorSession', 'DeleteTrafficMirrorSession']);
export const TARGET_CALLS = new Set(['CreateTrafficMirrorTarget', 'DeleteTrafficMirrorTarget']);
export const FILTER_CALLS = new Set([
  'CreateTrafficMirrorFilter',
  'DeleteTrafficMirrorFilter',
  'CreateTrafficMirrorFilterRule',
  'ModifyTrafficMirrorFilterRule',
  'DeleteTrafficMirrorFilterRule',
  'ModifyTrafficMirrorFilterNetworkServices',
]);
export const MUTATING_CALLS: ReadonlySet<string> = new Set([...SESSION_CALLS, ...TARGET_CALLS, ...FILTER_CALLS]);

/** Describe, Get (and List, should AWS add one) calls only read. */
export function isReadOnlyCall(eventName: string): boolean {
  return /^(Describe|Get|List)/.test(eventName);
}

export type SkipReason =
  | 'not-an-object'
  | 'other-service' // eventSource is not ec2.amazonaws.com
  | 'other-call' // an EC2 call, but not a traffic-mirroring one
  | 'bad-event-time' // a traffic-mirroring call whose eventTime we cannot read
  | 'malformed'; // a traffic-mirroring call we could not read at all (should not happen)

export type Classified = { ok: true; event: ControlEvent } | { ok: false; reason: SkipReason; detail?: string };

/** A ControlEvent, or null for anything that is not an ec2.amazonaws.com traffic-mirroring call. */
export function normalizeRecord(raw: unknown): ControlEvent | null {
  const c = classifyRecord(raw);
  return c.ok ? c.event : null;
}

/** Like normalizeRecord, with the reason a record was skipped (for scan statistics and HTTP answers). */
export function classifyRecord(raw: unknown): Classified {
  if (!isObject(raw)) return { ok: false, reason: 'not-an-object' };
  try {
    return classifyObject(raw);
  } catch (e) {
    // Getters or proxies from in-process callers; JSON.parse output cannot get here.
    return { ok: false, reason: 'malformed', detail: e instanceof Error ? e.message : String(e) };
  }
}

function classifyObject(rec: Record<string, unknown>): Classified {
  const source = str(get(rec, 'eventSource'))?.toLowerCase();
  if (source !== EC2_EVENT_SOURCE) return { ok: false, reason: 'other-service' };
  const eventName = str(get(rec, 'eventName'));
  if (eventName === undefined || !eventName.includes('TrafficMirror')) return { ok: false, reason: 'other-call' };
  const rawTime = get(rec, 'eventTime');
  const eventTime = parseEventTime(rawTime);
  if (eventTime === undefined) return { ok: false, reason: 'bad-event-time', detail: `${eventName}: eventTime ${JSON.stringify(rawTime) ?? 'missing'}` };

  const weird: string[] = [];
  const identity = obj(get(rec, 'userIdentity'));
  const issuer = obj(get(obj(get(identity, 'sessionContext')), 'sessionIssuer'));
  const actorType = str(get(identity, 'type'));
  const roleArn = actorType === 'AssumedRole' ? str(get(issuer, 'arn')) : undefined;
  const req = unwrap(get(rec, 'requestParameters'), 'Request');
  const resp = unwrap(get(rec, 'responseElements'), 'Response');
  // The resource the response describes; a Delete response has only the deleted ID, at the top.
  const res = obj(
    get(resp, 'trafficMirrorSession') ?? get(resp, 'trafficMirrorTarget') ?? get(resp, 'trafficMirrorFilterRule') ?? get(resp, 'trafficMirrorFilter'),
  );
  // Response first: it is the state after the call (a Modify request carries only what changes).
  const field = (name: string): unknown => get(res, name) ?? get(resp, name) ?? get(req, name);
  const isTargetCall = eventName.includes('TrafficMirrorTarget');

  const ev: ControlEvent = {
    eventId: str(get(rec, 'eventID')) ?? `derived-${canonicalHash(rec).slice(0, 32)}`,
    eventName,
    eventTime,
    eventSource: EC2_EVENT_SOURCE,
    record: rec,
  };
  set(ev, 'awsRegion', str(get(rec, 'awsRegion')));
  set(
    ev,
    'accountId',
    parseAccountId(get(rec, 'recipientAccountId')) ?? parseAccountId(get(identity, 'accountId')) ?? parseAccountId(get(res, 'ownerId')),
  );
  set(ev, 'actorArn', str(get(identity, 'arn')) ?? str(get(issuer, 'arn')));
  set(ev, 'actorType', actorType);
  set(ev, 'roleArn', roleArn);
  set(ev, 'callerIp', str(get(rec, 'sourceIPAddress')));
  set(ev, 'userAgent', str(get(rec, 'userAgent')));
  set(ev, 'invokedBy', str(get(identity, 'invokedBy')));
  set(ev, 'errorCode', str(get(rec, 'errorCode')));
  set(ev, 'errorMessage', str(get(rec, 'errorMessage')));
  set(ev, 'sessionId', str(field('trafficMirrorSessionId')));
  set(ev, 'targetId', str(field('trafficMirrorTargetId')));
  set(ev, 'filterId', str(field('trafficMirrorFilterId')));
  set(ev, 'filterRuleId', str(field('trafficMirrorFilterRuleId')));
  if (isTargetCall) {
    // A target's NetworkInterfaceId is where mirrored traffic goes, not a mirrored interface.
    set(
      ev,
      'targetDestination',
      str(field('networkInterfaceId')) ?? str(field('networkLoadBalancerArn')) ?? str(field('gatewayLoadBalancerEndpointId')),
    );
  } else {
    set(ev, 'eni', str(field('networkInterfaceId')));
  }
  const rawVni = field('virtualNetworkId');
  if (rawVni !== undefined && rawVni !== null && rawVni !== '') {
    const vni = parseVni(rawVni);
    if (vni === undefined) weird.push(`VirtualNetworkId ${JSON.stringify(rawVni)} is not an integer in 0..${VNI_MAX}`);
    else ev.vni = vni;
  }
  const dry = get(req, 'dryRun');
  if (dry === true || dry === 'true' || parseInteger(dry) === 1 || ev.errorCode === 'Client.DryRunOperation') ev.dryRun = true;
  if (weird.length > 0) ev.weird = weird;
  return { ok: true, event: ev };
}

/**
 * The parameters worth showing in evidence: the unwrapped request without the idempotency token and
 * the XML namespace. Returned as-is otherwise (these requests are a handful of scalar fields).
 */
export function requestSummary(ev: ControlEvent): Record<string, unknown> | undefined {
  const req = unwrap(get(ev.record, 'requestParameters'), 'Request');
  if (req === undefined) return undefined;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(req)) {
    const lk = k.toLowerCase();
    if (lk === 'clienttoken' || lk === 'xmlns') continue;
    out[k] = v;
  }
  return Object.keys(out).length > 0 ? out : undefined;
}

/** The field names a ModifyTrafficMirrorSession asks to reset (`RemoveField` / `RemoveFields`). */
export function removedFields(ev: ControlEvent): string[] {
  const req = unwrap(get(ev.record, 'requestParameters'), 'Request');
  const v = get(req, 'removeField') ?? get(req, 'removeFields');
  const items = Array.isArray(v) ? v : v === undefined ? [] : [v];
  const out: string[] = [];
  // The XML-to-JSON form is [{ "content": "description", "tag": 1 }]; SDK forms are plain strings.
  for (const it of items) {
    const s = str(it) ?? str(get(obj(it), 'content'));
    if (s !== undefined) out.push(s);
  }
  return out;
}

// --- lookups --------------------------------------------------------------------------------------

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function obj(v: unknown): Record<string, unknown> | undefined {
  return isObject(v) ? v : undefined;
}

/** A property by name, exact first, then ignoring case (`VirtualNetworkId` and `virtualNetworkId`). */
export function get(o: Record<string, unknown> | undefined, name: string): unknown {
  if (o === undefined) return undefined;
  if (Object.prototype.hasOwnProperty.call(o, name)) return o[name];
  const lower = name.toLowerCase();
  for (const k of Object.keys(o)) if (k.toLowerCase() === lower) return o[k];
  return undefined;
}

/** `{ XxxRequest: {...} }` -> `{...}`: the single key ending in the suffix, when there is one. */
function unwrap(v: unknown, suffix: 'Request' | 'Response'): Record<string, unknown> | undefined {
  const o = obj(v);
  if (o === undefined) return undefined;
  const keys = Object.keys(o);
  if (keys.length === 1 && keys[0]!.toLowerCase().endsWith(suffix.toLowerCase()) && isObject(o[keys[0]!])) return o[keys[0]!] as Record<string, unknown>;
  return o;
}

function set<K extends keyof ControlEvent>(ev: ControlEvent, k: K, v: ControlEvent[K] | undefined): void {
  if (v !== undefined) ev[k] = v;
}
