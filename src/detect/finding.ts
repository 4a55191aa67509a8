/**
 * The shape every detector produces and every consumer (store, webhooks, API, CLI) reads.
 * docs/detection.md documents each kind, its severity, its trigger and what on-call should do.
 */
export const SEVERITIES = ['info', 'low', 'medium', 'high', 'critical'] as const;
export type Severity = (typeof SEVERITIES)[number];

export function severityRank(s: Severity): number {
  return SEVERITIES.indexOf(s);
}

export const FINDING_KINDS = {
  // data plane
  'unauthorized-vni': 'critical',
  'unexpected-source': 'high',
  'expired-session': 'high',
  'silent-session': 'low',
  'unexpected-gwlb-endpoint': 'high',
  'session-flood': 'critical',
  // control plane (CloudTrail)
  'mirror-session-created': 'critical',
  'mirror-session-modified': 'high',
  'mirror-session-deleted': 'medium',
  'mirror-target-created': 'high',
  'mirror-filter-changed': 'medium',
  'mirror-attempt-failed': 'high',
  // inventory
  'unmanaged-session': 'critical',
  'missing-session': 'medium',
  'session-drift': 'high',
} as const satisfies Record<string, Severity>;

export type FindingKind = keyof typeof FINDING_KINDS;

export type FindingPlane = 'data' | 'control' | 'inventory';

/** Evidence from the control plane, attached to data-plane findings by correlation (and the reverse). */
export interface ControlEvidence {
  eventId: string;
  eventName: string;
  eventTime: string; // ISO-8601
  actorArn?: string;
  callerIp?: string;
  sessionId?: string;
  eni?: string;
  vni?: number;
  targetId?: string;
  filterId?: string;
  errorCode?: string;
}

/** Evidence from the data plane attached to control-plane findings. */
export interface TrafficEvidence {
  sourceIp: string;
  vni: number;
  firstSeen: string; // ISO-8601
  lastSeen?: string;
  packets?: number;
  bytes?: number;
}

export interface Finding {
  /** Stable per incident: a hash of kind and the incident key. The same incident keeps its id. */
  id: string;
  kind: FindingKind;
  severity: Severity;
  status: 'open' | 'resolved';
  firstSeen: string; // ISO-8601
  lastSeen: string;
  count: number;
  vni?: number;
  sourceIp?: string;
  sessionId?: string;
  summary: string;
  evidence: Record<string, unknown>;
  correlated?: { control?: ControlEvidence[]; traffic?: TrafficEvidence[] };
}

/**
 * What a detector reports; the findings store turns it into a Finding. The same `key` for the same
 * `kind` is the same incident: the store keeps one id, bumps `count` and `lastSeen`.
 */
export interface FindingInput {
  kind: FindingKind;
  /** The incident key, e.g. `172.31.0.238|5569041` for a data-plane pair, a session ID for control plane. */
  key: string;
  /** When it was observed, ms since the epoch (the packet's receive time, the event's eventTime ...). */
  at: number;
  severity?: Severity; // defaults to FINDING_KINDS[kind]
  vni?: number;
  sourceIp?: string;
  sessionId?: string;
  summary: string;
  evidence: Record<string, unknown>;
  correlated?: { control?: ControlEvidence[]; traffic?: TrafficEvidence[] };
  /** Occurrences this input stands for (a coalesced batch of pairs); default 1. */
  occurrences?: number;
}

export type FindingEventType = 'finding.created' | 'finding.updated' | 'finding.resolved';

/** Emitted by the findings store inside the transaction that wrote the finding (the outbox hooks here). */
export interface FindingEvent {
  type: FindingEventType;
  finding: Finding;
  at: number; // ms since the epoch
  /**
   * Why the event fired: a `finding.created` is `reopened` when a resolved incident recurred (same id,
   * a new alert is due); a `finding.updated` is `correlated` (new evidence from the other plane) or
   * `escalated` (higher severity). Absent for a new finding and for a resolution.
   */
  reason?: 'reopened' | 'correlated' | 'escalated';
}
