/**
 * The auditor API as a fastify app. buildApi() builds it (no socket, no timers: tests call
 * app.inject()); startApi() listens and logs `api listening` with the port; the returned close()
 * stops accepting, lets running transfers finish or be cut, and closes the server.
 *
 * Routes, one file per group under routes/; every route declares its roles (auth.ts) and has a JSON
 * schema, which both validates the request and feeds the OpenAPI document (openapi.ts).
 */
import { readFileSync } from 'node:fs';
import Fastify, { LogController, type FastifyInstance, type FastifyServerOptions } from 'fastify';
import { MgError } from '../errors.js';
import { silentLogger } from '../util/log.js';
import { parseHostPort } from '../util/units.js';
import { AuditLog } from './audit.js';
import { auth, documentAccess } from './auth.js';
import { captureSchema } from './capture-files.js';
import { configuredTokens, type ApiConfig, type ApiToken } from './config.js';
import type { ApiContext, ApiDeps } from './deps.js';
import { errorBodySchema, errorHandler, httpError, notFoundHandler } from './errors.js';
import { createMetrics } from './metrics.js';
import { OPENAPI_PATH, openApiDocument, registerOpenApi } from './openapi.js';
import { adminRoutes, auditSchema } from './routes/admin.js';
import { captureRoutes } from './routes/captures.js';
import { evidenceRoutes, ledgerRecordSchema } from './routes/evidence.js';
import { cloudtrailRoutes } from './routes/cloudtrail.js';
import { consoleRoutes } from './routes/console.js';
import { findingActionRoutes, findingRoutes, findingSchema } from './routes/findings.js';
import { pcapRoutes } from './routes/pcap.js';
import { sessionRoutes } from './routes/sessions.js';
import { statusRoutes } from './routes/status.js';

/** Headers and body of a slow or idle client may not hold a connection longer than this, ms. */
export const REQUEST_HEADERS_TIMEOUT_MS = 30_000;
/** Idle keep-alive connections are closed after this, ms. */
export const KEEP_ALIVE_TIMEOUT_MS = 10_000;

function tlsOptions(cfg: ApiConfig): { cert: Buffer; key: Buffer } | undefined {
  if (!cfg.tls) return undefined;
  const read = (what: string, file: string): Buffer => {
    try {
      return readFileSync(file);
    } catch (e) {
      throw httpError('MG_ERR_API_TLS', `${what} ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    }
  };
  return { cert: read('api.tls.certFile', cfg.tls.certFile), key: read('api.tls.keyFile', cfg.tls.keyFile) };
}

/**
 * Build the app. `tokens` defaults to the configured ones (serve passes resolveApiTokens(), which adds
 * the generated admin token when none is configured); with no token at all, every route except the
 * public ones answers 401.
 */
export function buildApi(deps: ApiDeps, cfg: ApiConfig, tokens: readonly ApiToken[] = configuredTokens(cfg)): FastifyInstance {
  const https = tlsOptions(cfg);
  const opts: FastifyServerOptions & { https?: { cert: Buffer; key: Buffer } } = {
    loggerInstance: deps.logger ?? silentLogger(),
    // Our onResponse hook logs each request at debug level; fastify's own lines would be at info.
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: cfg.maxBodyBytes,
    // fastify takes a hop count as a number; its type lists only string forms.
    trustProxy: cfg.trustProxy as FastifyServerOptions['trustProxy'],
    requestTimeout: 0,
    keepAliveTimeout: KEEP_ALIVE_TIMEOUT_MS,
    return503OnClosing: true,
    ajv: {
      // Unknown query parameters are errors (a typo such as `sourceip` must not silently widen a query),
      // and types are coerced from query strings.
      customOptions: { removeAdditional: false, coerceTypes: 'array', useDefaults: true, allErrors: false },
    },
    ...(https ? { https } : {}),
  };
  const app = Fastify(opts as FastifyServerOptions) as unknown as FastifyInstance;
  app.server.headersTimeout = REQUEST_HEADERS_TIMEOUT_MS;

  const now = deps.now ?? Date.now;
  const ctx: ApiContext = {
    deps,
    cfg,
    audit: new AuditLog(deps.store.audit, now),
    now,
    startedAtMs: now(),
    extractions: { active: 0, total: 0, refused: 0 },
  };
  const metrics = createMetrics(ctx);

  app.setErrorHandler(errorHandler);
  app.setNotFoundHandler(notFoundHandler);
  app.addSchema(errorBodySchema);
  app.addSchema(captureSchema);
  app.addSchema(findingSchema);
  app.addSchema(auditSchema);
  app.addSchema(ledgerRecordSchema);
  documentAccess(app);
  registerOpenApi(app);
  void app.register(auth, { tokens, publicMetrics: cfg.publicMetrics });

  app.addHook('onResponse', async (request, reply) => {
    metrics.observeRequest(request.method, request.routeOptions.url ?? 'unmatched', reply.statusCode);
    request.log.debug({ method: request.method, url: request.url, status: reply.statusCode, actor: request.principal?.name, ms: Math.round(reply.elapsedTime) }, 'api request');
  });

  void app.register(captureRoutes, { ctx });
  void app.register(evidenceRoutes, { ctx });
  void app.register(pcapRoutes, { ctx });
  void app.register(findingRoutes, { ctx });
  void app.register(findingActionRoutes, { ctx });
  void app.register(sessionRoutes, { ctx });
  void app.register(cloudtrailRoutes, { ctx });
  void app.register(adminRoutes, { ctx });
  void app.register(statusRoutes, { ctx, metrics });
  void app.register(consoleRoutes, { ctx });
  app.get(
    OPENAPI_PATH,
    { config: { access: 'public' }, schema: { hide: true } },
    async () => openApiDocument(app),
  );
  return app;
}

export interface ApiHandle {
  port: number;
  /** Stop listening; transfers in progress are cut after `graceMs`. */
  close(graceMs?: number): Promise<void>;
}

/** Listen on cfg.listen (`HOST:PORT`); logs `{ msg: 'api listening', port }`. */
export async function startApi(app: FastifyInstance, cfg: Pick<ApiConfig, 'listen' | 'tls'>): Promise<ApiHandle> {
  const hp = parseHostPort(cfg.listen);
  if (cfg.listen === 'off' || hp === null) {
    throw new MgError('MG_ERR_CONFIG_INVALID', `api.listen '${cfg.listen}'`, { problems: [{ field: 'api.listen', message: 'must be HOST:PORT to start the API' }] });
  }
  try {
    await app.listen({ host: hp.host, port: hp.port });
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new MgError('MG_ERR_API_BIND', `${cfg.listen}: ${code ?? (e as Error).message}`, { cause: e });
  }
  const addr = app.server.address();
  const port = typeof addr === 'object' && addr !== null ? addr.port : hp.port;
  const tls = cfg.tls !== undefined;
  const url = `${tls ? 'https' : 'http'}://${hp.host.includes(':') ? `[${hp.host}]` : hp.host}:${port}`;
  app.log.info({ url, port, host: hp.host, tls }, 'api listening');
  return {
    port,
    async close(graceMs = 5_000) {
      const timer = setTimeout(() => app.server.closeAllConnections(), graceMs);
      timer.unref();
      app.server.closeIdleConnections();
      await app.close();
      clearTimeout(timer);
    },
  };
}
