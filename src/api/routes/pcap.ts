/**
 * GET /v1/pcap?session=|vni=[&sourceIp=]&from=&to=[&filter=]
 *
 * One PCAP of a mirror session (or a VNI, optionally one source) over a time window, merged in
 * timestamp order across the session's rotated files (src/pcap/merge.ts: one read buffer per file,
 * backpressure to the client, nothing loaded whole). An optional capture filter
 * (src/decode/filter.ts) runs over the inner frames. Alert webhooks link here with these exact
 * parameter names (src/alert/links.ts).
 *
 * The SHA-256 of the result cannot be known before it is produced: it is computed while streaming,
 * sent as the `X-Content-SHA256` HTTP trailer, and stored in the audit row named by `X-Audit-Id`.
 * Extractions run at most `api.maxConcurrentExtractions` at once (429 MG_ERR_API_BUSY with
 * Retry-After beyond); a client that disconnects aborts its merge and frees its slot.
 *
 * The window is [from, to): `from` inclusive, `to` exclusive, so consecutive windows never repeat a packet.
 *
 * GET /v1/pcap/filter?filter=   checks a capture filter without extracting anything (the console checks
 *                               as the user types): the grouping it compiled to, or the error position.
 */
import { lstat } from 'node:fs/promises';
import { ServerResponse } from 'node:http';
import { Socket } from 'node:net';
import { finished, pipeline, type Readable } from 'node:stream';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { CaptureRow } from '../../collector/catalog.js';
// The filter's length (MAX_FILTER_LENGTH) is checked by compileFilter, so an over-long one is MG_ERR_FILTER_SYNTAX like any bad filter.
import { compileFilter, MAX_FILTER_LENGTH } from '../../decode/filter.js';
import { GLOBAL_HEADER_BYTES } from '../../pcap/format.js';
import { mergeCaptures, type MergeDigest, type MergeStream } from '../../pcap/merge.js';
import { nativeMergeStep, ThreadedBodyDigest } from '../native-merge.js';
import type { ReadHandle } from '../../pcap/reader.js';
import { ArchivedReads } from '../archived-source.js';
import { capturePath } from '../capture-files.js';
import type { ApiContext } from '../deps.js';
import { isMgError } from '../../errors.js';
import { badRequest, httpError, notFound, toErrorBody } from '../errors.js';
import { OffloadedHashingCounter } from '../hash-offload.js';
import { BodyDigest, contentDisposition, PCAP_MEDIA_TYPE } from '../http.js';
import { parseBoundedWindow, parseSourceIp, sessionParam, sourceIpParam, timeParam, vniParam } from '../params.js';
import { fileStamp, isoTime, timeToMicros, type TimePoint } from '../time.js';
import { errorResponses, remoteIp } from './common.js';

/**
 * Read buffers of one extraction, all files together: each file gets an equal share for its two buffers
 * (one merged, one read ahead), each between EXTRACTION_MIN_CHUNK_BYTES and EXTRACTION_MAX_CHUNK_BYTES.
 * Large reads matter: every refill is a threadpool round trip (64 KiB reads made the merge of 8 files
 * ~2x slower than 1 MiB), and the read ahead hides it only when it is done before the buffer is used up.
 * Too large costs the cache: the merge reads each record's header where the kernel's read put it, and 8
 * files x 2 x 1 MiB is past the core's caches; 256 KiB beat 1 MiB on every extraction measured (filtered
 * 0.8x the time, whole window 0.86-0.91x; docs/performance.md, "Extraction").
 */
export const EXTRACTION_READ_BUDGET_BYTES = 16 * 1024 * 1024;
/** Read buffers per file: one merged, one read ahead (src/pcap/reader.ts `readAhead`). */
const BUFFERS_PER_FILE = 2;
export const EXTRACTION_MIN_CHUNK_BYTES = 64 * 1024;
export const EXTRACTION_MAX_CHUNK_BYTES = 256 * 1024;
/** The largest ranged GET of an archived file: there the round trip, not the cache, is the cost. */
export const EXTRACTION_MAX_S3_RANGE_BYTES = 1024 * 1024;
/** Chunks handed to the hash and the socket, bytes. */
export const EXTRACTION_OUTPUT_CHUNK_BYTES = 512 * 1024;

