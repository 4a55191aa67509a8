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
 */
import { z } from 'zod';

export const DETECT_DEFAULTS = {
  /** 15 minutes: long enough for a quiet ENI (a mirrored instance with little traffic) not to flap. */
  silentAfterSeconds: 900,
  inventory: {
    /** Off unless asked for: a live call needs credentials with ec2:DescribeTrafficMirrorSessions. */
    intervalSeconds: 0,
    /** MaxResults per DescribeTrafficMirrorSessions page (the API allows 5..1000). */
    pageSize: 1000,
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
  })
  .strict()
  .prefault({});

export type DetectConfig = z.output<typeof detectConfigSchema>;
