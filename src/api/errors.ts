/**
 * Every error the API answers has the same body, `{ statusCode, code, error, message }` (docs/errors.md),
 * and a code from src/errors.ts. This file maps the three kinds of errors a request can meet to it:
 * our MgErrors (their code and status), fastify's own (schema validation, body limit, content type,
 * bad URL) and anything unexpected (500 MG_ERR_API_INTERNAL, logged with its stack, the message not
 * shown to the client).
 */
import { STATUS_CODES } from 'node:http';
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import { isMgError, MgError, type ErrorCode } from '../errors.js';
import { isStoreOutage } from '../store/outage.js';

export interface ErrorBody {
  statusCode: number;
  code: string;
  error: string;
  message: string;
  /** For errors about a file the user wrote (a manifest): one `FILE:LINE: field: message` per problem. */
  problems?: string[];
}

/** An MgError that also carries response headers (WWW-Authenticate, Retry-After, Content-Range). */
export type HttpError = MgError & { headers?: Record<string, string> };

export function httpError(code: ErrorCode, detail?: string, headers?: Record<string, string>, problems?: MgError['problems']): HttpError {
  const e: HttpError = new MgError(code, detail, problems ? { problems: [...problems] } : {});
  if (headers) e.headers = headers;
  return e;
}

export function badRequest(param: string, message: string): HttpError {
  return httpError('MG_ERR_API_BAD_REQUEST', `${param}: ${message}`);
}

export function notFound(what: string): HttpError {
  return httpError('MG_ERR_API_NOT_FOUND', what);
}

function body(status: number, code: string, message: string, problems?: string[]): ErrorBody {
  const b: ErrorBody = { statusCode: status, code, error: STATUS_CODES[status] ?? 'Error', message };
  if (problems && problems.length) b.problems = problems;
  return b;
}

/** fastify's validation errors name the part (querystring, params, body) and the JSON path; say it as a parameter. */
function validationMessage(err: FastifyError): string {
  const v = err.validation?.[0];
  if (!v) return err.message;
  const part = err.validationContext ?? 'request';
  const path = v.instancePath.replace(/^\//, '').replace(/\//g, '.');
  const params = v.params as Record<string, unknown>;
  if (v.keyword === 'additionalProperties') return `${part}: unknown parameter '${String(params.additionalProperty)}'`;
  if (v.keyword === 'required') return `${part}: missing parameter '${String(params.missingProperty)}'`;
  if (v.keyword === 'enum') return `${path || part}: must be one of ${(params.allowedValues as unknown[]).join(', ')}`;
  return `${path || part}: ${v.message ?? 'is invalid'}`;
}

/** fastify error codes that are the client's fault, and what we answer for each. */
const FASTIFY_CLIENT_ERRORS: Record<string, ErrorCode> = {
  FST_ERR_CTP_BODY_TOO_LARGE: 'MG_ERR_API_TOO_LARGE',
  FST_ERR_CTP_INVALID_MEDIA_TYPE: 'MG_ERR_API_MEDIA_TYPE',
  FST_ERR_CTP_INVALID_JSON_BODY: 'MG_ERR_API_BAD_REQUEST',
  FST_ERR_CTP_EMPTY_JSON_BODY: 'MG_ERR_API_BAD_REQUEST',
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: 'MG_ERR_API_BAD_REQUEST',
  FST_ERR_BAD_URL: 'MG_ERR_API_BAD_REQUEST',
};

/** Retry-After (seconds) on a 503 because the store is away. */
export const STORE_RETRY_AFTER_S = 5;

export function toErrorBody(err: unknown): { status: number; body: ErrorBody; headers?: Record<string, string>; internal: boolean } {
  if (isMgError(err)) {
    const status = err.statusCode ?? 500;
    const problems = err.problems.length ? (err as MgError).describe().split('\n').slice(1) : undefined;
    const headers = (err as HttpError).headers;
    return { status, body: body(status, err.code, err.message, problems), ...(headers ? { headers } : {}), internal: status >= 500 };
  }
  const fe = err as FastifyError;
  if (fe && Array.isArray(fe.validation)) {
    return { status: 400, body: body(400, 'MG_ERR_API_BAD_REQUEST', `bad request: ${validationMessage(fe)}`), internal: false };
  }
  const mapped = fe && typeof fe.code === 'string' ? FASTIFY_CLIENT_ERRORS[fe.code] : undefined;
  if (mapped) {
    const e = new MgError(mapped, fe.message);
    return { status: e.statusCode!, body: body(e.statusCode!, e.code, e.message), internal: false };
  }
  if (fe && typeof fe.statusCode === 'number' && fe.statusCode >= 400 && fe.statusCode < 500) {
    const e = new MgError('MG_ERR_API_BAD_REQUEST', fe.message);
    return { status: 400, body: body(400, e.code, e.message), internal: false };
  }
  if (isStoreOutage(err)) {
    // The store (PostgreSQL) is away or too busy: the request may be sent again, not a bug of ours.
    const e = new MgError('MG_ERR_STORE_UNREACHABLE', 'try again shortly; capture goes on and its writes wait in order');
    return { status: 503, body: body(503, e.code, e.message), headers: { 'retry-after': String(STORE_RETRY_AFTER_S) }, internal: false };
  }
  const e = new MgError('MG_ERR_API_INTERNAL');
  return { status: 500, body: body(500, e.code, e.message), internal: true };
}

export function errorHandler(err: unknown, request: FastifyRequest, reply: FastifyReply): void {
  const r = toErrorBody(err);
  if (r.internal) request.log.error({ err }, 'api request failed');
  else if (r.status === 503) request.log.warn({ code: r.body.code, err: (err as Error)?.message, url: request.url }, 'api request failed: the store is away');
  else request.log.debug({ code: r.body.code, message: r.body.message }, 'api request refused');
  if (reply.sent || reply.raw.headersSent) {
    // A stream failed after its headers went out: the client sees a cut response, never a false success.
    reply.raw.destroy();
    return;
  }
  // Headers a download set before failing (ETag, Content-Disposition ...) do not describe an error body.
  for (const h of ['etag', 'last-modified', 'content-disposition', 'x-content-sha256', 'accept-ranges', 'content-range', 'cache-control']) reply.removeHeader(h);
  if (r.headers) reply.headers(r.headers);
  void reply.code(r.status).type('application/json; charset=utf-8').send(r.body);
}

export function notFoundHandler(request: FastifyRequest, reply: FastifyReply): void {
  const path = request.url.split('?')[0];
  void reply.code(404).type('application/json; charset=utf-8').send(body(404, 'MG_ERR_API_NOT_FOUND', `${new MgError('MG_ERR_API_NOT_FOUND').message}: no route ${request.method} ${path}`));
}

/** The JSON schema of ErrorBody, for route schemas and the OpenAPI document. */
export const errorBodySchema = {
  $id: 'Error',
  type: 'object',
  description: 'Every error: the HTTP status, a code from docs/errors.md, the status text and a message naming what was wrong.',
  required: ['statusCode', 'code', 'error', 'message'],
  properties: {
    statusCode: { type: 'integer', examples: [400] },
    code: { type: 'string', examples: ['MG_ERR_API_BAD_REQUEST'] },
    error: { type: 'string', examples: ['Bad Request'] },
    message: { type: 'string', examples: ['bad request: querystring: unknown parameter \'sourceip\''] },
    problems: { type: 'array', items: { type: 'string' } },
  },
} as const;