/** Read buffer per file for an extraction of `files` files: memory stays near the budget, whatever the file sizes. */
export function extractionChunkBytes(files: number, max = EXTRACTION_MAX_CHUNK_BYTES): number {
  const share = Math.floor(EXTRACTION_READ_BUDGET_BYTES / BUFFERS_PER_FILE / Math.max(1, files) / 4096) * 4096;
  return Math.min(max, Math.max(EXTRACTION_MIN_CHUNK_BYTES, share));
}

/** First ranged GET per archived file (ArchivedReads grows its ranges from there). */
export function extractionRangeBytes(files: number): number {
  return extractionChunkBytes(files, EXTRACTION_MAX_S3_RANGE_BYTES);
}
/** What a refused extraction is told to wait, seconds. Extractions of a one-hour window take seconds. */
export const BUSY_RETRY_AFTER_SECONDS = 5;

interface PcapQuery {
  session?: string;
  vni?: number;
  sourceIp?: string;
  from?: string;
  to?: string;
  filter?: string;
}

export interface FilterCheck {
  valid: boolean;
  /** The filter with its grouping made explicit, when valid. */
  normalized?: string;
  /** 1-based character position of the error, when invalid. */
  position?: number;
  message?: string;
}

/** Compile a filter the way GET /v1/pcap does and say what it made of it. */
export function checkFilter(text: string): FilterCheck {
  if (text.trim() === '') return { valid: true, normalized: '' };
  try {
    return { valid: true, normalized: compileFilter(text).toString() };
  } catch (e) {
    if (!isMgError(e) || e.code !== 'MG_ERR_FILTER_SYNTAX') throw e;
    // filter.ts words every syntax error "at position N: what" (its syntaxError()).
    const detail = e.problems[0]?.message ?? e.message;
    const m = /^at position (\d+): (.*)$/s.exec(detail);
    return m ? { valid: false, position: Number(m[1]), message: m[2]! } : { valid: false, message: detail };
  }
}

export async function pcapRoutes(app: FastifyInstance, opts: { ctx: ApiContext }): Promise<void> {
  const { ctx } = opts;

  app.get<{ Querystring: { filter: string } }>(
    '/v1/pcap/filter',
    {
      config: { access: ['auditor'] },
      schema: {
        summary: 'Check a capture filter',
        description:
          'Compiles `filter` exactly as GET /v1/pcap would, without reading any file. Always 200 for a filter within the length limit: `valid` true with the grouping it compiled to (`normalized`), or false with the 1-based `position` of the error and a `message`. GET /v1/pcap answers the same error as 400 MG_ERR_FILTER_SYNTAX ("at position N: ...").',
        tags: ['captures'],
        querystring: {
          type: 'object',
          additionalProperties: false,
          required: ['filter'],
          properties: { filter: { type: 'string', maxLength: MAX_FILTER_LENGTH, description: 'The capture filter to check.' } },
        },
        response: {
          200: {
            type: 'object',
            required: ['valid'],
            properties: { valid: { type: 'boolean' }, normalized: { type: 'string' }, position: { type: 'integer', minimum: 1 }, message: { type: 'string' } },
          },
          ...errorResponses(400, 401, 403),
        },
      },
    },
    async (request) => checkFilter(request.query.filter),
  );

  app.route<{ Querystring: PcapQuery }>({
    method: ['GET', 'HEAD'],
    url: '/v1/pcap',
    config: { access: ['auditor'] },
    schema: {
      summary: 'Extract one merged PCAP for a session or VNI and a time window',
      description: [
        'Merges the files of `session` (labelled with it, or unlabelled files of its VNI and sources as the manifest or its CloudTrail record gives them) or of `vni` (optionally narrowed to `sourceIp`) in timestamp order, keeping packets with `from` <= time < `to`, optionally only those matching `filter` over the inner packets (host, net, port, portrange, proto, tcp/udp/icmp/..., vlan; and/or/not, parentheses).',
        'The file being written is included up to its last flushed record. With an archive, the whole fleet\'s files are merged: files on this node\'s disk are read there, archived files of other nodes (or whose local copy is gone) from S3; files still open on another node are named in `X-Missing-Captures`. The result is a nanosecond-resolution classic PCAP that opens in Wireshark and tshark.',
        'The SHA-256 of the body is sent as the `X-Content-SHA256` trailer and stored in the audit row named by `X-Audit-Id`.',
        'Windows are at most `api.maxRangeHours` long; at most `api.maxConcurrentExtractions` run at once (429 with Retry-After beyond).',
      ].join('\n\n'),
      tags: ['captures'],
      querystring: {
        type: 'object',
        additionalProperties: false,
        properties: {
          session: sessionParam,
          vni: vniParam,
          sourceIp: sourceIpParam,
          from: timeParam('Window start, inclusive (required)'),
          to: timeParam('Window end, exclusive (default: now)'),
          filter: { type: 'string', description: 'Capture filter over the inner packets, e.g. `host 10.0.0.5 and tcp port 443`, `net 10.0.0.0/8 and not port 22`.' },
        },
      },
      response: {
        200: {
          description: 'The merged PCAP.',
          headers: {
            'x-audit-id': { type: 'integer' },
            'x-capture-files': { type: 'integer', description: 'Files merged.' },
            trailer: { type: 'string', description: 'X-Content-SHA256: sent after the body; with an archive, X-Ledger-Seq: the extraction record appended to the evidence ledger.' },
            'x-missing-captures': { type: 'string', description: 'Comma-separated ids of catalog files in the window that are neither on this node\'s disk nor archived in S3 (still open on another node, closed there and not yet uploaded, or removed), left out of the merge and named in the audit row.' },
          },
          content: { [PCAP_MEDIA_TYPE]: { schema: { type: 'string', format: 'binary' } } },
        },
        ...errorResponses(400, 401, 403, 404, 429, 500),
      },
    },
    handler: async (request, reply) => {
      const p = request.principal!;
      const audit = { done: false };
      try {
        return await extractPcap(ctx, request, reply, audit);
      } catch (e) {
        // Refusals after authentication are part of the chain of custody too: who asked for what.
        if (!audit.done && request.method !== 'HEAD') {
          const r = toErrorBody(e);
          const q = request.query;
          const target = q.session !== undefined ? `session:${q.session}` : `vni:${q.vni ?? '-'}`;
          await ctx.audit.write({ actor: p.name, role: p.role, remoteIp: remoteIp(request), action: 'pcap.extract', target, status: r.status, detail: { query: { ...q }, error: r.body.code, message: r.body.message } });
        }
        throw e;
      }
    },
  });
}

