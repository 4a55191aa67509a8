/**
 * `mirrorguard verify FILE --ledger EXPORT.jsonl --public-key KEY.pub`: offline proof that a capture (or
 * a merged extraction) is evidence the fleet recorded: its SHA-256 is in a ledger record, the chain from
 * seq 1 is unbroken, every record is what its hash says, and every signature holds under the key.
 * Exit 0 and the matching records; or MG_ERR_VERIFY_FAILED (exit 1) with one line per failure.
 */
import { createHash } from 'node:crypto';
import { createReadStream, readFileSync } from 'node:fs';
import { EXIT, MgError } from '../errors.js';
import { commandHelp, parseCommand, usageError, type CommandSpec, type FlagSpec } from './flags.js';
import { PROCESS_IO, type CliIo } from './io.js';

const FLAGS: FlagSpec[] = [
  { name: 'ledger', kind: 'string', arg: 'EXPORT.jsonl', help: 'the ledger export (JSON lines, from seq 1)' },
  { name: 'api', kind: 'string', arg: 'URL', help: 'read the ledger from a running serve (GET /v1/ledger; the token from MIRRORGUARD_TOKEN) instead of --ledger' },
  { name: 'public-key', kind: 'string', arg: 'KEY.pub', help: "the deployment's Ed25519 public key (PEM; from 'mirrorguard keys init')" },
];

export const SPEC: CommandSpec = {
  name: 'verify',
  usage: ['verify FILE --ledger EXPORT.jsonl --public-key KEY.pub', 'verify FILE --api URL --public-key KEY.pub'],
  description: "Check offline that FILE's SHA-256 is in the signed evidence ledger, the chain is unbroken and every signature holds.",
  sections: [{ title: 'options', flags: FLAGS }],
  epilogue: 'Exit status: 0 verified; 1 (MG_ERR_VERIFY_FAILED) with one line per failure; 64 usage; 66 a file cannot be read.',
};

async function sha256File(path: string): Promise<string> {
  const h = createHash('sha256');
  try {
    for await (const chunk of createReadStream(path)) h.update(chunk as Buffer);
  } catch (e) {
    throw new MgError('MG_ERR_CAPTURE_READ', `${path}: ${(e as Error).message}`, { cause: e });
  }
  return h.digest('hex');
}

export async function run(argv: string[], io: CliIo = PROCESS_IO): Promise<number> {
  const { values, positionals, help } = parseCommand(argv, SPEC);
  if (help) {
    io.stdout.write(commandHelp(SPEC));
    return EXIT.OK;
  }
  if (positionals.length !== 1) throw usageError(SPEC, positionals.length === 0 ? 'missing FILE' : 'takes exactly one FILE');
  const ledgerPath = values.ledger as string | undefined;
  const keyPath = values['public-key'] as string | undefined;
  const apiUrl = values.api as string | undefined;
  if (ledgerPath === undefined && apiUrl === undefined) throw usageError(SPEC, 'missing --ledger EXPORT.jsonl (or --api URL)');
  if (ledgerPath !== undefined && apiUrl !== undefined) throw usageError(SPEC, 'give --ledger or --api, not both');
  if (keyPath === undefined) throw usageError(SPEC, 'missing --public-key KEY.pub');
  const file = positionals[0]!;

  const { loadPublicKey } = await import('../ledger/keys.js');
  const { verifyLedger } = await import('../ledger/verify.js');
  const { publicKey, keyId } = loadPublicKey(keyPath);
  let exportBytes: Buffer;
  const source = ledgerPath ?? `${apiUrl}/v1/ledger`;
  if (apiUrl !== undefined) exportBytes = await fetchLedger(apiUrl, process.env.MIRRORGUARD_TOKEN);
  else {
    try {
      exportBytes = readFileSync(ledgerPath!);
    } catch (e) {
      throw new MgError('MG_ERR_LEDGER_READ', `${ledgerPath}: ${(e as Error).message}`, { cause: e });
    }
  }
  const sha = await sha256File(file);
  const r = verifyLedger(exportBytes, publicKey, keyId, sha);
  if (!r.ok) {
    throw new MgError('MG_ERR_VERIFY_FAILED', `${file} against ${source} (${r.records} records, key ${keyId})`, {
      problems: r.problems.map((message) => ({ file: source, message })),
    });
  }
  for (const m of r.matches) {
    const where = m.kind === 'archive' ? `s3://${m.bucket}/${m.key}${m.versionId ? ` version ${m.versionId}` : ''}` : `extraction of records ${m.merged.join(', ') || 'none'}`;
    io.stdout.write(`${file}: sha256 ${sha} is ledger record ${m.seq} (${m.kind}, node ${m.node}, ${m.time}): ${where}\n`);
  }
  io.stdout.write(`ledger: ${r.records} records, chain unbroken, every signature valid (key ${keyId})\n`);
  return EXIT.OK;
}

/**
 * The whole ledger from a running serve, page by page from seq 1, as the export's JSON lines: each record
 * re-serialized in its canonical form (src/ledger/record.ts), so any change the server or the network made
 * to a record fails its hash or signature exactly as a changed export line would.
 */
async function fetchLedger(apiUrl: string, token: string | undefined): Promise<Buffer> {
  if (!token) throw new MgError('MG_ERR_LEDGER_READ', `${apiUrl}: set MIRRORGUARD_TOKEN to an auditor token`);
  const { recordLine } = await import('../ledger/record.js');
  const base = apiUrl.replace(/\/+$/, '');
  const lines: string[] = [];
  let from: number | null = 1;
  while (from !== null) {
    const url = `${base}/v1/ledger?from=${from}&limit=1000`;
    let body: { items: Parameters<typeof recordLine>[0][]; nextFrom: number | null };
    try {
      const res = await fetch(url, { headers: { authorization: `Bearer ${token}` } });
      if (!res.ok) throw new Error(`HTTP ${res.status}: ${(await res.text()).slice(0, 200)}`);
      body = (await res.json()) as typeof body;
    } catch (e) {
      throw new MgError('MG_ERR_LEDGER_READ', `${url}: ${(e as Error).message}`, { cause: e });
    }
    for (const r of body.items) lines.push(`${recordLine(r)}\n`);
    from = body.nextFrom;
  }
  return Buffer.from(lines.join(''), 'utf8');
}
