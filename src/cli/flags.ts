/**
 * Command-line flags that map onto config keys. One table drives parsing (node:util parseArgs, strict:
 * an unknown flag is an error), `--help` text and the override list handed to the config loader, so a
 * flag and its config key can never drift apart. Values are checked by the same schema as the file.
 */
import { parseArgs } from 'node:util';
import type { ConfigOverride } from '../config/load.js';
import { MgError } from '../errors.js';
import type { PathSegment } from '../util/yaml-source.js';

export interface FlagSpec {
  name: string;
  /** Config key it sets; absent for flags the command handles itself. */
  path?: PathSegment[];
  kind: 'string' | 'int' | 'number' | 'bytes' | 'boolean' | 'list';
  arg?: string;
  help: string;
  short?: string;
}

export const CONFIG_FLAGS: Record<string, FlagSpec> = {
  config: { name: 'config', kind: 'string', arg: 'FILE', help: 'YAML config file (flags win over it)' },
  listen: { name: 'listen', path: ['listen'], kind: 'string', arg: 'HOST:PORT', help: 'UDP address for VXLAN (default 0.0.0.0:4789; [::]:4789 for IPv6)' },
  source: { name: 'source', path: ['source'], kind: 'string', arg: 'udp|pcap:IFACE', help: 'packet source: the UDP socket (default) or libpcap on an interface' },
  receiver: { name: 'receiver', path: ['receiver'], kind: 'string', arg: 'auto|native|dgram', help: 'UDP receiver: native recvmmsg addon or node:dgram (default auto)' },
  workers: { name: 'workers', path: ['workers'], kind: 'int', arg: 'N', help: 'receivers sharing the port with SO_REUSEPORT (native receiver; default 1)' },
  'recv-buffer': { name: 'recv-buffer', path: ['recvBufferBytes'], kind: 'bytes', arg: 'BYTES', help: 'socket receive buffer (default 32MiB)' },
  'data-dir': { name: 'data-dir', path: ['dataDir'], kind: 'string', arg: 'DIR', help: 'where PCAP files and the catalog go (default ./data)' },
  'vxlan-port': { name: 'vxlan-port', path: ['vxlanPort'], kind: 'int', arg: 'PORT', help: 'VXLAN UDP port in capture files and libpcap mode (default 4789)' },
  'strict-vxlan': { name: 'strict-vxlan', path: ['strictVxlan'], kind: 'boolean', help: 'drop VXLAN headers with reserved bits set (default: count as weird, keep)' },
  'max-sessions': { name: 'max-sessions', path: ['maxSessions'], kind: 'int', arg: 'N', help: '(source IP, VNI) pairs tracked at once (default 4096)' },
  'rotate-bytes': { name: 'rotate-bytes', path: ['pcap', 'rotateBytes'], kind: 'bytes', arg: 'BYTES', help: 'start a new file past this size (default 256MiB)' },
  'rotate-seconds': { name: 'rotate-seconds', path: ['pcap', 'rotateSeconds'], kind: 'int', arg: 'N', help: 'start a new file after this many seconds (default 900)' },
  'idle-close-seconds': { name: 'idle-close-seconds', path: ['pcap', 'idleCloseSeconds'], kind: 'int', arg: 'N', help: 'close a session file idle this long (default 300)' },
  'flush-interval-ms': { name: 'flush-interval-ms', path: ['pcap', 'flushIntervalMs'], kind: 'int', arg: 'MS', help: 'hand buffered packets to disk this often; bounds crash loss (default 1000)' },
  'retain-bytes': { name: 'retain-bytes', path: ['retention', 'maxBytes'], kind: 'bytes', arg: 'BYTES', help: 'delete oldest closed files beyond this total (default 20GiB; 0 = no bound)' },
  'retain-hours': { name: 'retain-hours', path: ['retention', 'maxAgeHours'], kind: 'number', arg: 'HOURS', help: 'delete closed files older than this (default 168; 0 = no bound)' },
  'min-free-bytes': { name: 'min-free-bytes', path: ['retention', 'minFreeBytes'], kind: 'bytes', arg: 'BYTES', help: 'delete oldest closed files while free disk is below this (default 1GiB)' },
  manifest: { name: 'manifest', path: ['manifest'], kind: 'string', arg: 'FILE', help: 'authorized-session manifest (docs/manifest.md)' },
  api: { name: 'api', path: ['api', 'listen'], kind: 'string', arg: 'HOST:PORT|off', help: 'auditor API address (default 127.0.0.1:8080)' },
  webhook: { name: 'webhook', path: ['webhooks'], kind: 'list', arg: 'URL', help: 'send findings to this webhook (repeatable; Standard Webhooks format)' },
  'log-level': { name: 'log-level', path: ['log', 'level'], kind: 'string', arg: 'LEVEL', help: 'fatal|error|warn|info|debug|trace|silent (default info)' },
  'log-format': { name: 'log-format', path: ['log', 'format'], kind: 'string', arg: 'json|pretty', help: 'JSON lines (services, journald) or lines for a person (default: pretty on a terminal, else json)' },
};

export interface ParsedFlags {
  values: Record<string, string | boolean | string[] | undefined>;
  positionals: string[];
  overrides: ConfigOverride[];
  help: boolean;
}

export function parseFlags(argv: string[], specs: FlagSpec[], command: string): ParsedFlags {
  const options: Record<string, { type: 'string' | 'boolean'; multiple?: boolean; short?: string }> = { help: { type: 'boolean', short: 'h' } };
  for (const s of specs) {
    options[s.name] = { type: s.kind === 'boolean' ? 'boolean' : 'string', ...(s.kind === 'list' ? { multiple: true } : {}), ...(s.short ? { short: s.short } : {}) };
  }
  let parsed;
  try {
    parsed = parseArgs({ args: argv, options, strict: true, allowPositionals: true });
  } catch (e) {
    throw new MgError('MG_ERR_CLI_USAGE', `${command}: ${(e as Error).message.split('\n')[0]}; see 'mirrorguard ${command} --help'`);
  }
  const values = parsed.values as ParsedFlags['values'];
  const overrides: ConfigOverride[] = [];
  for (const s of specs) {
    const v = values[s.name];
    if (v === undefined || !s.path) continue;
    overrides.push({ path: s.path, value: convert(s, v), flag: `--${s.name}` });
  }
  return { values, positionals: parsed.positionals, overrides, help: values.help === true };
}

function convert(s: FlagSpec, v: string | boolean | string[]): unknown {
  switch (s.kind) {
    case 'int':
      if (typeof v !== 'string' || !/^-?\d+$/.test(v)) throw new MgError('MG_ERR_CLI_USAGE', `--${s.name}: expected an integer, got '${String(v)}'`);
      return Number(v);
    case 'number':
      if (typeof v !== 'string' || !/^\d+(\.\d+)?$/.test(v)) throw new MgError('MG_ERR_CLI_USAGE', `--${s.name}: expected a number, got '${String(v)}'`);
      return Number(v);
    case 'list':
      return Array.isArray(v) ? v : [v];
    default:
      return v; // strings and byte sizes are checked by the config schema
  }
}

export function helpText(usage: string, description: string, specs: FlagSpec[]): string {
  const rows: [string, string][] = specs.map((s) => [`--${s.name}${s.arg ? ` ${s.arg}` : ''}`, s.help]);
  rows.push(['-h, --help', 'show this help']);
  const w = Math.max(...rows.map((r) => r[0].length));
  return `usage: ${usage}\n\n${description}\n\noptions:\n${rows.map(([a, h]) => `  ${a.padEnd(w)}  ${h}`).join('\n')}\n`;
}
