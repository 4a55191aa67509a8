/**
 * `mirrorguard alerts <test|status|enable|retry>`: check webhook wiring and look after the outbox.
 *
 *   alerts test --webhook URL [--secret whsec_...] [--format standard|slack]   one signed test event
 *   alerts test --config FILE [--name NAME]                                     each configured webhook
 *   alerts status [--data-dir DIR] [--state pending|delivered|failed] [--json]  deliveries and endpoints
 *   alerts enable NAME [--data-dir DIR] [--requeue]                             undo a 410 disable
 *   alerts retry [--data-dir DIR] [--endpoint NAME]                             failed deliveries -> pending
 *
 * `test` sends synchronously, without the outbox: one attempt, no retry, so the operator sees exactly
 * what the receiver answered. Exit 0 when every receiver answered 2xx, else MG_ERR_WEBHOOK_SEND (69).
 */
import { existsSync, readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { EXIT, MgError, type Problem } from '../errors.js';
import { VERSION } from '../version.js';
import { CATALOG_FILE } from '../collector/layout.js';
import { openStore, type Store } from '../store/store.js';
import { parseYamlWithLines } from '../util/yaml-source.js';
import { generateSecret, looksLikeSlack, parseAlertsConfig, secretProblem, WEBHOOK_DEFAULTS, WEBHOOK_SECRET_ENV, type ResolvedWebhook, type WebhookFormat } from '../alert/config.js';
import { renderSlackTest } from '../alert/format-slack.js';
import { renderStandardTest } from '../alert/format-standard.js';
import { enableEndpoint, listDeliveries, listDisabledEndpoints, newMsgId, outboxCounts, requeueFailed, type OutboxState } from '../alert/outbox.js';
import { redactUrl } from '../alert/dispatcher.js';
import { sendWebhook } from '../alert/send.js';
import { commandHelp, parseCommand, usageError, type CommandSpec, type FlagSpec } from './flags.js';
import { PROCESS_IO, type CliIo } from './io.js';


const TEST_FLAGS: FlagSpec[] = [
  { name: 'webhook', kind: 'list', arg: 'URL', help: 'receiver to test (repeatable); hooks.slack.com URLs use the slack format' },
  { name: 'secret', kind: 'string', arg: 'whsec_...', help: `signing secret (default: $${WEBHOOK_SECRET_ENV}, else a one-off secret, printed)` },
  { name: 'format', kind: 'string', arg: 'FORMAT', help: 'standard | slack (default: standard, or slack for hooks.slack.com)' },
  { name: 'config', kind: 'string', arg: 'FILE', help: "also test every webhook in the file's webhooks: list" },
  { name: 'name', kind: 'list', arg: 'NAME', help: 'with --config: only this webhook (repeatable)' },
  { name: 'timeout-ms', kind: 'int', min: 100, max: 120_000, arg: 'MS', help: `request timeout (default ${WEBHOOK_DEFAULTS.timeoutMs})` },
];

const OUTBOX_FLAGS: FlagSpec[] = [
  { name: 'data-dir', kind: 'string', arg: 'DIR', help: "the collector's data directory (default ./data, or dataDir from --config)" },
  { name: 'config', kind: 'string', arg: 'FILE', help: 'read dataDir from this config file' },
  { name: 'state', kind: 'string', arg: 'STATE', help: 'status: only pending | delivered | failed' },
  { name: 'limit', kind: 'int', min: 1, max: 1000, arg: 'N', help: 'status: how many recent deliveries to list (default 20)' },
  { name: 'json', kind: 'boolean', help: 'status: print JSON' },
  { name: 'requeue', kind: 'boolean', help: 'enable: also retry the deliveries that failed because of the disable' },
  { name: 'endpoint', kind: 'string', arg: 'NAME', help: 'retry: only this webhook' },
];

export const SPEC: CommandSpec = {
  name: 'alerts',
  usage: ['alerts <command> [options]'],
  description: 'Check webhook wiring and look after the alert outbox (docs/alerts.md).',
  subcommands: [
    { name: 'test', summary: 'send one signed test event (type webhook.test) and print what the receiver answered' },
    { name: 'status', summary: 'count deliveries by endpoint and state; list recent ones' },
    { name: 'enable', args: 'NAME', summary: 're-enable a webhook that a 410 Gone disabled' },
    { name: 'retry', summary: 'put failed deliveries back in the queue (same webhook-id; receivers dedupe)' },
  ],
  sections: [
    { title: 'test options', flags: TEST_FLAGS },
    { title: 'status / enable / retry options', flags: OUTBOX_FLAGS },
  ],
};

type Values = {
  webhook?: string[];
  secret?: string;
  format?: string;
  config?: string;
  name?: string[];
  'timeout-ms'?: number;
  'data-dir'?: string;
  state?: string;
  limit?: number;
  json?: boolean;
  requeue?: boolean;
  endpoint?: string;
};

function usage(msg: string): MgError {
  return usageError(SPEC, msg);
}

/** Lines to stdout (out) and stderr (err), through the command's CliIo. */
interface Say {
  out(s: string): void;
  err(s: string): void;
}

function sayTo(io: CliIo): Say {
  return {
    out: (s) => void io.stdout.write(s.endsWith('\n') ? s : `${s}\n`),
    err: (s) => void io.stderr.write(s.endsWith('\n') ? s : `${s}\n`),
  };
}

/** The `webhooks:`, `alerting:` and `dataDir` keys of a config file; the rest is the config loader's business. */
function readConfig(file: string): { raw: { webhooks?: unknown; alerting?: unknown; dataDir?: unknown }; lineOf: (p: readonly (string | number)[]) => number | undefined } {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new MgError('MG_ERR_CONFIG_READ', `${file}: ${(e as Error).message}`, { cause: e });
  }
  const src = parseYamlWithLines(text, file);
  if (src.syntaxProblems.length > 0) throw new MgError('MG_ERR_CONFIG_PARSE', file, { problems: src.syntaxProblems });
  const v = src.value;
  const raw = v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : {};
  return { raw: { webhooks: raw['webhooks'], alerting: raw['alerting'], dataDir: raw['dataDir'] }, lineOf: (p) => src.lineOf(p) };
}

