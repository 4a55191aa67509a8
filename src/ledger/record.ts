/**
 * One ledger record and its canonical bytes. A record is signed and hashed over its body: the fields of
 * BODY_FIELDS, in that order, serialized as JSON with no whitespace. Every value is a string, a safe
 * integer, null or a list of safe integers, so JSON.stringify of each is deterministic and the body has
 * exactly one serialization. The export line is the body followed by `hash` and `sig`, in the same form:
 * a verifier re-serializes what it parsed and requires the very bytes it read, so no change to a line
 * (a flipped bit in a key, a value, the spacing or the encoding) can pass for the same record.
 *
 * - hash = hex SHA-256 of the body bytes; the next record's `prev` is this hash (GENESIS for seq 1);
 * - sig  = base64 Ed25519 signature of the body bytes (RFC 8032; node:crypto signs Ed25519 natively),
 *   so the signature covers `prev` and the chain is signed link by link.
 */
import { createHash } from 'node:crypto';

export const LEDGER_VERSION = 1;
/** `prev` of the first record. */
export const GENESIS = '0'.repeat(64);

export type LedgerKind = 'archive' | 'extraction';

export interface LedgerBody {
  v: number;
  /** 1, 2, 3, ... with no gap: the record's id. */
  seq: number;
  /** When the record was appended, RFC 3339 UTC with milliseconds. */
  time: string;
  kind: LedgerKind;
  /** Node that appended it. */
  node: string;
  /** archive: where the object is (S3 bucket, key, version). extraction: null. */
  bucket: string | null;
  key: string | null;
  versionId: string | null;
  /** archive: the file's size and hex SHA-256. extraction: the size and SHA-256 of the bytes sent. */
  size: number;
  sha256: string;
  /** First and last packet time, microseconds since the epoch (null for an empty file or window). */
  firstUs: number | null;
  lastUs: number | null;
  /** Manifest session ID (archive), or the extraction's session filter; null when none. */
  session: string | null;
  /** extraction: the seqs of the archive records whose files were merged (ascending). archive: []. */
  merged: number[];
  /** Hex SHA-256 of the signing public key (SPKI DER), first 16 hex digits. */
  keyId: string;
  /** Hash of the previous record, or GENESIS. */
  prev: string;
}

export interface LedgerRecord extends LedgerBody {
  hash: string;
  sig: string;
}

/** The body's fields in their canonical order. */
export const BODY_FIELDS = ['v', 'seq', 'time', 'kind', 'node', 'bucket', 'key', 'versionId', 'size', 'sha256', 'firstUs', 'lastUs', 'session', 'merged', 'keyId', 'prev'] as const satisfies readonly (keyof LedgerBody)[];
export const RECORD_FIELDS = [...BODY_FIELDS, 'hash', 'sig'] as const;

const HEX64 = /^[0-9a-f]{64}$/;
const HEX16 = /^[0-9a-f]{16}$/;
/** An Ed25519 signature is 64 bytes: 86 base64 digits and `==`, nothing else. */
const SIG_B64 = /^[A-Za-z0-9+/]{86}==$/;
const TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;

const intOrNull = (v: unknown) => v === null || Number.isSafeInteger(v);
const strOrNull = (v: unknown) => v === null || typeof v === 'string';

/** Problems with the shape of a parsed record (types, formats), each naming the field; [] when well-formed. */
export function shapeProblems(r: Record<string, unknown>): string[] {
  const out: string[] = [];
  const extra = Object.keys(r).filter((k) => !(RECORD_FIELDS as readonly string[]).includes(k));
  if (extra.length) out.push(`unexpected field ${extra.map((k) => JSON.stringify(k)).join(', ')}`);
  const missing = RECORD_FIELDS.filter((k) => !(k in r));
  if (missing.length) out.push(`missing field ${missing.join(', ')}`);
  const check = (field: string, ok: boolean, what: string) => {
    if (field in r && !ok) out.push(`${field}: must be ${what}`);
  };
  check('v', r.v === LEDGER_VERSION, `${LEDGER_VERSION}`);
  check('seq', Number.isSafeInteger(r.seq) && (r.seq as number) >= 1, 'an integer >= 1');
  check('time', typeof r.time === 'string' && TIME.test(r.time), 'an RFC 3339 UTC time with milliseconds');
  check('kind', r.kind === 'archive' || r.kind === 'extraction', "'archive' or 'extraction'");
  check('node', typeof r.node === 'string' && r.node.length > 0, 'a node name');
  for (const f of ['bucket', 'key', 'versionId', 'session']) check(f, strOrNull(r[f]), 'a string or null');
  check('size', Number.isSafeInteger(r.size) && (r.size as number) >= 0, 'an integer >= 0');
  check('sha256', typeof r.sha256 === 'string' && HEX64.test(r.sha256), '64 lowercase hex digits');
  check('firstUs', intOrNull(r.firstUs), 'an integer or null');
  check('lastUs', intOrNull(r.lastUs), 'an integer or null');
  check('merged', Array.isArray(r.merged) && r.merged.every((x) => Number.isSafeInteger(x) && x >= 1), 'a list of record seqs');
  check('keyId', typeof r.keyId === 'string' && HEX16.test(r.keyId), '16 lowercase hex digits');
  check('prev', typeof r.prev === 'string' && HEX64.test(r.prev), '64 lowercase hex digits');
  check('hash', typeof r.hash === 'string' && HEX64.test(r.hash), '64 lowercase hex digits');
  // Canonical base64 too: decoders ignore the unused low bits of the last digit, so without this check two
  // spellings would carry the same signature and a changed byte in the export could pass unnoticed.
  check('sig', typeof r.sig === 'string' && SIG_B64.test(r.sig) && Buffer.from(r.sig, 'base64').toString('base64') === r.sig, 'a canonical base64 Ed25519 signature (88 characters)');
  return out;
}

function serialize(r: Record<string, unknown>, fields: readonly string[]): string {
  return `{${fields.map((f) => `${JSON.stringify(f)}:${JSON.stringify(r[f])}`).join(',')}}`;
}

/** The bytes that are hashed and signed. */
export function canonicalBody(r: LedgerBody): Buffer {
  return Buffer.from(serialize(r as unknown as Record<string, unknown>, BODY_FIELDS), 'utf8');
}

/** The export line (without the newline): body fields, then hash and sig. */
export function recordLine(r: LedgerRecord): string {
  return serialize(r as unknown as Record<string, unknown>, RECORD_FIELDS);
}

export function bodyHash(r: LedgerBody): string {
  return createHash('sha256').update(canonicalBody(r)).digest('hex');
}

export function bodyOf(r: LedgerRecord): LedgerBody {
  const b = {} as Record<string, unknown>;
  for (const f of BODY_FIELDS) b[f] = r[f];
  return b as unknown as LedgerBody;
}
