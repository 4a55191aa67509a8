/**
 * GET /v1/captures            the catalog, filtered by pair, session, state and time
 * GET /v1/captures/:id        one row
 * GET /v1/captures/:id/pcap   the file: streamed from disk, Range (one range), ETag (the SHA-256 of a
 *                             closed file; a weak size+mtime tag for the file being written),
 *                             If-None-Match, If-Range, X-Content-SHA256, and a row in the audit log.
 *
 * The file being written is served up to its last flushed record: `flushLive()` first pushes the
 * collector's buffers to disk and updates the row, then the row's byte count bounds the read. Its
 * SHA-256 (of exactly the bytes sent) comes as an HTTP trailer, since it cannot be known up front.
 */
import { pipeline, type Readable } from 'node:stream';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { ApiContext } from '../deps.js';
import { decodeIdCursor, encodeIdCursor } from '../audit.js';
import { captureById, captureView, openCaptureFile, type CaptureRow, type OpenedCapture } from '../capture-files.js';
import { httpError, notFound, toErrorBody } from '../errors.js';
import { contentDisposition, HashingCounter, ifRangeAllows, noneMatch, parseRange, PCAP_MEDIA_TYPE } from '../http.js';
import { cursorParam, limitParam, parseSourceIp, parseWindow, sessionParam, sourceIpParam, timeParam, vniParam } from '../params.js';
import { timeToMicros } from '../time.js';
import { errorResponses, remoteIp, pageOf } from './common.js';

interface ListQuery {
  vni?: number;
  sourceIp?: string;
  session?: string;
  state?: 'open' | 'closed';
  from?: string;
  to?: string;
  limit: number;
  cursor?: string;
}

const idParams = {
  type: 'object',
  additionalProperties: false,
  required: ['id'],
  properties: { id: { type: 'integer', minimum: 1, description: 'Capture id from GET /v1/captures.' } },
} as const;

