/**
 * Every shape a CloudTrail record reaches us in -> raw records (unknown[]), for normalize.ts.
 *
 * Shapes (recordsFromJson):
 *  - one record: an object with `eventName` / `eventSource` (a Panther or `aws cloudtrail` export, a test);
 *  - a CloudTrail log file: `{"Records": [...]}` (CloudTrail User Guide, "CloudTrail log file examples");
 *  - an EventBridge event: `{"detail-type": "AWS API Call via CloudTrail", "detail": {record}}`
 *    (EventBridge User Guide, "Events from AWS services"). Other `... via CloudTrail` detail types carry a
 *    record too; EventBridge events of any other kind are not CloudTrail and give no records;
 *  - `aws cloudtrail lookup-events` output: `{"Events": [{"CloudTrailEvent": "<record as a JSON string>"}]}`;
 *  - an array of any of these.
 * Text (recordsFromText) is one JSON document or JSON lines (one of the above per line).
 * Files and trees (readCloudTrailPath): plain or gzip (found by its magic bytes, RFC 1952 section 2.3.1,
 * not by the name), and directories walked recursively in the S3 delivery layout
 * `AWSLogs/[o-org/]<account>/CloudTrail/<region>/YYYY/MM/DD/<account>_CloudTrail_<region>_<time>_<id>.json.gz`
 * (CloudTrail User Guide, "Finding your CloudTrail log files"), skipping the digest files beside them.
 * A file whose name does not say JSON (a SIEM export named `*.log`, `*.txt`, no extension) is sniffed:
 * read when it is gzip or starts like JSON (an object, an array, JSON lines) and holds CloudTrail,
 * otherwise skipped. Nothing is skipped silently: every skipped entry is yielded with its reason.
 *
 * Reading streams: a tree is walked lazily, files are read one at a time and records are yielded in
 * batches, so memory holds one file (JSON documents must be parsed whole) or one batch (JSON lines).
 * Every file has a decompressed size cap against gzip bombs.
 */
import { createReadStream, type Dirent } from 'node:fs';
import { readdir, realpath, stat } from 'node:fs/promises';
import { basename, join } from 'node:path';
import type { Readable } from 'node:stream';
import { StringDecoder } from 'node:string_decoder';
import { createGunzip } from 'node:zlib';
import { MgError, type Problem } from '../../errors.js';

/** Largest decompressed size we read from one file. CloudTrail rotates its S3 objects about every 5 minutes, so real ones are KB to a few MB. */
export const MAX_DECOMPRESSED_BYTES = 512 * 1024 * 1024;
/** Records per yielded batch. */
export const BATCH_RECORDS = 1000;
/** Malformed JSON lines listed per file; the rest are counted. */
export const MAX_LINE_PROBLEMS = 20;
/** Directory nesting we follow (the S3 layout is 8 deep below AWSLogs). */
export const MAX_TREE_DEPTH = 32;
/** Arrays nested in arrays we unpack (an array of Records files is 2). */
const MAX_ARRAY_NESTING = 4;

const CLOUDTRAIL_DETAIL_TYPE = /via CloudTrail$/;
const GZIP_MAGIC_0 = 0x1f;
const GZIP_MAGIC_1 = 0x8b;

// --- JSON values ----------------------------------------------------------------------------------

/**
 * The CloudTrail records in a parsed JSON value. Throws MG_ERR_CLOUDTRAIL_FORMAT (HTTP 400) when the
 * value is none of the accepted shapes; `where` names the input in the message.
 */
export function recordsFromJson(value: unknown, where = 'input'): unknown[] {
  const out: unknown[] = [];
  collect(value, where, 0, out);
  return out;
}

