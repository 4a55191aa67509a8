import type { WorkerCollectorConfig } from '../../src/receive-workers.js';

const MiB = 1024 * 1024;

/** Collector settings for tests: small buffers, no rotation or idle close during a test. */
export function collectorTestSettings(dataDir: string, over: Partial<WorkerCollectorConfig> = {}): WorkerCollectorConfig {
  return {
    dataDir,
    strictVxlan: false,
    vxlanPort: 4789,
    maxSessions: 64,
    rotateBytes: 64 * MiB,
    rotateSeconds: 3600,
    idleCloseSeconds: 3600,
    flushIntervalMs: 100,
    bufferBytes: MiB,
    queueBytes: 8 * MiB,
    ...over,
  };
}
