/**
 * Inventory: the mirror sessions that exist in AWS, from `aws ec2 describe-traffic-mirror-sessions`
 * output or a live DescribeTrafficMirrorSessions call, compared with the manifest.
 *
 *  - unmanaged-session: in AWS, not in the manifest (an attacker's session looks exactly like this);
 *  - missing-session:   in the manifest (unexpired, in scope), not in AWS;
 *  - session-drift:     in both, but the VNI, source ENI, target or filter differ, or a session the
 *                       manifest says has expired still exists.
 *
 * The SDK is loaded only when a live call is made, so `inventory check --describe-json` and
 * `manifest check` do not pay for it.
 */
import { readFileSync } from 'node:fs';
import { MgError, type Problem } from '../errors.js';
import type { FindingInput } from './finding.js';
import type { Manifest, ManifestSession } from './manifest-types.js';

/** One TrafficMirrorSession (EC2 API reference, "TrafficMirrorSession" data type). */
export interface InventorySession {
  id: string;
  vni: number;
  eni: string;
  targetId: string;
  filterId: string;
  ownerId?: string;
  packetLength?: number;
  sessionNumber?: number;
  description?: string;
  tags: Record<string, string>;
}

export interface FetchOptions {
  region?: string;
  /** Override the EC2 endpoint (a VPC endpoint, or a test server). */
  endpoint?: string;
  /** Static credentials; absent means the SDK's default chain (env, profile, SSO, IMDS ...). */
  credentials?: { accessKeyId: string; secretAccessKey: string; sessionToken?: string };
  /** Attempts per request, retries included (SDK default 3). */
  maxAttempts?: number;
  /** MaxResults per page, 5..1000 (EC2 API reference). */
  pageSize?: number;
}

export interface CompareOptions {
  /**
   * The region the inventory came from. Manifest sessions that name another region are out of scope
   * (neither missing nor drifted); sessions without a region are checked against every inventory.
   */
  region?: string;
  /** When the inventory was taken, ms since the epoch. */
  at: number;
}

/** Read a saved `aws ec2 describe-traffic-mirror-sessions` output file. */
export function readDescribeJson(file: string): InventorySession[] {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new MgError('MG_ERR_INVENTORY_READ', `${file}: ${(e as Error).message}`, { cause: e });
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    throw new MgError('MG_ERR_INVENTORY_READ', `${file}: not JSON (${(e as Error).message})`, { cause: e });
  }
  return parseDescribeOutput(value, file);
}

/**
 * The CLI's JSON (`{"TrafficMirrorSessions": [...]}`, PascalCase as in the API). A list of such pages
 * (several `--page-size` runs saved together) is accepted too.
 */
export function parseDescribeOutput(value: unknown, where = 'input'): InventorySession[] {
  const pages = Array.isArray(value) ? value : [value];
  const out: InventorySession[] = [];
  const problems: Problem[] = [];
  pages.forEach((page, p) => {
    const prefix = Array.isArray(value) ? `[${p}].` : '';
    const list = isObject(page) ? page.TrafficMirrorSessions : undefined;
    if (!Array.isArray(list)) {
      problems.push({ file: where, field: `${prefix}TrafficMirrorSessions`, message: 'missing; this is not describe-traffic-mirror-sessions output' });
      return;
    }
    list.forEach((raw, i) => {
      const s = sessionFromApi(raw, `${prefix}TrafficMirrorSessions[${i}]`, where, problems);
      if (s) out.push(s);
    });
  });
  if (problems.length) throw new MgError('MG_ERR_INVENTORY_READ', `${where}: not DescribeTrafficMirrorSessions output`, { problems });
  return out;
}

/** One API/CLI TrafficMirrorSession object to ours; the SDK's output has the same PascalCase shape. */
function sessionFromApi(raw: unknown, field: string, file: string, problems: Problem[]): InventorySession | null {
  if (!isObject(raw)) {
    problems.push({ file, field, message: 'must be an object' });
    return null;
  }
  const before = problems.length;
  const need = (k: string): string => {
    const v = raw[k];
    if (typeof v !== 'string' || v === '') problems.push({ file, field: `${field}.${k}`, message: 'required string missing' });
    return typeof v === 'string' ? v : '';
  };
  const id = need('TrafficMirrorSessionId');
  const eni = need('NetworkInterfaceId');
  const targetId = need('TrafficMirrorTargetId');
  const filterId = need('TrafficMirrorFilterId');
  const vni = raw.VirtualNetworkId;
  if (typeof vni !== 'number' || !Number.isInteger(vni) || vni < 0 || vni > 16_777_215) {
    problems.push({ file, field: `${field}.VirtualNetworkId`, message: `must be an integer from 0 to 16777215, got ${JSON.stringify(vni)}` });
  }
  if (problems.length > before) return null;
  const s: InventorySession = { id, vni: vni as number, eni, targetId, filterId, tags: {} };
  if (typeof raw.OwnerId === 'string') s.ownerId = raw.OwnerId;
  if (typeof raw.PacketLength === 'number') s.packetLength = raw.PacketLength;
  if (typeof raw.SessionNumber === 'number') s.sessionNumber = raw.SessionNumber;
  if (typeof raw.Description === 'string' && raw.Description !== '') s.description = raw.Description;
  if (Array.isArray(raw.Tags)) {
    for (const t of raw.Tags) if (isObject(t) && typeof t.Key === 'string') s.tags[t.Key] = typeof t.Value === 'string' ? t.Value : '';
  }
  return s;
}