function collect(value: unknown, where: string, nesting: number, out: unknown[]): void {
  if (Array.isArray(value)) {
    if (nesting >= MAX_ARRAY_NESTING) throw formatError(where, 'arrays nested too deeply');
    value.forEach((v, i) => collect(v, `${where}[${i}]`, nesting + 1, out));
    return;
  }
  if (typeof value !== 'object' || value === null) throw formatError(where, `expected an object, found ${describeType(value)}`);
  const o = value as Record<string, unknown>;
  if ('Records' in o) {
    if (!Array.isArray(o.Records)) throw formatError(where, '"Records" is not an array');
    for (const r of o.Records) out.push(r);
    return;
  }
  if ('detail-type' in o && 'detail' in o) {
    if (typeof o['detail-type'] === 'string' && CLOUDTRAIL_DETAIL_TYPE.test(o['detail-type'])) {
      if (typeof o.detail !== 'object' || o.detail === null || Array.isArray(o.detail)) throw formatError(where, 'EventBridge "detail" is not an object');
      out.push(o.detail);
    }
    return; // an EventBridge event of another kind: not CloudTrail, nothing to read
  }
  if (Array.isArray(o.Events) && o.Events.every((e) => typeof e === 'object' && e !== null && 'CloudTrailEvent' in e)) {
    o.Events.forEach((e, i) => {
      const text = (e as Record<string, unknown>).CloudTrailEvent;
      const at = `${where}.Events[${i}].CloudTrailEvent`;
      if (typeof text !== 'string') throw formatError(at, 'not a string');
      let rec: unknown;
      try {
        rec = JSON.parse(text);
      } catch (err) {
        throw formatError(at, `not JSON: ${(err as Error).message}`);
      }
      out.push(rec);
    });
    return;
  }
  if (typeof o.eventName === 'string' || typeof o.eventSource === 'string') {
    out.push(o);
    return;
  }
  throw formatError(where, 'not a CloudTrail record, Records file, EventBridge event or lookup-events output');
}

function describeType(v: unknown): string {
  return v === null ? 'null' : Array.isArray(v) ? 'an array' : typeof v;
}

function formatError(where: string, message: string, line?: number): MgError {
  const p: Problem = { file: where, message };
  if (line !== undefined) p.line = line;
  return new MgError('MG_ERR_CLOUDTRAIL_FORMAT', line === undefined ? where : `${where}:${line}`, { problems: [p] });
}

// --- text -----------------------------------------------------------------------------------------

/**
 * Records from text: one JSON document, or JSON lines when the text as a whole is not JSON but its
 * first line is. Errors name `file` and the line (1-based).
 */
export function recordsFromText(text: string, file = 'input'): unknown[] {
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  if (text.trim().length === 0) return [];
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (e) {
    if (!firstLineIsJson(text)) {
      const pos = jsonErrorPosition((e as Error).message);
      const line = pos === undefined ? undefined : lineAt(text, pos);
      throw formatError(file, `not JSON: ${(e as Error).message}`, line);
    }
    return recordsFromLines(text, file);
  }
  return recordsFromJson(doc, file);
}

function recordsFromLines(text: string, file: string): unknown[] {
  const out: unknown[] = [];
  const problems: Problem[] = [];
  let more = 0;
  let lineNo = 0;
  for (const line of text.split('\n')) {
    lineNo++;
    const r = parseJsonLine(line, file, lineNo);
    if (r === undefined) continue;
    if ('problem' in r) {
      if (problems.length < MAX_LINE_PROBLEMS) problems.push(r.problem);
      else more++;
    } else out.push(...r.records);
  }
  if (problems.length > 0) throw lineProblems(file, problems, more);
  return out;
}

/** One JSON line: undefined when blank, its records, or a problem naming the line. */
function parseJsonLine(line: string, file: string, lineNo: number): { records: unknown[] } | { problem: Problem } | undefined {
  const s = line.trim();
  if (s.length === 0) return undefined;
  let v: unknown;
  try {
    v = JSON.parse(s);
  } catch (e) {
    return { problem: { file, line: lineNo, message: `not JSON: ${(e as Error).message}` } };
  }
  try {
    return { records: recordsFromJson(v, `${file}:${lineNo}`) };
  } catch (e) {
    const msg = e instanceof MgError && e.problems[0] ? e.problems[0].message : String(e);
    return { problem: { file, line: lineNo, message: msg } };
  }
}

