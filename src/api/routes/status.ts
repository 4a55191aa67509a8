/**
 * GET /healthz     no token: 200 when the catalog answers and serve's own checks pass, else 503. Meant
 *                  for a load balancer: an NLB forwarding UDP 4789 cannot health-check over UDP, so
 *                  its target group checks this over HTTP(S) on the API port instead.
 * GET /metrics     Prometheus text (src/api/metrics.ts); a token unless api.publicMetrics
 * GET /v1/status   the same numbers as JSON, with the counters by their docs/counters.md names
 * GET /v1/alerts   webhook deliveries, newest first
 */
import type { FastifyInstance } from 'fastify';
import { listDeliveries, outboxCounts, type OutboxState } from '../../alert/outbox.js';
import { VERSION } from '../../version.js';
import type { ApiContext } from '../deps.js';
import type { ApiMetrics } from '../metrics.js';
import { errorResponses } from './common.js';

/** `degraded`: the store does not answer, or writes wait in the queue (PostgreSQL away); capture goes on. */
const storeState = { type: 'string', enum: ['ok', 'degraded'] } as const;

export async function statusRoutes(app: FastifyInstance, opts: { ctx: ApiContext; metrics: ApiMetrics }): Promise<void> {
  const { ctx, metrics } = opts;
  const store = ctx.deps.store;

  app.get(
    '/healthz',
    {
      config: { access: 'public' },
      schema: {
        summary: 'Health check (no token)',
        description: '200 `{"status":"ok"}` when the catalog database answers and the collector reports healthy; 503 `{"status":"fail"}` with the failing checks otherwise. Use it as the NLB target group health check (HTTP or HTTPS on the API port).',
        tags: ['operations'],
        response: {
          200: { type: 'object', required: ['status', 'checks'], properties: { status: { type: 'string', enum: ['ok'] }, checks: { type: 'object', additionalProperties: { type: 'boolean' } }, store: storeState } },
          503: { type: 'object', required: ['status', 'checks'], properties: { status: { type: 'string', enum: ['fail'] }, checks: { type: 'object', additionalProperties: { type: 'boolean' } }, store: storeState } },
        },
      },
    },
    async (request, reply) => {
      const checks: Record<string, boolean> = {};
      const up = await store.ping();
      const degraded = !up || (ctx.deps.storeDegraded?.() ?? false);
      // SQLite is a local file: not answering is a failure. PostgreSQL away is degraded, not failed: the
      // collector keeps capturing and queues its writes, so the load balancer must keep sending traffic.
      if (store.kind === 'sqlite') checks.catalog = up;
      if (!up) request.log.warn({ store: store.display }, 'health check: the store does not answer');
      try {
        Object.assign(checks, ctx.deps.health?.() ?? {});
      } catch (e) {
        request.log.warn({ err: e }, 'health check failed');
        checks.collector = false;
      }
      const ok = Object.values(checks).every(Boolean);
      return reply.code(ok ? 200 : 503).send({ status: ok ? 'ok' : 'fail', checks, store: degraded ? 'degraded' : 'ok' });
    },
  );

  app.get(
    '/metrics',
    {
      config: { access: ['auditor'] },
      schema: {
        summary: 'Prometheus metrics',
        description: 'Prometheus text format 0.0.4. Needs an auditor or admin token unless api.publicMetrics is true. docs/api.md lists the metrics.',
        tags: ['operations'],
        produces: ['text/plain'],
        response: { 200: { description: 'Prometheus text.', content: { 'text/plain': { schema: { type: 'string' } } } }, ...errorResponses(401, 403) },
      },
    },
    async (_request, reply) => {
      const text = await metrics.scrape();
      return reply.type(metrics.registry.contentType).send(text);
    },
  );

  app.get(
    '/v1/status',
    {
      config: { access: ['auditor'] },
      schema: {
        summary: 'Collector status and counters',
        tags: ['operations'],
        response: {
          200: {
            type: 'object',
            required: ['version', 'uptimeSeconds', 'counters', 'kernel', 'sessionsLive', 'captures', 'findings', 'alerts', 'extractions', 'manifest'],
            properties: {
              version: { type: 'string' },
              uptimeSeconds: { type: 'number' },
              counters: { type: 'object', additionalProperties: { type: 'number' }, description: 'Every counter by its docs/counters.md name.' },
              kernel: { type: ['object', 'null'], properties: { sockets: { type: 'integer' }, drops: { type: 'integer' }, rxQueueBytes: { type: 'integer' } } },
              sessionsLive: { type: 'integer' },
              captures: {
                type: 'object',
                properties: { open: { type: 'integer' }, closed: { type: 'integer' }, bytes: { type: 'integer' } },
              },
              findings: { type: 'array', items: { type: 'object', additionalProperties: true } },
              alerts: { type: ['object', 'null'], additionalProperties: true },
              extractions: { type: 'object', properties: { active: { type: 'integer' }, max: { type: 'integer' }, started: { type: 'integer' }, refusedBusy: { type: 'integer' } } },
              manifest: { type: ['object', 'null'], properties: { file: { type: 'string' }, sha256: { type: 'string' }, sessions: { type: 'integer' } } },
            },
          },
          ...errorResponses(401, 403),
        },
      },
    },
    async () => {
      const files = await store.captures.byState();
      let live = 0;
      for (const _ of ctx.deps.sessionsLive()) live++;
      const m = ctx.deps.detector.manifest;
      return {
        version: VERSION,
        uptimeSeconds: Math.round((ctx.now() - ctx.startedAtMs) / 100) / 10,
        counters: ctx.deps.counters(),
        kernel: ctx.deps.kernelStats(),
        sessionsLive: live,
        captures: {
          open: files.find((f) => f.state === 'open')?.n ?? 0,
          closed: files.find((f) => f.state === 'closed')?.n ?? 0,
          bytes: files.reduce((a, f) => a + f.bytes, 0),
        },
        findings: await ctx.deps.findings.counts(),
        alerts: (await ctx.deps.alertStats?.()) ?? ((await outboxCounts(store.outbox)) as unknown as Record<string, unknown>),
        extractions: { active: ctx.extractions.active, max: ctx.cfg.maxConcurrentExtractions, started: ctx.extractions.total, refusedBusy: ctx.extractions.refused },
        manifest: m ? { file: m.file, sha256: m.sha256, sessions: m.sessions.length } : null,
      };
    },
  );

  app.get<{ Querystring: { state?: OutboxState; endpoint?: string; finding?: string; limit: number } }>(
    '/v1/alerts',
    {
      config: { access: ['auditor'] },
      schema: {
        summary: 'Webhook deliveries',
        description: 'Newest first: every alert row of the outbox with its state, attempts and last answer.',
        tags: ['operations'],
        querystring: {
          type: 'object',
          additionalProperties: false,
          properties: {
            state: { type: 'string', enum: ['pending', 'delivered', 'failed'] },
            endpoint: { type: 'string', maxLength: 64 },
            finding: { type: 'string', maxLength: 40 },
            limit: { type: 'integer', minimum: 1, maximum: 1000, default: 100 },
          },
        },
        response: {
          200: { type: 'object', required: ['items'], properties: { items: { type: 'array', items: { type: 'object', additionalProperties: true } } } },
          ...errorResponses(400, 401, 403),
        },
      },
    },
    async (request) => {
      const q = request.query;
      return {
        items: await listDeliveries(store.outbox, {
          ...(q.state ? { state: q.state } : {}),
          ...(q.endpoint ? { endpoint: q.endpoint } : {}),
          ...(q.finding ? { findingId: q.finding } : {}),
          limit: q.limit,
        }),
      };
    },
  );
}
