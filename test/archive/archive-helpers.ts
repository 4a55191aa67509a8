/** Real PCAP files for the archive and ledger tests, written by our own writer, and their catalog-style description. */
import { basename } from 'node:path';
import { DROP } from '../../src/outcomes.js';
import { PcapFileWriter } from '../../src/pcap/file-writer.js';
import type { ArchiveFile } from '../../src/archive/types.js';
import { frame } from '../pcap/pcap-helpers.js';

export const T0_SEC = 1_764_763_200; // 2025-12-03T12:00:00Z

/** Write `packets` frames of `frameBytes` into `path` with PcapFileWriter; return what the catalog would hold. */
export async function writeCapture(
  path: string,
  opts: { packets?: number; frameBytes?: number; vni?: number; sourceIp?: string; node?: string; captureId?: number; sessionId?: string | null; t0Sec?: number } = {},
): Promise<ArchiveFile> {
  const packets = opts.packets ?? 50;
  const len = opts.frameBytes ?? 200;
  const t0 = opts.t0Sec ?? T0_SEC;
  const w = new PcapFileWriter(path);
  for (let i = 0; i < packets; i++) {
    const f = frame(i, len);
    let r = w.append(f, 0, f.length, f.length, t0 + Math.floor(i / 1000), (i % 1000) * 1_000_000);
    // The write queue is bounded: when it is full, let the disk catch up and try again.
    for (let tries = 0; r === DROP.WRITE_QUEUE_FULL && tries < 1000; tries++) {
      w.flush();
      await new Promise((res) => setTimeout(res, 2));
      r = w.append(f, 0, f.length, f.length, t0 + Math.floor(i / 1000), (i % 1000) * 1_000_000);
    }
    if (r !== DROP.OK) throw new Error(`append refused frame ${i}: ${r}`);
  }
  const c = await w.close();
  return {
    captureId: opts.captureId ?? 1,
    node: opts.node ?? 'i-0abc',
    path,
    vni: opts.vni ?? 42,
    sourceIp: opts.sourceIp ?? '10.0.1.5',
    sessionId: opts.sessionId === undefined ? 'tms-0123456789abcdef0' : opts.sessionId,
    createdUs: t0 * 1e6,
    firstUs: c.firstSec * 1e6 + Math.floor(c.firstNsec / 1000),
    lastUs: c.lastSec * 1e6 + Math.floor(c.lastNsec / 1000),
    packets: c.packets,
    bytes: c.bytes,
    sha256: c.sha256,
  };
}

export const fileName = (f: ArchiveFile) => basename(f.path);