function lineProblems(file: string, problems: Problem[], more: number): MgError {
  const all = [...problems];
  if (more > 0) all.push({ file, message: `and ${more} more malformed lines` });
  const n = problems.length + more;
  return new MgError('MG_ERR_CLOUDTRAIL_FORMAT', `${file}: ${n} malformed JSON line${n === 1 ? '' : 's'}`, { problems: all });
}

function firstLineIsJson(text: string): boolean {
  for (const line of text.split('\n', 64)) {
    const s = line.trim();
    if (s.length === 0) continue;
    if (s[0] !== '{' && s[0] !== '[') return false;
    try {
      JSON.parse(s);
      return true;
    } catch {
      return false;
    }
  }
  return false;
}

function jsonErrorPosition(message: string): number | undefined {
  const m = /at position (\d+)/.exec(message);
  return m ? Number(m[1]) : undefined;
}

function lineAt(text: string, pos: number): number {
  let line = 1;
  for (let i = 0; i < pos && i < text.length; i++) if (text.charCodeAt(i) === 10) line++;
  return line;
}

// --- files and trees ------------------------------------------------------------------------------

export interface ReadOptions {
  /** Decompressed bytes per file before we give up on it (default MAX_DECOMPRESSED_BYTES). */
  maxBytes?: number;
  /** Records per batch (default BATCH_RECORDS). */
  batchRecords?: number;
}

/**
 * What reading yields. Every file found (listed in a tree, or named and stat-able) ends with exactly one
 * `end`, also after an `error`, carrying its size on disk for progress; a path that cannot be listed
 * gives only an `error`. Records read before an error in a JSON-lines file are still yielded.
 */
export type ReadItem =
  | { type: 'records'; file: string; records: unknown[] }
  | { type: 'error'; file: string; error: MgError }
  | { type: 'skipped'; file: string; reason: FileSkipReason }
  | { type: 'end'; file: string; bytes: number };

/** Why an entry under a scanned path was not read; each is counted and can be listed (scan --verbose). */
export const FILE_SKIP_REASONS = {
  hidden: 'hidden (name starts with a dot)',
  digest: 'CloudTrail digest (integrity proof, no events)',
  'dangling-link': 'symbolic link to nothing',
  'seen-dir': 'directory already read (through another symbolic link)',
  'not-a-file': 'not a regular file',
  empty: 'empty',
  'not-json': 'neither gzip nor JSON',
  'not-cloudtrail': 'JSON, but no CloudTrail records',
} as const;
export type FileSkipReason = keyof typeof FILE_SKIP_REASONS;

export interface FoundFile {
  file: string;
  bytes: number;
  /** The name does not say JSON: read it only if its content turns out to be CloudTrail. */
  sniff: boolean;
}

export interface SkippedEntry {
  file: string;
  skipped: FileSkipReason;
}

/** Files under `path` (the path itself when it is a file), lazily, in sorted order; errors as items. */
export async function* listCloudTrailFiles(path: string): AsyncGenerator<FoundFile | SkippedEntry | { file: string; error: MgError }> {
  let st;
  try {
    st = await stat(path);
  } catch (e) {
    yield { file: path, error: readError(path, e) };
    return;
  }
  if (!st.isDirectory()) {
    // A file the user named is read whatever its name; only its content can get it skipped.
    yield { file: path, bytes: st.size, sniff: !isCloudTrailFileName(basename(path)) };
    return;
  }
  const visited = new Set<string>();
  yield* walk(path, 0, visited);
}

