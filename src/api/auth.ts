/**
 * Bearer tokens (RFC 6750) and roles. Every route declares who may call it in its `config.access`:
 * `'public'` or a list of roles; a route that declares nothing is refused to everyone but admins, so a
 * forgotten declaration fails closed.
 *
 * The presented token is hashed with SHA-256 and compared with every configured digest using
 * crypto.timingSafeEqual over equal-length buffers, without stopping at the first match: the time taken
 * says nothing about how much of a token was right, nor which entry matched. Only digests are kept in
 * memory, so a heap dump shows no token.
 *
 * Answers: no or unknown token, 401 MG_ERR_API_UNAUTHORIZED with `WWW-Authenticate: Bearer` (and
 * `error="invalid_token"` when one was presented, RFC 6750 section 3.1); a valid token without the
 * role, 403 MG_ERR_API_FORBIDDEN (`error="insufficient_scope"`).
 */
import { timingSafeEqual } from 'node:crypto';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import { sha256Digest, type ApiRole, type ApiToken } from './config.js';
import { httpError } from './errors.js';

export type Access = 'public' | readonly ApiRole[];

export interface Principal {
  name: string;
  role: ApiRole;
}

declare module 'fastify' {
  interface FastifyContextConfig {
    /** Who may call the route; see src/api/auth.ts. */
    access?: Access;
  }
  interface FastifyRequest {
    /** The caller, once authenticated; null on public routes. */
    principal: Principal | null;
  }
}

/** The roles that satisfy a route's roles: admin may do everything. */
export function allows(access: readonly ApiRole[], role: ApiRole): boolean {
  return role === 'admin' || access.includes(role);
}

const REALM = 'mirrorguard';

/** The token of an `Authorization: Bearer <token>` header; the scheme is case-insensitive (RFC 9110 section 11.1). */
export function bearerToken(header: string | undefined): string | null {
  if (header === undefined) return null;
  const m = /^[Bb][Ee][Aa][Rr][Ee][Rr] +([A-Za-z0-9\-._~+/]+=*) *$/.exec(header);
  return m ? m[1]! : null;
}

export function matchToken(tokens: readonly ApiToken[], presented: string): ApiToken | null {
  const digest = sha256Digest(presented);
  let found: ApiToken | null = null;
  for (const t of tokens) {
    // Every entry is compared; `found` keeps the first match.
    if (timingSafeEqual(digest, t.digest) && found === null) found = t;
  }
  return found;
}

export interface AuthOptions {
  tokens: readonly ApiToken[];
  /** Serve GET /metrics without a token. */
  publicMetrics: boolean;
}

async function authPlugin(app: FastifyInstance, opts: AuthOptions): Promise<void> {
  const tokens = opts.tokens;
  app.decorateRequest('principal', null);
  app.addHook('onRequest', async (request: FastifyRequest) => {
    // An unknown route answers 404 to everyone: the route list is public (/openapi.json) anyway.
    if (request.is404) return;
    const access: Access = request.routeOptions.config.access ?? ['admin'];
    if (access === 'public') return;
    if (opts.publicMetrics && request.routeOptions.url === '/metrics') return;
    const presented = bearerToken(request.headers.authorization);
    if (presented === null) {
      throw httpError(
        'MG_ERR_API_UNAUTHORIZED',
        request.headers.authorization === undefined ? 'send Authorization: Bearer <token>' : 'the Authorization header is not "Bearer <token>"',
        { 'www-authenticate': `Bearer realm="${REALM}"` },
      );
    }
    const t = matchToken(tokens, presented);
    if (t === null) {
      throw httpError('MG_ERR_API_UNAUTHORIZED', 'unknown token', { 'www-authenticate': `Bearer realm="${REALM}", error="invalid_token"` });
    }
    request.principal = { name: t.name, role: t.role };
    if (!allows(access, t.role)) {
      throw httpError('MG_ERR_API_FORBIDDEN', `token '${t.name}' has role ${t.role}; this request needs ${[...access, 'admin'].filter((r, i, a) => a.indexOf(r) === i).join(' or ')}`, {
        'www-authenticate': `Bearer realm="${REALM}", error="insufficient_scope"`,
      });
    }
  });
}

export const auth = fp(authPlugin, { name: 'mirrorguard-auth', fastify: '5.x' });

/** The roles a route admits, as documented: its own plus admin. */
export function admittedRoles(access: Access | undefined): string[] {
  if (access === 'public') return ['public'];
  const roles: string[] = [...(access ?? []), 'admin'];
  return roles.filter((r, i) => roles.indexOf(r) === i);
}

/**
 * Write each route's access rule into its schema, so the OpenAPI document states it from the same
 * declaration the hook enforces: `security` (bearer) on protected routes, `x-mirrorguard-roles`, and a
 * line in the description. Install before the routes are declared.
 */
export function documentAccess(app: FastifyInstance): void {
  app.addHook('onRoute', (route) => {
    const schema = route.schema as (Record<string, unknown> & { hide?: boolean }) | undefined;
    if (!schema || schema.hide) return;
    const access = route.config?.access;
    const roles = admittedRoles(access);
    schema['x-mirrorguard-roles'] = roles;
    if (access !== 'public') schema.security = [{ bearer: [] }];
    const line = access === 'public' ? 'No token needed.' : `Roles: ${roles.join(', ')}.`;
    const d = typeof schema.description === 'string' ? schema.description : '';
    if (!d.includes(line)) schema.description = d ? `${d}\n\n${line}` : line;
  });
}