async function extractPcap(ctx: ApiContext, request: FastifyRequest<{ Querystring: PcapQuery }>, reply: FastifyReply, audit: { done: boolean }): Promise<FastifyReply> {
  const store = ctx.deps.store;
  const q = request.query;
  const p = request.principal!;
  if (q.session === undefined && q.vni === undefined) throw badRequest('session', 'give session, or vni (with an optional sourceIp)');
  if (q.session !== undefined && q.vni !== undefined) throw badRequest('vni', 'give session or vni, not both');
  const sourceIp = q.sourceIp === undefined ? undefined : parseSourceIp(q.sourceIp);
  const { from, to } = parseBoundedWindow(q, ctx.now(), ctx.cfg.maxRangeHours);
  const filter = q.filter !== undefined && q.filter.trim() !== '' ? compileFilter(q.filter) : null;

  const target = q.session !== undefined ? `session:${q.session}${sourceIp ? `/${sourceIp}` : ''}` : `vni:${q.vni}${sourceIp ? `/${sourceIp}` : ''}`;
  const scope = q.session !== undefined ? await sessionScope(ctx, q.session) : null;
  // Catalog times are whole microseconds; the merge applies the exact nanosecond window.
  const select = (): Promise<CaptureRow[]> =>
    store.captures.forExtraction({
      ...(q.session !== undefined
        ? { session: scope === null ? { id: q.session } : { id: q.session, vni: scope.vni, sourceIps: scope.sourceIps } }
        : { vni: q.vni! }),
      ...(sourceIp !== undefined ? { sourceIp } : {}),
      fromUs: timeToMicros(from),
      toUs: timeToMicros(to),
    });
  let rows = await select();
  if (rows.some((r) => r.state === 'open')) {
    await ctx.deps.flushLive();
    rows = await select();
  }
  const what = q.session !== undefined ? `session ${q.session}` : `VNI ${q.vni}`;
  if (rows.length === 0) throw notFound(`no capture files of ${what}${sourceIp ? ` from ${sourceIp}` : ''} overlap ${isoTime(from)}..${isoTime(to)}`);
  if (rows.length > ctx.cfg.maxExtractionFiles) {
    throw badRequest('to', `the window spans ${rows.length} files; at most ${ctx.cfg.maxExtractionFiles} per extraction (api.maxExtractionFiles): narrow the window or add sourceIp`);
  }

  // Where each file is read from: this node's disk (its own files, preferred while the local copy is
  // kept), else S3 for an archived file (another node's, or one whose local copy is gone). A file that
  // is neither (still open on another node, or closed there and not yet uploaded; removed by retention)
  // is left out and named in X-Missing-Captures and the audit row. A file that is not what the catalog
  // says (a symbolic link, a closed file of another size) stops the extraction, as it stops a download
  // (src/api/capture-files.ts).
  const files: string[] = [];
  const limits: (number | undefined)[] = [];
  const openers: ((() => Promise<ReadHandle>) | undefined)[] = [];
  const usedRows: CaptureRow[] = [];
  const used: number[] = [];
  const fromS3: number[] = [];
  const missing: number[] = [];
  const readObject = ctx.deps.archive?.readObject?.bind(ctx.deps.archive);
  // Archived inputs are read through one ArchivedReads: ranged GETs fetched ahead of the merge, within
  // S3_READ_BUDGET_BYTES and S3_MAX_CONCURRENT_GETS however many files (src/api/archived-source.ts).
  // Nothing is fetched before the merge opens an input; `abort` (every way the extraction ends) closes it.
  const abort = new AbortController();
  const s3 = readObject !== undefined ? new ArchivedReads(readObject, { chunkBytes: extractionRangeBytes(rows.length), signal: abort.signal }) : null;
  const self = ctx.deps.store.nodeId;
  for (const r of rows) {
    const archived = readObject !== undefined && r.state === 'closed' && r.sha256 !== null && r.s3_key != null;
    const own = !r.node || r.node === self;
    const abs = capturePath(ctx.deps.dataDir, r);
    // Another node's path on this disk would be a file of ours that happens to share its name.
    const st = own || !archived ? await lstat(abs).catch(() => null) : null;
    if (st === null) {
      if (archived) {
        files.push(`s3://${r.s3_bucket ?? ''}/${r.s3_key!}`);
        const input = s3!.add({ key: r.s3_key!, versionId: r.s3_version_id ?? null, size: r.bytes });
        openers.push(() => Promise.resolve(s3!.open(input)));
        limits.push(r.bytes);
        used.push(r.id);
        usedRows.push(r);
        fromS3.push(r.id);
      } else missing.push(r.id);
      continue;
    }
    if (!st.isFile()) throw httpError('MG_ERR_API_INTEGRITY', `capture ${r.id}: not a regular file`);
    if (r.state === 'closed' && st.size !== r.bytes) throw httpError('MG_ERR_API_INTEGRITY', `capture ${r.id}: ${st.size} bytes on disk, the catalog recorded ${r.bytes} at close`);
    files.push(abs);
    openers.push(undefined);
    used.push(r.id);
    usedRows.push(r);
    // A closed file is read up to its recorded size, an open one up to its last flushed record.
    limits.push(r.state === 'open' ? Math.min(Math.max(r.bytes, GLOBAL_HEADER_BYTES), st.size) : r.bytes);
  }
  if (files.length === 0) {
    throw notFound(`the capture files of ${what} in this window are no longer on disk${readObject !== undefined ? ` and not archived yet (captures ${missing.join(',')}: open on another node, or waiting for upload)` : ''}`);
  }

  const name = `mirrorguard-${q.session ?? `vni-${q.vni}`}${sourceIp ? `-${sourceIp}` : ''}-${fileStamp(from)}-${fileStamp(to)}.pcap`;
  const headers = {
    'content-type': PCAP_MEDIA_TYPE,
    'content-disposition': contentDisposition(name),
    'cache-control': 'no-store',
    'x-capture-files': String(files.length),
    // Files of the window that are not on this node's disk (removed, or written by another node): named, not silently left out.
    ...(missing.length ? { 'x-missing-captures': missing.join(',') } : {}),
  };
  if (request.method === 'HEAD') return reply.headers(headers).code(200).send();

  if (ctx.extractions.active >= ctx.cfg.maxConcurrentExtractions) {
    ctx.extractions.refused++;
    throw httpError('MG_ERR_API_BUSY', `${ctx.extractions.active} extractions are running (api.maxConcurrentExtractions = ${ctx.cfg.maxConcurrentExtractions})`, {
      'retry-after': String(BUSY_RETRY_AFTER_SECONDS),
    });
  }
  ctx.extractions.active++;
  ctx.extractions.total++;
  let slotHeld = true;
  const release = () => {
    if (slotHeld) {
      slotHeld = false;
      ctx.extractions.active--;
    }
  };

  const detail: Record<string, unknown> = {
    from: isoTime(from),
    to: isoTime(to),
    ...(q.session !== undefined ? { session: q.session } : { vni: q.vni }),
    ...(sourceIp ? { sourceIp } : {}),
    ...(filter ? { filter: filter.toString() } : {}),
    ...(scope ? { scope } : {}),
    files: used,
    ...(fromS3.length ? { fromS3 } : {}),
    ...(missing.length ? { missingFiles: missing } : {}),
  };
  const mergeStep = nativeMergeStep();
  // Where the body's SHA-256 is computed (docs/performance.md, "Extraction"). With the addon, it follows
  // where the bytes go. To another host: on a libuv threadpool thread, chunk after chunk as the merge
  // pushes them (ThreadedBodyDigest), beside the merge and the socket on this thread: 0.17 s instead of
  // 0.20 s for 211 MB when the receiver needs none of our cores, and this thread's CPU per extraction
  // halves. To this host (curl here, or a proxy or an SSH tunnel in front of the default 127.0.0.1
  // listener): on this thread, in the merge (BodyDigest), because the receiving process shares our cores,
  // and a third busy thread took CPU from it (0.39 s instead of 0.45 s into a file). Without the addon
  // (the JavaScript merge, whose loop keeps this thread busy): in a worker thread on the merge's shared
  // chunks. MIRRORGUARD_EXTRACT_HASH=thread|merge|worker overrides, for measuring.
  const env = process.env.MIRRORGUARD_EXTRACT_HASH;
  const hashIn =
    env === 'merge' || env === 'worker' || env === 'thread' ? env : mergeStep === null ? 'worker' : isLoopbackPeer(request.socket.remoteAddress) ? 'merge' : 'thread';
  const hashing = bodyHashing(hashIn);
  // Output chunks are refilled once the socket has taken them, when the response writes to a real socket
  // that counts what it still holds (HTTP/1.1, with or without TLS). app.inject() keeps every chunk.
  const res = reply.raw;
  const reusable = res instanceof ServerResponse && res.socket instanceof Socket;
  // Rotated files of one source follow each other: stream the ones inside the window as bytes.
  const plan = filter === null ? sequentialPlan(usedRows, from, to) : null;
  if (s3 !== null) s3.chunkBytes = extractionRangeBytes(files.length);
  let merge: MergeStream;
  try {
    merge = mergeCaptures(files, {
      ...(plan !== null ? { sequential: true, wholeFiles: plan } : {}),
      fromSec: from.sec,
      fromNsec: from.nsec,
      toSec: to.sec,
      toNsec: to.nsec,
      limitBytesPerFile: limits,
      ...(fromS3.length ? { openers } : {}),
      ...(filter ? { predicate: (buf: Buffer, off: number, end: number) => filter.matches(buf, off, end) } : {}),
      signal: abort.signal,
      chunkBytes: extractionChunkBytes(files.length),
      outputChunkBytes: EXTRACTION_OUTPUT_CHUNK_BYTES,
      ...hashing.merge,
      // The k-way step of a whole-window merge in C, when built (same bytes as the JavaScript loop).
      ...(filter === null && mergeStep !== null ? { mergeStep } : {}),
      // A chunk is reused once the socket has sent it (and the hash, if on another thread, has hashed it).
      ...(reusable ? { heldDownstream: () => hashing.held(res.writableLength) } : {}),
    });
    // Wait until every input is open and has its first record, so an unreadable input is a proper error response.
    await merge.ready();
  } catch (e) {
    release();
    abort.abort();
    throw e;
  }

  let auditId: number;
  try {
    auditId = await ctx.audit.write({ actor: p.name, role: p.role, remoteIp: remoteIp(request), action: 'pcap.extract', target, status: 200, detail: { ...detail, complete: false } });
  } catch (e) {
    release();
    abort.abort();
    throw e;
  }
  audit.done = true;
  reply.headers(headers);
  reply.header('x-audit-id', String(auditId));

  // The merge's chunks go to the hash and the socket as they are (an async iterator in between would
  // concatenate whatever was buffered: a copy of every byte). A merge error after the headers went out
  // destroys the response: the client sees a cut transfer. A response destroyed first (client gone)
  // destroys the merge (fastify destroys the stream it sends, and the pipeline the merge), which closes its files.
  const stopped = () => {
    if (!merge.readableEnded) abort.abort();
  };
  const body = hashing.body(merge, stopped);
  // The digest covers every byte the body had when it is asked for (the merge's, once it has ended).
  reply.trailer('x-content-sha256', async () => hashing.digest());
  // With a ledger (serve with an archive): a complete extraction appends a signed `extraction` record of
  // the bytes sent, merging the archive records of its files; its seq comes as the X-Ledger-Seq trailer.
  const ledger = ctx.deps.ledger ?? null;
  let ledgerSeq: Promise<number | null> = Promise.resolve(null);
  if (ledger) {
    reply.trailer('x-ledger-seq', async () => {
      if (!merge.readableEnded) return '';
      const sha256 = await hashing.digest();
      ledgerSeq = ledger
        .appendExtraction({
          sha256,
          size: hashing.bytes(),
          firstUs: timeToMicros(from),
          lastUs: timeToMicros(to),
          session: q.session ?? null,
          merged: rows.filter((r) => used.includes(r.id) && r.ledger_seq != null).map((r) => r.ledger_seq!),
        })
        .then(
          (r) => r.seq,
          (e: unknown) => {
            request.log.error({ err: e, auditId }, 'cannot append the extraction to the ledger');
            return null;
          },
        );
      const seq = await ledgerSeq;
      return seq === null ? '' : String(seq);
    });
  }

  let recorded = false;
  // 'finish': the last byte went to the connection; 'close' alone: the client went away first.
  const record = (finished: boolean) => {
    if (recorded) return;
    recorded = true;
    release();
    const complete = finished && merge.readableEnded;
    const s = merge.stats;
    const d: Record<string, unknown> = {
      ...detail,
      complete,
      packets: s.packets,
      read: s.read,
      filtered: s.filtered,
      ...(s.skipped ? { skipped: s.skipped } : {}),
      ...(s.wholeFiles ? { wholeFiles: s.wholeFiles } : {}),
      ...(s3 !== null && fromS3.length ? { s3: { gets: s3.stats.gets, bytes: s3.stats.bytes } } : {}),
      ...(s.truncated.length ? { truncated: s.truncated.map((t) => ({ path: t.path.startsWith(ctx.deps.dataDir) ? t.path.slice(ctx.deps.dataDir.length + 1) : t.path, problem: t.problem })) } : {}),
    };
    // A client gone first: the merge stops before the digest is taken, so both cover the same bytes.
    if (!merge.destroyed) merge.destroy();
    const bytes = hashing.bytes();
    // After a complete response the trailer has the digest already; a client gone first waits for the worker.
    const known = hashing.digestIfDone();
    const finish = (seq: number | null, sha256: string) => ctx.audit.finish(auditId, { status: 200, bytes, sha256, detail: seq === null ? d : { ...d, ledgerSeq: seq } });
    void (known !== null ? ledgerSeq.then((seq) => finish(seq, known)) : Promise.all([ledgerSeq, hashing.digest()]).then(([seq, sha256]) => finish(seq, sha256)))
      .catch((e: unknown) => request.log.error({ err: e, auditId }, 'cannot complete the audit row'));
    // Ranges fetched ahead and never read (an input the window ended early), GETs still in flight.
    s3?.close();
  };
  reply.raw.once('finish', () => record(true));
  reply.raw.once('close', () => record(false));
  return reply.code(200).send(body);
}

