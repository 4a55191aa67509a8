/**
 * Alert delivery as `serve` wires it: the durable outbox written with each finding, the dispatcher that
 * delivers it, and the pruning of finished deliveries (called from the retention timer).
 */
import type { Logger } from '../util/log.js';
import type { Db } from '../store/db.js';
import type { OutboxRepo } from '../store/outbox.js';
import { storeFromDb } from '../store/store.js';
import type { AlertingConfig, ResolvedWebhook } from './config.js';
import { WebhookDispatcher, type DispatcherStats } from './dispatcher.js';
import type { Sql } from '../store/engine.js';
import { AlertOutbox, pruneDeliveries, type OutboxCounters } from './outbox.js';
import type { FindingEvent } from '../detect/finding.js';

const DAY_MS = 86_400_000;

export interface AlertStats extends Omit<DispatcherStats, 'counters'> {
  counters: DispatcherStats['counters'] & OutboxCounters;
}

export interface Alerts {
  outbox: AlertOutbox;
  dispatcher: WebhookDispatcher;
  /** Pass as (or call from) the findings store's onChange. */
  onFindingEvent: (e: FindingEvent, q?: Sql) => Promise<void>;
  start(): void;
  stop(): Promise<void>;
  stats(): Promise<AlertStats>;
  /** The counters alone, without asking the store. */
  counters(): AlertStats['counters'];
  /**
   * Delete delivered and given-up deliveries older than alerting.keepDeliveriesDays (never pending
   * ones); returns how many went. 0 days keeps everything.
   */
  prune(nowMs?: number): Promise<number>;
}

export function createAlerts(opts: { db?: Db; outbox?: OutboxRepo; webhooks: readonly ResolvedWebhook[]; alerting: AlertingConfig; log?: Logger; now?: () => number }): Alerts {
  // SQLite without a store of its own (tests, the `alerts` CLI): a store over the same connection.
  const repo = opts.outbox ?? storeFromDb(opts.db!).outbox;
  const dispatcher = new WebhookDispatcher({
    outbox: repo,
    webhooks: opts.webhooks,
    retry: opts.alerting.retry,
    pollIntervalMs: opts.alerting.pollIntervalMs,
    stopGraceMs: opts.alerting.stopGraceMs,
    ...(opts.log ? { log: opts.log } : {}),
    ...(opts.now ? { now: opts.now } : {}),
  });
  const outbox = new AlertOutbox({
    repo,
    webhooks: opts.webhooks,
    alerting: opts.alerting,
    onEnqueue: () => dispatcher.notify(),
    ...(opts.now ? { now: opts.now } : {}),
  });
  return {
    outbox,
    dispatcher,
    onFindingEvent: outbox.onFindingEvent,
    start: () => dispatcher.start(),
    stop: () => dispatcher.stop(),
    counters: () => ({ ...dispatcher.counters, ...outbox.counters }),
    stats: async () => {
      const s = await dispatcher.stats();
      return { ...s, counters: { ...s.counters, ...outbox.counters } };
    },
    prune: async (nowMs = (opts.now ?? Date.now)()) => {
      const days = opts.alerting.keepDeliveriesDays;
      return days > 0 ? pruneDeliveries(repo, nowMs - days * DAY_MS) : 0;
    },
  };
}
