/**
 * The example files in deploy/examples load the way serve loads them, and `manifest init` bootstraps a
 * manifest from the AWS CLI's describe-traffic-mirror-sessions output (../shared/fixtures/aws-cli) that
 * `manifest check` accepts, without ever overwriting a file unasked.
 */
import { randomInt } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseAlertsConfig, secretProblem } from '../../src/alert/config.js';
import { configuredTokens, parseApiConfig } from '../../src/api/config.js';
import { loadConfig } from '../../src/config/load.js';
import type { MgError } from '../../src/errors.js';
import { loadManifest } from '../../src/detect/manifest.js';
import { describeWithFixtures, fixture, PROJECT_ROOT } from '../helpers/fixtures.js';
import { runCli } from '../helpers/serve.js';
import { useTmpDir } from '../helpers/tmp.js';

const EXAMPLES = join(PROJECT_ROOT, 'deploy', 'examples');
const CONFIG = join(EXAMPLES, 'config.yaml');
const MANIFEST = join(EXAMPLES, 'manifest.yaml');
const DESCRIBE = fixture('aws-cli', 'aws-cli-describe-traffic-mirror-sessions.output.json');

/** What Secrets Manager's GenerateSecretString gives with ExcludePunctuation: letters and digits. */
function alnum(n: number): string {
  const abc = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
  return Array.from({ length: n }, () => abc[randomInt(abc.length)]).join('');
}

describe('deploy/examples/config.yaml', () => {
  it('loads through the config loader with the values the deployment relies on', () => {
    const cfg = loadConfig({ file: CONFIG });
    expect(cfg.listen).toBe('0.0.0.0:4789');
    expect(cfg.dataDir).toBe('/var/lib/mirrorguard');
    expect(cfg.manifest).toBe('/etc/mirrorguard/manifest.yaml');
    expect(cfg.detect.inventory.intervalSeconds).toBe(300);
    expect(cfg.retention.minFreeBytes).toBeGreaterThan(0);
  });

  it('has an api section the API accepts: TLS, and tokens that resolve from the service environment', () => {
    const api = parseApiConfig(loadConfig({ file: CONFIG }).api);
    expect(api.listen).toBe('0.0.0.0:8443');
    expect(api.tls).toEqual({ certFile: '/etc/mirrorguard/tls/api.crt', keyFile: '/etc/mirrorguard/tls/api.key' });
    // CloudFormation generates 48 letters and digits for each token (GenerateSecretString).
    const env = { MIRRORGUARD_ADMIN_TOKEN: alnum(48), MIRRORGUARD_INGEST_TOKEN: alnum(48) };
    const tokens = configuredTokens(api, env);
    expect(tokens.map((t) => [t.name, t.role])).toEqual([
      ['admin', 'admin'],
      ['eventbridge', 'ingest'],
    ]);
    // Without the environment file, serve refuses to start rather than run with a token nobody has.
    let err: unknown;
    try {
      configuredTokens(api, {});
    } catch (e) {
      err = e;
    }
    expect((err as MgError).code).toBe('MG_ERR_CONFIG_INVALID');
    expect((err as MgError).problems.map((p) => p.message)).toEqual(['environment variable MIRRORGUARD_ADMIN_TOKEN is not set', 'environment variable MIRRORGUARD_INGEST_TOKEN is not set']);
  });

  it('takes the webhook the CloudFormation stack passes in MIRRORGUARD_OPTS, signed with the generated secret', () => {
    const cfg = loadConfig({ file: CONFIG, overrides: [{ path: ['webhooks'], value: ['https://alerts.example.com/mirrorguard'], flag: '--webhook' }] });
    // The stack's WebhookSigningSecret: 44 letters and digits, written as whsec_<value>.
    const secret = `whsec_${alnum(44)}`;
    expect(secretProblem(secret)).toBeUndefined();
    const alerts = parseAlertsConfig({ webhooks: cfg.webhooks, alerting: cfg.alerting }, { env: { MIRRORGUARD_WEBHOOK_SECRET: secret } });
    expect(alerts.webhooks).toHaveLength(1);
    expect(alerts.webhooks[0]).toMatchObject({ url: 'https://alerts.example.com/mirrorguard', format: 'standard', secret });
  });
});