async function* walk(dir: string, depth: number, visited: Set<string>): AsyncGenerator<FoundFile | SkippedEntry | { file: string; error: MgError }> {
  let real: string;
  let entries: Dirent[];
  try {
    real = await realpath(dir);
    entries = await readdir(dir, { withFileTypes: true });
  } catch (e) {
    yield { file: dir, error: readError(dir, e) };
    return;
  }
  // Symlinked directories are followed once: a link back up the tree is not a loop.
  if (visited.has(real)) {
    yield { file: dir, skipped: 'seen-dir' };
    return;
  }
  visited.add(real);
  entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  for (const ent of entries) {
    const p = join(dir, ent.name);
    if (ent.name.startsWith('.')) {
      yield { file: p, skipped: 'hidden' };
      continue;
    }
    let isDir = ent.isDirectory();
    let isFile = ent.isFile();
    let size = -1;
    if (ent.isSymbolicLink()) {
      try {
        const st = await stat(p);
        isDir = st.isDirectory();
        isFile = st.isFile();
        size = st.size;
      } catch {
        yield { file: p, skipped: 'dangling-link' };
        continue;
      }
    }
    if (isDir) {
      // Digest files prove log integrity; they hold no events (CloudTrail User Guide, "CloudTrail digest file structure").
      if (ent.name === 'CloudTrail-Digest') {
        yield { file: p, skipped: 'digest' };
        continue;
      }
      if (depth + 1 >= MAX_TREE_DEPTH) {
        yield { file: p, error: new MgError('MG_ERR_CLOUDTRAIL_READ', `${p}: nested more than ${MAX_TREE_DEPTH} directories deep`) };
        continue;
      }
      yield* walk(p, depth + 1, visited);
    } else if (!isFile) {
      yield { file: p, skipped: 'not-a-file' }; // a FIFO or a socket: reading it could block
    } else if (ent.name.includes('_CloudTrail-Digest_')) {
      yield { file: p, skipped: 'digest' };
    } else {
      if (size < 0) {
        try {
          size = (await stat(p)).size;
        } catch (e) {
          yield { file: p, error: readError(p, e) };
          continue;
        }
      }
      yield { file: p, bytes: size, sniff: !isCloudTrailFileName(ent.name) };
    }
  }
}

/** Names that say CloudTrail JSON: read as such, and an error when they are not. Other names are sniffed. */
export function isCloudTrailFileName(name: string): boolean {
  return /\.(json|jsonl|ndjson)(\.gz)?$/i.test(name) && !name.includes('_CloudTrail-Digest_');
}

/** Every record under `path` (a file or a tree). */
export async function* readCloudTrailPath(path: string, opts: ReadOptions = {}): AsyncGenerator<ReadItem> {
  for await (const f of listCloudTrailFiles(path)) {
    if ('error' in f) yield { type: 'error', file: f.file, error: f.error };
    else if ('skipped' in f) yield { type: 'skipped', file: f.file, reason: f.skipped };
    else yield* readCloudTrailFile(f.file, { ...opts, sniff: f.sniff }, f.bytes);
  }
}

/** The records of one file; with `sniff`, a file that turns out not to be CloudTrail is skipped (before its `end`). */
export async function* readCloudTrailFile(file: string, opts: ReadOptions & { sniff?: boolean } = {}, size?: number): AsyncGenerator<ReadItem> {
  let stream: Readable;
  let bytes = size ?? 0;
  try {
    if (size === undefined) bytes = (await stat(file)).size;
    stream = createReadStream(file);
  } catch (e) {
    yield { type: 'error', file, error: readError(file, e) };
    yield { type: 'end', file, bytes };
    return;
  }
  const name = basename(file).replace(/\.gz$/i, '');
  yield* readCloudTrailStream(stream, file, { ...opts, jsonLines: !opts.sniff && /\.(jsonl|ndjson)$/i.test(name) });
  yield { type: 'end', file, bytes };
}

/**
 * The records in a byte stream (a file, stdin, an HTTP body): gunzipped when it starts with the gzip
 * magic, streamed line by line when `jsonLines`, parsed whole otherwise. Does not yield `end`.
 */
