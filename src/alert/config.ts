/**
 * The `webhooks:` and `alerting:` config sections, and `serve --webhook URL` flags turned into the same
 * entries. Validation follows the project's config rule: parse, fail fast with one coded error that
 * names every bad field, then freeze. Secrets may live in the environment (`secretEnv`) so that config
 * files can be committed.
 *
 * Secret policy (docs/alerts.md "Secrets"): a `standard` webhook without a secret is refused. An
 * unsigned alert can be forged by anyone who can reach the receiver, and a secret we generated on our
 * own would be unknown to the receiver, so it could not verify either. The error carries a freshly
 * generated secret to paste into the config and the receiver. Slack incoming webhooks carry their
 * credential in the URL and need no secret; if one is given they are signed too.
 */
import { randomBytes } from 'node:crypto';
import { z } from 'zod';
import { MgError, type Problem } from '../errors.js';
import { FINDING_KINDS, SEVERITIES, type FindingKind, type Severity } from '../detect/finding.js';

export const WEBHOOK_FORMATS = ['standard', 'slack'] as const;
export type WebhookFormat = (typeof WEBHOOK_FORMATS)[number];

/** Per-webhook defaults, with units in the names. */
export const WEBHOOK_DEFAULTS = {
  format: 'standard' as WebhookFormat,
  /** Every finding: the lowest severity. */
  minSeverity: 'info' as Severity,
  /** Standard Webhooks "Request timeouts" recommends 15-30 s for the receiver to acknowledge. */
  timeoutMs: 15_000,
  /** Requests in flight at once to one endpoint; the others wait in the outbox, not in memory. */
  maxConcurrency: 4,
  /** Give up on a delivery (state `failed`) once it is this old and another attempt has failed. */
  maxAgeSeconds: 24 * 3600,
  /** At most one `finding.updated` per finding per endpoint in this window; repeats coalesce. */
  updateIntervalSeconds: 300,
} as const;

/** Delivery schedule shared by every endpoint (docs/alerts.md "Retry schedule"). */
export const RETRY_DEFAULTS = {
  /** First retry about a second after a failure: alerts are pages, not notifications. */
  initialDelayMs: 1_000,
  /** Doubling stops here: an endpoint that comes back is retried within about a minute. */
  maxDelayMs: 60_000,
  multiplier: 2,
  /**
   * `equal`: wait between half and all of the step, so a retry never fires at once; `full`: anywhere
   * from 0 to the step (AWS Architecture Blog, "Exponential Backoff And Jitter", 2015).
   */
  jitter: 'equal' as 'equal' | 'full',
  /** A receiver's Retry-After is honoured up to this; a longer one would hold a page for too long. */
  retryAfterMaxMs: 300_000,
};

export const ALERTING_DEFAULTS = {
  /** How often the dispatcher looks at the outbox when nothing woke it (rows written by another process). */
  pollIntervalMs: 2_000,
  /** The PCAP link covers the finding's first..last seen, widened by this on both sides. */
  pcapMarginSeconds: 60,
  /** How long stop() waits for requests in flight before aborting them (they stay pending). */
  stopGraceMs: 5_000,
  /**
   * Delivered and given-up (failed) deliveries older than this are deleted by the retention timer, so
   * the outbox does not grow forever. Pending ones are never deleted. 0 keeps them forever.
   */
  keepDeliveriesDays: 30,
};

export type RetryPolicy = typeof RETRY_DEFAULTS;

export interface AlertingConfig {
  /** Base URL of this collector's API as receivers reach it, for PCAP links; none when unset. */
  publicBaseUrl?: string;
  pcapMarginSeconds: number;
  pollIntervalMs: number;
  stopGraceMs: number;
  keepDeliveriesDays: number;
  retry: RetryPolicy;
}

/** A webhook after validation, name derivation and secret resolution. Frozen. */
export interface ResolvedWebhook {
  readonly name: string;
  readonly url: string;
  /** `whsec_` + base64; absent only for Slack. */
  readonly secret?: string;
  readonly format: WebhookFormat;
  readonly minSeverity: Severity;
  /** Include list of finding kinds; absent means every kind. */
  readonly kinds?: readonly FindingKind[];
  readonly timeoutMs: number;
  readonly maxConcurrency: number;
  readonly maxAgeSeconds: number;
  readonly updateIntervalSeconds: number;
  /** Extra static headers (e.g. Authorization for a gateway), values resolved from env. */
  readonly headers: Readonly<Record<string, string>>;
}

