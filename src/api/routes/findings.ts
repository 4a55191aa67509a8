/**
 * GET /v1/findings       findings, newest last_seen first, filtered by kind, severity, status, time, VNI, session
 * GET /v1/findings/:id   one finding (alert webhooks link here)
 * POST /v1/findings/:id/acknowledge   (admin) someone is on it: who, when, a note; audited
 * POST /v1/findings/:id/resolve       (admin) close it with a note; audited, and alerts say so
 *
 * The body is the `Finding` shape of src/detect/finding.ts, the same one the webhooks carry.
 */
import type { FastifyInstance } from 'fastify';
import { FINDING_KINDS, SEVERITIES, type FindingKind, type Severity } from '../../detect/finding.js';
import { FINDING_ID_HEX_DIGITS, FINDING_ID_PREFIX } from '../../detect/finding-id.js';
import type { ApiContext } from '../deps.js';
import { badRequest, httpError, notFound } from '../errors.js';
import { cursorParam, limitParam, parseWindow, sessionParam, timeParam, vniParam } from '../params.js';
import { timeToMs } from '../time.js';
import { errorResponses, pageOf, remoteIp } from './common.js';

/** Longest note an admin may attach when acknowledging or resolving, characters. */
export const MAX_NOTE_CHARS = 2000;

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
      const f = await ctx.deps.findings.get(request.params.id);
      if (!f) throw notFound(`no finding ${request.params.id}`);
      return f;
    },
  );
}

const idParamsSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['id'],
  properties: { id: { type: 'string', pattern: `^${FINDING_ID_PREFIX}[0-9a-f]{${FINDING_ID_HEX_DIGITS}}$`, description: 'Finding id (f_ and 20 hex digits).' } },
} as const;

const noteBodySchema = {
  type: 'object',
  additionalProperties: false,
  properties: { note: { type: 'string', maxLength: MAX_NOTE_CHARS, description: 'Why: kept in the finding\'s evidence and in the audit log.' } },
} as const;

/**
 * Acknowledge and resolve: admin actions on a finding, each written to the audit log (actions
 * `finding.acknowledge`, `finding.resolve`) whatever the outcome. A resolution goes through the store's
 * resolve(), so webhooks announce it as any other; a finding seen again reopens as usual.
 */
export async function findingActionRoutes(app: FastifyInstance, opts: { ctx: ApiContext }): Promise<void> {
  const { ctx } = opts;
  for (const action of ['acknowledge', 'resolve'] as const) {
    app.post<{ Params: { id: string }; Body: { note?: string } | undefined }>(
      `/v1/findings/:id/${action}`,
      {
        config: { access: ['admin'] },
        // A bare POST (no body, as `curl -X POST` sends) means no note.
        preValidation: async (request) => {
          if (request.body === undefined || request.body === null) request.body = {};
        },
        schema: {
          summary: action === 'acknowledge' ? 'Acknowledge a finding' : 'Resolve a finding',
          description:
            action === 'acknowledge'
              ? 'Records who looked at an open finding, when, and an optional note, in `evidence.acknowledgement`. The finding stays open. A resolved finding answers 409. Audited as `finding.acknowledge`.'
              : 'Resolves an open finding with an optional note (`evidence.resolution`: at, by, note); webhooks send `finding.resolved`. If the incident is seen again it reopens under the same id. Resolving a resolved finding answers 409. Audited as `finding.resolve`.',
          tags: ['findings'],
          params: idParamsSchema,
          body: noteBodySchema,
          response: { 200: { $ref: 'Finding#' }, ...errorResponses(400, 401, 403, 404, 409) },
        },
      },
      async (request) => {
        const p = request.principal!;
        const id = request.params.id;
        const note = request.body?.note?.trim() || undefined;
        const audit = (status: number, detail: Record<string, unknown>) =>
          ctx.audit.write({ actor: p.name, role: p.role, remoteIp: remoteIp(request), action: `finding.${action}`, target: `finding:${id}`, status, detail: { ...(note ? { note } : {}), ...detail } });
        const cur = await ctx.deps.findings.get(id);
        if (!cur) {
          await audit(404, { error: 'MG_ERR_API_NOT_FOUND' });
          throw notFound(`no finding ${id}`);
        }
        if (cur.status === 'resolved') {
          await audit(409, { error: 'MG_ERR_API_CONFLICT' });
          throw httpError('MG_ERR_API_CONFLICT', `finding ${id} is resolved already`);
        }
        const at = ctx.now();
        const f = action === 'acknowledge' ? await ctx.deps.findings.acknowledge(id, at, p.name, note) : await ctx.deps.findings.resolve(id, at, 'resolved through the API', { actor: p.name, ...(note ? { note } : {}) });
        await audit(200, { kind: cur.kind, severity: cur.severity });
        request.log.info({ actor: p.name, finding: id, action }, `finding ${action}d through the API`);
        return f!;
      },
    );
  }
}
