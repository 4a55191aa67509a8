import { describe, expect, it } from 'vitest';
import { effectiveRotateSeconds } from '../../src/archive/config.js';
import { localCopiesToRemove } from '../../src/archive/local-retention.js';
import { collectorSettings } from '../../src/collector/settings.js';
import { configSchema } from '../../src/config/schema.js';

describe('local copies of archived files', () => {
  const H = 3_600_000;
  const rows = [
    { captureId: 1, path: 'a', archivedMs: 0, open: false },
    { captureId: 2, path: 'b', archivedMs: 2 * H, open: false },
    { captureId: 3, path: 'c', archivedMs: null, open: false }, // not confirmed: the only copy
    { captureId: 4, path: 'd', archivedMs: 0, open: true },
    { captureId: 5, path: 'e', archivedMs: 0, open: false, removed: true },
  ];

  it('go keepLocalHours after a confirmed upload, never before, never unconfirmed, open or already removed', () => {
    expect(localCopiesToRemove(rows, 24 * H - 1, 24).map((r) => r.captureId)).toEqual([]);
    expect(localCopiesToRemove(rows, 24 * H, 24).map((r) => r.captureId)).toEqual([1]);
    expect(localCopiesToRemove(rows, 26 * H, 24).map((r) => r.captureId)).toEqual([1, 2]);
    expect(localCopiesToRemove(rows, 2 * H, 0).map((r) => r.captureId)).toEqual([1, 2]);
  });
});

describe('archive config', () => {
  it('defaults to no archive; with one, files rotate at least every archive.rotateSeconds', () => {
    const c = configSchema.parse({});
    expect(c.archive).toEqual({ s3: null, keepLocalHours: 24, rotateSeconds: 60, objectLock: null, kmsKeyId: null, signingKey: null });
    expect(effectiveRotateSeconds(c.pcap.rotateSeconds, c.archive)).toBe(900);
    const a = configSchema.parse({ archive: { s3: { bucket: 'evidence-prod', prefix: 'mg/prod/' }, objectLock: { mode: 'COMPLIANCE', days: 365 } } });
    expect(a.archive.s3).toEqual({ bucket: 'evidence-prod', prefix: 'mg/prod', region: null, endpoint: null, forcePathStyle: false });
    expect(effectiveRotateSeconds(a.pcap.rotateSeconds, a.archive)).toBe(60);
    expect(effectiveRotateSeconds(30, a.archive)).toBe(30);
    // What the collectors are built with (serve, the workers).
    expect(collectorSettings(c).rotateSeconds).toBe(900);
    expect(collectorSettings(a).rotateSeconds).toBe(60);
  });

  it('refuses bad buckets, prefixes and lock modes with the key named', () => {
    for (const [archive, path] of [
      [{ s3: { bucket: 'Evidence' } }, 'archive.s3.bucket'],
      [{ s3: { bucket: 'ok-bucket', prefix: '/abs' } }, 'archive.s3.prefix'],
      [{ s3: { bucket: 'ok-bucket', prefix: 'a//b' } }, 'archive.s3.prefix'],
      [{ s3: { bucket: 'ok-bucket', endpoint: 'not a url' } }, 'archive.s3.endpoint'],
      [{ objectLock: { mode: 'LEGAL', days: 1 } }, 'archive.objectLock.mode'],
      [{ objectLock: { mode: 'GOVERNANCE', days: 0 } }, 'archive.objectLock.days'],
      [{ rotateSeconds: 1 }, 'archive.rotateSeconds'],
      [{ s3: { bucket: 'ok-bucket', secretAccessKey: 'x' } }, 'archive.s3'],
    ] as const) {
      const r = configSchema.safeParse({ archive });
      expect(r.success).toBe(false);
      expect([path, r.error!.issues.map((i) => i.path.join('.'))]).toEqual([path, [path]]);
    }
  });
});
