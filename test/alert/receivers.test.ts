/**
 * The receiver snippets in docs/alerts.md, run as printed (Python with the Debian interpreter, Node
 * as an ES module), against the real dispatcher: what we document verifies what we send.
 */
import { storeFromDb } from '../../src/store/store.js';
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { afterEach, describe, expect, it } from 'vitest';
import { openDb, type Db } from '../../src/store/db.js';
import { parseAlertsConfig } from '../../src/alert/config.js';
import { AlertOutbox } from '../../src/alert/outbox.js';
import { WebhookDispatcher } from '../../src/alert/dispatcher.js';
import { sendWebhook } from '../../src/alert/send.js';
import { generateSecret } from '../../src/alert/config.js';
import { PROJECT_ROOT } from '../helpers/fixtures.js';
import { itNeeds } from '../helpers/needs.js';
import { PYTHON } from '../helpers/oracles.js';
import { event, FAST_RETRY, finding, SECRET, waitFor } from './helpers.js';

const doc = readFileSync(join(PROJECT_ROOT, 'docs', 'alerts.md'), 'utf8');

function snippet(after: string, lang: string): string {
  const start = doc.indexOf(after);
  expect(start).toBeGreaterThan(0);
  const m = new RegExp('```' + lang + '\\n([\\s\\S]*?)```').exec(doc.slice(start));
  return m![1]!;
}

interface Running {
  port: number;
  lines: string[];
  child: ChildProcessWithoutNullStreams;
}

const children: ChildProcessWithoutNullStreams[] = [];
const dbs: Db[] = [];
afterEach(() => {
  for (const c of children.splice(0)) c.kill('SIGTERM');
  for (const d of dbs.splice(0)) d.close();
});

async function start(cmd: string, args: string[]): Promise<Running> {
  const child = spawn(cmd, args, { env: { ...process.env, PORT: '0', MIRRORGUARD_WEBHOOK_SECRET: SECRET } });
  children.push(child);
  const lines: string[] = [];
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const port = await new Promise<number>((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`receiver exited ${code}: ${stderr}`)));
    createInterface({ input: child.stdout }).on('line', (l) => {
      const m = /^listening on (\d+)/.exec(l);
      if (m) resolve(Number(m[1]));
      else lines.push(l);
    });
  });
  return { port, lines, child };
}

async function exercise(r: Running): Promise<void> {
  const url = `http://127.0.0.1:${r.port}/hook`;
  const db = openDb(':memory:');
  dbs.push(db);
  const { webhooks } = parseAlertsConfig({ webhooks: [{ name: 'doc', url, secret: SECRET }] });
  const dispatcher = new WebhookDispatcher({ outbox: storeFromDb(db).outbox, webhooks, retry: FAST_RETRY, pollIntervalMs: 50 });
  const outbox = new AlertOutbox({ db, webhooks, onEnqueue: () => dispatcher.notify() });
  dispatcher.start();
  try {
    const fs = [finding(), finding({ kind: 'mirror-session-created' }), finding({ severity: 'high', kind: 'unexpected-source' })];
    for (const f of fs) (await outbox.onFindingEvent(event('finding.created', f)));
    await waitFor(() => dispatcher.counters['alert.delivery.delivered'] === 3, 10_000, 'deliveries');
    await waitFor(() => r.lines.length === 3, 5000, 'receiver output');
    const got = r.lines.map((l) => JSON.parse(l) as { id: string; type: string; finding: string });
    const rows = db.prepare<[], { msg_id: string; finding_id: string }>('SELECT msg_id, finding_id FROM outbox ORDER BY id').all();
    expect(got.map((g) => [g.id, g.type, g.finding]).sort()).toEqual(rows.map((x) => [x.msg_id, 'finding.created', x.finding_id]).sort());

    // A retry of the same alert (same webhook-id, new timestamp and signature) is acknowledged, not processed again.
    const first = db.prepare<[], { msg_id: string; payload: string }>('SELECT msg_id, payload FROM outbox ORDER BY id LIMIT 1').get()!;
    const again = await sendWebhook({ url, secret: SECRET, timeoutMs: 5000 }, first.msg_id, first.payload, { now: () => Date.now() + 2000 });
    expect(again.outcome).toBe('delivered');
    // Forged: another secret; and a replay with a stale timestamp.
    const forged = await sendWebhook({ url, secret: generateSecret(), timeoutMs: 5000 }, 'msg_FORGED', first.payload);
    expect(forged.status).toBe(401);
    const stale = await sendWebhook({ url, secret: SECRET, timeoutMs: 5000 }, 'msg_STALE', first.payload, { now: () => Date.now() - 600_000 });
    expect(stale.status).toBe(401);
    await new Promise((res) => setTimeout(res, 200));
    expect(r.lines).toHaveLength(3);
  } finally {
    await dispatcher.stop(0);
  }
}

describe('documented receivers verify real deliveries', () => {
  itNeeds(['python3'], 'Python snippet', async () => {
    await exercise(await start(PYTHON, ['-c', snippet('Python (3.9 or later', 'python')]));
  });

  it('Node.js snippet', async () => {
    await exercise(await start(process.execPath, ['--input-type=module', '-e', snippet('Node.js (18 or later', 'js')]));
  });
});