export async function run(argv: string[], io: CliIo = PROCESS_IO): Promise<number> {
  const say = sayTo(io);
  if (argv[0] === 'help') argv = ['--help'];
  const parsed = parseCommand(argv, SPEC);
  if (parsed.help) {
    io.stdout.write(commandHelp(SPEC));
    return EXIT.OK;
  }
  const v = parsed.values as Values;
  const rest = parsed.positionals.slice(1);
  switch (parsed.subcommand?.name) {
    case 'test':
      if (rest.length > 0) throw usage(`unexpected argument '${rest[0]}'`);
      return runTest(v, say);
    case 'status':
      if (rest.length > 0) throw usage(`unexpected argument '${rest[0]}'`);
      return runStatus(v, say);
    case 'enable':
      if (rest.length !== 1) throw usage('enable takes one webhook name');
      return runEnable(v, rest[0]!, say);
    case 'retry':
      if (rest.length > 0) throw usage(`unexpected argument '${rest[0]}'`);
      return runRetry(v, say);
    default:
      throw usage('a command is required: test, status, enable or retry');
  }
}

async function runTest(v: Values, { out, err }: Say): Promise<number> {
  if (v.format !== undefined && v.format !== 'standard' && v.format !== 'slack') throw usage(`--format: expected standard or slack, got '${v.format}'`);
  if (v.secret !== undefined) {
    const p = secretProblem(v.secret);
    if (p) throw usage(`--secret: ${p}`);
  }
  const timeoutMs = v['timeout-ms'] ?? WEBHOOK_DEFAULTS.timeoutMs;
  const targets: ResolvedWebhook[] = [];

  if (v.config !== undefined) {
    const { raw, lineOf } = readConfig(v.config);
    const { webhooks } = parseAlertsConfig({ webhooks: raw.webhooks, alerting: raw.alerting }, { file: v.config, lineOf });
    const chosen = v.name === undefined ? webhooks : webhooks.filter((w) => v.name!.includes(w.name));
    for (const n of v.name ?? []) if (!webhooks.some((w) => w.name === n)) throw usage(`--name: no webhook named '${n}' in ${v.config}`);
    targets.push(...chosen);
  } else if (v.name !== undefined) {
    throw usage('--name needs --config');
  }

  for (const url of v.webhook ?? []) {
    const format: WebhookFormat = (v.format as WebhookFormat | undefined) ?? (looksLikeSlack(url) ? 'slack' : 'standard');
    let secret = v.secret ?? process.env[WEBHOOK_SECRET_ENV];
    if (secret !== undefined && v.secret === undefined) {
      const p = secretProblem(secret);
      if (p) throw usage(`$${WEBHOOK_SECRET_ENV}: ${p}`);
    }
    if (secret === undefined && format === 'standard') {
      secret = generateSecret();
      err(`no --secret and no $${WEBHOOK_SECRET_ENV}: signing with a one-off secret ${secret}\n(a receiver that verifies with its own secret will reject this test)`);
    }
    // The same validation as a config entry, so a bad URL gets the same message.
    const { webhooks } = parseAlertsConfig({ webhooks: [{ url, format, ...(secret !== undefined ? { secret } : {}), timeoutMs }] }, {});
    targets.push(webhooks[0]!);
  }
  if (targets.length === 0) {
    throw usage(v.config !== undefined ? `${v.config} has no webhooks: add a webhooks: entry, or give --webhook URL` : 'test needs --webhook URL or --config FILE');
  }

  const problems: Problem[] = [];
  for (const t of targets) {
    const at = Date.now();
    const msgId = newMsgId(at);
    const payload = t.format === 'slack' ? renderSlackTest(at, hostname(), VERSION) : renderStandardTest(at, { message: 'mirrorguard webhook test: if you can read this, alerts reach you.', host: hostname(), version: VERSION });
    const target = v.config !== undefined && v['timeout-ms'] !== undefined ? { ...t, timeoutMs } : t;
    const res = await sendWebhook(target, msgId, payload);
    out(`${t.name} (${t.format}, ${redactUrl(t.url)})`);
    out(`  webhook-id: ${msgId}`);
    if (res.headers['webhook-signature']) out(`  webhook-signature: ${res.headers['webhook-signature']} (timestamp ${res.headers['webhook-timestamp']})`);
    if (res.status !== undefined) out(`  answer: HTTP ${res.status} in ${res.durationMs} ms${res.body ? `: ${res.body.replace(/\s+/g, ' ').trim().slice(0, 200)}` : ''}`);
    else out(`  answer: none (${res.error})`);
    if (res.outcome === 'delivered') out('  ok');
    else {
      const hint = res.outcome === 'gone' ? ' (410 Gone: the collector would disable this webhook)' : res.outcome === 'retry' ? ' (the collector would retry this)' : ' (the collector would not retry this)';
      problems.push({ field: t.name, message: `${res.error ?? 'failed'}${hint}` });
    }
  }
  if (problems.length > 0) throw new MgError('MG_ERR_WEBHOOK_SEND', problems.map((p) => `${p.field}: ${p.message}`).join('; '), { problems });
  return EXIT.OK;
}