/**
 * Every mirror session in the account and region, through the SDK's default credential chain and
 * pagination (NextToken). Failures become MG_ERR_INVENTORY_AWS with the service's error code.
 */
export async function fetchInventory(opts: FetchOptions = {}): Promise<InventorySession[]> {
  const { EC2Client, paginateDescribeTrafficMirrorSessions } = await import('@aws-sdk/client-ec2');
  const client = new EC2Client({
    ...(opts.region ? { region: opts.region } : {}),
    ...(opts.endpoint ? { endpoint: opts.endpoint } : {}),
    ...(opts.credentials ? { credentials: opts.credentials } : {}),
    maxAttempts: opts.maxAttempts ?? 3,
  });
  const out: InventorySession[] = [];
  const problems: Problem[] = [];
  let page = 0;
  try {
    for await (const res of paginateDescribeTrafficMirrorSessions({ client, pageSize: opts.pageSize ?? 1000 }, {})) {
      (res.TrafficMirrorSessions ?? []).forEach((raw, i) => {
        const s = sessionFromApi(raw, `page ${page}: TrafficMirrorSessions[${i}]`, 'DescribeTrafficMirrorSessions', problems);
        if (s) out.push(s);
      });
      page++;
    }
  } catch (e) {
    const err = e as Error & { Code?: string; $metadata?: { httpStatusCode?: number } };
    const status = err.$metadata?.httpStatusCode;
    throw new MgError('MG_ERR_INVENTORY_AWS', `${err.name}${status ? ` (HTTP ${status})` : ''}: ${err.message}`, { cause: e });
  } finally {
    client.destroy();
  }
  if (problems.length) throw new MgError('MG_ERR_INVENTORY_AWS', 'unexpected DescribeTrafficMirrorSessions answer', { problems });
  return out;
}

/** What `manifest init --aws` adds to each session beyond DescribeTrafficMirrorSessions. */
export interface SessionDetails {
  /** Source ENI -> its primary private IPv4 address: the outer source IP its mirrored packets carry. */
  primaryIp: Map<string, string>;
  /** Mirror target -> its Gateway Load Balancer endpoint (targets of that type only). */
  gwlbEndpoint: Map<string, string>;
  /** Lookups that failed (a missing permission, throttling): those fields are left to the reviewer. */
  warnings: string[];
}

/** IDs per filter value list (EC2 accepts up to 200 values in one filter). */
const FILTER_CHUNK = 100;

/**
 * The source ENIs' primary IPs (DescribeNetworkInterfaces) and the GWLB endpoints behind the targets
 * (DescribeTrafficMirrorTargets), by ID filters so that an ID gone since the session list does not fail
 * the call. A lookup that fails is a warning, not an error: the manifest is still written, with those
 * fields for the reviewer to fill in.
 */
export async function fetchSessionDetails(sessions: readonly InventorySession[], opts: FetchOptions = {}): Promise<SessionDetails> {
  const { EC2Client, paginateDescribeNetworkInterfaces, paginateDescribeTrafficMirrorTargets } = await import('@aws-sdk/client-ec2');
  const client = new EC2Client({
    ...(opts.region ? { region: opts.region } : {}),
    ...(opts.endpoint ? { endpoint: opts.endpoint } : {}),
    ...(opts.credentials ? { credentials: opts.credentials } : {}),
    maxAttempts: opts.maxAttempts ?? 3,
  });
  const out: SessionDetails = { primaryIp: new Map(), gwlbEndpoint: new Map(), warnings: [] };
  const why = (e: unknown) => {
    const err = e as Error & { $metadata?: { httpStatusCode?: number } };
    const status = err.$metadata?.httpStatusCode;
    return `${err.name}${status ? ` (HTTP ${status})` : ''}: ${err.message}`;
  };
  const chunks = (ids: string[]) => Array.from({ length: Math.ceil(ids.length / FILTER_CHUNK) }, (_, i) => ids.slice(i * FILTER_CHUNK, (i + 1) * FILTER_CHUNK));
  try {
    const enis = [...new Set(sessions.map((x) => x.eni))].sort();
    try {
      for (const ids of chunks(enis)) {
        for await (const res of paginateDescribeNetworkInterfaces({ client, pageSize: 1000 }, { Filters: [{ Name: 'network-interface-id', Values: ids }] })) {
          for (const ni of res.NetworkInterfaces ?? []) {
            const primary = ni.PrivateIpAddress ?? ni.PrivateIpAddresses?.find((a) => a.Primary)?.PrivateIpAddress;
            if (ni.NetworkInterfaceId && primary) out.primaryIp.set(ni.NetworkInterfaceId, primary);
          }
        }
      }
    } catch (e) {
      out.warnings.push(`DescribeNetworkInterfaces failed, sourceIps left to fill in: ${why(e)}`);
    }
    const targets = [...new Set(sessions.map((x) => x.targetId))].sort();
    try {
      for (const ids of chunks(targets)) {
        for await (const res of paginateDescribeTrafficMirrorTargets({ client, pageSize: 1000 }, { Filters: [{ Name: 'traffic-mirror-target-id', Values: ids }] })) {
          for (const t of res.TrafficMirrorTargets ?? []) {
            if (t.TrafficMirrorTargetId && t.Type === 'gateway-load-balancer-endpoint' && t.GatewayLoadBalancerEndpointId) out.gwlbEndpoint.set(t.TrafficMirrorTargetId, t.GatewayLoadBalancerEndpointId);
          }
        }
      }
    } catch (e) {
      out.warnings.push(`DescribeTrafficMirrorTargets failed, gwlbEndpointId not filled in: ${why(e)}`);
    }
  } finally {
    client.destroy();
  }
  return out;
}

