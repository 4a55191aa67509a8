/**
 * `mirrorguard keys init`: make the deployment's Ed25519 key pair for the evidence ledger
 * (docs/architecture.md, "Ledger"). The private key goes to `archive.signingKey` on every collector; the
 * public key goes to whoever verifies (`mirrorguard verify --public-key`).
 */
import { resolve } from 'node:path';
import { EXIT } from '../errors.js';
import { commandHelp, parseCommand, usageError, type CommandSpec, type FlagSpec } from './flags.js';
import { PROCESS_IO, type CliIo } from './io.js';

const INIT_FLAGS: FlagSpec[] = [
  { name: 'private-key', kind: 'string', arg: 'FILE', help: 'where the private key goes, mode 0600 (default mirrorguard-ledger.key)' },
  { name: 'public-key', kind: 'string', arg: 'FILE', help: 'where the public key goes (default: the private key path with .pub)' },
  { name: 'force', kind: 'boolean', help: 'replace existing files' },
];

export const SPEC: CommandSpec = {
  name: 'keys',
  usage: ['keys init [--private-key FILE] [--public-key FILE] [--force]'],
  description: 'Make the Ed25519 key pair that signs the evidence ledger (PEM: PKCS#8 private key, SPKI public key).',
  subcommands: [{ name: 'init', summary: 'write a new key pair; never over existing files without --force', flags: INIT_FLAGS.map((f) => f.name) }],
  sections: [{ title: 'init options', flags: INIT_FLAGS }],
  epilogue:
    'Set archive.signingKey to the private key on every collector (the same key for the whole fleet).\nKeep the public key where auditors can get it: mirrorguard verify FILE --ledger EXPORT.jsonl --public-key KEY.pub',
};

export async function run(argv: string[], io: CliIo = PROCESS_IO): Promise<number> {
  const { values, positionals, subcommand, help } = parseCommand(argv, SPEC);
  if (help) {
    io.stdout.write(commandHelp(SPEC));
    return EXIT.OK;
  }
  if (subcommand?.name !== 'init') throw usageError(SPEC, "missing command 'init'");
  if (positionals.length > 1) throw usageError(SPEC, `init takes no positional argument ('${positionals[1]}'); use --private-key FILE`);
  const priv = (values['private-key'] as string | undefined) ?? 'mirrorguard-ledger.key';
  const pub = (values['public-key'] as string | undefined) ?? `${priv.replace(/\.key$|\.pem$/, '')}.pub`;
  if (resolve(priv) === resolve(pub)) throw usageError(SPEC, '--private-key and --public-key must be different files');
  const { writeKeyPair } = await import('../ledger/keys.js');
  const { keyId } = writeKeyPair(priv, pub, values.force === true);
  io.stdout.write(`private key: ${priv} (mode 0600; set archive.signingKey to it)\npublic key:  ${pub}\nkey id:      ${keyId}\n`);
  return EXIT.OK;
}