/** The body's SHA-256 wherever it is computed: what the merge is given, what the hash holds, the answer. */
interface BodyHashing {
  /** Given to the merge: a digest it updates with each output chunk, or shared chunks for the worker. */
  readonly merge: { digest: MergeDigest } | { sharedMemory: true };
  /** Output bytes still held downstream (not sent, or not hashed yet), given what the socket holds. */
  held(socketHeld: number): number;
  /** The hex digest of every byte so far, once hashed; the first call ends it. */
  digest(): Promise<string>;
  /** The digest when already known (after digest(), or on this thread), else null. */
  digestIfDone(): string | null;
  bytes(): number;
  /** The stream to send: the merge, or the worker's pass-through stage piped from it. */
  body(merge: MergeStream, stopped: () => void): Readable;
}

function bodyHashing(hashIn: 'thread' | 'merge' | 'worker'): BodyHashing {
  const threaded = hashIn === 'thread' ? ThreadedBodyDigest.create() : null;
  const plainBody = (merge: MergeStream, stopped: () => void): Readable => {
    finished(merge, stopped);
    return merge;
  };
  if (threaded !== null) {
    return {
      merge: { digest: threaded },
      // Sent and hashed: the hash goes in order, so the later of the two ends decides.
      held: (socketHeld) => Math.max(socketHeld, threaded.pendingBytes),
      digest: () => threaded.digest(),
      digestIfDone: () => threaded.digestIfDone(),
      bytes: () => threaded.bytes,
      body: plainBody,
    };
  }
  if (hashIn !== 'worker') {
    const sha = new BodyDigest();
    return {
      merge: { digest: sha },
      held: (socketHeld) => socketHeld,
      digest: () => Promise.resolve(sha.digest()),
      digestIfDone: () => sha.digest(),
      bytes: () => sha.bytes,
      body: plainBody,
    };
  }
  const counter = new OffloadedHashingCounter();
  return {
    merge: { sharedMemory: true },
    held: (socketHeld) => counter.writableLength + counter.readableLength + socketHeld + counter.pendingBytes,
    digest: () => counter.digest(),
    digestIfDone: () => counter.digestIfDone(),
    bytes: () => counter.bytes,
    body: (merge, stopped) => {
      pipeline(merge, counter, stopped);
      return counter;
    },
  };
}