/** The inventory against the manifest, as findings (empty when they agree). */
export function compareInventory(manifest: Manifest | null, sessions: readonly InventorySession[], opts: CompareOptions): FindingInput[] {
  const out: FindingInput[] = [];
  const declared = new Map<string, ManifestSession>();
  for (const s of manifest?.sessions ?? []) declared.set(s.id, s);
  const actual = new Map<string, InventorySession>();
  for (const s of sessions) actual.set(s.id, s);
  const scope = opts.region ?? null;
  const manifestRef = manifest ? { file: manifest.file, sha256: manifest.sha256 } : null;

  for (const s of sessions) {
    const m = declared.get(s.id);
    if (m === undefined) {
      const sameVni = (manifest?.sessions ?? []).filter((x) => x.vni === s.vni).map((x) => x.id);
      out.push({
        kind: 'unmanaged-session',
        key: s.id,
        at: opts.at,
        vni: s.vni,
        sessionId: s.id,
        summary: `Mirror session ${s.id} (VNI ${s.vni}, ${s.eni} -> ${s.targetId}) exists in AWS but not in the manifest`,
        evidence: { scope, actual: s, manifest: manifestRef, ...(sameVni.length ? { manifestSessionsOnSameVni: sameVni } : {}) },
      });
      continue;
    }
    const differences: { field: string; expected: unknown; actual: unknown }[] = [];
    if (m.vni !== s.vni) differences.push({ field: 'vni', expected: m.vni, actual: s.vni });
    if (m.sourceEni !== undefined && m.sourceEni !== s.eni) differences.push({ field: 'sourceEni', expected: m.sourceEni, actual: s.eni });
    if (m.targetId !== undefined && m.targetId !== s.targetId) differences.push({ field: 'targetId', expected: m.targetId, actual: s.targetId });
    if (m.filterId !== undefined && m.filterId !== s.filterId) differences.push({ field: 'filterId', expected: m.filterId, actual: s.filterId });
    if (m.expires !== undefined && opts.at >= m.expires) {
      differences.push({ field: 'expires', expected: `deleted by ${new Date(m.expires).toISOString()}`, actual: 'still exists' });
    }
    if (differences.length) {
      out.push({
        kind: 'session-drift',
        key: s.id,
        at: opts.at,
        vni: s.vni,
        sessionId: s.id,
        summary: `Mirror session ${s.id} differs from the manifest: ${differences.map((d) => `${d.field} ${fmt(d.expected)} -> ${fmt(d.actual)}`).join(', ')}`,
        evidence: { scope, differences, actual: s, manifestLine: m.line, manifest: manifestRef },
      });
    }
  }
  for (const m of manifest?.sessions ?? []) {
    if (actual.has(m.id)) continue;
    if (m.region !== undefined && scope !== null && m.region !== scope) continue;
    if (m.expires !== undefined && opts.at >= m.expires) continue; // gone after expiry is what the manifest asked for
    out.push({
      kind: 'missing-session',
      key: m.id,
      at: opts.at,
      vni: m.vni,
      sessionId: m.id,
      summary: `Manifest session ${m.id} (VNI ${m.vni}) does not exist in AWS${scope ? ` (${scope})` : ''}`,
      evidence: { scope, expected: m, manifestLine: m.line, manifest: manifestRef },
    });
  }
  return out;
}

function fmt(v: unknown): string {
  return typeof v === 'string' ? v : JSON.stringify(v);
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
