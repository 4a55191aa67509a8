/**
 * Alert delivery as `serve` wires it: the durable outbox written with each finding, the dispatcher that
 * delivers it, and the pruning of finished deliveries (called from the retention timer).
 */
import type { Logger } from '../util/log.js';
import type { Db } from '../store/db.js';
import type { AlertingConfig, ResolvedWebhook } from './config.js';
import { WebhookDispatcher, type DispatcherStats } from './dispatcher.js';
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
  onFindingEvent: (e: FindingEvent) => void;
  start(): void;
  stop(): Promise<void>;
  stats(): AlertStats;
  /**
   * Delete delivered and given-up deliveries older than alerting.keepDeliveriesDays (never pending
   * ones); returns how many went. 0 days keeps everything.
   */
  prune(nowMs?: number): number;
}

export function createAlerts(opts: { db: Db; webhooks: readonly ResolvedWebhook[]; alerting: AlertingConfig; log?: Logger; now?: () => number }): Alerts {
  const dispatcher = new WebhookDispatcher({
    db: opts.db,
    webhooks: opts.webhooks,
    retry: opts.alerting.retry,
    pollIntervalMs: opts.alerting.pollIntervalMs,
    stopGraceMs: opts.alerting.stopGraceMs,
    ...(opts.log ? { log: opts.log } : {}),
    ...(opts.now ? { now: opts.now } : {}),
  });
  const outbox = new AlertOutbox({
    db: opts.db,
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
    stats: () => {
      const s = dispatcher.stats();
      return { ...s, counters: { ...s.counters, ...outbox.counters } };
    },
    prune: (nowMs = (opts.now ?? Date.now)()) => {
      const days = opts.alerting.keepDeliveriesDays;
      return days > 0 ? pruneDeliveries(opts.db, nowMs - days * DAY_MS) : 0;
    },
  };
}
