/**
 * The auditor console (docs/console.md): static files from the package's `console/` folder, no build
 * step, nothing fetched from elsewhere at run time.
 *
 * GET /              the page (index.html); views live in the URL fragment (`/#/findings?kind=...`)
 * GET /console/*     its scripts, style sheet and icon
 * GET /v1/whoami     the caller's token name and role, so the console shows what the role may do
 *
 * The files are public (they hold no data); every number they show comes from the API with the
 * user's bearer token. Each console response carries a strict Content-Security-Policy (scripts and
 * styles from this origin only, no inline code, no eval, fetches to this origin only, never framed).
 */
import { fileURLToPath } from 'node:url';
import fastifyStatic from '@fastify/static';
import type { FastifyInstance, FastifyReply } from 'fastify';
import type { ApiContext } from '../deps.js';
import { errorResponses } from './common.js';

/** The console's files, shipped in the package (package.json "files"). Same depth from src/ and dist/. */
export const CONSOLE_ROOT = fileURLToPath(new URL('../../../console/', import.meta.url));

/**
 * CSP for the console (CSP Level 3). `default-src 'none'` refuses everything not listed; no
 * 'unsafe-inline' and no 'unsafe-eval' anywhere; `frame-ancestors 'none'` denies framing (with
 * X-Frame-Options for older browsers); downloads are made from blob: URLs the page creates itself.
 */
export const CONSOLE_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self'",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join('; ');

export const CONSOLE_HEADERS: Readonly<Record<string, string>> = {
  'content-security-policy': CONSOLE_CSP,
  'x-frame-options': 'DENY',
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'cross-origin-opener-policy': 'same-origin',
  'cross-origin-resource-policy': 'same-origin',
  // Revalidate on every load, so an upgrade never mixes old and new files.
  'cache-control': 'no-cache',
};

export async function consoleRoutes(app: FastifyInstance, opts: { ctx: ApiContext }): Promise<void> {
  void opts;
  // serve: false: we declare the routes ourselves, so they carry `access: 'public'` for the auth hook.
  await app.register(fastifyStatic, { root: CONSOLE_ROOT, serve: false, index: false, redirect: false, cacheControl: false, etag: true, lastModified: true });

  const send = (reply: FastifyReply, file: string) => reply.headers(CONSOLE_HEADERS).sendFile(file);

  app.get('/', { config: { access: 'public' }, schema: { hide: true } }, (_request, reply) => send(reply, 'index.html'));
  app.get<{ Params: { '*': string } }>('/console/*', { config: { access: 'public' }, schema: { hide: true } }, (request, reply) =>
    // @fastify/send refuses paths that leave the root (.., encoded or not) and dotfiles.
    send(reply, request.params['*']),
  );

  app.get(
    '/v1/whoami',
    {
      config: { access: ['auditor', 'ingest'] },
      schema: {
        summary: 'Who the token belongs to',
        description: 'The token\'s name and role. The console calls it at sign-in to check the token and to show what the role may do.',
        tags: ['operations'],
        response: {
          200: { type: 'object', required: ['name', 'role'], properties: { name: { type: 'string' }, role: { type: 'string', enum: ['auditor', 'ingest', 'admin'] } } },
          ...errorResponses(401, 403),
        },
      },
    },
    async (request) => ({ name: request.principal!.name, role: request.principal!.role }),
  );
}