export async function* readCloudTrailStream(
  input: Readable,
  file: string,
  opts: ReadOptions & { jsonLines?: boolean; sniff?: boolean } = {},
): AsyncGenerator<ReadItem> {
  const maxBytes = opts.maxBytes ?? MAX_DECOMPRESSED_BYTES;
  const batchRecords = opts.batchRecords ?? BATCH_RECORDS;
  let chunks: AsyncIterable<Buffer> = decompressed(input, file, maxBytes);
  try {
    if (opts.sniff) {
      const s = await sniffJson(chunks);
      if (s.reason !== null) {
        yield { type: 'skipped', file, reason: s.reason };
        return;
      }
      chunks = s.chunks;
    }
    if (opts.jsonLines) {
      yield* streamLines(chunks, file, batchRecords);
      return;
    }
    const parts: Buffer[] = [];
    for await (const c of chunks) parts.push(c);
    let text: string;
    try {
      text = Buffer.concat(parts).toString('utf8');
    } catch (e) {
      // Just under maxBytes can still exceed V8's longest string (about 512 MiB).
      throw new MgError('MG_ERR_CLOUDTRAIL_READ', `${file}: too large to parse as one JSON document; split it or use JSON lines`, { cause: e });
    }
    parts.length = 0;
    let records: unknown[];
    try {
      records = recordsFromText(text, file);
    } catch (e) {
      // A sniffed file that parses but holds no CloudTrail shape is someone else's JSON, not a broken log.
      if (opts.sniff && e instanceof MgError && e.code === 'MG_ERR_CLOUDTRAIL_FORMAT' && !holdsAnyRecord(text)) {
        yield { type: 'skipped', file, reason: 'not-cloudtrail' };
        return;
      }
      throw e;
    }
    for (let i = 0; i < records.length; i += batchRecords) yield { type: 'records', file, records: records.slice(i, i + batchRecords) };
  } catch (e) {
    yield { type: 'error', file, error: e instanceof MgError ? e : readError(file, e) };
  } finally {
    input.destroy();
  }
}

/**
 * Look at the first non-blank character of (decompressed) content: JSON documents and JSON lines start
 * with `{` or `[`. Returns the chunks to read on (those looked at included), or why to skip.
 */
async function sniffJson(chunks: AsyncIterable<Buffer>): Promise<{ reason: FileSkipReason; chunks?: undefined } | { reason: null; chunks: AsyncIterable<Buffer> }> {
  const it = chunks[Symbol.asyncIterator]();
  const seen: Buffer[] = [];
  for (;;) {
    const r = await it.next();
    if (r.done) return { reason: 'empty' };
    seen.push(r.value);
    const c = firstSignificantByte(r.value, seen.length === 1);
    if (c === -1) continue; // only blanks so far
    if (c !== 0x7b && c !== 0x5b) return { reason: 'not-json' }; // '{' or '['
    break;
  }
  async function* rest(): AsyncGenerator<Buffer> {
    yield* seen;
    for (;;) {
      const r = await it.next();
      if (r.done) return;
      yield r.value;
    }
  }
  return { reason: null, chunks: rest() };
}

/** The first byte that is not JSON whitespace (nor, at the very start, a UTF-8 byte order mark), or -1. */
function firstSignificantByte(b: Buffer, atStart: boolean): number {
  let i = atStart && b[0] === 0xef && b[1] === 0xbb && b[2] === 0xbf ? 3 : 0;
  for (; i < b.length; i++) {
    const c = b[i]!;
    if (c !== 0x20 && c !== 0x09 && c !== 0x0a && c !== 0x0d) return c;
  }
  return -1;
}

/** Whether any line or the whole text gives at least one CloudTrail record (then a format error is a real error). */
function holdsAnyRecord(text: string): boolean {
  for (const line of text.split('\n')) {
    const s = line.trim();
    if (s.length === 0) continue;
    try {
      if (recordsFromJson(JSON.parse(s)).length > 0) return true;
    } catch {
      /* not JSON, or not CloudTrail */
    }
  }
  return false;
}

