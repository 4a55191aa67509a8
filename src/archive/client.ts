/**
 * The S3 client from `archive.s3`. Credentials come from the SDK's default chain (environment, shared
 * config, the EC2 instance role); nothing here takes a secret. The SDK's own retries (3 attempts) handle
 * a dropped connection; the worker's backoff handles an outage.
 */
import { S3Client } from '@aws-sdk/client-s3';
import type { ArchiveConfig } from './config.js';

export function s3ClientFor(s3: NonNullable<ArchiveConfig['s3']>, extra: { maxAttempts?: number } = {}): S3Client {
  return new S3Client({
    ...(s3.region ? { region: s3.region } : {}),
    ...(s3.endpoint ? { endpoint: s3.endpoint } : {}),
    forcePathStyle: s3.forcePathStyle,
    // Send a checksum only where we give one (ours is SHA-256, computed from the file before sending).
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_SUPPORTED',
    maxAttempts: extra.maxAttempts ?? 3,
  });
}
