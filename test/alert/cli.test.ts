import { storeFromDb } from '../../src/store/store.js';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { run } from '../../src/cli/alerts.js';
import { MgError } from '../../src/errors.js';
import { openDb } from '../../src/store/db.js';
import { disableEndpoint } from '../../src/alert/outbox.js';
import { tmpDir } from '../helpers/tmp.js';
import { Receiver, SECRET, verifySignature } from './helpers.js';

let stdout = '';
let stderr = '';
beforeEach(() => {
  stdout = '';
  stderr = '';
  vi.spyOn(process.stdout, 'write').mockImplementation((s: string | Uint8Array) => ((stdout += String(s)), true));
  vi.spyOn(process.stderr, 'write').mockImplementation((s: string | Uint8Array) => ((stderr += String(s)), true));
});
const receivers: Receiver[] = [];
afterEach(async () => {
  vi.restoreAllMocks();
  for (const r of receivers.splice(0)) await r.close();
});

async function receiver(behaviour?: Receiver['behaviour']): Promise<Receiver> {
  const r = new Receiver();
  if (behaviour) r.behaviour = behaviour;
  await r.listen();
  receivers.push(r);
  return r;
}

async function failure(p: Promise<unknown>): Promise<MgError> {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(MgError);
    return e as MgError;
  }
  throw new Error('expected an MgError');
}

describe('mirrorguard alerts test', () => {
  it('sends one signed webhook.test event and prints the webhook-id', async () => {
    const r = await receiver();
    expect(await run(['test', '--webhook', r.url, '--secret', SECRET])).toBe(0);
    expect(r.requests).toHaveLength(1);
    const req = r.requests[0]!;
    expect(verifySignature(SECRET, req.headers, req.body)).toBe(true);
    expect(JSON.parse(req.body)).toMatchObject({ type: 'webhook.test', data: { message: expect.stringContaining('alerts reach you') } });
    expect(stdout).toContain(`webhook-id: ${String(req.headers['webhook-id'])}`);
    expect(stdout).toContain('answer: HTTP 200');
    // The printed URL is the origin only: webhook URLs can carry credentials.
    expect(stdout).not.toContain('/hook');
  });

  it('fails with MG_ERR_WEBHOOK_SEND (exit 69) and what the receiver answered', async () => {
    const r = await receiver(() => ({ status: 401, body: 'signature mismatch' }));
    const e = await failure(run(['test', '--webhook', r.url, '--secret', SECRET]));
    expect(e.code).toBe('MG_ERR_WEBHOOK_SEND');
    expect(e.exitCode).toBe(69);
    expect(e.message).toContain('HTTP 401 Unauthorized: signature mismatch');
    expect(stdout).toContain('answer: HTTP 401');
  });

  it('reports a receiver that is down, without retrying', async () => {
    const r = await receiver();
    await r.close();
    const e = await failure(run(['test', '--webhook', r.url, '--secret', SECRET, '--timeout-ms', '2000']));
    expect(e.message).toContain('ECONNREFUSED');
    expect(e.message).toContain('the collector would retry this');
  });

  it('signs with a one-off secret, printed, when none is given', async () => {
    const r = await receiver();
    const prev = process.env.MIRRORGUARD_WEBHOOK_SECRET;
    delete process.env.MIRRORGUARD_WEBHOOK_SECRET;
    try {
      expect(await run(['test', '--webhook', r.url])).toBe(0);
    } finally {
      if (prev !== undefined) process.env.MIRRORGUARD_WEBHOOK_SECRET = prev;
    }
    const secret = /one-off secret (whsec_\S+)/.exec(stderr)![1]!;
    expect(verifySignature(secret, r.requests[0]!.headers, r.requests[0]!.body)).toBe(true);
  });

  it('tests every webhook of a config file, in each one\'s format', async () => {
    const std = await receiver();
    const slack = await receiver();
    const dir = tmpDir();
    const file = join(dir, 'mirrorguard.yaml');
    writeFileSync(
      file,
      ['webhooks:', '  - name: pager', `    url: ${std.url}`, '    secretEnv: TEST_PAGER_SECRET', '  - name: chat', `    url: ${slack.url}`, '    format: slack', ''].join('\n'),
    );
    process.env.TEST_PAGER_SECRET = SECRET;
    try {
      expect(await run(['test', '--config', file])).toBe(0);
      expect(verifySignature(SECRET, std.requests[0]!.headers, std.requests[0]!.body)).toBe(true);
      expect(JSON.parse(slack.requests[0]!.body)).toMatchObject({ text: expect.stringContaining('webhook test'), blocks: expect.any(Array) });
      expect(slack.requests[0]!.headers['webhook-signature']).toBeUndefined();
      // --name picks one.
      expect(await run(['test', '--config', file, '--name', 'chat'])).toBe(0);
      expect(std.requests).toHaveLength(1);
      expect(slack.requests).toHaveLength(2);
    } finally {
      delete process.env.TEST_PAGER_SECRET;
    }
    // A bad entry is reported with its line.
    writeFileSync(file, ['webhooks:', '  - url: gopher://x', '    secret: whsec_x', ''].join('\n'));
    const e = await failure(run(['test', '--config', file]));
    expect(e.code).toBe('MG_ERR_WEBHOOK_CONFIG');
    expect(e.describe()).toContain(`${file}:2: webhooks[0].url: only http and https URLs are allowed`);
  });

  it('rejects unknown flags and bad values as usage errors', async () => {
    for (const argv of [['test', '--webhok', 'http://x'], ['test'], ['test', '--webhook', 'http://x', '--format', 'teams'], ['frobnicate'], [], ['test', '--webhook', 'http://x', '--secret', 'nope']]) {
      const e = await failure(run(argv));
      expect([argv, e.code]).toEqual([argv, 'MG_ERR_CLI_USAGE']);
      expect(e.exitCode).toBe(64);
    }
    expect(await run(['--help'])).toBe(0);
    expect(stdout).toContain('usage: mirrorguard alerts <command>');
  });
});

