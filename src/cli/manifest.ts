/**
 * `mirrorguard manifest check FILE` and `mirrorguard manifest init ...` (docs/manifest.md).
 *
 * check: exit 0 when the manifest is valid; otherwise an MG_ERR_MANIFEST_INVALID whose problems the
 * dispatcher prints one per line as `FILE:LINE: field: message` on stderr, exit 78.
 * init: a manifest from the sessions that exist today (a saved describe output or a live call), with a
 * header telling the reader to review every entry; to stdout, or to --out (never over an existing file
 * without --force).
 */
import { existsSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { EXIT, MgError } from '../errors.js';
import { commandHelp, parseCommand, usageError, type CommandSpec, type FlagSpec } from './flags.js';
import { PROCESS_IO, type CliIo } from './io.js';

const INIT_FLAGS: FlagSpec[] = [
  { name: 'describe-json', kind: 'string', arg: 'FILE', help: "saved 'aws ec2 describe-traffic-mirror-sessions' output" },
  { name: 'aws', kind: 'boolean', help: 'call DescribeTrafficMirrorSessions (default credential chain)' },
  { name: 'region', kind: 'string', arg: 'R', help: "AWS region for --aws (default: the SDK's, e.g. AWS_REGION)" },
  { name: 'endpoint', kind: 'string', arg: 'URL', help: 'EC2 endpoint override for --aws (a VPC endpoint)' },
  { name: 'out', kind: 'string', arg: 'FILE', help: 'write to FILE instead of stdout' },
  { name: 'force', kind: 'boolean', help: 'overwrite FILE if it exists' },
];

export const SPEC: CommandSpec = {
  name: 'manifest',
  usage: ['manifest check FILE', 'manifest init (--describe-json FILE | --aws [--region R] [--endpoint URL]) [--out FILE] [--force]'],
  description: 'Check a manifest of authorized mirror sessions, or write a first one (docs/manifest.md).',
  subcommands: [
    { name: 'check', args: 'FILE', summary: 'exit 0 when valid; else print every problem as FILE:LINE: field: message, exit 78', flags: [] },
    { name: 'init', summary: 'write a manifest listing the sessions that exist today', flags: INIT_FLAGS.map((f) => f.name) },
  ],
  sections: [{ title: 'init options', flags: INIT_FLAGS }],
  epilogue: 'Review every entry init writes before trusting it: a session an attacker created exists today too.',
};

export type { CliIo };

export async function run(argv: string[], io: CliIo = PROCESS_IO): Promise<number> {
  const { values, positionals, subcommand, help } = parseCommand(argv, SPEC);
  if (help) {
    io.stdout.write(commandHelp(SPEC));
    return EXIT.OK;
  }
  const rest = positionals.slice(1);
  if (subcommand?.name === 'check') {
    if (rest.length !== 1) throw usage('check takes exactly one FILE');
    return check(rest[0]!, io);
  }
  if (subcommand?.name === 'init') {
    if (rest.length) throw usage(`init takes no positional argument ('${rest[0]}'); use --out FILE`);
    return init(values as Record<string, string | boolean | undefined>, io);
  }
  throw usage("missing command 'check' or 'init'");
}

function usage(msg: string): MgError {
  return usageError(SPEC, msg);
}

async function check(file: string, io: CliIo): Promise<number> {
  const { loadManifest } = await import('../detect/manifest.js');
  const m = loadManifest(file); // throws MG_ERR_MANIFEST_READ / MG_ERR_MANIFEST_INVALID with every problem
  const n = m.sessions.length;
  io.stdout.write(`${file}: valid, ${n} session${n === 1 ? '' : 's'}, sha256 ${m.sha256}\n`);
  return EXIT.OK;
}

async function init(values: Record<string, string | boolean | undefined>, io: CliIo): Promise<number> {
  const describe = values['describe-json'] as string | undefined;
  const aws = values.aws === true;
  if ((describe !== undefined) === aws) throw usage('init needs exactly one of --describe-json FILE and --aws');
  if (!aws && (values.region !== undefined || values.endpoint !== undefined)) throw usage('--region and --endpoint go with --aws');
  const out = values.out as string | undefined;
  if (values.force && out === undefined) throw usage('--force goes with --out');
  // Refuse before any AWS call: the answer would be thrown away.
  if (out !== undefined && !values.force && existsSync(out)) throw new MgError('MG_ERR_MANIFEST_EXISTS', `${out}; pass --force to overwrite it`);

  const inv = await import('../detect/inventory.js');
  const { renderManifest } = await import('../detect/manifest-init.js');
  const { checkManifestText } = await import('../detect/manifest.js');
  const region = values.region as string | undefined;
  const sessions = aws
    ? await inv.fetchInventory({ region, endpoint: values.endpoint as string | undefined })
    : inv.readDescribeJson(describe!);
  const source = aws ? `DescribeTrafficMirrorSessions${region ? ` in ${region}` : ''}` : describe!;
  // With --aws, each source ENI's primary IP (sourceIps) and the GWLB endpoint behind GWLB targets.
  const details = aws && sessions.length > 0 ? await inv.fetchSessionDetails(sessions, { region, endpoint: values.endpoint as string | undefined }) : undefined;
  for (const w of details?.warnings ?? []) io.stderr.write(`manifest init: ${w}\n`);
  const r = renderManifest(sessions, { source, generatedAt: Date.now(), region, ...(details ? { details } : {}) });
  const self = checkManifestText(r.text, out ?? '<stdout>');
  if (!self.manifest) {
    // A bug in the renderer, not in the user's input: say so rather than write a file check refuses.
    throw new MgError('MG_ERR_MANIFEST_INVALID', 'manifest init produced an invalid manifest (a mirrorguard bug; please report it)', { problems: self.problems });
  }

  if (out === undefined) io.stdout.write(r.text);
  else writeManifest(out, r.text, values.force === true);
  for (const c of r.commented) io.stderr.write(`manifest init: left ${c.id} commented out: ${c.reason}\n`);
  io.stderr.write(
    `manifest init: ${r.included} session${r.included === 1 ? '' : 's'} written${out ? ` to ${out}` : ''}; REVIEW EVERY ENTRY before trusting it (an attacker's session exists today too)\n`,
  );
  return EXIT.OK;
}

/** Write beside the target and rename over it (--force), or create exclusively, so no reader sees half a file. */
function writeManifest(out: string, text: string, force: boolean): void {
  try {
    if (!force) {
      writeFileSync(out, text, { flag: 'wx', mode: 0o644 });
      return;
    }
    const tmp = `${out}.tmp-${process.pid}`;
    try {
      writeFileSync(tmp, text, { flag: 'w', mode: 0o644 });
      renameSync(tmp, out);
    } finally {
      rmSync(tmp, { force: true });
    }
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EEXIST') throw new MgError('MG_ERR_MANIFEST_EXISTS', `${out}; pass --force to overwrite it`, { cause: e });
    throw new MgError('MG_ERR_MANIFEST_WRITE', `${out}: ${(e as Error).message}`, { cause: e });
  }
}
