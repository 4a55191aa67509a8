/**
 * The `api:` part of the config file, and the bearer tokens it names. The integrator composes
 * `apiConfigSchema` into src/config/schema.ts; the defaults live here, in one commented object, with units
 * in the key names.
 *
 *   api:
 *     listen: 127.0.0.1:8080          # HOST:PORT, or off
 *     tokens:
 *       - { name: alice, role: auditor, sha256: 3f1c...e9 }     # SHA-256 of the token, hex
 *       - { name: eventbridge, role: ingest, tokenEnv: MG_INGEST_TOKEN }
 *       - { name: ops, role: admin, token: "a-long-random-string" }
 *     tls: { certFile: /etc/mirrorguard/api.crt, keyFile: /etc/mirrorguard/api.key }
 *     maxBodyBytes: 4MiB
 *     maxConcurrentExtractions: 2
 *     maxRangeHours: 24
 *
 * Secure by default: with no tokens configured, `serve` generates one admin token, once, into
 * `<dataDir>/api-admin.token` (mode 0600) and logs where it is (resolveApiTokens). No request except
 * /healthz and /openapi.json is ever served without a token.
 */
import { createHash, randomBytes } from 'node:crypto';
import { chmodSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { join } from 'node:path';
import { z } from 'zod';
import { MgError, type Problem } from '../errors.js';
import type { Logger } from '../util/log.js';
import { parseBytes, parseHostPort } from '../util/units.js';
import { formatPath } from '../util/yaml-source.js';

const MiB = 1024 * 1024;

export const API_ROLES = ['auditor', 'ingest', 'admin'] as const;
export type ApiRole = (typeof API_ROLES)[number];

export const API_DEFAULTS = {
  /** Loopback only: exposing the API is a decision (tokens, TLS) the operator makes in the config. */
  listen: '127.0.0.1:8080',
  /**
   * Largest request body, bytes. EventBridge events are at most 256 KB (EventBridge quotas,
   * "PutEvents entry size"); a CloudTrail log file is KB to a few MB.
   */
  maxBodyBytes: 4 * MiB,
  /**
   * Merged PCAP extractions running at once; more get 429 with Retry-After. Each reads every file of its
   * window through a 64 KiB buffer and costs a core while it runs.
   */
  maxConcurrentExtractions: 2,
  /** Longest `from`..`to` window of one extraction, hours. */
  maxRangeHours: 24,
  /** Most capture files one extraction may merge (each is an open file and a read buffer). */
  maxExtractionFiles: 512,
  /** Serve GET /metrics without a token (for a scraper on a trusted network). */
  publicMetrics: false,
  /**
   * Take the client address from X-Forwarded-For: false, true (any proxy), a hop count, or the proxy
   * addresses/CIDRs to trust (fastify `trustProxy`). Used for the audit log's remote IP.
   */
  trustProxy: false as boolean | number | string[],
} as const;

/** Where the generated admin token lives under the data directory. */
export const ADMIN_TOKEN_FILE = 'api-admin.token';
/** A literal token shorter than this is refused: a bearer token is a password that never expires. */
export const MIN_TOKEN_LENGTH = 16;

const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$/;
const ENV_NAME_RE = /^[A-Za-z_][A-Za-z0-9_]*$/;
const SHA256_RE = /^[0-9a-fA-F]{64}$/;
/** RFC 6750 section 2.1 b64token: what may follow `Bearer ` in an Authorization header. */
export const B64TOKEN_RE = /^[A-Za-z0-9\-._~+/]+=*$/;

const listen = z.string().refine(
  (s) => {
    if (s === 'off') return true;
    const hp = parseHostPort(s);
    return hp !== null && (isIP(hp.host) !== 0 || hp.host === 'localhost');
  },
  { message: 'must be HOST:PORT with an IP address (e.g. 127.0.0.1:8080 or [::]:8080), or off' },
);

const bytes = (what: string, min: number) =>
  z.union([z.number(), z.string()]).transform((v, ctx) => {
    const n = parseBytes(v);
    if (Number.isNaN(n) || n < min) {
      ctx.addIssue({ code: 'custom', message: `${what} must be a byte size of at least ${min} (e.g. 4194304 or "4MiB")` });
      return z.NEVER;
    }
    return n;
  });

const tokenSchema = z
  .object({
    name: z.string().regex(NAME_RE, 'must be 1-64 letters, digits, ".", "_", "@" or "-" (it names the actor in the audit log)'),
    role: z.enum(API_ROLES),
    token: z
      .string()
      .min(MIN_TOKEN_LENGTH, `must be at least ${MIN_TOKEN_LENGTH} characters (use: openssl rand -base64 32)`)
      .regex(B64TOKEN_RE, 'may hold only letters, digits and - . _ ~ + / (then = padding): the RFC 6750 token characters')
      .optional(),
    sha256: z.string().regex(SHA256_RE, 'must be 64 hex digits: the SHA-256 of the token (printf %s "$TOKEN" | sha256sum)').optional(),
    tokenEnv: z.string().regex(ENV_NAME_RE, 'must be an environment variable name').optional(),
  })
  .strict()
  .superRefine((t, ctx) => {
    const n = (t.token !== undefined ? 1 : 0) + (t.sha256 !== undefined ? 1 : 0) + (t.tokenEnv !== undefined ? 1 : 0);
    if (n !== 1) ctx.addIssue({ code: 'custom', message: 'give exactly one of token, sha256 or tokenEnv' });
  });

export const apiConfigSchema = z
  .object({
    listen: listen.default(API_DEFAULTS.listen),
    tokens: z
      .array(tokenSchema)
      .default([])
      .superRefine((list, ctx) => {
        const seen = new Set<string>();
        list.forEach((t, i) => {
          if (seen.has(t.name)) ctx.addIssue({ code: 'custom', path: [i, 'name'], message: `duplicate token name '${t.name}'` });
          seen.add(t.name);
        });
      }),
    tls: z.object({ certFile: z.string().min(1), keyFile: z.string().min(1) }).strict().optional(),
    maxBodyBytes: bytes('maxBodyBytes', 1024).default(API_DEFAULTS.maxBodyBytes),
    maxConcurrentExtractions: z.number().int().min(1).max(64).default(API_DEFAULTS.maxConcurrentExtractions),
    maxRangeHours: z.number().positive().max(24 * 366).default(API_DEFAULTS.maxRangeHours),
    maxExtractionFiles: z.number().int().min(1).max(10_000).default(API_DEFAULTS.maxExtractionFiles),
    publicMetrics: z.boolean().default(API_DEFAULTS.publicMetrics),
    // One address or CIDR (`10.0.0.0/8`), a comma-separated string of them, or a YAML list: always a list after parsing.
    trustProxy: z
      .union([z.boolean(), z.number().int().min(0).max(16), z.string(), z.array(z.string())])
      .transform((v, ctx) => {
        if (typeof v === 'boolean' || typeof v === 'number') return v;
        const list = (Array.isArray(v) ? v : v.split(',')).map((a) => a.trim());
        const bad = list.filter((a) => !isAddressOrCidr(a));
        if (bad.length || list.length === 0) {
          ctx.addIssue({ code: 'custom', message: `must be true, false, a hop count, or IP addresses/CIDRs (e.g. 10.0.0.5 or 10.0.0.0/8); got '${bad.join(', ')}'` });
          return z.NEVER;
        }
        return list;
      })
      .default(API_DEFAULTS.trustProxy),
  })
  .strict()
  .prefault({});

function isAddressOrCidr(a: string): boolean {
  const m = /^([^/]+)(?:\/(\d{1,3}))?$/.exec(a);
  if (!m) return false;
  const v = isIP(m[1]!);
  if (v === 0) return false;
  return m[2] === undefined || Number(m[2]) <= (v === 4 ? 32 : 128);
}

export type ApiConfig = z.output<typeof apiConfigSchema>;
export type ApiTokenConfig = z.output<typeof tokenSchema>;

/** A token ready for comparison: only its SHA-256 is kept in memory. */
export interface ApiToken {
  readonly name: string;
  readonly role: ApiRole;
  /** SHA-256 of the token text (32 bytes). */
  readonly digest: Buffer;
}

export function sha256Digest(token: string): Buffer {
  return createHash('sha256').update(token, 'utf8').digest();
}

/** Validate an `api:` section on its own (tests, tools); serve gets it through the main config. */
export function parseApiConfig(raw: unknown): ApiConfig {
  const r = apiConfigSchema.safeParse(raw);
  if (r.success) return r.data;
  const problems: Problem[] = r.error.issues.map((i) => ({
    field: formatPath(['api', ...i.path.filter((s): s is string | number => typeof s !== 'symbol')]),
    message: i.code === 'unrecognized_keys' ? `unknown key ${i.keys.join(', ')}` : i.message,
  }));
  throw new MgError('MG_ERR_CONFIG_INVALID', 'api', { problems });
}

/**
 * The configured tokens as digests. A `tokenEnv` whose variable is unset or too short is a config
 * error naming the entry (the API must not start with a token nobody can present, nor with an empty one).
 */
export function configuredTokens(
  cfg: Pick<ApiConfig, 'tokens'>,
  env: NodeJS.ProcessEnv = process.env,
  /** Where a key is (config file and line), so the problem names it: the config loader's `locate`. */
  locate?: (path: readonly (string | number)[]) => { file?: string; line?: number; flag?: string },
): ApiToken[] {
  const problems: Problem[] = [];
  const out: ApiToken[] = [];
  cfg.tokens.forEach((t, i) => {
    let digest: Buffer;
    if (t.sha256 !== undefined) digest = Buffer.from(t.sha256.toLowerCase(), 'hex');
    else if (t.token !== undefined) digest = sha256Digest(t.token);
    else {
      const v = env[t.tokenEnv!];
      if (v === undefined || v.length < MIN_TOKEN_LENGTH || !B64TOKEN_RE.test(v)) {
        const at = locate?.(['api', 'tokens', i, 'tokenEnv']) ?? {};
        problems.push({
          ...(at.file !== undefined ? { file: at.file } : {}),
          ...(at.line !== undefined ? { line: at.line } : {}),
          field: `api.tokens[${i}].tokenEnv`,
          message:
            v === undefined
              ? `environment variable ${t.tokenEnv} is not set`
              : v.length < MIN_TOKEN_LENGTH
                ? `${t.tokenEnv} holds fewer than ${MIN_TOKEN_LENGTH} characters`
                : `${t.tokenEnv} holds characters a bearer token cannot carry (RFC 6750: letters, digits, - . _ ~ + / and = padding)`,
        });
        return;
      }
      digest = sha256Digest(v);
    }
    out.push(Object.freeze({ name: t.name, role: t.role, digest }));
  });
  if (problems.length) throw new MgError('MG_ERR_CONFIG_INVALID', problems[0]!.file ?? 'api.tokens', { problems });
  return out;
}

/**
 * The tokens `serve` accepts. With none configured, an admin token is generated once into
 * `<dataDir>/api-admin.token` (mode 0600, created exclusively so two starts cannot race) and reused on
 * later starts; one log line names the file. The token itself is never logged.
 */
export function resolveApiTokens(cfg: Pick<ApiConfig, 'tokens'>, dataDir: string, logger?: Logger, env: NodeJS.ProcessEnv = process.env): ApiToken[] {
  const configured = configuredTokens(cfg, env);
  if (configured.length > 0) return configured;
  const file = join(dataDir, ADMIN_TOKEN_FILE);
  let token: string;
  let generated = false;
  try {
    token = `mg_${randomBytes(32).toString('base64url')}`;
    writeFileSync(file, `${token}\n`, { mode: 0o600, flag: 'wx' });
    generated = true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') {
      throw new MgError('MG_ERR_DATA_DIR', `cannot create ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, { cause: e });
    }
    try {
      token = readFileSync(file, 'utf8').trim();
      // A copy restored from backup may have lost its mode; the token is a password.
      if ((statSync(file).mode & 0o077) !== 0) chmodSync(file, 0o600);
    } catch (e2) {
      throw new MgError('MG_ERR_DATA_DIR', `cannot read ${file}: ${(e2 as NodeJS.ErrnoException).code ?? (e2 as Error).message}`, { cause: e2 });
    }
    if (token.length < MIN_TOKEN_LENGTH) {
      throw new MgError('MG_ERR_CONFIG_INVALID', `${file} holds no usable token`, {
        problems: [{ file, line: 1, message: `must hold one token of at least ${MIN_TOKEN_LENGTH} characters; delete the file to generate a new one` }],
      });
    }
  }
  logger?.info(
    { file, role: 'admin', generated },
    generated ? `no api.tokens configured: generated an admin token in ${file}` : `no api.tokens configured: using the admin token in ${file}`,
  );
  return [Object.freeze({ name: 'admin', role: 'admin' as const, digest: sha256Digest(token) })];
}
