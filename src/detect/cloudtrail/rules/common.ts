/**
 * What every control-plane rule shares: the rule shape, the two exclusions that hold for all of them
 * (read-only calls and calls an AWS service made on someone's behalf), manifest lookups and evidence.
 */
import type { FindingInput, FindingKind, Severity } from '../../finding.js';
import type { Manifest, ManifestSession } from '../../manifest-types.js';
import { isReadOnlyCall, requestSummary } from '../normalize.js';
import type { ControlEvent } from '../types.js';
import { isoTime } from '../values.js';

export interface ControlRule {
  /** The file name: `session-created`, ... */
  readonly id: string;
  readonly kind: FindingKind;
  readonly description: string;
  /** Whether this rule looks at the event at all; evaluate() is only called when this is true. */
  appliesTo(ev: ControlEvent): boolean;
  /** Findings for the event; an empty array when it is authorized. `manifest` null means none was given. */
  evaluate(ev: ControlEvent, manifest: Manifest | null): FindingInput[];
}

/**
 * `userIdentity.invokedBy` is set when an AWS service made the call for a principal (AWS Config's
 * inventory reads, CloudFormation stacks ...; CloudTrail User Guide, "CloudTrail userIdentity element").
 * Those are not findings. Console calls leave it unset (their sourceIPAddress is "AWS Internal").
 */
export function isServiceInvoked(ev: ControlEvent): boolean {
  return ev.invokedBy !== undefined && ev.invokedBy.toLowerCase().endsWith('.amazonaws.com');
}

/** An event the mutation rules look at: a named call, not read-only, not made by an AWS service. */
export function isDirectChange(ev: ControlEvent, names: ReadonlySet<string>): boolean {
  return names.has(ev.eventName) && !isReadOnlyCall(ev.eventName) && !isServiceInvoked(ev);
}

export function manifestSession(m: Manifest, id: string | undefined): ManifestSession | undefined {
  return id === undefined ? undefined : m.sessions.find((s) => s.id === id);
}

/**
 * How the session an event describes differs from a manifest entry, one phrase per field. Only fields
 * both sides state are compared: a Modify that only changes the description says nothing about the VNI.
 */
export function sessionDifferences(ms: ManifestSession, ev: ControlEvent): string[] {
  const d: string[] = [];
  if (ev.vni !== undefined && ev.vni !== ms.vni) d.push(`VNI ${ev.vni} (manifest: ${ms.vni})`);
  if (ev.targetId !== undefined && ms.targetId !== undefined && ev.targetId !== ms.targetId) d.push(`target ${ev.targetId} (manifest: ${ms.targetId})`);
  if (ev.filterId !== undefined && ms.filterId !== undefined && ev.filterId !== ms.filterId) d.push(`filter ${ev.filterId} (manifest: ${ms.filterId})`);
  if (ev.eni !== undefined && ms.sourceEni !== undefined && ev.eni !== ms.sourceEni) d.push(`source ENI ${ev.eni} (manifest: ${ms.sourceEni})`);
  if (ev.awsRegion !== undefined && ms.region !== undefined && ev.awsRegion !== ms.region) d.push(`region ${ev.awsRegion} (manifest: ${ms.region})`);
  if (ms.expires !== undefined && ev.eventTime > ms.expires) d.push(`the manifest entry expired at ${isoTime(ms.expires)}`);
  return d;
}

/** Who made the call, for summaries: the ARN, else the account, else the caller IP. */
export function actorText(ev: ControlEvent): string {
  return ev.actorArn ?? (ev.accountId ? `account ${ev.accountId}` : undefined) ?? ev.callerIp ?? 'an unknown principal';
}

/** Describes the session an event names: `tms-... (eni-... -> tmt-..., VNI 123)`, with what is known. */
export function sessionText(ev: ControlEvent): string {
  const parts: string[] = [];
  if (ev.eni !== undefined || ev.targetId !== undefined) parts.push(`${ev.eni ?? '?'} -> ${ev.targetId ?? '?'}`);
  if (ev.vni !== undefined) parts.push(`VNI ${ev.vni}`);
  const id = ev.sessionId ?? 'a session';
  return parts.length > 0 ? `${id} (${parts.join(', ')})` : id;
}

export function manifestRef(ms: ManifestSession, m: Manifest): string {
  return `${ms.id} (${m.file}:${ms.line})`;
}

/**
 * The evidence every control-plane finding carries: who, from where, when, which call and event, the
 * parameters that matter, and which manifest it was checked against.
 */
export function controlEvidence(ev: ControlEvent, manifest: Manifest | null, extra: Record<string, unknown> = {}): Record<string, unknown> {
  const e: Record<string, unknown> = {
    eventId: ev.eventId,
    eventName: ev.eventName,
    eventTime: isoTime(ev.eventTime),
    actorArn: ev.actorArn,
    actorType: ev.actorType,
    roleArn: ev.roleArn,
    callerIp: ev.callerIp,
    userAgent: ev.userAgent,
    accountId: ev.accountId,
    region: ev.awsRegion,
    invokedBy: ev.invokedBy,
    errorCode: ev.errorCode,
    errorMessage: ev.errorMessage,
    dryRun: ev.dryRun,
    sessionId: ev.sessionId,
    eni: ev.eni,
    vni: ev.vni,
    targetId: ev.targetId,
    targetDestination: ev.targetDestination,
    filterId: ev.filterId,
    filterRuleId: ev.filterRuleId,
    request: requestSummary(ev),
    weird: ev.weird,
    manifest: manifest === null ? null : { file: manifest.file, sha256: manifest.sha256 },
    ...extra,
  };
  for (const k of Object.keys(e)) if (e[k] === undefined) delete e[k];
  return e;
}

/** A FindingInput for a control event, with the fields every rule fills the same way. */
export function controlFinding(
  kind: FindingKind,
  key: string,
  ev: ControlEvent,
  manifest: Manifest | null,
  summary: string,
  opts: { severity?: Severity; evidence?: Record<string, unknown> } = {},
): FindingInput {
  const f: FindingInput = { kind, key, at: ev.eventTime, summary, evidence: controlEvidence(ev, manifest, opts.evidence) };
  if (opts.severity !== undefined) f.severity = opts.severity;
  if (ev.vni !== undefined) f.vni = ev.vni;
  if (ev.sessionId !== undefined) f.sessionId = ev.sessionId;
  return f;
}