describe('mirrorguard alerts status / enable / retry', () => {
  it('shows a disabled endpoint and re-enables it, requeueing its failed alerts', async () => {
    const dir = tmpDir();
    const db = openDb(join(dir, 'mirrorguard.db'));
    const ins = db.prepare("INSERT INTO outbox (msg_id, endpoint, event_type, finding_id, payload, created_at, next_attempt_at, state) VALUES (?, 'pager', 'finding.created', 'f_1', '{}', ?, ?, ?)");
    ins.run('msg_A', 1, 1, 'pending');
    ins.run('msg_B', 2, 2, 'delivered');
    await disableEndpoint(storeFromDb(db).outbox, 'pager', 'HTTP 410 Gone from http://127.0.0.1:1/…', 3);
    db.close();

    expect(await run(['status', '--data-dir', dir])).toBe(0);
    expect(stdout).toContain('pending 0, delivered 1, failed 1');
    expect(stdout).toContain('DISABLED pager');
    stdout = '';
    expect(await run(['status', '--data-dir', dir, '--json'])).toBe(0);
    expect(JSON.parse(stdout)).toMatchObject({ failed: 1, disabled: [{ name: 'pager' }], recent: [{ msgId: 'msg_B' }, { msgId: 'msg_A', lastError: 'endpoint disabled: HTTP 410 Gone from http://127.0.0.1:1/…' }] });

    expect(await run(['enable', 'pager', '--data-dir', dir, '--requeue'])).toBe(0);
    const db2 = openDb(join(dir, 'mirrorguard.db'));
    try {
      expect(db2.prepare("SELECT state FROM outbox WHERE msg_id = 'msg_A'").get()).toEqual({ state: 'pending' });
      expect(db2.prepare("SELECT disabled_at FROM webhook_endpoints WHERE name = 'pager'").get()).toEqual({ disabled_at: null });
      db2.prepare("UPDATE outbox SET state = 'failed' WHERE msg_id = 'msg_A'").run();
    } finally {
      db2.close();
    }
    stdout = '';
    expect(await run(['retry', '--data-dir', dir, '--endpoint', 'pager'])).toBe(0);
    expect(stdout).toContain('1 failed deliveries requeued');
  });
});
