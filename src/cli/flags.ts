/**
 * The command line of every subcommand, from one table each: a CommandSpec lists the command's flags
 * (node:util parseArgs, strict: an unknown flag is an error), its subcommands and which flags each
 * takes, and the text `--help` prints, so the parser and the help can never drift apart. Flags that map
 * onto config keys (CONFIG_FLAGS) become the override list handed to the config loader and are checked
 * by the same schema as the file. Every usage error is MG_ERR_CLI_USAGE (exit 64), prefixed with the
 * command and pointing at its --help.
 */
import { parseArgs } from 'node:util';
import type { ConfigOverride } from '../config/load.js';
import { MgError } from '../errors.js';
import type { PathSegment } from '../util/yaml-source.js';

export interface FlagSpec {
  name: string;
  /** Config key it sets; absent for flags the command handles itself. */
  path?: PathSegment[];
  /** string; int and number (checked here, within min..max); bytes (checked by the config schema); boolean; list (repeatable string). */
  kind: 'string' | 'int' | 'number' | 'bytes' | 'boolean' | 'list';
  arg?: string;
  help: string;
  short?: string;
  /** Bounds for int flags. */
  min?: number;
  max?: number;
}

export const CONFIG_FLAGS: Record<string, FlagSpec> = {
  config: { name: 'config', kind: 'string', arg: 'FILE', help: 'YAML config file (flags win over it)' },
  listen: { name: 'listen', path: ['listen'], kind: 'string', arg: 'HOST:PORT', help: 'UDP address for VXLAN (default 0.0.0.0:4789; [::]:4789 for IPv6)' },
  source: { name: 'source', path: ['source'], kind: 'string', arg: 'udp|pcap:IFACE', help: 'packet source: the UDP socket (default) or libpcap on an interface' },
  receiver: { name: 'receiver', path: ['receiver'], kind: 'string', arg: 'auto|af-packet|native|dgram', help: 'receiver: af-packet capture ring (CAP_NET_RAW), native recvmmsg addon or node:dgram (default auto: the first that can run)' },
  workers: { name: 'workers', path: ['workers'], kind: 'int', arg: 'N', help: 'receivers sharing the port: SO_REUSEPORT (native) or PACKET_FANOUT rings (af-packet); default 1' },
  interface: { name: 'interface', path: ['interface'], kind: 'string', arg: 'IFACE', help: 'interface the af-packet ring reads (default: from --listen; 0.0.0.0 reads all)' },
  'ring-block-bytes': { name: 'ring-block-bytes', path: ['ring', 'blockBytes'], kind: 'bytes', arg: 'BYTES', help: 'af-packet ring block size, a power of two from 64KiB to 64MiB (default 128KiB)' },
  'ring-blocks': { name: 'ring-blocks', path: ['ring', 'blockCount'], kind: 'int', arg: 'N', help: 'af-packet ring blocks (default 384: 48MiB), split across --workers', min: 2, max: 65536 },
  'ring-retire-ms': { name: 'ring-retire-ms', path: ['ring', 'retireMs'], kind: 'int', arg: 'MS', help: 'hand over a partly filled ring block after this long (default 100)', min: 1, max: 60000 },
  'recv-buffer': { name: 'recv-buffer', path: ['recvBufferBytes'], kind: 'bytes', arg: 'BYTES', help: 'socket receive buffer (default 128MiB)' },
  'data-dir': { name: 'data-dir', path: ['dataDir'], kind: 'string', arg: 'DIR', help: 'where PCAP files and the catalog go (default ./data)' },
  'vxlan-port': { name: 'vxlan-port', path: ['vxlanPort'], kind: 'int', arg: 'PORT', help: 'VXLAN UDP port in capture files and libpcap mode (default 4789)' },
  geneve: { name: 'geneve', path: ['geneve', 'listen'], kind: 'string', arg: 'HOST:PORT', help: 'also receive GENEVE from a Gateway Load Balancer here, e.g. 0.0.0.0:6081 (default off; docs/install.md GWLB mode)' },
  'geneve-port': { name: 'geneve-port', path: ['geneve', 'port'], kind: 'int', arg: 'PORT', help: 'GENEVE UDP port in capture files and libpcap mode (default 6081; 0 = off)' },
  'strict-vxlan': { name: 'strict-vxlan', path: ['strictVxlan'], kind: 'boolean', help: 'drop VXLAN headers with reserved bits set (default: count as weird, keep)' },
  'max-sessions': { name: 'max-sessions', path: ['maxSessions'], kind: 'int', arg: 'N', help: '(source IP, VNI) pairs tracked at once (default 16384)' },
  'rotate-bytes': { name: 'rotate-bytes', path: ['pcap', 'rotateBytes'], kind: 'bytes', arg: 'BYTES', help: 'start a new file past this size (default 256MiB)' },
  'rotate-seconds': { name: 'rotate-seconds', path: ['pcap', 'rotateSeconds'], kind: 'int', arg: 'N', help: 'start a new file after this many seconds (default 900)' },
  'idle-close-seconds': { name: 'idle-close-seconds', path: ['pcap', 'idleCloseSeconds'], kind: 'int', arg: 'N', help: 'close a session file idle this long (default 300)' },
  'flush-interval-ms': { name: 'flush-interval-ms', path: ['pcap', 'flushIntervalMs'], kind: 'int', arg: 'MS', help: 'hand buffered packets to disk this often; bounds crash loss (default 1000)' },
  'retain-bytes': { name: 'retain-bytes', path: ['retention', 'maxBytes'], kind: 'bytes', arg: 'BYTES', help: 'delete oldest closed files beyond this total (default 20GiB; 0 = no bound)' },
  'retain-hours': { name: 'retain-hours', path: ['retention', 'maxAgeHours'], kind: 'number', arg: 'HOURS', help: 'delete closed files older than this (default 168; 0 = no bound)' },
  'min-free-bytes': { name: 'min-free-bytes', path: ['retention', 'minFreeBytes'], kind: 'bytes', arg: 'BYTES', help: 'delete oldest closed files while free disk is below this (default 1GiB)' },
  store: { name: 'store', path: ['store', 'url'], kind: 'string', arg: 'URL', help: 'the store: sqlite:PATH or postgres://USER@HOST:PORT/DB (default: sqlite in the data directory)' },
  'node-id': { name: 'node-id', path: ['node', 'id'], kind: 'string', arg: 'ID', help: "this collector's name in the store's rows (default: the host name)" },
  manifest: { name: 'manifest', path: ['manifest'], kind: 'string', arg: 'FILE', help: 'authorized-session manifest (docs/manifest.md)' },
  api: { name: 'api', path: ['api', 'listen'], kind: 'string', arg: 'HOST:PORT|off', help: 'auditor API address (default 127.0.0.1:8080)' },
  webhook: { name: 'webhook', path: ['webhooks'], kind: 'list', arg: 'URL', help: 'send findings to this webhook (repeatable; Standard Webhooks format)' },
  'log-level': { name: 'log-level', path: ['log', 'level'], kind: 'string', arg: 'LEVEL', help: 'fatal|error|warn|info|debug|trace|silent (default info)' },
  'log-format': { name: 'log-format', path: ['log', 'format'], kind: 'string', arg: 'json|pretty', help: 'JSON lines (services, journald) or lines for a person (default: pretty on a terminal, else json)' },
};