describe('deploy/examples/manifest.yaml', () => {
  it('loads, with every session and its sources', () => {
    const m = loadManifest(MANIFEST);
    expect(m.sessions.map((s) => [s.id, s.vni])).toEqual([
      ['tms-0a1b2c3d4e5f60718', 5569041],
      ['tms-0b1b2c3d4e5f60718', 42],
      ['tms-0c1b2c3d4e5f60718', 42],
      ['tms-0d1b2c3d4e5f60718', 7001],
    ]);
    expect(m.sessions[2]!.sourceIps).toEqual(['10.20.3.10', '2001:db8:20:3::10']);
  });

  it('passes mirrorguard manifest check', () => {
    const r = runCli(['manifest', 'check', MANIFEST]);
    expect(r.stderr).toBe('');
    expect(r.stdout).toMatch(/valid, 4 sessions, sha256 [0-9a-f]{64}/);
    expect(r.status).toBe(0);
  });
});

describeWithFixtures('manifest init on the AWS CLI sample output', () => {
  const tmp = useTmpDir('mg-init-');

  it('writes a manifest with the review header that manifest check accepts; the documentation placeholders stay commented out', () => {
    const out = join(tmp.path, 'manifest.yaml');
    const r = runCli(['manifest', 'init', '--describe-json', DESCRIBE, '--out', out]);
    expect(r.status).toBe(0);
    const text = readFileSync(out, 'utf8');
    expect(text).toMatch(/REVIEW EVERY ENTRY BEFORE TRUSTING IT/);
    expect(text).toContain(`from ${DESCRIBE}`);
    // The AWS CLI examples use IDs such as tms-0567a4c684EXAMPLE, which no real session has.
    expect(text).toMatch(/# NOT INCLUDED: session ID "tms-0567a4c684EXAMPLE"/);
    expect(text).toMatch(/# NOT INCLUDED: session ID "tms-0060101cf8EXAMPLE"/);
    expect(r.stderr).toMatch(/left tms-0567a4c684EXAMPLE commented out/);
    expect(r.stderr).toMatch(/REVIEW EVERY ENTRY/);
    const check = runCli(['manifest', 'check', out]);
    expect(check.stdout).toMatch(/valid, 0 sessions/);
    expect(check.status).toBe(0);
  });

  it('turns sessions with real IDs into entries that load, with VNI, ENI, target and filter', () => {
    // The same output with the placeholders replaced by well-formed IDs, as a live account returns them.
    const real = readFileSync(DESCRIBE, 'utf8').replace(/(tms|eni|tmt|tmf)-([0-9a-f]{10})EXAMPLE/g, (_m, p: string, hex: string) => `${p}-${hex}0000000`);
    const input = join(tmp.path, 'sessions.json');
    writeFileSync(input, real);
    const out = join(tmp.path, 'manifest.yaml');
    const r = runCli(['manifest', 'init', '--describe-json', input, '--out', out]);
    expect(r.status).toBe(0);
    expect(r.stderr).toMatch(/2 sessions written/);
    const m = loadManifest(out);
    expect(m.sessions.map((s) => [s.id, s.vni, s.sourceEni, s.targetId, s.filterId])).toEqual([
      ['tms-0567a4c6840000000', 42, 'eni-0a471a5cf30000000', 'tmt-0dabe9b0a60000000', 'tmf-083e18f9850000000'],
      ['tms-0060101cf80000000', 13314501, 'eni-0a471a5cf30000000', 'tmt-03665551cb0000000', 'tmf-06c787846c0000000'],
    ]);
    // What the reviewer still has to fill in is spelled out next to each entry.
    expect(readFileSync(out, 'utf8')).toMatch(/# sourceIps: \[\?\] +\(the primary IP of eni-0a471a5cf30000000\)/);
  });

  it('refuses to overwrite an existing file unless --force, and leaves it untouched', () => {
    const out = join(tmp.path, 'manifest.yaml');
    writeFileSync(out, 'version: 1\nsessions: []\n# reviewed by secops\n');
    const r = runCli(['manifest', 'init', '--describe-json', DESCRIBE, '--out', out]);
    expect(r.status).toBe(73);
    expect(r.stderr).toMatch(/MG_ERR_MANIFEST_EXISTS/);
    expect(r.stderr).toMatch(/--force/);
    expect(readFileSync(out, 'utf8')).toBe('version: 1\nsessions: []\n# reviewed by secops\n');

    const forced = runCli(['manifest', 'init', '--describe-json', DESCRIBE, '--out', out, '--force']);
    expect(forced.status).toBe(0);
    expect(readFileSync(out, 'utf8')).toMatch(/REVIEW EVERY ENTRY/);
  });
});
