/**
 * POST /v1/cloudtrail: CloudTrail events pushed to the detector, for an EventBridge API destination
 * (a rule on `"detail-type": "AWS API Call via CloudTrail"`, `"source": "aws.ec2"`) or any forwarder.
 * Every shape the detector reads is accepted (src/detect/cloudtrail/parse.ts): one record, a Records
 * file, an EventBridge event, lookup-events output, an array of these, or JSON lines. The same rules as
 * `cloudtrail scan` run, into the same findings store (and webhooks); a record already stored (same
 * eventID, e.g. an EventBridge retry) raises nothing twice.
 *
 * Bodies are limited to api.maxBodyBytes (413 beyond).
 */
import type { FastifyInstance } from 'fastify';
import { recordsFromText } from '../../detect/cloudtrail/parse.js';
import type { ApiContext } from '../deps.js';
import { errorResponses, remoteIp } from './common.js';

const TEXT_TYPES = ['application/x-ndjson', 'application/jsonl', 'application/json-seq', 'text/plain'];

export async function cloudtrailRoutes(app: FastifyInstance, opts: { ctx: ApiContext }): Promise<void> {
  const { ctx } = opts;
  // JSON lines arrive as text and are split by the detector's reader; encapsulated here, so other routes
  // only accept JSON.
  app.addContentTypeParser(TEXT_TYPES, { parseAs: 'string', bodyLimit: ctx.cfg.maxBodyBytes }, (_req, body, done) => done(null, body));

  app.post<{ Body: unknown }>(
    '/v1/cloudtrail',
    {
      config: { access: ['ingest'] },
      bodyLimit: ctx.cfg.maxBodyBytes,
      schema: {
        summary: 'Ingest CloudTrail events',
        description: [
          'Body: one CloudTrail record, a CloudTrail log file (`{"Records": [...]}`), an EventBridge event (`"detail-type": "AWS API Call via CloudTrail"`), `aws cloudtrail lookup-events` output, an array of these (`application/json`), or JSON lines (`application/x-ndjson`).',
          'Traffic-mirroring calls go through the detection rules; other records are counted as skipped. A record whose eventID was already stored counts as a duplicate and raises nothing.',
          'For an EventBridge API destination, use a connection with API key authorization: header `Authorization`, value `Bearer <ingest token>`.',
        ].join('\n\n'),
        tags: ['detection'],
        consumes: ['application/json', 'application/x-ndjson'],
        body: { description: 'CloudTrail records in any accepted shape.' },
        response: {
          200: {
            type: 'object',
            required: ['records', 'events', 'duplicates', 'skipped', 'findings', 'correlated'],
            properties: {
              records: { type: 'integer', description: 'Records found in the body.' },
              events: { type: 'integer', description: 'Traffic-mirroring calls among them.' },
              duplicates: { type: 'integer', description: 'Events already stored (same eventID).' },
              skipped: { type: 'integer', description: 'Records that are not traffic-mirroring calls.' },
              findings: { type: 'array', items: { $ref: 'Finding#' }, description: 'Findings the events raised or repeated.' },
              correlated: { type: 'array', items: { type: 'string' }, description: 'Ids of data-plane findings that gained this control-plane evidence.' },
            },
          },
          ...errorResponses(400, 401, 403, 413, 415),
        },
      },
    },
    async (request) => {
      const p = request.principal!;
      const input = typeof request.body === 'string' ? recordsFromText(request.body, 'body') : request.body;
      const r = await ctx.deps.detector.ingestCloudTrail(input, 'body');
      const out = {
        records: r.events.length + r.skipped,
        events: r.events.length,
        duplicates: r.duplicates,
        skipped: r.skipped,
        findings: r.findings,
        correlated: r.correlated.map((f) => f.id),
      };
      await ctx.audit.write({
        actor: p.name,
        role: p.role,
        remoteIp: remoteIp(request),
        action: 'cloudtrail.ingest',
        target: 'cloudtrail',
        status: 200,
        bytes: Number(request.headers['content-length'] ?? 0) || null,
        detail: { records: out.records, events: out.events, duplicates: out.duplicates, findings: r.findings.map((f) => f.id), eventIds: r.events.slice(0, 50).map((e) => e.eventId) },
      });
      return out;
    },
  );
}
