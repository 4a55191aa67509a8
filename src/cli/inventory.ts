/**
 * `mirrorguard inventory check --manifest FILE (--describe-json FILE | --aws [--region R] [--endpoint URL]) [--json]`:
 * compare the mirror sessions that exist in AWS with the manifest (docs/detection.md, "Inventory").
 * Stateless: findings are printed, not stored; their ids are the ones serve would store.
 *
 * Exit status: 0 no findings, 1 findings, 2 the describe file cannot be read; a failed live call is
 * MG_ERR_INVENTORY_AWS (69) and an invalid manifest MG_ERR_MANIFEST_INVALID (78).
 */
import { EXIT, MgError } from '../errors.js';
import { FINDING_KINDS, severityRank, type Finding, type FindingInput } from '../detect/finding.js';
import { findingId } from '../detect/finding-id.js';
import { commandHelp, parseCommand, usageError, type CommandSpec } from './flags.js';
import { PROCESS_IO, type CliIo } from './io.js';

export const SPEC: CommandSpec = {
  name: 'inventory',
  usage: ['inventory check --manifest FILE (--describe-json FILE | --aws [--region R] [--endpoint URL]) [--json]'],
  description:
    'Compare the traffic mirror sessions in AWS with the manifest (docs/detection.md, "Inventory"):\n' +
    'unmanaged-session (in AWS, not in the manifest), missing-session (in the manifest, not in AWS),\n' +
    'session-drift (VNI, source ENI, target or filter differ).',
  subcommands: [{ name: 'check', summary: 'compare, print one line per finding' }],
  sections: [
    {
      title: 'options',
      flags: [
        { name: 'manifest', kind: 'string', arg: 'FILE', help: 'authorized sessions (docs/manifest.md)' },
        { name: 'describe-json', kind: 'string', arg: 'FILE', help: "saved 'aws ec2 describe-traffic-mirror-sessions' output" },
        { name: 'aws', kind: 'boolean', help: 'call DescribeTrafficMirrorSessions (default credential chain, all pages)' },
        { name: 'region', kind: 'string', arg: 'R', help: 'AWS region for --aws; also scopes manifest entries that name a region' },
        { name: 'endpoint', kind: 'string', arg: 'URL', help: 'EC2 endpoint override for --aws (a VPC endpoint)' },
        { name: 'json', kind: 'boolean', help: "one finding per line as JSON (the API's Finding shape)" },
      ],
    },
  ],
  epilogue: 'exit status: 0 no findings, 1 findings, 2 the describe file cannot be read,\n69 the AWS call failed, 78 the manifest is invalid',
};

export type { CliIo };

interface Values {
  manifest?: string;
  'describe-json'?: string;
  aws?: boolean;
  region?: string;
  endpoint?: string;
  json?: boolean;
}

export async function run(argv: string[], io: CliIo = PROCESS_IO): Promise<number> {
  const parsed = parseCommand(argv, SPEC);
  if (parsed.help) {
    io.stdout.write(commandHelp(SPEC));
    return EXIT.OK;
  }
  const values = parsed.values as Values;
  const rest = parsed.positionals.slice(1);
  if (parsed.subcommand === undefined) throw usage("missing command 'check'");
  if (rest.length) throw usage(`unexpected argument '${rest[0]}'`);
  if (values.manifest === undefined) throw usage('--manifest FILE is required');
  const describe = values['describe-json'];
  const aws = values.aws === true;
  if ((describe !== undefined) === aws) throw usage('give exactly one of --describe-json FILE and --aws');
  if (!aws && values.endpoint !== undefined) throw usage('--endpoint goes with --aws');

  const { loadManifest } = await import('../detect/manifest.js');
  const inv = await import('../detect/inventory.js');
  const manifest = loadManifest(values.manifest);
  const sessions = aws ? await inv.fetchInventory({ region: values.region, endpoint: values.endpoint }) : inv.readDescribeJson(describe!);
  const at = Date.now();
  const inputs = inv.compareInventory(manifest, sessions, { region: values.region, at });
  const findings = inputs.map(toFinding).sort((a, b) => severityRank(b.severity) - severityRank(a.severity) || a.kind.localeCompare(b.kind) || a.id.localeCompare(b.id));

  for (const f of findings) {
    io.stdout.write(values.json ? `${JSON.stringify(f)}\n` : `${f.severity.padEnd(8)} ${f.kind.padEnd(17)} ${f.id}  ${f.summary}\n`);
  }
  io.stderr.write(
    `inventory check: ${sessions.length} session${sessions.length === 1 ? '' : 's'} in AWS, ${manifest.sessions.length} in ${manifest.file}: ${findings.length} finding${findings.length === 1 ? '' : 's'}\n`,
  );
  return findings.length ? EXIT.FINDINGS : EXIT.OK;
}

function usage(msg: string): MgError {
  return usageError(SPEC, msg);
}

function toFinding(i: FindingInput): Finding {
  const at = new Date(i.at).toISOString();
  const f: Finding = {
    id: findingId(i.kind, i.key),
    kind: i.kind,
    severity: i.severity ?? FINDING_KINDS[i.kind],
    status: 'open',
    firstSeen: at,
    lastSeen: at,
    count: 1,
    summary: i.summary,
    evidence: i.evidence,
  };
  if (i.vni !== undefined) f.vni = i.vni;
  if (i.sessionId !== undefined) f.sessionId = i.sessionId;
  return f;
}
