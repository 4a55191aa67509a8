/**
 * The default body: Standard Webhooks "Payload structure" (type, timestamp, data). `type` is the
 * finding event (`finding.created`, `finding.updated`, `finding.resolved`) or `webhook.test`;
 * `timestamp` is when the event happened, not when it is sent (the send time is the signed
 * `webhook-timestamp` header); `data` is the Finding exactly as the API returns it. docs/alerts.md
 * holds the schema and a full example.
 */
import type { Finding, FindingEvent } from '../detect/finding.js';
import { consoleExtractUrl, consoleFindingUrl, pcapUrl, type RenderContext } from './links.js';

export const TEST_EVENT_TYPE = 'webhook.test';

/**
 * Standard Webhooks "Payload size" asks for small bodies (under about 20 kB). A finding is usually a
 * few kB; one carrying a large CloudTrail record is cut down to its headline fields, and the receiver
 * fetches the rest from the API by id.
 */
export const MAX_STANDARD_BODY_BYTES = 64 * 1024;

export interface StandardPayload {
  type: string;
  timestamp: string;
  data: Finding | (Omit<Finding, 'evidence' | 'correlated'> & { evidence: Record<string, unknown>; truncated: true }) | TestData;
  /** API links (need a bearer token) and console links (a browser; docs/console.md). */
  links?: { pcap?: string; finding?: string; console?: string; consoleExtract?: string };
}

export interface TestData {
  message: string;
  host: string;
  version: string;
}

export function renderStandard(e: FindingEvent, ctx: RenderContext): string {
  const links: NonNullable<StandardPayload['links']> = {};
  const pcap = pcapUrl(e.finding, ctx);
  if (pcap !== undefined) links.pcap = pcap;
  if (ctx.publicBaseUrl !== undefined) links.finding = `${ctx.publicBaseUrl.replace(/\/+$/, '')}/v1/findings/${encodeURIComponent(e.finding.id)}`;
  const open = consoleFindingUrl(e.finding, ctx);
  if (open !== undefined) links.console = open;
  const extract = consoleExtractUrl(e.finding, ctx);
  if (extract !== undefined) links.consoleExtract = extract;
  const body: StandardPayload = { type: e.type, timestamp: new Date(e.at).toISOString(), data: e.finding };
  if (Object.keys(links).length > 0) body.links = links;
  const json = JSON.stringify(body);
  if (Buffer.byteLength(json) <= MAX_STANDARD_BODY_BYTES) return json;
  const { evidence: _evidence, correlated: _correlated, ...head } = e.finding;
  body.data = { ...head, evidence: {}, truncated: true };
  return JSON.stringify(body);
}

export function renderStandardTest(at: number, data: TestData): string {
  const body: StandardPayload = { type: TEST_EVENT_TYPE, timestamp: new Date(at).toISOString(), data };
  return JSON.stringify(body);
}
