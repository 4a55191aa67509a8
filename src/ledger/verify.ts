/**
 * Offline verification of a ledger export (JSON lines) against the deployment's public key, and of a
 * file against it: the file's SHA-256 is in the chain, the chain is unbroken from seq 1, every record is
 * what its hash says and carries a valid signature by that key. Each problem names the line, the seq
 * and what failed; verification goes on past a problem (up to MAX_PROBLEMS) so a report shows them all.
 */
import { createHash, verify as verifySig, type KeyObject } from 'node:crypto';
import { bodyOf, canonicalBody, GENESIS, recordLine, shapeProblems, type LedgerRecord } from './record.js';

export const MAX_PROBLEMS = 50;

export interface VerifyResult {
  ok: boolean;
  /** Records read (well-formed lines). */
  records: number;
  /** Records whose sha256 is the file's, when a file digest was given. */
  matches: LedgerRecord[];
  problems: string[];
}

export function verifyLedger(exportBytes: Buffer, publicKey: KeyObject, keyId: string, fileSha256?: string): VerifyResult {
  const problems: string[] = [];
  const add = (p: string) => {
    if (problems.length < MAX_PROBLEMS) problems.push(p);
    else if (problems.length === MAX_PROBLEMS) problems.push('... more problems not shown');
  };
  const matches: LedgerRecord[] = [];
  let records = 0;
  if (exportBytes.length === 0) add('the ledger export is empty');
  else if (exportBytes[exportBytes.length - 1] !== 0x0a) add('the ledger export does not end with a newline (cut short?)');

  let prevHash = GENESIS;
  let prevSeq = 0;
  let lineNo = 0;
  for (let start = 0; start < exportBytes.length; ) {
    let end = exportBytes.indexOf(0x0a, start);
    if (end < 0) end = exportBytes.length;
    const raw = exportBytes.subarray(start, end);
    start = end + 1;
    lineNo++;
    const where = `line ${lineNo}`;
    let parsed: unknown;
    try {
      parsed = JSON.parse(raw.toString('utf8'));
    } catch {
      add(`${where}: not a JSON record`);
      prevHash = ''; // the chain cannot be followed across it
      continue;
    }
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
      add(`${where}: not a JSON object`);
      prevHash = '';
      continue;
    }
    const shape = shapeProblems(parsed as Record<string, unknown>);
    if (shape.length) {
      for (const s of shape) add(`${where}: ${s}`);
      prevHash = '';
      continue;
    }
    const r = parsed as LedgerRecord;
    const at = `${where} (seq ${r.seq})`;
    records++;
    if (!Buffer.from(recordLine(r), 'utf8').equals(raw)) add(`${at}: the line is not in canonical form (its bytes were changed)`);
    if (r.seq !== prevSeq + 1) add(`${at}: seq ${r.seq} follows seq ${prevSeq}: the chain has a gap or is out of order`);
    const body = canonicalBody(bodyOf(r));
    const hash = createHash('sha256').update(body).digest('hex');
    if (hash !== r.hash) add(`${at}: record hash does not match its contents (the record was changed)`);
    if (prevHash !== '' && r.prev !== prevHash) add(`${at}: prev does not match the hash of the record before it: the chain is broken`);
    if (r.keyId !== keyId) add(`${at}: signed by key ${r.keyId}, not by the given public key (${keyId})`);
    else if (!verifySig(null, body, publicKey, Buffer.from(r.sig, 'base64'))) add(`${at}: signature does not verify`);
    if (fileSha256 !== undefined && r.sha256 === fileSha256) matches.push(r);
    prevSeq = r.seq;
    prevHash = r.hash;
  }
  if (fileSha256 !== undefined && matches.length === 0) add(`the file's SHA-256 ${fileSha256} is in no ledger record`);
  return { ok: problems.length === 0, records, matches, problems };
}
