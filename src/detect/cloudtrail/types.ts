/**
 * A CloudTrail traffic-mirroring call, normalized from whatever shape it arrived in (raw record,
 * Records file, EventBridge event, Panther-normalized record). Produced by parse/normalize in this
 * folder; consumed by the rules and by correlation.
 */
export interface ControlEvent {
  eventId: string;
  eventName: string;
  /** ms since the epoch. */
  eventTime: number;
  eventSource: string;
  awsRegion?: string;
  accountId?: string;
  actorArn?: string;
  actorType?: string;
  /** sourceIPAddress: the caller's IP (or an AWS service name). */
  callerIp?: string;
  userAgent?: string;
  /** userIdentity.invokedBy, set when an AWS service made the call. */
  invokedBy?: string;
  errorCode?: string;
  errorMessage?: string;
  sessionId?: string;
  eni?: string;
  vni?: number;
  targetId?: string;
  filterId?: string;
  filterRuleId?: string;
  /**
   * Where a target created or deleted by this call sends traffic: the target's ENI, NLB ARN or Gateway
   * Load Balancer endpoint. Kept apart from `eni`, which is always the mirrored (source) interface.
   */
  targetDestination?: string;
  /** For AssumedRole callers: the role behind the session (userIdentity.sessionContext.sessionIssuer.arn). */
  roleArn?: string;
  /** The call was a DryRun (a permission probe: it changes nothing, and reports `Client.DryRunOperation`). */
  dryRun?: boolean;
  /** Odd values that were dropped while normalizing (a VNI out of range, an unparseable number ...). */
  weird?: readonly string[];
  /** The original record, for evidence. */
  record: Record<string, unknown>;
}