export async function captureRoutes(app: FastifyInstance, opts: { ctx: ApiContext }): Promise<void> {
  const { ctx } = opts;
  const store = ctx.deps.store;

  app.get<{ Querystring: ListQuery }>(
    '/v1/captures',
    {
      config: { access: ['auditor'] },
      schema: {
        summary: 'List capture files',
        description:
          'Files of the catalog, newest first. `from`/`to` keep the files whose packets overlap the window. The file being written (state `open`) is listed with its numbers as of its last flush.',
        tags: ['captures'],
        querystring: {
          type: 'object',
          additionalProperties: false,
          properties: {
            vni: vniParam,
            sourceIp: sourceIpParam,
            session: sessionParam,
            state: { type: 'string', enum: ['open', 'closed'] },
            from: timeParam('Files with packets at or after this time'),
            to: timeParam('Files with packets before this time'),
            limit: limitParam,
            cursor: cursorParam,
          },
        },
        response: {
          200: pageOf('Capture#'),
          ...errorResponses(400, 401, 403),
        },
      },
    },
    async (request) => {
      const q = request.query;
      const w = parseWindow(q);
      const rows = await store.captures.list({
        ...(q.vni !== undefined ? { vni: q.vni } : {}),
        ...(q.sourceIp !== undefined ? { sourceIp: parseSourceIp(q.sourceIp) } : {}),
        ...(q.session !== undefined ? { sessionId: q.session } : {}),
        ...(q.state !== undefined ? { state: q.state } : {}),
        ...(w.to ? { beforeUs: timeToMicros(w.to) + 1 } : {}),
        ...(w.from ? { fromUs: timeToMicros(w.from) } : {}),
        ...(q.cursor !== undefined ? { beforeId: decodeIdCursor(q.cursor) } : {}),
        limit: q.limit,
      });
      const more = rows.length > q.limit;
      const page = more ? rows.slice(0, q.limit) : rows;
      return { items: page.map(captureView), nextCursor: more ? encodeIdCursor(page[page.length - 1]!.id) : null };
    },
  );

  app.get<{ Params: { id: number } }>(
    '/v1/captures/:id',
    {
      config: { access: ['auditor'] },
      schema: {
        summary: 'One capture file',
        tags: ['captures'],
        params: idParams,
        response: { 200: { $ref: 'Capture#' }, ...errorResponses(400, 401, 403, 404) },
      },
    },
    async (request) => {
      const row = await captureById(store, request.params.id);
      if (!row) throw notFound(`no capture ${request.params.id}`);
      return captureView(row);
    },
  );

  app.route<{ Params: { id: number } }>({
    method: ['GET', 'HEAD'],
    url: '/v1/captures/:id/pcap',
    config: { access: ['auditor'] },
    schema: {
      summary: 'Download one capture file',
      description: [
        'The PCAP file as stored (classic libpcap, nanosecond timestamps, Ethernet). For a closed file, `ETag` and `X-Content-SHA256` are its SHA-256 from the catalog.',
        'The file being written is served up to its last flushed record, with a weak ETag; the SHA-256 of the bytes sent comes as the `X-Content-SHA256` trailer.',
        'One `Range` is honoured (206); a range past the end is 416 with `Content-Range: bytes */SIZE`; several ranges get the whole file. `If-None-Match` gives 304; `If-Range` with a strong ETag guards a resumed download.',
        'Every download is recorded in the audit log (`X-Audit-Id` names the row) with the bytes sent and their SHA-256.',
        'An archived file whose local copy is gone (archive.keepLocalHours, or a file of another node) is streamed from its S3 version, with `X-Capture-Source: s3`; `X-Ledger-Seq` names the ledger record of an archived file.',
      ].join('\n\n'),
      tags: ['captures'],
      params: idParams,
      headers: {
        type: 'object',
        properties: {
          range: { type: 'string', description: 'bytes=START-END, bytes=START- or bytes=-LENGTH' },
          'if-range': { type: 'string' },
          'if-none-match': { type: 'string' },
        },
      },
      response: {
        200: {
          description: 'The whole file.',
          headers: {
            etag: { type: 'string' },
            'x-content-sha256': { type: 'string', description: 'SHA-256 of the whole file (closed files).' },
            'x-audit-id': { type: 'integer' },
            'x-ledger-seq': { type: 'integer', description: 'The evidence ledger record (seq) of the archived file, once archived.' },
            'content-disposition': { type: 'string' },
          },
          content: { [PCAP_MEDIA_TYPE]: { schema: { type: 'string', format: 'binary' } } },
        },
        206: { description: 'The requested byte range.', content: { [PCAP_MEDIA_TYPE]: { schema: { type: 'string', format: 'binary' } } } },
        304: { description: 'If-None-Match matched: not modified.', type: 'null' },
        ...errorResponses(400, 401, 403, 404, 416, 500),
      },
    },
    handler: async (request, reply) => download(ctx, request, reply),
  });
}