function dbFile(v: Values): string {
  let dir = v['data-dir'];
  if (dir === undefined && v.config !== undefined) {
    const d = readConfig(v.config).raw.dataDir;
    if (typeof d === 'string' && d !== '') dir = d;
  }
  dir ??= './data';
  // Only the collector creates a catalog: opening one here would make an empty database in a mistyped
  // directory and report zeros as if all were well.
  if (!existsSync(dir)) throw new MgError('MG_ERR_DATA_DIR', `${dir}: no such directory; give the collector's --data-dir (or --config)`);
  const file = join(dir, CATALOG_FILE);
  if (!existsSync(file)) throw new MgError('MG_ERR_CATALOG_OPEN', `${file}: no catalog here; is ${dir} the collector's data directory?`);
  return file;
}

async function runStatus(v: Values, { out }: Say): Promise<number> {
  if (v.state !== undefined && !['pending', 'delivered', 'failed'].includes(v.state)) throw usage(`--state: expected pending, delivered or failed, got '${v.state}'`);
  const limit = v.limit ?? 20;
  const store: Store = await openStore({ url: `sqlite:${dbFile(v)}` });
  const db = store.outbox;
  try {
    const counts = await outboxCounts(db);
    const disabled = await listDisabledEndpoints(db);
    const recent = await listDeliveries(db, { ...(v.state !== undefined ? { state: v.state as OutboxState } : {}), limit });
    if (v.json) {
      out(JSON.stringify({ ...counts, disabled, recent }, null, 2));
      return EXIT.OK;
    }
    out(`pending ${counts.pending}, delivered ${counts.delivered}, failed ${counts.failed}`);
    for (const [name, c] of Object.entries(counts.byEndpoint)) out(`  ${name}: pending ${c.pending}, delivered ${c.delivered}, failed ${c.failed}`);
    for (const d of disabled) out(`DISABLED ${d.name} since ${d.disabledAt}: ${d.reason ?? ''}`);
    for (const r of recent) {
      out(`${r.createdAt} ${r.state.padEnd(9)} ${r.endpoint} ${r.type} ${r.msgId} attempts=${r.attempts}${r.lastStatus !== null ? ` status=${r.lastStatus}` : ''}${r.lastError ? ` error=${r.lastError}` : ''}`);
    }
    return EXIT.OK;
  } finally {
    await store.close();
  }
}

async function runEnable(v: Values, name: string, { out }: Say): Promise<number> {
  const store: Store = await openStore({ url: `sqlite:${dbFile(v)}` });
  const db = store.outbox;
  try {
    const was = (await listDisabledEndpoints(db)).some((d) => d.name === name);
    const known = Object.keys((await outboxCounts(db)).byEndpoint);
    if (!was && !known.includes(name)) {
      throw new MgError('MG_ERR_WEBHOOK_UNKNOWN', `'${name}'`, {
        problems: [{ field: 'NAME', message: known.length ? `the outbox knows ${known.map((k) => `'${k}'`).join(', ')}` : 'the outbox has no deliveries yet' }],
      });
    }
    const n = await enableEndpoint(db, name, { requeue: v.requeue === true });
    out(was ? `webhook '${name}' enabled${v.requeue ? `; ${n} failed deliveries requeued` : ''}` : `webhook '${name}' was not disabled${v.requeue ? `; ${n} failed deliveries requeued` : ''}`);
    out('A running collector picks this up within its poll interval (alerting.pollIntervalMs).');
    return EXIT.OK;
  } finally {
    await store.close();
  }
}

async function runRetry(v: Values, { out }: Say): Promise<number> {
  const store: Store = await openStore({ url: `sqlite:${dbFile(v)}` });
  const db = store.outbox;
  try {
    const n = await requeueFailed(db, v.endpoint !== undefined ? { endpoint: v.endpoint } : {});
    out(`${n} failed deliveries requeued; a running collector sends them within its poll interval.`);
    return EXIT.OK;
  } finally {
    await store.close();
  }
}
