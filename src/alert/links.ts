/**
 * Links and facts an alert points a responder at. The PCAP link targets the API's extraction route
 * (`GET /v1/pcap`, docs/api.md): by mirror session when the finding names one, else by the data-plane
 * pair (VNI, outer source IP), over the finding's time window widened by a margin. The console links
 * (docs/console.md) open the same finding and the same extraction in a browser, where a person signs
 * in with a token instead of crafting a bearer header.
 */
import type { Finding } from '../detect/finding.js';

export interface RenderContext {
  /** The API's base URL as receivers reach it (alerting.publicBaseUrl); no link without it. */
  publicBaseUrl?: string;
  pcapMarginSeconds: number;
}

const baseOf = (ctx: RenderContext): string | undefined => ctx.publicBaseUrl?.replace(/\/+$/, '');

export function pcapUrl(f: Finding, ctx: RenderContext): string | undefined {
  const base = baseOf(ctx);
  const q = base === undefined ? undefined : pcapQuery(f, ctx);
  return q === undefined ? undefined : `${base}/v1/pcap?${q}`;
}

/** The console's view of the finding: `<base>/#/findings/<id>`. */
export function consoleFindingUrl(f: Finding, ctx: RenderContext): string | undefined {
  const base = baseOf(ctx);
  return base === undefined ? undefined : `${base}/#/findings/${encodeURIComponent(f.id)}`;
}

/** The console's Extract view filled in with pcapUrl()'s parameters: `<base>/#/extract?session=...&from=...&to=...`. */
export function consoleExtractUrl(f: Finding, ctx: RenderContext): string | undefined {
  const base = baseOf(ctx);
  const q = base === undefined ? undefined : pcapQuery(f, ctx);
  return q === undefined ? undefined : `${base}/#/extract?${q}`;
}

/** The extraction parameters of a finding (session, else VNI and source IP; the widened window). */
function pcapQuery(f: Finding, ctx: RenderContext): string | undefined {
  const q = new URLSearchParams();
  if (f.sessionId !== undefined && f.sessionId !== '') q.set('session', f.sessionId);
  else {
    const { vni, sourceIp } = trafficOf(f);
    if (vni === undefined || sourceIp === undefined) return undefined;
    q.set('vni', String(vni));
    q.set('sourceIp', sourceIp);
  }
  const margin = ctx.pcapMarginSeconds * 1000;
  const first = Date.parse(f.firstSeen);
  const last = Date.parse(f.lastSeen);
  if (!Number.isNaN(first)) q.set('from', new Date(first - margin).toISOString());
  if (!Number.isNaN(last)) q.set('to', new Date(last + margin).toISOString());
  return q.toString();
}

/**
 * Who did it: the IAM principal of the correlated CloudTrail call, else whatever the detector put in
 * the evidence (`actorArn`, `actor`, or a raw `userIdentity.arn`).
 */
export function actorOf(f: Finding): string | undefined {
  for (const c of f.correlated?.control ?? []) if (c.actorArn) return c.actorArn;
  const ev = f.evidence;
  if (typeof ev['actorArn'] === 'string') return ev['actorArn'];
  if (typeof ev['actor'] === 'string') return ev['actor'];
  const ui = ev['userIdentity'];
  if (ui !== null && typeof ui === 'object' && typeof (ui as Record<string, unknown>)['arn'] === 'string') return (ui as Record<string, string>)['arn'];
  return undefined;
}

/** The VNI and source IP of a finding, or of the first traffic correlated with it. */
export function trafficOf(f: Finding): { vni?: number; sourceIp?: string } {
  const t = f.correlated?.traffic?.[0];
  const vni = f.vni ?? t?.vni;
  const sourceIp = f.sourceIp ?? t?.sourceIp;
  return { ...(vni !== undefined ? { vni } : {}), ...(sourceIp !== undefined ? { sourceIp } : {}) };
}
