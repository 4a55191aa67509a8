/**
 * `mirrorguard config check [--config FILE] [serve flags]`: run every check `serve` runs before it
 * starts (src/config/startup.ts) without binding or creating anything, and print the effective
 * configuration (defaults, then the file, then the flags) as JSON with secrets redacted.
 */
import { redactUrl } from '../alert/dispatcher.js';
import { checkStartup } from '../config/startup.js';
import { EXIT } from '../errors.js';
import { CONFIG_FLAGS, commandHelp, parseCommand, usageError, type CommandSpec } from './flags.js';
import { PROCESS_IO, type CliIo } from './io.js';

export const REDACTED = '<redacted>';

export const SPEC: CommandSpec = {
  name: 'config',
  usage: ['config check [--config FILE] [serve options]'],
  description:
    'Check a configuration as serve would (flags, file and environment together, the manifest, TLS files,\nthe data directory and catalog) without binding or creating anything, and print the effective\nconfiguration as JSON with secrets redacted.',
  subcommands: [{ name: 'check', summary: 'validate and print the effective configuration' }],
  sections: [{ title: 'options', flags: Object.values(CONFIG_FLAGS) }],
  epilogue: 'exit status: 0 the configuration would start; otherwise the MG_ERR_* code\'s status (docs/errors.md).',
};

export async function run(argv: string[], io: CliIo = PROCESS_IO): Promise<number> {
  const flags = parseCommand(argv, SPEC);
  if (flags.help) {
    io.stdout.write(commandHelp(SPEC));
    return EXIT.OK;
  }
  if (flags.subcommand === undefined) throw usageError(SPEC, 'a command is required: check');
  if (flags.positionals.length > 1) throw usageError(SPEC, `unexpected argument '${flags.positionals[1]}'`);
  const file = flags.values.config as string | undefined;
  const plan = checkStartup({ file, overrides: flags.overrides });
  io.stdout.write(`${JSON.stringify(redactConfig(plan.loaded.config, plan.alerts.webhooks), null, 2)}\n`);
  const m = plan.manifest;
  io.stderr.write(`mirrorguard: config check: ok${file ? ` (${file})` : ' (defaults and flags)'}${m ? `; manifest ${m.file}: ${m.sessions.length} session(s)` : '; no manifest'}\n`);
  return EXIT.OK;
}

/** The config with every secret replaced: literal API tokens, webhook secrets and header values, and webhook URL paths (a Slack URL is a credential). */
export function redactConfig(config: object, webhooks: readonly { name: string; url: string; secret?: string; format: string; headers: Readonly<Record<string, string>> }[]): unknown {
  const c = JSON.parse(JSON.stringify(config)) as Record<string, unknown> & { api: { tokens: Record<string, unknown>[] } };
  c.api.tokens = c.api.tokens.map((t) => (t.token !== undefined ? { ...t, token: REDACTED } : t));
  c.webhooks = webhooks.map((w) => ({
    name: w.name,
    url: redactUrl(w.url),
    format: w.format,
    ...(w.secret !== undefined ? { secret: REDACTED } : {}),
    ...(Object.keys(w.headers).length ? { headers: Object.fromEntries(Object.keys(w.headers).map((h) => [h, REDACTED])) } : {}),
  }));
  return c;
}
