/**
 * GET  /v1/ledger                       (auditor) the signed evidence ledger, paged by seq
 * POST /v1/captures/:id/legal-hold      (admin) turn a legal hold on or off; audited
 *
 * The ledger is the store's chain (src/store/ledger.ts): records come back exactly as signed, so a page
 * saved as JSON lines verifies offline with `mirrorguard verify --ledger`. A legal hold keeps the local
 * copy (the keep-local timer skips it) and, when the file is archived and serve has an archive, sets the
 * S3 Object Lock legal hold on the object's version (the bucket must have Object Lock).
 */
import type { FastifyInstance } from 'fastify';
import { RECORD_FIELDS } from '../../ledger/record.js';
import type { ApiContext } from '../deps.js';
import { captureView } from '../capture-files.js';
import { httpError, notFound } from '../errors.js';
import { errorResponses, remoteIp } from './common.js';

export const ledgerRecordSchema = {
  $id: 'LedgerRecord',
  type: 'object',
  description: 'One record of the signed, hash-chained evidence ledger (docs/architecture.md, "Ledger"): `archive` for a file archived to S3, `extraction` for a PCAP extraction.',
  required: [...RECORD_FIELDS],
  properties: {
    v: { type: 'integer' },
    seq: { type: 'integer', description: '1, 2, 3 ... with no gap: the record id.' },
    time: { type: 'string', format: 'date-time' },
    kind: { type: 'string', enum: ['archive', 'extraction'] },
    node: { type: 'string' },
    bucket: { type: ['string', 'null'] },
    key: { type: ['string', 'null'] },
    versionId: { type: ['string', 'null'] },
    size: { type: 'integer' },
    sha256: { type: 'string' },
    firstUs: { type: ['integer', 'null'] },
    lastUs: { type: ['integer', 'null'] },
    session: { type: ['string', 'null'] },
    merged: { type: 'array', items: { type: 'integer' } },
    keyId: { type: 'string' },
    prev: { type: 'string' },
    hash: { type: 'string' },
    sig: { type: 'string' },
  },
} as const;

const MAX_PAGE = 1000;

export async function evidenceRoutes(app: FastifyInstance, opts: { ctx: ApiContext }): Promise<void> {
  const { ctx } = opts;
  const store = ctx.deps.store;

  app.get<{ Querystring: { from: number; limit: number; sha256?: string } }>(
    '/v1/ledger',
    {
      config: { access: ['auditor'] },
      schema: {
        summary: 'The evidence ledger',
        description:
          'Records in seq order from `from` (default 1), at most `limit`; `nextFrom` is the seq of the next page, or null at the head. With `sha256`, the records of that file or extraction. Each record is returned exactly as signed: saved one a line, pages from seq 1 verify offline (`mirrorguard verify FILE --ledger EXPORT.jsonl --public-key KEY.pub`).',
        tags: ['evidence'],
        querystring: {
          type: 'object',
          additionalProperties: false,
          properties: {
            from: { type: 'integer', minimum: 1, default: 1, description: 'First seq to return.' },
            limit: { type: 'integer', minimum: 1, maximum: MAX_PAGE, default: 100 },
            sha256: { type: 'string', pattern: '^[0-9a-fA-F]{64}$', description: 'Only the records of this SHA-256 (hex).' },
          },
        },
        response: {
          200: {
            type: 'object',
            required: ['items', 'nextFrom'],
            properties: { items: { type: 'array', items: { $ref: 'LedgerRecord#' } }, nextFrom: { type: ['integer', 'null'] } },
          },
          ...errorResponses(400, 401, 403),
        },
      },
    },
    async (request) => {
      const q = request.query;
      if (q.sha256 !== undefined) return { items: await store.ledger.findBySha256(q.sha256.toLowerCase()), nextFrom: null };
      const rows = await store.ledger.page(q.from, q.limit + 1);
      const more = rows.length > q.limit;
      const items = more ? rows.slice(0, q.limit) : rows;
      return { items, nextFrom: more ? rows[q.limit]!.seq : null };
    },
  );

  app.post<{ Params: { id: number }; Body: { on: boolean; note?: string } }>(
    '/v1/captures/:id/legal-hold',
    {
      config: { access: ['admin'] },
      schema: {
        summary: 'Set or clear a legal hold',
        description:
          'With `{"on": true}` the file is kept: its local copy is never removed by archive.keepLocalHours, and when it is archived the S3 object version gets an Object Lock legal hold (the bucket must have Object Lock enabled). `{"on": false}` clears both. Audited as `capture.legal_hold`.',
        tags: ['captures'],
        params: {
          type: 'object',
          additionalProperties: false,
          required: ['id'],
          properties: { id: { type: 'integer', minimum: 1 } },
        },
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['on'],
          properties: { on: { type: 'boolean' }, note: { type: 'string', maxLength: 1000 } },
        },
        response: { 200: { $ref: 'Capture#' }, ...errorResponses(400, 401, 403, 404, 409) },
      },
    },
    async (request) => {
      const p = request.principal!;
      const id = request.params.id;
      const { on, note } = request.body;
      const audit = (status: number, detail: Record<string, unknown>) =>
        ctx.audit.write({ actor: p.name, role: p.role, remoteIp: remoteIp(request), action: 'capture.legal_hold', target: `capture:${id}`, status, detail: { on, ...(note ? { note } : {}), ...detail } });
      const row = await store.captures.byId(id);
      if (!row) {
        await audit(404, { error: 'MG_ERR_API_NOT_FOUND' });
        throw notFound(`no capture ${id}`);
      }
      let s3 = false;
      if (row.s3_key != null) {
        const archive = ctx.deps.archive;
        if (!archive) {
          await audit(409, { error: 'MG_ERR_API_CONFLICT' });
          throw httpError('MG_ERR_API_CONFLICT', `capture ${id} is archived, but this serve runs without archive.s3: it cannot set the hold on the S3 object`);
        }
        await archive.setLegalHold(row.s3_key, row.s3_version_id ?? null, on);
        s3 = true;
      }
      await store.captures.setLegalHold(id, on);
      await audit(200, { s3, ...(row.s3_key ? { key: row.s3_key, versionId: row.s3_version_id } : {}) });
      request.log.info({ actor: p.name, capture: id, on }, 'legal hold changed through the API');
      return captureView((await store.captures.byId(id))!);
    },
  );
}
