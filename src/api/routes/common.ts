/** Small pieces every route group uses. */
import { STATUS_CODES } from 'node:http';
import type { FastifyRequest } from 'fastify';

/** Response schemas for the listed error statuses, all the shared Error body. */
/** The JSON schema of a keyset-paginated list of `ref` items: `{ items, nextCursor }`. */
export function pageOf(ref: string) {
  return {
    type: 'object',
    required: ['items', 'nextCursor'],
    properties: { items: { type: 'array', items: { $ref: ref } }, nextCursor: { type: ['string', 'null'] } },
  } as const;
}

export function errorResponses(...statuses: number[]): Record<number, { description: string; $ref: string }> {
  const out: Record<number, { description: string; $ref: string }> = {};
  for (const s of statuses) out[s] = { description: STATUS_CODES[s] ?? 'Error', $ref: 'Error#' };
  return out;
}

/** The client address (X-Forwarded-For only when api.trustProxy says so, fastify's request.ip). */
export function remoteIp(request: FastifyRequest): string | null {
  return request.ip || null;
}
