/**
 * End-to-end delivery against a real HTTP receiver on loopback: failures, an outage, a restart in the
 * middle of it, 410, 400, a hanging endpoint. Every signature is checked with node:crypto from the
 * spec, not with the package we sign with.
 */
import { storeFromDb } from '../../src/store/store.js';
import { afterEach, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { openDb, type Db } from '../../src/store/db.js';
import { parseAlertsConfig, type ResolvedWebhook, type WebhookEntryInput } from '../../src/alert/config.js';
import { AlertOutbox, listDeliveries, type OutboxRow } from '../../src/alert/outbox.js';
import { WebhookDispatcher } from '../../src/alert/dispatcher.js';
import { tmpDir } from '../helpers/tmp.js';
import { captureLogger, event, FAST_RETRY, finding, Receiver, SECRET, sleep, verifySignature, waitFor } from './helpers.js';

function hooks(...entries: WebhookEntryInput[]): readonly ResolvedWebhook[] {
  return parseAlertsConfig({ webhooks: entries }).webhooks;
}

function rows(db: Db): OutboxRow[] {
  return db.prepare<[], OutboxRow>('SELECT * FROM outbox ORDER BY id').all();
}

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function track<T extends WebhookDispatcher | Receiver>(x: T): T {
  cleanups.push(() => (x instanceof Receiver ? x.close() : (x as WebhookDispatcher).stop(0)));
  return x;
}

/** Record n findings the way the findings store does: the outbox rows in the finding's transaction. */
async function recordFindings(db: Db, outbox: AlertOutbox, n: number): Promise<string[]> {
  const st = storeFromDb(db);
  const ids: string[] = [];
  for (let i = 0; i < n; i++) {
    const f = finding();
    ids.push(f.id);
    await st.tx(async (q) => {
      await q.run('INSERT INTO findings (id, kind, severity, first_seen, last_seen, summary, evidence, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)', [
        f.id,
        f.kind,
        f.severity,
        Date.parse(f.firstSeen),
        Date.parse(f.lastSeen),
        f.summary,
        JSON.stringify(f.evidence),
        Date.now(),
      ]);
      await outbox.onFindingEvent(event('finding.created', f), q);
    });
  }
  return ids;
}

function expectExactlyOnce(receiver: Receiver, db: Db): void {
  const msgIds = rows(db).map((r) => r.msg_id).sort();
  const accepted = receiver.acceptedIds();
  // Every alert accepted exactly once, and nothing accepted that is not an alert.
  expect([...accepted].sort()).toEqual(msgIds);
  expect(new Set(accepted).size).toBe(accepted.length);
  for (const r of rows(db)) expect(r.state).toBe('delivered');
  for (const req of receiver.requests) expect(verifySignature(SECRET, req.headers, req.body)).toBe(true);
}

describe('webhook delivery', () => {
  it('survives failures, an outage and a return on the same port: each alert accepted once, signed', async () => {
    const receiver = track(new Receiver());
    // The first requests fail (500; the second 503 with Retry-After), then the receiver goes down, then
    // it comes back healthy.
    let healthy = false;
    receiver.behaviour = (n) => (healthy ? { status: 204 } : n === 2 ? { status: 503, headers: { 'retry-after': '1' } } : { status: 500 });
    await receiver.listen();
    const db = openDb(':memory:');
    cleanups.push(() => db.close());
    const webhooks = hooks({ name: 'pager', url: receiver.url, secret: SECRET, maxConcurrency: 2 });
    const dispatcher = track(new WebhookDispatcher({ outbox: storeFromDb(db).outbox, webhooks, retry: FAST_RETRY, pollIntervalMs: 50 }));
    const outbox = new AlertOutbox({ db, webhooks, onEnqueue: () => dispatcher.notify() });
    dispatcher.start();

    await recordFindings(db, outbox, 3);
    await waitFor(() => receiver.requests.length >= 3, 5000, 'three failed attempts');
    await receiver.close();
    // Down: more alerts arrive while connections are refused.
    await recordFindings(db, outbox, 2);
    await waitFor(() => rows(db).every((r) => r.attempts >= 1) && dispatcher.counters['alert.delivery.retried'] >= 6, 5000, 'attempts during the outage');
    expect(rows(db).filter((r) => r.state === 'delivered')).toHaveLength(0);
    const lastErrors = rows(db).map((r) => r.last_error ?? '');
    expect(lastErrors.some((e) => e.includes('ECONNREFUSED'))).toBe(true);
    const beforeReturn = receiver.requests.length;

    healthy = true;
    await receiver.listen(); // same port
    await waitFor(() => rows(db).every((r) => r.state === 'delivered'), 5000, 'all delivered');
    expect(receiver.requests.length).toBeGreaterThan(beforeReturn);
    expectExactlyOnce(receiver, db);
    // The failed attempts carried the same ids as the later successes: the idempotency key held.
    const failedIds = receiver.requests.filter((r) => (r.status ?? 0) >= 500).map((r) => String(r.headers['webhook-id']));
    for (const id of failedIds) expect(receiver.acceptedIds()).toContain(id);
    // Bodies are the Standard Webhooks shape.
    for (const req of receiver.requests) {
      const body = JSON.parse(req.body) as { type: string; timestamp: string; data: { id: string } };
      expect(body.type).toBe('finding.created');
      expect(Number.isNaN(Date.parse(body.timestamp))).toBe(false);
      expect(body.data.id).toMatch(/^f_test/);
      expect(Math.abs(Number(req.headers['webhook-timestamp']) - req.at / 1000)).toBeLessThan(5);
    }
    const s = await dispatcher.stats();
    expect(s).toMatchObject({ pending: 0, delivered: 5, failed: 0 });
    expect(s.byEndpoint['pager']).toMatchObject({ delivered: 5, consecutiveFailures: 0 });
  });

  it('loses nothing and double-sends nothing across a restart in the middle of an outage', async () => {
    const dir = tmpDir();
    const file = join(dir, 'mirrorguard.db');
    const receiver = track(new Receiver());
    await receiver.listen();
    await receiver.close(); // reserve a port, then be down
    let db = openDb(file);
    const webhooks = hooks({ name: 'pager', url: receiver.url, secret: SECRET });
    // The first collector backs off for a long time: after the restart the rows must not wait it out.
    const slow = { ...FAST_RETRY, initialDelayMs: 60_000, maxDelayMs: 60_000 };
    const d1 = new WebhookDispatcher({ outbox: storeFromDb(db).outbox, webhooks, retry: slow, pollIntervalMs: 50 });
    const o1 = new AlertOutbox({ db, webhooks, onEnqueue: () => d1.notify() });
    // The four alerts are in before the first attempt, so that each gets one refused attempt.
    await recordFindings(db, o1, 4);
    d1.start();
    await waitFor(() => rows(db).every((r) => r.attempts === 1 && r.last_error !== null), 5000, 'one refused attempt each');
    expect(rows(db).every((r) => r.next_attempt_at > Date.now() + 20_000)).toBe(true);
    await d1.stop();
    db.close();

    // Restart: a new process opens the same file; the receiver comes back meanwhile.
    await receiver.listen();
    db = openDb(file);
    cleanups.push(() => db.close());
    const started = Date.now();
    const d2 = track(new WebhookDispatcher({ outbox: storeFromDb(db).outbox, webhooks, retry: FAST_RETRY, pollIntervalMs: 50 }));
    d2.start();
    await waitFor(() => rows(db).every((r) => r.state === 'delivered'), 5000, 'all delivered after restart');
    expect(Date.now() - started).toBeLessThan(2000); // promptly, not after the 60 s backoff
    expect(rows(db)).toHaveLength(4);
    expectExactlyOnce(receiver, db);
    await d2.stop();

    // Another restart: delivered rows are never sent again.
    const count = receiver.requests.length;
    const d3 = track(new WebhookDispatcher({ outbox: storeFromDb(db).outbox, webhooks, retry: FAST_RETRY, pollIntervalMs: 20 }));
    d3.start();
    await sleep(300);
    expect(receiver.requests.length).toBe(count);
  });

  it('stop() does not wait for a hanging request; the alert is resent under the same webhook-id', async () => {
    const receiver = track(new Receiver());
    let hang = true;
    receiver.behaviour = () => (hang ? { hang: true } : { status: 200 });
    await receiver.listen();
    const db = openDb(':memory:');
    cleanups.push(() => db.close());
    const webhooks = hooks({ name: 'slowpoke', url: receiver.url, secret: SECRET, timeoutMs: 30_000 });
    const d1 = new WebhookDispatcher({ outbox: storeFromDb(db).outbox, webhooks, retry: FAST_RETRY, pollIntervalMs: 50 });
    const o1 = new AlertOutbox({ db, webhooks, onEnqueue: () => d1.notify() });
    d1.start();
    await recordFindings(db, o1, 1);
    await waitFor(() => receiver.requests.length === 1, 5000, 'the request to arrive');
    const t0 = Date.now();
    await d1.stop(100);
    expect(Date.now() - t0).toBeLessThan(2000);
    const [row] = rows(db);
    expect(row).toMatchObject({ state: 'pending', attempts: 1, last_error: 'interrupted by shutdown' });

    hang = false;
    const d2 = track(new WebhookDispatcher({ outbox: storeFromDb(db).outbox, webhooks, retry: FAST_RETRY, pollIntervalMs: 50 }));
    d2.start();
    await waitFor(() => rows(db)[0]!.state === 'delivered', 5000, 'redelivery');
    const ids = receiver.requests.map((r) => r.headers['webhook-id']);
    expect(ids).toEqual([row!.msg_id, row!.msg_id]);
    expect(receiver.acceptedIds()).toEqual([row!.msg_id]);
  });

  it('honours Retry-After on 429 (as a floor on the backoff)', async () => {
    const receiver = track(new Receiver());
    receiver.behaviour = (n) => (n === 1 ? { status: 429, headers: { 'retry-after': '1' } } : { status: 200 });
    await receiver.listen();
    const db = openDb(':memory:');
    cleanups.push(() => db.close());
    const webhooks = hooks({ name: 'limited', url: receiver.url, secret: SECRET });
    const dispatcher = track(new WebhookDispatcher({ outbox: storeFromDb(db).outbox, webhooks, retry: { ...FAST_RETRY, retryAfterMaxMs: 5000 }, pollIntervalMs: 20 }));
    const outbox = new AlertOutbox({ db, webhooks, onEnqueue: () => dispatcher.notify() });
    dispatcher.start();
    await recordFindings(db, outbox, 1);
    await waitFor(() => rows(db)[0]!.state === 'delivered', 5000, 'delivery after Retry-After');
    const [first, second] = receiver.requests;
    // The backoff alone would retry within 20 ms; the receiver asked for a second.
    expect(second!.at - first!.at).toBeGreaterThanOrEqual(950);
    expect(rows(db)[0]!.attempts).toBe(2);
  });

  it('gives up after maxAgeSeconds and marks the alert failed, visible in stats', async () => {
    const receiver = track(new Receiver());
    receiver.behaviour = () => ({ status: 502, body: 'bad gateway' });
    await receiver.listen();
    const db = openDb(':memory:');
    cleanups.push(() => db.close());
    const webhooks = hooks({ name: 'flaky', url: receiver.url, secret: SECRET, maxAgeSeconds: 1 });
    const { log, lines } = captureLogger();
    const dispatcher = track(new WebhookDispatcher({ outbox: storeFromDb(db).outbox, webhooks, retry: FAST_RETRY, pollIntervalMs: 20, log }));
    const outbox = new AlertOutbox({ db, webhooks, onEnqueue: () => dispatcher.notify() });
    dispatcher.start();
    await recordFindings(db, outbox, 1);
    await waitFor(() => rows(db)[0]!.state === 'failed', 5000, 'give-up');
    const [row] = rows(db);
    expect(row!.last_status).toBe(502);
    expect(row!.last_error).toMatch(/^gave up after \d+ attempt\(s\) over 1 s: HTTP 502 Bad Gateway: bad gateway$/);
    expect(row!.attempts).toBeGreaterThan(3);
    const s = await dispatcher.stats();
    expect(s.failed).toBe(1);
    expect(s.counters['alert.delivery.gave_up']).toBe(1);
    expect((await listDeliveries(storeFromDb(db).outbox, { state: 'failed' }))[0]).toMatchObject({ endpoint: 'flaky', state: 'failed', lastStatus: 502 });
    // Retries are logged at a limited rate: one warning line, not one per attempt.
    expect(lines.filter((l) => l.level === 40)).toHaveLength(1);
    expect(lines.some((l) => l.level === 50 && l.msg.includes('alert undelivered'))).toBe(true);
  });

  it('410 Gone disables the endpoint loudly; other endpoints carry on', async () => {
    const gone = track(new Receiver());
    gone.behaviour = () => ({ status: 410 });
    await gone.listen();
    const ok = track(new Receiver());
    await ok.listen();
    const db = openDb(':memory:');
    cleanups.push(() => db.close());
    const webhooks = hooks({ name: 'old', url: gone.url, secret: SECRET, maxConcurrency: 1 }, { name: 'new', url: ok.url, secret: SECRET });
    const { log, lines } = captureLogger();
    const dispatcher = track(new WebhookDispatcher({ outbox: storeFromDb(db).outbox, webhooks, retry: FAST_RETRY, pollIntervalMs: 20, log }));
    const outbox = new AlertOutbox({ db, webhooks, onEnqueue: () => dispatcher.notify() });
    dispatcher.start();
    await recordFindings(db, outbox, 3);
    await waitFor(() => ok.acceptedIds().length === 3 && dispatcher.isDisabled('old'), 5000, 'disable');
    await sleep(100);
    // One 410 was enough: the rest of its queue failed without being sent.
    expect(gone.requests).toHaveLength(1);
    const old = rows(db).filter((r) => r.endpoint === 'old');
    expect(old.map((r) => r.state)).toEqual(['failed', 'failed', 'failed']);
    expect(old[0]!.last_status).toBe(410);
    const ep = db.prepare<[], { disabled_at: number | null; reason: string }>("SELECT disabled_at, reason FROM webhook_endpoints WHERE name = 'old'").get();
    expect(ep!.disabled_at).toBeGreaterThan(0);
    expect(ep!.reason).toContain('410');
    const loud = lines.find((l) => l.level === 50 && l.msg.includes("WEBHOOK 'old' DISABLED"));
    expect(loud).toBeDefined();
    // The URL may carry a credential (Slack); the log shows only its origin.
    expect(JSON.stringify(loud)).not.toContain('/hook');

    // New findings skip the disabled endpoint, and a restart keeps it disabled.
    await recordFindings(db, outbox, 1);
    await waitFor(() => ok.acceptedIds().length === 4, 5000, 'healthy endpoint');
    expect(outbox.counters['alert.outbox.skipped_disabled']).toBe(1);
    expect(rows(db).filter((r) => r.endpoint === 'old')).toHaveLength(3);
    expect(gone.requests).toHaveLength(1);
  });

  it('400 fails without retry; 3xx is not followed', async () => {
    const receiver = track(new Receiver());
    receiver.behaviour = (n) => (n === 1 ? { status: 400, body: '{"error":"unknown field"}' } : { status: 302, headers: { location: 'http://elsewhere.example/' } });
    await receiver.listen();
    const db = openDb(':memory:');
    cleanups.push(() => db.close());
    const webhooks = hooks({ name: 'strict', url: receiver.url, secret: SECRET, maxConcurrency: 1 });
    const dispatcher = track(new WebhookDispatcher({ outbox: storeFromDb(db).outbox, webhooks, retry: FAST_RETRY, pollIntervalMs: 20 }));
    const outbox = new AlertOutbox({ db, webhooks, onEnqueue: () => dispatcher.notify() });
    dispatcher.start();
    await recordFindings(db, outbox, 2);
    await waitFor(() => rows(db).every((r) => r.state === 'failed'), 5000, 'both failed');
    await sleep(150);
    expect(receiver.requests).toHaveLength(2);
    const [a, b] = rows(db);
    expect(a).toMatchObject({ attempts: 1, last_status: 400, last_error: 'HTTP 400 Bad Request: {"error":"unknown field"}' });
    expect(b).toMatchObject({ attempts: 1, last_status: 302 });
    expect(b!.last_error).toContain('redirect to http://elsewhere.example/');
    expect(dispatcher.counters['alert.delivery.rejected']).toBe(2);
  });

  it('a hanging endpoint times out without delaying a healthy one', async () => {
    const hanging = track(new Receiver());
    hanging.behaviour = () => ({ hang: true });
    await hanging.listen();
    const healthy = track(new Receiver());
    await healthy.listen();
    const db = openDb(':memory:');
    cleanups.push(() => db.close());
    const webhooks = hooks(
      { name: 'stuck', url: hanging.url, secret: SECRET, timeoutMs: 1500, maxConcurrency: 1 },
      { name: 'fine', url: healthy.url, secret: SECRET, maxConcurrency: 1 },
    );
    const dispatcher = track(new WebhookDispatcher({ outbox: storeFromDb(db).outbox, webhooks, retry: FAST_RETRY, pollIntervalMs: 20 }));
    const outbox = new AlertOutbox({ db, webhooks, onEnqueue: () => dispatcher.notify() });
    dispatcher.start();
    await recordFindings(db, outbox, 3);
    await waitFor(() => healthy.acceptedIds().length === 3, 5000, 'healthy deliveries');
    // All three reached the healthy endpoint while the stuck one's first request was still hanging.
    const stuck = rows(db).filter((r) => r.endpoint === 'stuck');
    expect(stuck.map((r) => [r.attempts, r.last_error])).toEqual([
      [1, null],
      [0, null],
      [0, null],
    ]);
    expect(hanging.requests).toHaveLength(1); // concurrency 1: one stuck request, the rest wait in the outbox
    await waitFor(() => rows(db).some((r) => r.endpoint === 'stuck' && r.last_error === 'timed out after 1500 ms'), 5000, 'timeout recorded');
    expect(dispatcher.counters['alert.delivery.timeouts']).toBeGreaterThanOrEqual(1);
    expect(rows(db).filter((r) => r.endpoint === 'stuck').every((r) => r.state === 'pending')).toBe(true);
  });

  it('sends configured static headers, which may replace the user agent but not the signature', async () => {
    const receiver = track(new Receiver());
    await receiver.listen();
    const db = openDb(':memory:');
    cleanups.push(() => db.close());
    const webhooks = hooks({ name: 'gw', url: receiver.url, secret: SECRET, headers: { Authorization: 'Bearer gw-token', 'User-Agent': 'acme-relay/2' } });
    const dispatcher = track(new WebhookDispatcher({ outbox: storeFromDb(db).outbox, webhooks, retry: FAST_RETRY, pollIntervalMs: 20 }));
    const outbox = new AlertOutbox({ db, webhooks, onEnqueue: () => dispatcher.notify() });
    dispatcher.start();
    await recordFindings(db, outbox, 1);
    await waitFor(() => receiver.acceptedIds().length === 1, 5000, 'delivery');
    const h = receiver.requests[0]!.headers;
    expect([h['authorization'], h['user-agent'], h['content-type']]).toEqual(['Bearer gw-token', 'acme-relay/2', 'application/json']);
    expect(verifySignature(SECRET, h, receiver.requests[0]!.body)).toBe(true);
  });

  it('delivers to Slack unsigned, in the Slack shape', async () => {
    const receiver = track(new Receiver());
    await receiver.listen();
    const db = openDb(':memory:');
    cleanups.push(() => db.close());
    const webhooks = hooks({ name: 'slack', url: receiver.url, format: 'slack' });
    const dispatcher = track(new WebhookDispatcher({ outbox: storeFromDb(db).outbox, webhooks, retry: FAST_RETRY, pollIntervalMs: 20 }));
    const outbox = new AlertOutbox({ db, webhooks, alerting: { publicBaseUrl: 'https://mirrorguard.example.com' }, onEnqueue: () => dispatcher.notify() });
    dispatcher.start();
    await recordFindings(db, outbox, 1);
    await waitFor(() => receiver.acceptedIds().length === 1, 5000, 'slack delivery');
    const req = receiver.requests[0]!;
    expect(req.headers['webhook-signature']).toBeUndefined();
    expect(req.headers['content-type']).toBe('application/json');
    const body = JSON.parse(req.body) as { text: string; blocks: { type: string }[] };
    expect(body.text).toContain('CRITICAL');
    expect(body.blocks.map((b) => b.type)).toEqual(['header', 'section', 'section', 'actions', 'context']);
  });
});
