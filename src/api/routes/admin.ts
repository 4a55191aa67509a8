/**
 * POST /v1/manifest/reload   (admin) the SIGHUP path over HTTP: reload the manifest file serve runs
 *                            with; an invalid file keeps the manifest in force (422 with every problem)
 * GET  /v1/audit             the audit log: admins see every row, other roles their own
 * GET  /v1/audit/:id         one row (the `X-Audit-Id` of a download or extraction), same rule
 */
import type { FastifyInstance } from 'fastify';
import { AUDIT_ACTIONS, decodeIdCursor, type AuditRecord } from '../audit.js';
import type { ApiContext } from '../deps.js';
import { httpError, notFound } from '../errors.js';
import { cursorParam, limitParam, parseWindow, timeParam } from '../params.js';
import { timeToMs } from '../time.js';
import { errorResponses, remoteIp, pageOf } from './common.js';

const auditSchema = {
  $id: 'AuditRecord',
  type: 'object',
  description: 'One chain-of-custody entry.',
  required: ['id', 'at', 'actor', 'role', 'remoteIp', 'action', 'target', 'status', 'bytes', 'sha256', 'detail'],
  properties: {
    id: { type: 'integer' },
    at: { type: 'string', format: 'date-time', description: 'When the request was answered (transfers: when the first byte went out).' },
    actor: { type: 'string', description: 'Token name.' },
    role: { type: 'string' },
    remoteIp: { type: ['string', 'null'] },
    action: { type: 'string', enum: [...AUDIT_ACTIONS] },
    target: { type: 'string', description: 'capture:ID, session:tms-..., vni:VNI[/IP], finding:f_..., cloudtrail, or the manifest path.' },
    status: { type: 'integer', description: 'HTTP status answered.' },
    bytes: { type: ['integer', 'null'], description: 'Body bytes handed to the connection.' },
    sha256: { type: ['string', 'null'], description: 'SHA-256 of exactly those bytes, hex.' },
    detail: { type: ['object', 'null'], additionalProperties: true, description: 'Window, filter, files, range, completeness, verification ...' },
  },
} as const;

export { auditSchema };

export async function adminRoutes(app: FastifyInstance, opts: { ctx: ApiContext }): Promise<void> {
  const { ctx } = opts;

  app.post(
    '/v1/manifest/reload',
    {
      config: { access: ['admin'] },
      schema: {
        summary: 'Reload the manifest',
        description:
          'Reads the manifest file `serve` was started with again (like SIGHUP). On success the new manifest is in force and known pairs are re-evaluated; findings raised and resolved by the change are listed. An invalid or unreadable file is refused with 422 and every problem; the manifest in force stays.',
        tags: ['detection'],
        response: {
          200: {
            type: 'object',
            required: ['manifest', 'raised', 'resolved'],
            properties: {
              manifest: { type: 'object', properties: { file: { type: 'string' }, sha256: { type: 'string' }, sessions: { type: 'integer' } } },
              raised: { type: 'array', items: { type: 'string' }, description: 'Finding ids raised by the new manifest.' },
              resolved: { type: 'array', items: { type: 'string' }, description: 'Finding ids it resolved.' },
            },
          },
          ...errorResponses(401, 403, 409, 422),
        },
      },
    },
    async (request) => {
      const p = request.principal!;
      const audit = (status: number, target: string, detail: Record<string, unknown>) =>
        ctx.audit.write({ actor: p.name, role: p.role, remoteIp: remoteIp(request), action: 'manifest.reload', target, status, detail });
      const r = await ctx.deps.reloadManifest();
      if (r === null) {
        await audit(409, 'manifest', { error: 'MG_ERR_API_CONFLICT' });
        throw httpError('MG_ERR_API_CONFLICT', 'serve runs without a manifest file (--manifest); there is nothing to reload');
      }
      if (!r.ok) {
        const e = httpError('MG_ERR_API_MANIFEST_REJECTED', `${r.error.code}: ${r.error.message}`, undefined, r.error.problems);
        await audit(422, ctx.deps.detector.manifest?.file ?? 'manifest', { error: r.error.code, problems: r.error.problems.length, kept: ctx.deps.detector.manifest?.sha256 ?? null });
        throw e;
      }
      const out = {
        manifest: { file: r.manifest.file, sha256: r.manifest.sha256, sessions: r.manifest.sessions.length },
        raised: r.result.raised.map((f) => f.id),
        resolved: r.result.resolved.map((f) => f.id),
      };
      await audit(200, r.manifest.file, { sha256: r.manifest.sha256, sessions: out.manifest.sessions, raised: out.raised, resolved: out.resolved });
      request.log.info({ actor: p.name, sha256: r.manifest.sha256 }, 'manifest reloaded through the API');
      return out;
    },
  );

  const visible = (r: AuditRecord, name: string, admin: boolean) => admin || r.actor === name;

  app.get<{ Querystring: { actor?: string; action?: string; target?: string; from?: string; to?: string; limit: number; cursor?: string } }>(
    '/v1/audit',
    {
      config: { access: ['auditor', 'ingest'] },
      schema: {
        summary: 'Read the audit log',
        description: 'Newest first. Admins see every entry; other tokens see the entries they caused.',
        tags: ['audit'],
        querystring: {
          type: 'object',
          additionalProperties: false,
          properties: {
            actor: { type: 'string', maxLength: 64 },
            action: { type: 'string', enum: [...AUDIT_ACTIONS] },
            target: { type: 'string', maxLength: 200 },
            from: timeParam('Entries at or after this time'),
            to: timeParam('Entries before this time'),
            limit: limitParam,
            cursor: cursorParam,
          },
        },
        response: {
          200: pageOf('AuditRecord#'),
          ...errorResponses(400, 401, 403),
        },
      },
    },
    async (request) => {
      const q = request.query;
      const p = request.principal!;
      const admin = p.role === 'admin';
      const w = parseWindow(q);
      const actor = admin ? q.actor : p.name;
      return ctx.audit.list({
        ...(actor !== undefined ? { actor } : {}),
        ...(q.action !== undefined ? { action: q.action } : {}),
        ...(q.target !== undefined ? { target: q.target } : {}),
        ...(w.from ? { sinceMs: timeToMs(w.from) } : {}),
        ...(w.to ? { untilMs: timeToMs(w.to) } : {}),
        limit: q.limit,
        ...(q.cursor !== undefined ? { beforeId: decodeIdCursor(q.cursor) } : {}),
      });
    },
  );

  app.get<{ Params: { id: number } }>(
    '/v1/audit/:id',
    {
      config: { access: ['auditor', 'ingest'] },
      schema: {
        summary: 'One audit entry',
        description: 'For example the X-Audit-Id of an extraction, to read the SHA-256 of what was sent. Non-admin tokens see only their own entries.',
        tags: ['audit'],
        params: { type: 'object', additionalProperties: false, required: ['id'], properties: { id: { type: 'integer', minimum: 1 } } },
        response: { 200: { $ref: 'AuditRecord#' }, ...errorResponses(400, 401, 403, 404) },
      },
    },
    async (request) => {
      const p = request.principal!;
      const r = await ctx.audit.get(request.params.id);
      // Someone else's entry is "not found", not "forbidden": its existence is not for this token.
      if (!r || !visible(r, p.name, p.role === 'admin')) throw notFound(`no audit entry ${request.params.id}`);
      return r;
    },
  );
}
