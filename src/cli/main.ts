/**
 * `mirrorguard <command> ...`: one module per command under src/cli/, loaded on demand so that
 * `manifest check` does not pay for fastify or the AWS SDK.
 */
import { EXIT, isMgError, MgError } from '../errors.js';
import { PROCESS_IO, type CliIo } from './io.js';

interface Command {
  summary: string;
  load: () => Promise<{ run(argv: string[], io?: CliIo): Promise<number> }>;
}

const COMMANDS: Record<string, Command> = {
  serve: { summary: 'receive mirrored VXLAN, write PCAP per session, detect, alert, serve the API', load: () => import('./serve.js') },
  decap: { summary: 'decapsulate a capture file (pcap/pcapng) into per-session PCAP', load: () => import('./decap.js') },
  replay: { summary: 'send the VXLAN payloads of a capture file to a collector', load: () => import('./replay.js') },
  manifest: { summary: 'check a manifest of authorized sessions, or write one from AWS (init)', load: () => import('./manifest.js') },
  cloudtrail: { summary: 'scan CloudTrail logs for traffic-mirroring calls against the manifest', load: () => import('./cloudtrail.js') },
  inventory: { summary: 'compare AWS mirror sessions with the manifest', load: () => import('./inventory.js') },
  alerts: { summary: 'send a signed test event to a webhook', load: () => import('./alerts.js') },
  store: { summary: 'store status, migrations, and copying a SQLite history into PostgreSQL', load: () => import('./store.js') },
  keys: { summary: 'make the Ed25519 key pair that signs the evidence ledger (init)', load: () => import('./keys.js') },
  verify: { summary: "check a file's SHA-256 against the signed evidence ledger, offline", load: () => import('./verify.js') },
  config: { summary: 'check a configuration without starting, and print it with secrets redacted', load: () => import('./config.js') },
};

function usage(): string {
  const width = Math.max(...Object.keys(COMMANDS).map((c) => c.length));
  const lines = Object.entries(COMMANDS).map(([name, c]) => `  ${name.padEnd(width)}  ${c.summary}`);
  return `usage: mirrorguard <command> [options]\n\ncommands:\n${lines.join('\n')}\n\nRun 'mirrorguard <command> --help' for a command's options.\n`;
}

export async function main(argv: string[], io: CliIo = PROCESS_IO): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    io.stdout.write(usage());
    return name === undefined ? EXIT.USAGE : EXIT.OK;
  }
  if (name === '--version' || name === '-V') {
    const { VERSION } = await import('../version.js');
    io.stdout.write(`${VERSION}\n`);
    return EXIT.OK;
  }
  const cmd = COMMANDS[name];
  try {
    if (!cmd) throw new MgError('MG_ERR_CLI_UNKNOWN_COMMAND', `'${name}'; run 'mirrorguard --help'`);
    const mod = await cmd.load();
    return await mod.run(rest, io);
  } catch (e) {
    if (isMgError(e)) {
      io.stderr.write(`mirrorguard: ${e.describe()}\n`);
      return e.exitCode;
    }
    throw e;
  }
}
