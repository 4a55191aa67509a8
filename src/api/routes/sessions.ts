/**
 * GET /v1/sessions: the manifest and the data plane side by side, one row per (manifest session,
 * observed pair) the way a full outer join would show them:
 *
 *   - a manifest session with traffic: one row per (source IP, VNI) pair that belongs to it;
 *   - a manifest session without traffic: one row with `sourceIp: null`;
 *   - a pair no session authorizes: one row with `inManifest: false`.
 *
 * `status` is the detector's judgement now: authorized; unauthorized (`reason` unauthorized-vni or
 * unexpected-source); silent (an open silent-session finding, or no traffic seen at all); expired (the
 * manifest entry's `expires` has passed). Traffic numbers come from `observed_sessions` (written by the
 * collector every flush interval) and, for pairs it holds in memory, from the collector itself.
 */
import type { FastifyInstance } from 'fastify';
import type { ManifestSession } from '../../detect/manifest-types.js';
import { findingId } from '../../detect/finding-id.js';
import type { FindingKind } from '../../detect/finding.js';
import type { ApiContext, LivePair } from '../deps.js';
import { errorResponses } from './common.js';
import { sessionParam, vniParam } from '../params.js';

export const SESSION_STATUSES = ['authorized', 'unauthorized', 'silent', 'expired'] as const;
export type SessionStatus = (typeof SESSION_STATUSES)[number];

export interface SessionRowView {
  sessionId: string | null;
  inManifest: boolean;
  vni: number;
  sourceIp: string | null;
  status: SessionStatus;
  reason: string | null;
  owner: string | null;
  description: string | null;
  expires: string | null;
  packets: number;
  bytes: number;
  firstSeen: string | null;
  lastSeen: string | null;
  /** The collector holds the pair in memory now (it sent within pcap.idleCloseSeconds). */
  live: boolean;
  /** The open finding about this row, if any. */
  findingId: string | null;
  /** The Gateway Load Balancer endpoint the pair's traffic last arrived through (GENEVE), else null. */
  gwlbEndpointId: string | null;
  gwlbAttachmentId: string | null;
}

interface Observed {
  sourceIp: string;
  vni: number;
  packets: number;
  bytes: number;
  firstSeenMs: number;
  lastSeenMs: number;
  live: boolean;
  gwlbEndpointId: string | null;
  gwlbAttachmentId: string | null;
}

const iso = (ms: number | null): string | null => (ms === null ? null : new Date(ms).toISOString());

async function observedPairs(ctx: ApiContext): Promise<Observed[]> {
  const byKey = new Map<string, Observed>();
  const rows = await ctx.deps.store.observed.all();
  for (const r of rows) {
    byKey.set(`${r.source_ip}|${r.vni}`, {
      sourceIp: r.source_ip,
      vni: r.vni,
      packets: r.packets,
      bytes: r.bytes,
      firstSeenMs: r.first_seen,
      lastSeenMs: r.last_seen,
      live: false,
      gwlbEndpointId: r.gwlb_endpoint_id,
      gwlbAttachmentId: r.gwlb_attachment_id,
    });
  }
  for (const l of ctx.deps.sessionsLive() as Iterable<LivePair>) {
    const k = `${l.sourceIp}|${l.vni}`;
    const o = byKey.get(k);
    if (o === undefined) {
      // Not synced to the table yet (its first flush interval): the collector's numbers are all there is.
      byKey.set(k, {
        sourceIp: l.sourceIp,
        vni: l.vni,
        packets: l.packets,
        bytes: l.bytes,
        firstSeenMs: l.firstSeenMs,
        lastSeenMs: l.lastSeenMs,
        live: true,
        gwlbEndpointId: l.gwlbEndpointId ?? null,
        gwlbAttachmentId: l.gwlbAttachmentId ?? null,
      });
    } else {
      o.live = true;
      if (l.gwlbEndpointId) {
        o.gwlbEndpointId = l.gwlbEndpointId;
        o.gwlbAttachmentId = l.gwlbAttachmentId ?? null;
      }
      o.lastSeenMs = Math.max(o.lastSeenMs, l.lastSeenMs);
      o.firstSeenMs = Math.min(o.firstSeenMs, l.firstSeenMs);
    }
  }
  return [...byKey.values()];
}