/** A subcommand (`manifest check`): its operands for help, and the flags it takes when it restricts them. */
export interface SubcommandSpec {
  name: string;
  /** Operands after the name, for help (`FILE`, `NAME`). */
  args?: string;
  summary: string;
  /** Names of the flags this subcommand takes; absent: any of the command's flags. */
  flags?: string[];
}

export interface HelpSection {
  /** `options`, `init options`, ... */
  title: string;
  flags: FlagSpec[];
}

export interface CommandSpec {
  /** The command as typed after `mirrorguard` (`serve`, `manifest`), used in messages. */
  name: string;
  /** Usage lines, without `usage: `. */
  usage: string[];
  description: string;
  subcommands?: SubcommandSpec[];
  /** Flags, grouped as help shows them; a flag may appear in several groups (it is parsed once). */
  sections: HelpSection[];
  /** Text after the options: exit status, notes. */
  epilogue?: string;
}

export interface ParsedCommand {
  values: Record<string, string | boolean | string[] | number | undefined>;
  positionals: string[];
  /** The subcommand (first positional) when the spec has subcommands and it is one of them. */
  subcommand: SubcommandSpec | undefined;
  /** Overrides for the config loader, from flags with a config path. */
  overrides: ConfigOverride[];
  help: boolean;
}

/** A usage error for this command: `<command>: <message>; see 'mirrorguard <command> --help'` (exit 64). */
export function usageError(spec: Pick<CommandSpec, 'name'>, message: string): MgError {
  return new MgError('MG_ERR_CLI_USAGE', `${spec.name}: ${message}; see 'mirrorguard ${spec.name} --help'`);
}

export function commandFlags(spec: CommandSpec): FlagSpec[] {
  const byName = new Map<string, FlagSpec>();
  for (const sec of spec.sections) for (const f of sec.flags) if (!byName.has(f.name)) byName.set(f.name, f);
  return [...byName.values()];
}

/**
 * Parse argv against the table. Unknown flags, a missing flag value, a bad int or number, an unknown
 * subcommand, or a flag the subcommand does not take are usage errors. Int and number flags come back
 * as numbers; the rest as parseArgs gives them. Subcommand presence and operand counts are left to the
 * command (its messages say what is missing), but an unknown subcommand is refused here.
 */