/** Standard Webhooks, "Signature scheme": HMAC secrets of at least 24 bytes, at most 64. */
export const SECRET_MIN_BYTES = 24;
export const SECRET_MAX_BYTES = 64;
const SECRET_PREFIX = 'whsec_';
const BASE64_RE = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
const ENV_NAME_RE = /^[A-Za-z_][A-Za-z0-9_]*$/;
const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
const HEADER_NAME_RE = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/; // RFC 9110 section 5.1: a token
/** Headers we set ourselves: overriding them would break the signature, the framing or the body type. */
const RESERVED_HEADERS = new Set(['content-type', 'content-length', 'host', 'transfer-encoding', 'connection', 'webhook-id', 'webhook-timestamp', 'webhook-signature']);

/** A fresh Standard Webhooks secret: 32 random bytes. */
export function generateSecret(): string {
  return SECRET_PREFIX + randomBytes(32).toString('base64');
}

/** Why a secret string is unusable, or undefined when it is fine. */
export function secretProblem(secret: string): string | undefined {
  if (!secret.startsWith(SECRET_PREFIX)) return `must start with '${SECRET_PREFIX}' followed by base64`;
  const b64 = secret.slice(SECRET_PREFIX.length);
  if (!BASE64_RE.test(b64) || b64.length === 0) return `'${SECRET_PREFIX}' must be followed by padded base64`;
  const n = Buffer.from(b64, 'base64').length;
  if (n < SECRET_MIN_BYTES || n > SECRET_MAX_BYTES) return `decodes to ${n} bytes; use ${SECRET_MIN_BYTES} to ${SECRET_MAX_BYTES} (Standard Webhooks)`;
  return undefined;
}