async function download(ctx: ApiContext, request: FastifyRequest<{ Params: { id: number } }>, reply: FastifyReply): Promise<FastifyReply> {
  const id = request.params.id;
  const head = request.method === 'HEAD';
  const p = request.principal!;
  const target = `capture:${id}`;
  const auditRefusal = (e: unknown, detail: Record<string, unknown> = {}) => {
    if (head) return;
    const r = toErrorBody(e);
    return ctx.audit.write({ actor: p.name, role: p.role, remoteIp: remoteIp(request), action: 'capture.download', target, status: r.status, detail: { ...detail, error: r.body.code, message: r.body.message } });
  };

  let row = await captureById(ctx.deps.store, id);
  if (row?.state === 'open') {
    await ctx.deps.flushLive();
    row = await captureById(ctx.deps.store, id);
  }
  if (!row) {
    const e = notFound(`no capture ${id}`);
    await auditRefusal(e);
    throw e;
  }
  // Archived and no longer on this disk (keep-local timer, retention, or another node's file): from S3.
  const reader = ctx.deps.archive?.readObject;
  if (row.state === 'closed' && row.sha256 !== null && row.s3_key != null && reader) {
    // Another node's file is never on this disk (a local file of that name would be one of ours).
    const own = !row.node || row.node === ctx.deps.store.nodeId;
    const local = own && row.local_removed_us == null ? await openCaptureFile(ctx.deps.dataDir, row).catch(() => null) : null;
    if (local === null) return downloadFromS3(ctx, request, reply, row, reader.bind(ctx.deps.archive));
    await local.fh.close();
  }
  let file: OpenedCapture;
  try {
    file = await openCaptureFile(ctx.deps.dataDir, row);
  } catch (e) {
    await auditRefusal(e, { path: row.path, state: row.state, catalogBytes: row.bytes });
    if (toErrorBody(e).status >= 500) request.log.error({ err: e, capture: id, path: row.path }, 'capture file does not match the catalog');
    throw e;
  }
  let handedOver = false;
  try {
    const closed = row.state === 'closed' && row.sha256 !== null;
    const etag = closed ? `"${row.sha256}"` : `W/"${file.length.toString(16)}-${Math.floor(file.mtimeMs).toString(16)}"`;
    const name = row.path.slice(row.path.lastIndexOf('/') + 1);
    const baseHeaders: Record<string, string> = {
      etag,
      'last-modified': new Date(file.mtimeMs).toUTCString(),
      'accept-ranges': 'bytes',
      'cache-control': 'no-store',
      'x-capture-state': row.state,
    };
    if (closed) baseHeaders['x-content-sha256'] = row.sha256!;
    // The ledger record of the archived file: verify the download against GET /v1/ledger?sha256=.
    if (row.ledger_seq != null) baseHeaders['x-ledger-seq'] = String(row.ledger_seq);

    if (noneMatch(request.headers['if-none-match'], etag)) {
      reply.headers(baseHeaders);
      return reply.code(304).send();
    }
    const range = ifRangeAllows(request.headers['if-range'] as string | undefined, etag) ? parseRange(request.headers.range, file.length) : { kind: 'full' as const };
    if (range.kind === 'unsatisfiable') {
      const e = httpError('MG_ERR_API_RANGE', range.reason, { 'content-range': `bytes */${file.length}` });
      await auditRefusal(e, { range: request.headers.range, size: file.length });
      throw e;
    }
    const start = range.kind === 'partial' ? range.start : 0;
    const end = range.kind === 'partial' ? range.end : file.length - 1;
    const length = end - start + 1;
    const status = range.kind === 'partial' ? 206 : 200;
    // A live file's full download carries its digest as a trailer, which needs chunked encoding.
    const trailerDigest = !closed && range.kind === 'full' && !head;
    reply.headers(baseHeaders);
    reply.header('content-type', PCAP_MEDIA_TYPE);
    reply.header('content-disposition', contentDisposition(name));
    if (!trailerDigest) reply.header('content-length', String(length));
    if (range.kind === 'partial') reply.header('content-range', `bytes ${start}-${end}/${file.length}`);
    reply.code(status);
    if (head) return reply.send();

    const detail: Record<string, unknown> = { path: row.path, state: row.state, size: file.length };
    if (range.kind === 'partial') detail.range = { start, end };
    if (closed) detail.catalogSha256 = row.sha256;
    const auditId = await ctx.audit.write({ actor: p.name, role: p.role, remoteIp: remoteIp(request), action: 'capture.download', target, status, detail: { ...detail, complete: false } });
    reply.header('x-audit-id', String(auditId));

    const counter = new HashingCounter();
    const source = file.fh.createReadStream({ start, end, autoClose: true, highWaterMark: 256 * 1024 });
    handedOver = true;
    pipeline(source, counter, () => undefined);
    if (trailerDigest) reply.trailer('x-content-sha256', async () => counter.digest());

    finishAuditWhenSent(ctx, request, reply, { auditId, status, counter, length, detail, verifyAgainst: closed && range.kind === 'full' ? row.sha256 : null, capture: id, path: row.path });
    return reply.send(counter);
  } finally {
    if (!handedOver) await file.fh.close();
  }
}

/**
 * A closed, archived file whose local copy is gone, streamed from its S3 version: the same headers as a
 * local download (strong ETag = the catalog SHA-256, one Range, If-None-Match, If-Range), plus
 * `X-Capture-Source: s3`; audited the same way, with the bytes sent and their SHA-256.
 */