export function parseCommand(argv: string[], spec: CommandSpec): ParsedCommand {
  const flags = commandFlags(spec);
  const options: Record<string, { type: 'string' | 'boolean'; multiple?: boolean; short?: string }> = { help: { type: 'boolean', short: 'h' } };
  for (const f of flags) {
    options[f.name] = { type: f.kind === 'boolean' ? 'boolean' : 'string', ...(f.kind === 'list' ? { multiple: true } : {}), ...(f.short ? { short: f.short } : {}) };
  }
  let parsed;
  try {
    parsed = parseArgs({ args: argv, options, strict: true, allowPositionals: true });
  } catch (e) {
    throw usageError(spec, (e as Error).message.split('\n')[0]!.replace(/\. To specify a positional.*$/, ''));
  }
  const values = { ...(parsed.values as Record<string, string | boolean | string[] | undefined>) } as ParsedCommand['values'];
  const help = values.help === true;
  delete values.help;
  const overrides: ConfigOverride[] = [];
  let subcommand: SubcommandSpec | undefined;
  if (!help) {
    for (const f of flags) {
      const v = values[f.name];
      if (v === undefined) continue;
      const c = convert(spec, f, v as string | boolean | string[]);
      values[f.name] = c as ParsedCommand['values'][string];
      if (f.path) overrides.push({ path: f.path, value: c, flag: `--${f.name}` });
    }
    if (spec.subcommands) {
      const sub = parsed.positionals[0];
      subcommand = spec.subcommands.find((c) => c.name === sub);
      if (sub !== undefined && subcommand === undefined) {
        const names = spec.subcommands.map((c) => `'${c.name}'`);
        throw usageError(spec, `unknown command '${sub}'; the command${names.length === 1 ? ' is' : 's are'} ${names.join(', ')}`);
      }
      if (subcommand?.flags) {
        const extra = flags.find((f) => values[f.name] !== undefined && !subcommand!.flags!.includes(f.name));
        if (extra) throw usageError(spec, `${subcommand.name} takes no --${extra.name}`);
      }
    }
  }
  return { values, positionals: parsed.positionals, subcommand, overrides, help };
}

function convert(spec: CommandSpec, f: FlagSpec, v: string | boolean | string[]): unknown {
  switch (f.kind) {
    case 'int': {
      const ok = typeof v === 'string' && /^-?\d+$/.test(v) && (f.min === undefined || Number(v) >= f.min) && (f.max === undefined || Number(v) <= f.max);
      if (!ok) {
        const range = f.min !== undefined && f.max !== undefined ? ` from ${f.min} to ${f.max}` : f.min !== undefined ? ` >= ${f.min}` : '';
        throw usageError(spec, `--${f.name}: expected an integer${range}, got '${String(v)}'`);
      }
      return Number(v);
    }
    case 'number':
      if (typeof v !== 'string' || !/^\d+(\.\d+)?$/.test(v)) throw usageError(spec, `--${f.name}: expected a number, got '${String(v)}'`);
      return Number(v);
    case 'list':
      return Array.isArray(v) ? v : [v];
    default:
      return v; // strings and byte sizes are checked by the config schema or the command
  }
}

/** `--help`, generated from the same table the parser reads. */
export function commandHelp(spec: CommandSpec): string {
  const out: string[] = [];
  out.push(spec.usage.map((u, i) => `${i === 0 ? 'usage: ' : '       '}mirrorguard ${u}`).join('\n'));
  out.push('');
  out.push(spec.description);
  const rows = (items: [string, string][]): string => {
    const w = Math.max(...items.map((r) => r[0].length));
    return items.map(([a, h]) => `  ${a.padEnd(w)}  ${h}`).join('\n');
  };
  if (spec.subcommands?.length) {
    out.push('');
    out.push('commands:');
    out.push(rows(spec.subcommands.map((c) => [`${c.name}${c.args ? ` ${c.args}` : ''}`, c.summary])));
  }
  // -h, --help goes with the general options (a section of its own when there are none).
  const sections = spec.sections.filter((s) => s.flags.length > 0);
  const general = sections.find((s) => s.title === 'options') ?? sections[sections.push({ title: 'options', flags: [] }) - 1]!;
  for (const sec of sections) {
    const items: [string, string][] = sec.flags.map((f) => [`${f.short ? `-${f.short}, ` : ''}--${f.name}${f.arg ? ` ${f.arg}` : ''}`, f.help]);
    if (sec === general) items.push(['-h, --help', 'show this help']);
    out.push('');
    out.push(`${sec.title}:`);
    out.push(rows(items));
  }
  if (spec.epilogue) {
    out.push('');
    out.push(spec.epilogue);
  }
  return `${out.join('\n')}\n`;
}