export async function sessionRows(ctx: ApiContext): Promise<{ manifest: { file: string; sha256: string; sessions: number } | null; items: SessionRowView[] }> {
  const now = ctx.now();
  const manifest = ctx.deps.detector.manifest;
  const store = ctx.deps.findings;
  // The open findings a row can cite, read once (the store is asynchronous; a row needs several).
  const open = new Set<string>();
  let cursor: string | undefined;
  do {
    const page = await store.list({ kind: ['unauthorized-vni', 'unexpected-source', 'expired-session', 'silent-session', 'unexpected-gwlb-endpoint'], status: 'open', limit: 1000, ...(cursor !== undefined ? { cursor } : {}) });
    for (const f of page.items) open.add(f.id);
    cursor = page.nextCursor ?? undefined;
  } while (cursor !== undefined);
  const openFinding = (kind: FindingKind, key: string): string | null => {
    const id = findingId(kind, key);
    return open.has(id) ? id : null;
  };
  const inManifest = new Set((manifest?.sessions ?? []).map((s) => s.id));
  const bySession = new Map<string, Observed[]>();
  const unmatched: SessionRowView[] = [];
  for (const o of await observedPairs(ctx)) {
    const v = ctx.deps.detector.verdict(o.sourceIp, o.vni, now);
    if (v.sessionId !== null && inManifest.has(v.sessionId)) {
      const list = bySession.get(v.sessionId) ?? [];
      list.push(o);
      bySession.set(v.sessionId, list);
      continue;
    }
    const reason = v.status === 'authorized' || v.status === 'expired' ? null : v.status;
    unmatched.push({
      sessionId: null,
      inManifest: false,
      vni: o.vni,
      sourceIp: o.sourceIp,
      status: v.status === 'expired' ? 'expired' : 'unauthorized',
      reason,
      owner: null,
      description: null,
      expires: null,
      packets: o.packets,
      bytes: o.bytes,
      firstSeen: iso(o.firstSeenMs),
      lastSeen: iso(o.lastSeenMs),
      live: o.live,
      findingId: reason ? openFinding(reason, `${o.sourceIp}|${o.vni}`) : null,
      gwlbEndpointId: o.gwlbEndpointId,
      gwlbAttachmentId: o.gwlbAttachmentId,
    });
  }

  const items: SessionRowView[] = [];
  for (const s of manifest?.sessions ?? []) {
    const expired = s.expires !== undefined && now >= s.expires;
    const silentId = openFinding('silent-session', s.id);
    const pairs = bySession.get(s.id) ?? [];
    const base = (m: ManifestSession) => ({
      sessionId: m.id,
      inManifest: true,
      vni: m.vni,
      owner: m.owner ?? null,
      description: m.description ?? null,
      expires: m.expires === undefined ? null : new Date(m.expires).toISOString(),
    });
    if (pairs.length === 0) {
      items.push({
        ...base(s),
        sourceIp: null,
        status: expired ? 'expired' : 'silent',
        reason: expired ? `expired at ${new Date(s.expires!).toISOString()}` : silentId ? 'silent-session finding open' : 'no traffic observed',
        packets: 0,
        bytes: 0,
        firstSeen: null,
        lastSeen: null,
        live: false,
        findingId: expired ? null : silentId,
        gwlbEndpointId: null,
        gwlbAttachmentId: null,
      });
      continue;
    }
    pairs.sort((a, b) => b.lastSeenMs - a.lastSeenMs);
    for (const o of pairs) {
      const expiredId = expired ? openFinding('expired-session', `${o.sourceIp}|${o.vni}`) : null;
      const status: SessionStatus = expired ? 'expired' : silentId ? 'silent' : 'authorized';
      // Authorized, but through another GWLB endpoint than the manifest names: say so on the row.
      const gwlbId = openFinding('unexpected-gwlb-endpoint', `${o.sourceIp}|${o.vni}`);
      items.push({
        ...base(s),
        sourceIp: o.sourceIp,
        status,
        reason: expired
          ? `expired at ${new Date(s.expires!).toISOString()}`
          : silentId
            ? `no traffic since ${iso(o.lastSeenMs)}`
            : gwlbId
              ? `unexpected-gwlb-endpoint: arrives through ${o.gwlbEndpointId}, the manifest says ${s.gwlbEndpointId}`
              : null,
        packets: o.packets,
        bytes: o.bytes,
        firstSeen: iso(o.firstSeenMs),
        lastSeen: iso(o.lastSeenMs),
        live: o.live,
        findingId: expired ? expiredId : (silentId ?? gwlbId),
        gwlbEndpointId: o.gwlbEndpointId,
        gwlbAttachmentId: o.gwlbAttachmentId,
      });
    }
  }
  // Most recent first; ties by VNI, then source IP (the same order on either store engine).
  unmatched.sort((a, b) => (b.lastSeen ?? '').localeCompare(a.lastSeen ?? '') || a.vni - b.vni || (a.sourceIp ?? '').localeCompare(b.sourceIp ?? ''));
  items.push(...unmatched);
  return { manifest: manifest ? { file: manifest.file, sha256: manifest.sha256, sessions: manifest.sessions.length } : null, items };
}