async function downloadFromS3(
  ctx: ApiContext,
  request: FastifyRequest<{ Params: { id: number } }>,
  reply: FastifyReply,
  row: CaptureRow,
  read: (key: string, versionId: string | null, start: number, end: number) => Promise<NodeJS.ReadableStream>,
): Promise<FastifyReply> {
  const head = request.method === 'HEAD';
  const p = request.principal!;
  const size = row.bytes;
  const etag = `"${row.sha256}"`;
  const baseHeaders: Record<string, string> = {
    etag,
    'accept-ranges': 'bytes',
    'cache-control': 'no-store',
    'x-capture-state': row.state,
    'x-capture-source': 's3',
    'x-content-sha256': row.sha256!,
    ...(row.ledger_seq != null ? { 'x-ledger-seq': String(row.ledger_seq) } : {}),
  };
  if (noneMatch(request.headers['if-none-match'], etag)) {
    reply.headers(baseHeaders);
    return reply.code(304).send();
  }
  const range = ifRangeAllows(request.headers['if-range'] as string | undefined, etag) ? parseRange(request.headers.range, size) : { kind: 'full' as const };
  if (range.kind === 'unsatisfiable') throw httpError('MG_ERR_API_RANGE', range.reason, { 'content-range': `bytes */${size}` });
  const start = range.kind === 'partial' ? range.start : 0;
  const end = range.kind === 'partial' ? range.end : size - 1;
  const length = end - start + 1;
  const status = range.kind === 'partial' ? 206 : 200;
  reply.headers(baseHeaders);
  reply.header('content-type', PCAP_MEDIA_TYPE);
  reply.header('content-disposition', contentDisposition(row.path.slice(row.path.lastIndexOf('/') + 1)));
  reply.header('content-length', String(length));
  if (range.kind === 'partial') reply.header('content-range', `bytes ${start}-${end}/${size}`);
  reply.code(status);
  if (head) return reply.send();
  const body = await read(row.s3_key!, row.s3_version_id ?? null, start, end);
  const detail: Record<string, unknown> = { path: row.path, state: row.state, size, source: 's3', key: row.s3_key, versionId: row.s3_version_id ?? null, catalogSha256: row.sha256 };
  if (range.kind === 'partial') detail.range = { start, end };
  const auditId = await ctx.audit.write({ actor: p.name, role: p.role, remoteIp: remoteIp(request), action: 'capture.download', target: `capture:${row.id}`, status, detail: { ...detail, complete: false } });
  reply.header('x-audit-id', String(auditId));
  const counter = new HashingCounter();
  pipeline(body as Readable, counter, () => undefined);
  finishAuditWhenSent(ctx, request, reply, { auditId, status, counter, length, detail, verifyAgainst: range.kind === 'full' ? row.sha256 : null, capture: row.id, path: row.path });
  return reply.send(counter);
}

/**
 * Complete a download's audit row once the response is over: 'finish' (the last byte went to the
 * connection) or 'close' alone (the client went away first). `complete` when every byte of the range
 * left; `verified` when a whole file was sent and `verifyAgainst` (the catalog's SHA-256) is given,
 * logged as an error when the bytes sent differ from it.
 */
function finishAuditWhenSent(
  ctx: ApiContext,
  request: FastifyRequest,
  reply: FastifyReply,
  o: { auditId: number; status: number; counter: HashingCounter; length: number; detail: Record<string, unknown>; verifyAgainst: string | null; capture: number; path: string },
): void {
  let recorded = false;
  const record = (finished: boolean) => {
    if (recorded) return;
    recorded = true;
    const complete = finished && o.counter.bytes === o.length;
    const sha = o.counter.digest();
    const d: Record<string, unknown> = { ...o.detail, complete };
    if (complete && o.verifyAgainst !== null) {
      d.verified = sha === o.verifyAgainst;
      if (!d.verified) request.log.error({ capture: o.capture, path: o.path, sent: sha, catalog: o.verifyAgainst }, 'capture file changed since it was closed: the SHA-256 sent differs from the catalog');
    }
    ctx.audit.finish(o.auditId, { status: o.status, bytes: o.counter.bytes, sha256: sha, detail: d }).catch((e: unknown) => request.log.error({ err: e, auditId: o.auditId }, 'cannot complete the audit row'));
  };
  reply.raw.once('finish', () => record(true));
  reply.raw.once('close', () => record(false));
}
