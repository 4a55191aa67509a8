import { describe, expect, it } from 'vitest';
import {
  generateSecret,
  parseAlertsConfig,
  RETRY_DEFAULTS,
  secretProblem,
  WEBHOOK_DEFAULTS,
  WEBHOOK_SECRET_ENV,
  webhooksFromFlags,
} from '../../src/alert/config.js';
import { MgError } from '../../src/errors.js';
import { parseYamlWithLines } from '../../src/util/yaml-source.js';
import { SECRET } from './helpers.js';

function problemsOf(fn: () => unknown): { field?: string; message: string; line?: number }[] {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(MgError);
    expect((e as MgError).code).toBe('MG_ERR_WEBHOOK_CONFIG');
    expect((e as MgError).exitCode).toBe(78);
    return [...(e as MgError).problems];
  }
  throw new Error('expected MG_ERR_WEBHOOK_CONFIG');
}

describe('webhooks config', () => {
  it('fills defaults, derives names from the host, and freezes the result', () => {
    const { webhooks, alerting } = parseAlertsConfig({
      webhooks: [
        { url: 'https://alerts.example.com/mirrorguard', secret: SECRET },
        { url: 'https://alerts.example.com/other', secret: SECRET },
        { url: 'https://hooks.slack.com/services/T000/B000/XXXX', format: 'slack' },
      ],
    });
    expect(webhooks.map((w) => w.name)).toEqual(['alerts.example.com', 'alerts.example.com-2', 'hooks.slack.com']);
    expect(webhooks[0]).toEqual({
      name: 'alerts.example.com',
      url: 'https://alerts.example.com/mirrorguard',
      secret: SECRET,
      format: 'standard',
      minSeverity: WEBHOOK_DEFAULTS.minSeverity,
      timeoutMs: WEBHOOK_DEFAULTS.timeoutMs,
      maxConcurrency: WEBHOOK_DEFAULTS.maxConcurrency,
      maxAgeSeconds: WEBHOOK_DEFAULTS.maxAgeSeconds,
      updateIntervalSeconds: WEBHOOK_DEFAULTS.updateIntervalSeconds,
      headers: {},
    });
    expect(webhooks[2]!.secret).toBeUndefined();
    expect(Object.isFrozen(webhooks[0])).toBe(true);
    expect(alerting.retry).toEqual(RETRY_DEFAULTS);
    expect(alerting.publicBaseUrl).toBeUndefined();
  });

  it('refuses a standard webhook without a secret, offering a fresh valid one', () => {
    const [p] = problemsOf(() => parseAlertsConfig({ webhooks: [{ name: 'pager', url: 'https://pager.example/h' }] }));
    expect(p!.field).toBe('webhooks[0].secret');
    const offered = /(whsec_\S+)/.exec(p!.message)![1]!;
    expect(secretProblem(offered)).toBeUndefined();
    expect(Buffer.from(offered.slice(6), 'base64')).toHaveLength(32);
  });

  it('reads secrets and header values from the environment', () => {
    const env = { PAGER_SECRET: SECRET, GW_TOKEN: 'Bearer abc' };
    const { webhooks } = parseAlertsConfig(
      { webhooks: [{ name: 'pager', url: 'https://pager.example/h', secretEnv: 'PAGER_SECRET', headers: { Authorization: { env: 'GW_TOKEN' }, 'X-Team': 'secops' } }] },
      { env },
    );
    expect(webhooks[0]!.secret).toBe(SECRET);
    expect(webhooks[0]!.headers).toEqual({ Authorization: 'Bearer abc', 'X-Team': 'secops' });

    const problems = problemsOf(() =>
      parseAlertsConfig({ webhooks: [{ url: 'https://pager.example/h', secretEnv: 'NOPE', headers: { Authorization: { env: 'ALSO_NOPE' } } }] }, { env: {} }),
    );
    expect(problems.map((p) => p.field)).toEqual(['webhooks[0].secretEnv', 'webhooks[0].headers.Authorization']);
    expect(problems[0]!.message).toContain('NOPE is not set');
  });

  it('reports every bad field at once', () => {
    const problems = problemsOf(() =>
      parseAlertsConfig({
        webhooks: [
          { url: 'ftp://files.example/x', secret: SECRET },
          { url: 'https://a.example/h', secret: 'hunter2' },
          { url: 'https://a.example/h', secret: 'whsec_' + Buffer.alloc(8).toString('base64') },
          { url: 'https://a.example/h', secret: SECRET, secretEnv: 'X' },
          { url: 'https://a.example/h', secret: SECRET, headers: { 'webhook-signature': 'v1,forged', 'bad header': 'x' } },
          { url: 'https://a.example/h', secret: SECRET, format: 'teams' },
          { url: 'https://a.example/h', secret: SECRET, kinds: ['rogue-thing'], minSeverity: 'urgent', maxConcurrency: 0 },
          { url: 'https://a.example/h', secret: SECRET, colour: 'red' },
        ],
        alerting: { retry: { initialDelayMs: 0 } },
      }),
    );
    const fields = problems.map((p) => p.field);
    expect(fields).toEqual(
      expect.arrayContaining([
        'webhooks[0].url',
        'webhooks[1].secret',
        'webhooks[2].secret',
        'webhooks[3].secret',
        'webhooks[4].headers.webhook-signature',
        'webhooks[4].headers.bad header',
        'webhooks[5].format',
        'webhooks[6].kinds[0]',
        'webhooks[6].minSeverity',
        'webhooks[6].maxConcurrency',
        'webhooks[7]',
        'alerting.retry.initialDelayMs',
      ]),
    );
    expect(problems.find((p) => p.field === 'webhooks[0].url')!.message).toContain('only http and https');
    expect(problems.find((p) => p.field === 'webhooks[2].secret')!.message).toContain('decodes to 8 bytes');
  });

  it('refuses duplicate explicit names', () => {
    const problems = problemsOf(() =>
      parseAlertsConfig({ webhooks: [{ name: 'a', url: 'https://a.example/1', secret: SECRET }, { name: 'a', url: 'https://a.example/2', secret: SECRET }] }),
    );
    expect(problems).toEqual([{ field: 'webhooks[1].name', message: "duplicate webhook name 'a'" }]);
  });

  it('turns --webhook URLs into entries: Slack by host, others signed from the flag or the environment', () => {
    expect(webhooksFromFlags(['https://hooks.slack.com/services/T/B/X', 'https://pager.example/h'])).toEqual([
      { url: 'https://hooks.slack.com/services/T/B/X', format: 'slack' },
      { url: 'https://pager.example/h', format: 'standard', secretEnv: WEBHOOK_SECRET_ENV },
    ]);
    expect(webhooksFromFlags(['https://pager.example/h'], { secret: SECRET })).toEqual([{ url: 'https://pager.example/h', format: 'standard', secret: SECRET }]);
    // The config loader appends bare URL strings for --webhook; they resolve the same way.
    const { webhooks } = parseAlertsConfig({ webhooks: ['https://pager.example/h', 'https://hooks.slack.com/services/T/B/X'] }, { env: { [WEBHOOK_SECRET_ENV]: SECRET } });
    expect(webhooks.map((w) => [w.name, w.format, w.secret])).toEqual([
      ['pager.example', 'standard', SECRET],
      ['hooks.slack.com', 'slack', undefined],
    ]);
    const [p] = problemsOf(() => parseAlertsConfig({ webhooks: ['https://pager.example/h'] }, { env: {} }));
    expect(p!.message).toContain(`${WEBHOOK_SECRET_ENV} is not set`);
  });

  it('takes alerting settings, normalizing the public base URL', () => {
    const { alerting } = parseAlertsConfig({
      alerting: { publicBaseUrl: 'https://mirrorguard.example.com/', retry: { initialDelayMs: 500, maxDelayMs: 30_000, jitter: 'full' }, pollIntervalMs: 500 },
    });
    expect(alerting).toMatchObject({ publicBaseUrl: 'https://mirrorguard.example.com', pollIntervalMs: 500, retry: { initialDelayMs: 500, maxDelayMs: 30_000, jitter: 'full', multiplier: 2 } });
    expect(problemsOf(() => parseAlertsConfig({ alerting: { retry: { initialDelayMs: 5000, maxDelayMs: 1000 } } }))[0]!.field).toBe('alerting.retry.maxDelayMs');
  });

  it('names the file and line of a problem when the YAML source is known', () => {
    const text = ['dataDir: ./data', 'webhooks:', '  - name: pager', '    url: https://pager.example/h', '    secret: whsec_short', ''].join('\n');
    const src = parseYamlWithLines(text, 'mirrorguard.yaml');
    const value = src.value as { webhooks: unknown };
    const [p] = problemsOf(() => parseAlertsConfig({ webhooks: value.webhooks }, { file: 'mirrorguard.yaml', lineOf: (path) => src.lineOf(path) }));
    expect(p).toMatchObject({ file: 'mirrorguard.yaml', line: 5, field: 'webhooks[0].secret' });
  });

  it('generates secrets the Standard Webhooks way', () => {
    const a = generateSecret();
    expect(a).toMatch(/^whsec_[A-Za-z0-9+/]{43}=$/);
    expect(a).not.toBe(generateSecret());
    expect(secretProblem('whsec_abc')).toContain('padded base64');
    expect(secretProblem('MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw')).toContain("start with 'whsec_'");
  });
});
