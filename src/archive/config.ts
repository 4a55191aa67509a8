/**
 * `archive`: where closed PCAP files go when the collectors run as a fleet (docs/operations.md, "Archive").
 * No `archive.s3` means no archive: files stay on the instance as before. Credentials are never
 * configured here; the AWS SDK's default chain finds them (the instance role in AWS).
 */
import { z } from 'zod';

/** Embedded defaults, with units in the names. */
export const ARCHIVE_DEFAULTS = {
  /** S3 target; null: no archive. */
  s3: null as null | { bucket: string; prefix: string; region: string | null; endpoint: string | null; forcePathStyle: boolean },
  /** Keep the local copy this long after S3 confirmed the upload (reads prefer it until then). 0: remove at once. */
  keepLocalHours: 24,
  /** With an archive, files rotate at least this often, so evidence leaves the instance within about this long. */
  rotateSeconds: 60,
  /** Object Lock retention set on each object: null, or {mode, days}. The bucket must have Object Lock enabled. */
  objectLock: null as null | { mode: 'GOVERNANCE' | 'COMPLIANCE'; days: number },
  /** KMS key for SSE-KMS; null: SSE-S3 (AES256). */
  kmsKeyId: null as string | null,
  /** Ed25519 private key (PEM, `mirrorguard keys init`) that signs the evidence ledger. null: no ledger. */
  signingKey: null as string | null,
};

/** S3 object key prefixes: no leading slash, no empty segment, no `..`; a trailing slash is dropped. */
const prefix = z
  .string()
  .max(512)
  .refine((s) => s === '' || (!s.startsWith('/') && !s.split('/').filter((p, i, a) => !(i === a.length - 1 && p === '')).some((p) => p === '' || p === '..')), 'must be a relative key prefix such as "mirrorguard" or "evidence/prod" (no leading slash, no empty or ".." segment)')
  .transform((s) => s.replace(/\/$/, ''));

export const archiveConfigSchema = z
  .object({
    s3: z
      .object({
        // S3 bucket naming rules: https://docs.aws.amazon.com/AmazonS3/latest/userguide/bucketnamingrules.html
        bucket: z.string().regex(/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/, 'must be an S3 bucket name (3-63 lowercase letters, digits, dots, hyphens)'),
        prefix: prefix.default('mirrorguard'),
        region: z.string().min(1).nullable().default(null),
        endpoint: z.string().url().nullable().default(null),
        forcePathStyle: z.boolean().default(false),
      })
      .strict()
      .nullable()
      .default(null),
    keepLocalHours: z.number().min(0).max(24 * 365).default(ARCHIVE_DEFAULTS.keepLocalHours),
    rotateSeconds: z.number().int().min(5).max(7 * 24 * 3600).default(ARCHIVE_DEFAULTS.rotateSeconds),
    objectLock: z
      .object({
        mode: z.enum(['GOVERNANCE', 'COMPLIANCE']),
        days: z.number().int().min(1).max(36_500),
      })
      .strict()
      .nullable()
      .default(null),
    kmsKeyId: z.string().min(1).nullable().default(null),
    signingKey: z.string().min(1).nullable().default(null),
  })
  .strict()
  .prefault({});

export type ArchiveConfig = z.output<typeof archiveConfigSchema>;

/** How often files rotate by age: the pcap setting, tightened to archive.rotateSeconds when an archive is configured. */
export function effectiveRotateSeconds(pcapRotateSeconds: number, archive: Pick<ArchiveConfig, 's3' | 'rotateSeconds'>): number {
  return archive.s3 === null ? pcapRotateSeconds : Math.min(pcapRotateSeconds, archive.rotateSeconds);
}
