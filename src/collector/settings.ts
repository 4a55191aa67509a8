import { effectiveRotateSeconds } from '../archive/config.js';
import type { Config } from '../config/schema.js';
import { maxOpenFilesFor } from './open-files.js';

/** The Collector's settings from the config (serve, decap and the workers all build collectors from it). */
export function collectorSettings(config: Readonly<Config>) {
  return {
    dataDir: config.dataDir,
    strictVxlan: config.strictVxlan,
    vxlanPort: config.vxlanPort,
    genevePort: config.geneve.port,
    maxSessions: config.maxSessions,
    admission: { admitPerSource: config.detect.newPairFlood.admitPerSource, admitIntervalSeconds: config.detect.newPairFlood.intervalSeconds },
    rotateBytes: config.pcap.rotateBytes,
    // With an S3 archive, files rotate at least every archive.rotateSeconds: evidence leaves within about that.
    rotateSeconds: effectiveRotateSeconds(config.pcap.rotateSeconds, config.archive),
    idleCloseSeconds: config.pcap.idleCloseSeconds,
    flushIntervalMs: config.pcap.flushIntervalMs,
    bufferBytes: config.pcap.bufferBytes,
    queueBytes: config.pcap.queueBytes,
    bufferPoolBytes: config.pcap.bufferPoolBytes,
    dropBehindBytes: config.pcap.dropBehindBytes,
    directWriteBytes: config.pcap.directWriteBytes,
    // Each receiver keeps its own files: the workers, and with more than one the main thread's (GENEVE).
    maxOpenFiles: maxOpenFilesFor(config.pcap.maxOpenFiles, config.workers > 1 ? config.workers + 1 : 1),
  };
}