/** Decompressed chunks, gunzipping when the first two bytes are the gzip magic; throws past maxBytes. */
async function* decompressed(input: Readable, file: string, maxBytes: number): AsyncGenerator<Buffer> {
  const it: AsyncIterator<unknown> = input[Symbol.asyncIterator]();
  // Decide on at least two bytes: a pipe or an HTTP body may deliver them one at a time.
  let head: Buffer = Buffer.alloc(0);
  let ended = false;
  while (head.length < 2) {
    const r = await it.next();
    if (r.done) {
      ended = true;
      break;
    }
    head = head.length === 0 ? toBuffer(r.value) : Buffer.concat([head, toBuffer(r.value)]);
  }
  async function* raw(): AsyncGenerator<Buffer> {
    if (head.length > 0) yield head;
    while (!ended) {
      const r = await it.next();
      if (r.done) return;
      yield toBuffer(r.value);
    }
  }
  let total = 0;
  const count = (b: Buffer): Buffer => {
    total += b.length;
    if (total > maxBytes) throw tooLarge(file, maxBytes);
    return b;
  };
  if (!(head.length >= 2 && head[0] === GZIP_MAGIC_0 && head[1] === GZIP_MAGIC_1)) {
    for await (const b of raw()) yield count(b);
    return;
  }
  // Feed gunzip by hand and count what comes out, so a bomb stops after maxBytes of output rather
  // than after inflating all of it.
  const gunzip = createGunzip();
  const feed = (async () => {
    try {
      for await (const b of raw()) {
        if (gunzip.destroyed) return;
        if (!gunzip.write(b)) await drainOrClose(gunzip);
      }
      if (!gunzip.destroyed) gunzip.end();
    } catch (e) {
      gunzip.destroy(e as Error);
    }
  })();
  try {
    for await (const c of gunzip) yield count(c as Buffer);
  } catch (e) {
    // A read error reaches us through gunzip too; only zlib's own errors mean bad data.
    if (e instanceof MgError || (e as NodeJS.ErrnoException).syscall !== undefined) throw e;
    throw new MgError('MG_ERR_CLOUDTRAIL_READ', `${file}: bad gzip data: ${(e as Error).message}`, { cause: e });
  } finally {
    gunzip.destroy();
    // The feeder may be waiting for input that is not coming (stdin, a stalled body): end it.
    input.destroy();
    await feed;
  }
}

function drainOrClose(s: NodeJS.WritableStream & { destroyed: boolean }): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      s.removeListener('drain', done);
      s.removeListener('close', done);
      resolve();
    };
    s.once('drain', done);
    s.once('close', done);
  });
}

function toBuffer(c: unknown): Buffer {
  return Buffer.isBuffer(c) ? c : Buffer.from(c as string);
}

function tooLarge(file: string, maxBytes: number): MgError {
  return new MgError('MG_ERR_CLOUDTRAIL_READ', `${file}: more than ${maxBytes} bytes once decompressed (a gzip bomb, or not a CloudTrail file)`);
}

async function* streamLines(chunks: AsyncIterable<Buffer>, file: string, batchRecords: number): AsyncGenerator<ReadItem> {
  const decoder = new StringDecoder('utf8');
  const problems: Problem[] = [];
  let more = 0;
  let lineNo = 0;
  let pending = '';
  let batch: unknown[] = [];
  let failure: unknown;
  const take = (line: string): void => {
    lineNo++;
    if (lineNo === 1 && line.charCodeAt(0) === 0xfeff) line = line.slice(1);
    const r = parseJsonLine(line, file, lineNo);
    if (r === undefined) return;
    if ('problem' in r) {
      if (problems.length < MAX_LINE_PROBLEMS) problems.push(r.problem);
      else more++;
    } else for (const rec of r.records) batch.push(rec);
  };
  try {
    for await (const chunk of chunks) {
      pending += decoder.write(chunk);
      let from = 0;
      let nl: number;
      while ((nl = pending.indexOf('\n', from)) >= 0) {
        take(pending.slice(from, nl));
        from = nl + 1;
        if (batch.length >= batchRecords) {
          yield { type: 'records', file, records: batch };
          batch = [];
        }
      }
      pending = pending.slice(from);
    }
    pending += decoder.end();
    if (pending.length > 0) take(pending);
  } catch (e) {
    failure = e; // records read before a read error are still worth scanning
  }
  if (batch.length > 0) yield { type: 'records', file, records: batch };
  if (problems.length > 0) yield { type: 'error', file, error: lineProblems(file, problems, more) };
  if (failure !== undefined) yield { type: 'error', file, error: readError(file, failure) };
}

function readError(file: string, e: unknown): MgError {
  if (e instanceof MgError) return e;
  const err = e as NodeJS.ErrnoException;
  const why = err.code === 'ENOENT' ? 'no such file or directory' : err.code === 'EACCES' ? 'permission denied' : err.message;
  return new MgError('MG_ERR_CLOUDTRAIL_READ', `${file}: ${why}`, { cause: e });
}
