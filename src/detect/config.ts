/**
 * The `detect:` part of the config file. The integrator composes this schema into src/config/schema.ts;
 * the defaults live here, in one commented object, with units in the key names.
 *
 *   detect:
 *     silentAfterSeconds: 900        # silent-session after this long without traffic; 0 disables
 *     inventory:
 *       intervalSeconds: 0           # run the live inventory check this often; 0 disables
 *       region: eu-central-1         # default: the SDK's (AWS_REGION, profile)
 *       endpoint: https://ec2.eu-central-1.amazonaws.com   # optional override (VPC endpoint)
 *       pageSize: 1000
 *     newPairFlood:                  # docs/detection.md "session-flood"
 *       intervalSeconds: 10          # new pairs are counted per interval this long
 *       perSource: 20                # more new unauthorized pairs than this from one source in one interval is a flood
 *       total: 200                   # ... or from all sources together
 *       admitPerSource: 16           # new unauthorized pairs one source may add to the session table per interval; 0: no limit
 */
import { z } from 'zod';
import type { FloodThresholds } from './flood.js';

export const DETECT_DEFAULTS = {
  /** 15 minutes: long enough for a quiet ENI (a mirrored instance with little traffic) not to flap. */
  silentAfterSeconds: 900,
  inventory: {
    /** Off unless asked for: a live call needs credentials with ec2:DescribeTrafficMirrorSessions. */
    intervalSeconds: 0,
    /** MaxResults per DescribeTrafficMirrorSessions page (the API allows 5..1000). */
    pageSize: 1000,
  },
  newPairFlood: {
    /** Long enough to smooth a burst of legitimate first packets, short enough to alert within seconds. */
    intervalSeconds: 10,
    /**
     * A real mirror source (an ENI's primary IP) carries a handful of sessions, so a few dozen new
     * unauthorized VNIs from one address in ten seconds is forged.
     */
    perSource: 20,
    /**
     * Only pairs the manifest does not authorize count: a collector that starts behind a Network Load
     * Balancer sees every authorized session of the fleet at once, and that is not a flood.
     */
    total: 200,
    /** Table slots one source may take for unauthorized pairs per interval, so no source can fill it. */
    admitPerSource: 16,
  },
} as const;

/** The shortest inventory period we accept: DescribeTrafficMirrorSessions is throttled per account. */
export const MIN_INVENTORY_INTERVAL_SECONDS = 60;

const region = z.string().regex(/^[a-z]{2}(?:-[a-z]+)+-[0-9]{1,2}$/, 'must be an AWS region name such as eu-central-1');

export const detectConfigSchema = z
  .object({
    silentAfterSeconds: z.number().int().min(0).max(7 * 24 * 3600).default(DETECT_DEFAULTS.silentAfterSeconds),
    inventory: z
      .object({
        intervalSeconds: z
          .number()
          .int()
          .min(0)
          .max(7 * 24 * 3600)
          .refine((n) => n === 0 || n >= MIN_INVENTORY_INTERVAL_SECONDS, `must be 0 (off) or at least ${MIN_INVENTORY_INTERVAL_SECONDS}`)
          .default(DETECT_DEFAULTS.inventory.intervalSeconds),
        region: region.optional(),
        endpoint: z.url({ protocol: /^https?$/ }).optional(),
        pageSize: z.number().int().min(5).max(1000).default(DETECT_DEFAULTS.inventory.pageSize),
      })
      .strict()
      .prefault({}),
    newPairFlood: z
      .object({
        intervalSeconds: z.number().int().min(1).max(3600).default(DETECT_DEFAULTS.newPairFlood.intervalSeconds),
        perSource: z.number().int().min(1).max(1_000_000).default(DETECT_DEFAULTS.newPairFlood.perSource),
        total: z.number().int().min(1).max(10_000_000).default(DETECT_DEFAULTS.newPairFlood.total),
        admitPerSource: z.number().int().min(0).max(1_000_000).default(DETECT_DEFAULTS.newPairFlood.admitPerSource),
      })
      .strict()
      .prefault({}),
  })
  .strict()
  .prefault({});

export type DetectConfig = z.output<typeof detectConfigSchema>;

/** `detect.newPairFlood` in the flood monitor's units. */
export function floodThresholds(c: Pick<DetectConfig, 'newPairFlood'>): FloodThresholds {
  const f = c.newPairFlood;
  return { intervalMs: f.intervalSeconds * 1000, perSource: f.perSource, total: f.total };
}
