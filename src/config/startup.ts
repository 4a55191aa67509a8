/**
 * Everything `serve` can check before it binds or creates anything, in one place, so that a bad start
 * fails early and names where the problem is (the fastify lesson: validate, fail fast, freeze). `serve`
 * runs it before building the app; `mirrorguard config check` runs only this.
 *
 * Order: the config (file + flags) itself; then what it refers to in the environment (webhook secrets,
 * API token variables), reported together; then the files it names (TLS, manifest); then the data
 * directory and catalog, read-only: nothing is created here. What needs the real resource (a port
 * already in use) still fails at bind, with its own code (MG_ERR_INGEST_BIND, MG_ERR_API_BIND).
 */
import { accessSync, constants, existsSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { probeDb } from '../store/db.js';
import { parseAlertsConfig, type AlertingConfig, type ResolvedWebhook } from '../alert/config.js';
import { configuredTokens } from '../api/config.js';
import { CATALOG_FILE } from '../collector/layout.js';
import { loadManifestIsolated } from '../detect/manifest-isolated.js';
import { loadSigningKey, type SigningKey } from '../ledger/keys.js';
import type { Manifest } from '../detect/manifest-types.js';
import { isMgError, MgError, type Problem } from '../errors.js';
import { loadConfigWithSource, type LoadConfigOptions, type LoadedConfig } from './load.js';

export interface StartupPlan {
  loaded: LoadedConfig;
  alerts: { webhooks: readonly ResolvedWebhook[]; alerting: AlertingConfig };
  manifest: Manifest | null;
  /** The ledger's key, read and checked (archive.s3 set), else null. */
  signingKey: SigningKey | null;
}

export function checkStartup(opts: LoadConfigOptions & { env?: NodeJS.ProcessEnv } = {}): StartupPlan {
  const env = opts.env ?? process.env;
  const loaded = loadConfigWithSource(opts);
  const { config, file } = loaded;

  // Environment references: webhook secrets and API token variables, every problem in one report.
  let alerts: StartupPlan['alerts'] | undefined;
  let webhookError: MgError | undefined;
  const tokenProblems: Problem[] = [];
  try {
    alerts = parseAlertsConfig({ webhooks: config.webhooks, alerting: config.alerting }, { env, ...(file ? { file } : {}), lineOf: loaded.lineOf, flagOf: loaded.flagOf });
  } catch (e) {
    if (!isMgError(e)) throw e;
    webhookError = e;
  }
  if (config.api.listen !== 'off') {
    try {
      configuredTokens(config.api, env, loaded.locate);
    } catch (e) {
      if (!isMgError(e)) throw e;
      tokenProblems.push(...e.problems);
    }
  }
  if (tokenProblems.length) {
    throw new MgError('MG_ERR_CONFIG_INVALID', file ?? 'flags', { problems: [...tokenProblems, ...(webhookError?.problems ?? [])] });
  }
  if (webhookError) throw webhookError;

  if (config.api.listen !== 'off' && config.api.tls) {
    for (const key of ['certFile', 'keyFile'] as const) {
      const path = config.api.tls[key];
      try {
        accessSync(path, constants.R_OK);
      } catch (e) {
        const at = loaded.locate(['api', 'tls', key]);
        throw new MgError('MG_ERR_API_TLS', `${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, {
          problems: [{ ...(at.file ? { file: at.file } : {}), ...(at.line ? { line: at.line } : {}), field: at.flag ?? `api.tls.${key}`, message: `cannot read ${path}` }],
        });
      }
    }
  }

  // The archive signs every upload into the ledger: no key, no archive (a fleet must not keep unsigned evidence).
  let signingKey: SigningKey | null = null;
  if (config.archive.s3 !== null) {
    const at = loaded.locate(['archive', 'signingKey']);
    const where = { ...(at.file ? { file: at.file } : {}), ...(at.line ? { line: at.line } : {}), field: at.flag ?? 'archive.signingKey' };
    if (config.archive.signingKey === null) {
      throw new MgError('MG_ERR_CONFIG_INVALID', file ?? 'flags', {
        problems: [{ ...where, message: "archive.s3 is set but archive.signingKey is not: the ledger signs every archived file ('mirrorguard keys init')" }],
      });
    }
    try {
      signingKey = loadSigningKey(config.archive.signingKey);
    } catch (e) {
      if (!isMgError(e)) throw e;
      throw new MgError('MG_ERR_KEY_READ', `archive.signingKey ${config.archive.signingKey}`, { problems: [{ ...where, message: e.message }], cause: e });
    }
  }

  // A large manifest is parsed in a child process: its parse would otherwise set serve's peak memory.
  const manifest = config.manifest ? loadManifestIsolated(config.manifest) : null;
  checkDataDir(config.dataDir);
  return { loaded, alerts: alerts!, manifest, signingKey };
}

/**
 * The data directory must be a writable directory, or creatable: its nearest existing ancestor is a
 * writable directory. An existing catalog must open and read (a corrupt file is refused here, not
 * halfway through the start).
 */
export function checkDataDir(dir: string): void {
  const fail = (detail: string) => new MgError('MG_ERR_DATA_DIR', `${dir}: ${detail}`, { problems: [{ field: 'dataDir', message: detail }] });
  let probe = dir;
  while (!existsSync(probe)) {
    const up = dirname(probe);
    if (up === probe) break;
    probe = up;
  }
  let st;
  try {
    st = statSync(probe);
  } catch (e) {
    throw fail(`cannot stat ${probe}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  if (!st.isDirectory()) throw fail(probe === dir ? 'is not a directory' : `${probe} is not a directory`);
  try {
    accessSync(probe, constants.W_OK | constants.X_OK);
  } catch {
    throw fail(probe === dir ? 'is not writable by this user' : `does not exist, and ${probe} is not writable by this user to create it`);
  }
  const catalog = join(dir, CATALOG_FILE);
  if (probe === dir && existsSync(catalog)) {
    probeDb(catalog);
  }
}