/** A peer on this host: 127.0.0.0/8, ::1, or IPv4-mapped 127.x. (app.inject() has 127.0.0.1.) */
export function isLoopbackPeer(addr: string | undefined): boolean {
  if (addr === undefined) return false;
  const v4 = addr.startsWith('::ffff:') ? addr.slice(7) : addr;
  return v4.startsWith('127.') || addr === '::1';
}

/**
 * When the catalog shows that the files (in the order given) follow each other in time, the merge can
 * take them one at a time, and stream a file that lies wholly inside [from, to) as its bytes (issue 11):
 * per file, its record count when whole, else undefined. Null when two files may overlap. Catalog times
 * are whole microseconds (rounded down), so every comparison is strict enough for nanoseconds: a file
 * whose last microsecond is before the next one's first holds only earlier records. Only the last file
 * may be open (still written); it is never whole. A closed file with no records fits anywhere.
 */
export function sequentialPlan(rows: readonly CaptureRow[], from: TimePoint, to: TimePoint): (number | undefined)[] | null {
  const fromUs = from.sec * 1_000_000 + Math.ceil(from.nsec / 1000); // first_us >= this: every record >= from
  const toUs = timeToMicros(to); // last_us < this: every record < to
  const whole: (number | undefined)[] = [];
  let prevLast = -Infinity;
  for (let i = 0; i < rows.length; i++) {
    const r = rows[i]!;
    if (r.state === 'closed' && r.packets === 0) {
      whole.push(0);
      continue;
    }
    if (r.first_us === null || r.first_us <= prevLast) return null;
    if (r.state === 'open') {
      if (i !== rows.length - 1) return null;
      whole.push(undefined);
      continue;
    }
    if (r.last_us === null || r.last_us < r.first_us) return null;
    prevLast = r.last_us;
    whole.push(r.first_us >= fromUs && r.last_us < toUs ? r.packets : undefined);
  }
  return whole;
}

/**
 * The (VNI, source IPs) a mirror session's traffic arrives as: from the manifest, or, for a session only
 * CloudTrail has seen (a rogue one: the finding that links here names it), from its latest control
 * event with a VNI (table control_events). Null when neither knows the session. sourceIps null: any source.
 */
export async function sessionScope(ctx: ApiContext, sessionId: string): Promise<{ vni: number; sourceIps: readonly string[] | null; via: 'manifest' | 'cloudtrail' } | null> {
  const s = ctx.deps.detector.manifest?.sessions.find((m) => m.id === sessionId);
  if (s) return { vni: s.vni, sourceIps: s.sourceIps ?? null, via: 'manifest' };
  const vni = await ctx.deps.store.controlEvents.lastVni(sessionId);
  return vni !== undefined ? { vni, sourceIps: null, via: 'cloudtrail' } : null;
}
