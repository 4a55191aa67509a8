/**
 * GET /v1/findings       findings, newest last_seen first, filtered by kind, severity, status, time, VNI, session
 * GET /v1/findings/:id   one finding (alert webhooks link here)
 *
 * The body is the `Finding` shape of src/detect/finding.ts, the same one the webhooks carry.
 */
import type { FastifyInstance } from 'fastify';
import { FINDING_KINDS, SEVERITIES, type FindingKind, type Severity } from '../../detect/finding.js';
import { FINDING_ID_HEX_DIGITS, FINDING_ID_PREFIX } from '../../detect/finding-id.js';
import type { ApiContext } from '../deps.js';
import { badRequest, notFound } from '../errors.js';
import { cursorParam, limitParam, parseWindow, sessionParam, timeParam, vniParam } from '../params.js';
import { timeToMs } from '../time.js';
import { errorResponses, pageOf } from './common.js';

const KINDS = Object.keys(FINDING_KINDS) as FindingKind[];

interface FindingsQuery {
  kind?: string;
  severity?: Severity;
  status?: 'open' | 'resolved';
  from?: string;
  to?: string;
  vni?: number;
  session?: string;
  limit: number;
  cursor?: string;
}

export const findingSchema = {
  $id: 'Finding',
  type: 'object',
  description: 'One incident (docs/detection.md). The id is stable: the same incident seen again keeps it and bumps count and lastSeen.',
  required: ['id', 'kind', 'severity', 'status', 'firstSeen', 'lastSeen', 'count', 'summary', 'evidence'],
  properties: {
    id: { type: 'string', pattern: `^${FINDING_ID_PREFIX}[0-9a-f]{${FINDING_ID_HEX_DIGITS}}$` },
    kind: { type: 'string', enum: KINDS },
    severity: { type: 'string', enum: [...SEVERITIES] },
    status: { type: 'string', enum: ['open', 'resolved'] },
    firstSeen: { type: 'string', format: 'date-time' },
    lastSeen: { type: 'string', format: 'date-time' },
    count: { type: 'integer' },
    vni: { type: 'integer' },
    sourceIp: { type: 'string' },
    sessionId: { type: 'string' },
    summary: { type: 'string' },
    evidence: { type: 'object', additionalProperties: true },
    correlated: {
      type: 'object',
      properties: {
        control: { type: 'array', items: { type: 'object', additionalProperties: true } },
        traffic: { type: 'array', items: { type: 'object', additionalProperties: true } },
      },
    },
  },
} as const;

function parseKinds(text: string): FindingKind[] {
  const kinds = text.split(',').map((k) => k.trim()).filter((k) => k !== '');
  for (const k of kinds) if (!(k in FINDING_KINDS)) throw badRequest('kind', `'${k}' is not a finding kind; kinds: ${KINDS.join(', ')}`);
  if (kinds.length === 0) throw badRequest('kind', 'empty');
  return kinds as FindingKind[];
}

export async function findingRoutes(app: FastifyInstance, opts: { ctx: ApiContext }): Promise<void> {
  const { ctx } = opts;

  app.get<{ Querystring: FindingsQuery }>(
    '/v1/findings',
    {
      config: { access: ['auditor'] },
      schema: {
        summary: 'List findings',
        description:
          'Newest `lastSeen` first. `severity` is a minimum (high = high and critical). `from`/`to` keep findings active in the window (last seen at or after `from`, first seen at or before `to`). `kind` takes a comma-separated list.',
        tags: ['findings'],
        querystring: {
          type: 'object',
          additionalProperties: false,
          properties: {
            kind: { type: 'string', maxLength: 400, description: `One or more of: ${KINDS.join(', ')} (comma-separated).` },
            severity: { type: 'string', enum: [...SEVERITIES], description: 'Minimum severity.' },
            status: { type: 'string', enum: ['open', 'resolved'] },
            from: timeParam('Findings last seen at or after this time'),
            to: timeParam('Findings first seen at or before this time'),
            vni: vniParam,
            session: sessionParam,
            limit: limitParam,
            cursor: cursorParam,
          },
        },
        response: {
          200: pageOf('Finding#'),
          ...errorResponses(400, 401, 403),
        },
      },
    },
    async (request) => {
      const q = request.query;
      const w = parseWindow(q);
      return ctx.deps.findings.list({
        ...(q.kind !== undefined ? { kind: parseKinds(q.kind) } : {}),
        ...(q.severity !== undefined ? { severity: q.severity } : {}),
        ...(q.status !== undefined ? { status: q.status } : {}),
        ...(w.from ? { since: timeToMs(w.from) } : {}),
        ...(w.to ? { until: timeToMs(w.to) } : {}),
        ...(q.vni !== undefined ? { vni: q.vni } : {}),
        ...(q.session !== undefined ? { sessionId: q.session } : {}),
        limit: q.limit,
        ...(q.cursor !== undefined ? { cursor: q.cursor } : {}),
      });
    },
  );

  app.get<{ Params: { id: string } }>(
    '/v1/findings/:id',
    {
      config: { access: ['auditor'] },
      schema: {
        summary: 'One finding',
        tags: ['findings'],
        params: {
          type: 'object',
          additionalProperties: false,
          required: ['id'],
          properties: { id: { type: 'string', pattern: `^${FINDING_ID_PREFIX}[0-9a-f]{${FINDING_ID_HEX_DIGITS}}$`, description: 'Finding id (f_ and 20 hex digits).' } },
        },
        response: { 200: { $ref: 'Finding#' }, ...errorResponses(400, 401, 403, 404) },
      },
    },
    async (request) => {
      const f = ctx.deps.findings.get(request.params.id);
      if (!f) throw notFound(`no finding ${request.params.id}`);
      return f;
    },
  );
}