const rowSchema = {
  type: 'object',
  required: ['sessionId', 'inManifest', 'vni', 'sourceIp', 'status', 'reason', 'packets', 'bytes', 'firstSeen', 'lastSeen', 'live', 'findingId', 'gwlbEndpointId', 'gwlbAttachmentId'],
  properties: {
    sessionId: { type: ['string', 'null'], description: 'Manifest session, or null for a pair no session authorizes.' },
    inManifest: { type: 'boolean' },
    vni: { type: 'integer' },
    sourceIp: { type: ['string', 'null'], description: 'Observed outer source IP; null for a manifest session with no traffic.' },
    status: { type: 'string', enum: [...SESSION_STATUSES] },
    reason: { type: ['string', 'null'], description: 'unauthorized-vni or unexpected-source for unauthorized rows; why, for silent and expired ones.' },
    owner: { type: ['string', 'null'] },
    description: { type: ['string', 'null'] },
    expires: { type: ['string', 'null'], format: 'date-time' },
    packets: { type: 'integer' },
    bytes: { type: 'integer', description: 'Inner frame bytes captured.' },
    firstSeen: { type: ['string', 'null'], format: 'date-time' },
    lastSeen: { type: ['string', 'null'], format: 'date-time' },
    live: { type: 'boolean', description: 'The collector holds the pair in memory now.' },
    findingId: { type: ['string', 'null'], description: 'The open finding about this row.' },
    gwlbEndpointId: {
      type: ['string', 'null'],
      description: 'The Gateway Load Balancer endpoint (vpce-...) the pair\'s traffic last arrived through, from AWS\'s GENEVE option; null when it arrives straight over VXLAN.',
    },
    gwlbAttachmentId: { type: ['string', 'null'], description: 'The GWLB attachment id (16 hex digits) from the same GENEVE options, or null.' },
  },
} as const;

export async function sessionRoutes(app: FastifyInstance, opts: { ctx: ApiContext }): Promise<void> {
  const { ctx } = opts;
  app.get<{ Querystring: { status?: SessionStatus; vni?: number; session?: string } }>(
    '/v1/sessions',
    {
      config: { access: ['auditor'] },
      schema: {
        summary: 'Manifest sessions and observed pairs side by side',
        description:
          'One row per (manifest session, observed source IP) pair; a manifest session with no traffic has one row with sourceIp null; a pair no session authorizes has inManifest false. Manifest sessions come first, in manifest order.',
        tags: ['sessions'],
        querystring: {
          type: 'object',
          additionalProperties: false,
          properties: { status: { type: 'string', enum: [...SESSION_STATUSES] }, vni: vniParam, session: sessionParam },
        },
        response: {
          200: {
            type: 'object',
            required: ['generatedAt', 'manifest', 'items'],
            properties: {
              generatedAt: { type: 'string', format: 'date-time' },
              manifest: {
                type: ['object', 'null'],
                description: 'The manifest in force; null when none is loaded (every pair is unauthorized).',
                properties: { file: { type: 'string' }, sha256: { type: 'string' }, sessions: { type: 'integer' } },
              },
              items: { type: 'array', items: rowSchema },
            },
          },
          ...errorResponses(400, 401, 403),
        },
      },
    },
    async (request) => {
      const q = request.query;
      const r = await sessionRows(ctx);
      const items = r.items.filter(
        (i) => (q.status === undefined || i.status === q.status) && (q.vni === undefined || i.vni === q.vni) && (q.session === undefined || i.sessionId === q.session),
      );
      return { generatedAt: new Date(ctx.now()).toISOString(), manifest: r.manifest, items };
    },
  );
}