const httpUrl = z.string().superRefine((s, ctx) => {
  let u: URL;
  try {
    u = new URL(s);
  } catch {
    ctx.addIssue({ code: 'custom', message: `not a URL: '${s}'` });
    return;
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') ctx.addIssue({ code: 'custom', message: `only http and https URLs are allowed, not ${u.protocol}` });
});

const headerValue = z.union([z.string(), z.strictObject({ env: z.string().regex(ENV_NAME_RE, 'not an environment variable name') })]);

export const webhookEntrySchema = z
  .strictObject({
    name: z.string().regex(NAME_RE, 'letters, digits, dot, dash and underscore, at most 64').optional(),
    url: httpUrl,
    secret: z.string().optional(),
    secretEnv: z.string().regex(ENV_NAME_RE, 'not an environment variable name').optional(),
    format: z.enum(WEBHOOK_FORMATS).optional(),
    minSeverity: z.enum(SEVERITIES).optional(),
    kinds: z.array(z.enum(Object.keys(FINDING_KINDS) as [FindingKind, ...FindingKind[]])).min(1).optional(),
    timeoutMs: z.number().int().min(100).max(120_000).optional(),
    maxConcurrency: z.number().int().min(1).max(64).optional(),
    maxAgeSeconds: z.number().min(1).max(30 * 24 * 3600).optional(),
    updateIntervalSeconds: z.number().min(0).max(7 * 24 * 3600).optional(),
    headers: z.record(z.string(), headerValue).optional(),
  })
  .superRefine((w, ctx) => {
    if (w.secret !== undefined && w.secretEnv !== undefined) ctx.addIssue({ code: 'custom', path: ['secret'], message: 'give secret or secretEnv, not both' });
    if (w.secret !== undefined) {
      const p = secretProblem(w.secret);
      if (p) ctx.addIssue({ code: 'custom', path: ['secret'], message: p });
    }
    for (const h of Object.keys(w.headers ?? {})) {
      if (!HEADER_NAME_RE.test(h)) ctx.addIssue({ code: 'custom', path: ['headers', h], message: 'not a valid header name' });
      else if (RESERVED_HEADERS.has(h.toLowerCase())) ctx.addIssue({ code: 'custom', path: ['headers', h], message: 'set by mirrorguard; cannot be overridden' });
    }
  });

export type WebhookEntryInput = z.input<typeof webhookEntrySchema>;

export const webhooksSchema = z.array(webhookEntrySchema);

export const alertingSchema = z.strictObject({
  publicBaseUrl: httpUrl.optional(),
  pcapMarginSeconds: z.number().min(0).max(86_400).optional(),
  pollIntervalMs: z.number().int().min(10).max(600_000).optional(),
  stopGraceMs: z.number().int().min(0).max(600_000).optional(),
  keepDeliveriesDays: z.number().min(0).max(36_500).optional(),
  retry: z
    .strictObject({
      initialDelayMs: z.number().int().min(1).max(3_600_000).optional(),
      maxDelayMs: z.number().int().min(1).max(86_400_000).optional(),
      multiplier: z.number().min(1).max(10).optional(),
      jitter: z.enum(['equal', 'full']).optional(),
      retryAfterMaxMs: z.number().int().min(0).max(86_400_000).optional(),
    })
    .optional(),
});

export type AlertingInput = z.input<typeof alertingSchema>;

export interface ParseOptions {
  /** Where secretEnv and header env references are looked up; process.env by default. */
  env?: NodeJS.ProcessEnv;
  /** The config file, for problem messages. */
  file?: string;
  /** Maps a path such as ['webhooks', 0, 'url'] to its line in the file, when known. */
  lineOf?: (path: readonly (string | number)[]) => number | undefined;
  /** The flag that set a value (an entry `--webhook URL` added), so the problem names it instead of the file. */
  flagOf?: (path: readonly (string | number)[]) => string | undefined;
}

function fieldName(path: readonly PropertyKey[]): string {
  let s = '';
  for (const p of path) s += typeof p === 'number' ? `[${p}]` : s === '' ? String(p) : `.${String(p)}`;
  return s;
}

function problemAt(path: (string | number)[], message: string, opts: ParseOptions): Problem {
  const flag = opts.flagOf?.(path);
  if (flag !== undefined) return { field: `${flag} (${fieldName(path)})`, message };
  const p: Problem = { field: fieldName(path), message };
  if (opts.file !== undefined) p.file = opts.file;
  const line = opts.lineOf?.(path);
  if (line !== undefined) p.line = line;
  return p;
}

/** `hooks.slack.com` -> `hooks.slack.com`; the default name of a webhook is its URL's host. */
function nameFromUrl(url: string): string {
  const host = new URL(url).hostname.replace(/^\[|\]$/g, '').replace(/[^A-Za-z0-9._-]/g, '-');
  return (host || 'webhook').slice(0, 60);
}

/** Slack incoming webhooks (api.slack.com/messaging/webhooks) all live under this host. */
export function looksLikeSlack(url: string): boolean {
  try {
    return new URL(url).hostname === 'hooks.slack.com';
  } catch {
    return false;
  }
}

/**
 * Validate and resolve the `webhooks:` list and the `alerting:` section. Throws one
 * MG_ERR_WEBHOOK_CONFIG naming every problem; returns frozen values.
 */
export function parseAlertsConfig(raw: { webhooks?: unknown; alerting?: unknown }, opts: ParseOptions = {}): { webhooks: readonly ResolvedWebhook[]; alerting: AlertingConfig } {
  const env = opts.env ?? process.env;
  const problems: Problem[] = [];

  // A bare URL string is what `--webhook URL` puts in the list: the same entry webhooksFromFlags makes.
  const list = Array.isArray(raw.webhooks) ? raw.webhooks.map((w: unknown) => (typeof w === 'string' ? webhooksFromFlags([w])[0] : w)) : (raw.webhooks ?? []);
  const wr = webhooksSchema.safeParse(list);
  if (!wr.success) for (const i of wr.error.issues) problems.push(problemAt(['webhooks', ...(i.path as (string | number)[])], i.message, opts));
  const ar = alertingSchema.safeParse(raw.alerting ?? {});
  if (!ar.success) for (const i of ar.error.issues) problems.push(problemAt(['alerting', ...(i.path as (string | number)[])], i.message, opts));
  if (!wr.success || !ar.success) throw new MgError('MG_ERR_WEBHOOK_CONFIG', problems.map((p) => p.field).join(', '), { problems });

  const a = ar.data;
  const retry: RetryPolicy = Object.freeze({ ...RETRY_DEFAULTS, ...stripUndefined(a.retry ?? {}) });
  if (retry.maxDelayMs < retry.initialDelayMs) problems.push(problemAt(['alerting', 'retry', 'maxDelayMs'], 'must be at least initialDelayMs', opts));
  const alerting: AlertingConfig = Object.freeze({
    ...ALERTING_DEFAULTS,
    ...stripUndefined({ pcapMarginSeconds: a.pcapMarginSeconds, pollIntervalMs: a.pollIntervalMs, stopGraceMs: a.stopGraceMs, keepDeliveriesDays: a.keepDeliveriesDays }),
    ...(a.publicBaseUrl !== undefined ? { publicBaseUrl: a.publicBaseUrl.replace(/\/+$/, '') } : {}),
    retry,
  });

  const taken = new Set<string>();
  for (const w of wr.data) if (w.name !== undefined) taken.add(w.name);
  const seen = new Set<string>();
  const webhooks: ResolvedWebhook[] = [];
  wr.data.forEach((w, i) => {
    let name = w.name;
    if (name === undefined) {
      const base = nameFromUrl(w.url);
      name = base;
      for (let n = 2; taken.has(name) || seen.has(name); n++) name = `${base}-${n}`;
    } else if (seen.has(name)) {
      problems.push(problemAt(['webhooks', i, 'name'], `duplicate webhook name '${name}'`, opts));
    }
    seen.add(name);

    const format = w.format ?? WEBHOOK_DEFAULTS.format;
    let secret = w.secret;
    if (w.secretEnv !== undefined) {
      secret = env[w.secretEnv];
      if (secret === undefined || secret === '') problems.push(problemAt(['webhooks', i, 'secretEnv'], `environment variable ${w.secretEnv} is not set; set it to the secret the receiver verifies with, e.g. a fresh one: ${generateSecret()}`, opts));
      else {
        const p = secretProblem(secret);
        if (p) problems.push(problemAt(['webhooks', i, 'secretEnv'], `${w.secretEnv}: ${p}`, opts));
      }
    } else if (secret === undefined && format === 'standard') {
      problems.push(
        problemAt(
          ['webhooks', i, 'secret'],
          `webhook '${name}' has no secret, so its alerts could not be verified; give the receiver and this entry the same secret, e.g. a fresh one: ${generateSecret()}`,
          opts,
        ),
      );
    }

    const headers: Record<string, string> = {};
    for (const [h, v] of Object.entries(w.headers ?? {})) {
      if (typeof v === 'string') headers[h] = v;
      else {
        const val = env[v.env];
        if (val === undefined) problems.push(problemAt(['webhooks', i, 'headers', h], `environment variable ${v.env} is not set`, opts));
        else headers[h] = val;
      }
    }

    webhooks.push(
      Object.freeze({
        name,
        url: w.url,
        ...(secret !== undefined && secret !== '' ? { secret } : {}),
        format,
        minSeverity: w.minSeverity ?? WEBHOOK_DEFAULTS.minSeverity,
        ...(w.kinds !== undefined ? { kinds: Object.freeze([...new Set(w.kinds)]) } : {}),
        timeoutMs: w.timeoutMs ?? WEBHOOK_DEFAULTS.timeoutMs,
        maxConcurrency: w.maxConcurrency ?? WEBHOOK_DEFAULTS.maxConcurrency,
        maxAgeSeconds: w.maxAgeSeconds ?? WEBHOOK_DEFAULTS.maxAgeSeconds,
        updateIntervalSeconds: w.updateIntervalSeconds ?? WEBHOOK_DEFAULTS.updateIntervalSeconds,
        headers: Object.freeze(headers),
      }),
    );
  });

  if (problems.length > 0) throw new MgError('MG_ERR_WEBHOOK_CONFIG', problems.map((p) => p.field).join(', '), { problems });
  return { webhooks: Object.freeze(webhooks), alerting };
}

/** The environment variable `--webhook URL` entries take their secret from when --webhook-secret is absent. */
export const WEBHOOK_SECRET_ENV = 'MIRRORGUARD_WEBHOOK_SECRET';

/**
 * Repeated `--webhook URL` flags as config entries, to append to the file's `webhooks:` list before
 * parseAlertsConfig. A hooks.slack.com URL gets the slack format; any other URL the standard format,
 * signed with `secret` (e.g. from `--webhook-secret`) or else with $MIRRORGUARD_WEBHOOK_SECRET.
 */
export function webhooksFromFlags(urls: readonly string[], opts: { secret?: string } = {}): WebhookEntryInput[] {
  return urls.map((url) => {
    if (looksLikeSlack(url)) return { url, format: 'slack' as const, ...(opts.secret !== undefined ? { secret: opts.secret } : {}) };
    return opts.secret !== undefined ? { url, format: 'standard' as const, secret: opts.secret } : { url, format: 'standard' as const, secretEnv: WEBHOOK_SECRET_ENV };
  });
}

function stripUndefined<T extends object>(o: T): { [K in keyof T]: Exclude<T[K], undefined> } {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as { [K in keyof T]: Exclude<T[K], undefined> };
}
