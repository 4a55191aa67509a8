/**
 * Crash recovery, run once at start before any packet is written: make the catalog and the files on
 * disk agree again after a crash, kill -9 or power loss.
 *   - A row still 'open' had its process die mid-file: repair the file (drop a partial trailing record)
 *     and close the row with the file's real numbers and SHA-256; a row whose file never got created is
 *     deleted.
 *   - A .pcap under pcap/ with no row (the insert was lost) is repaired and adopted.
 *   - A closed row whose file is gone (deleted by hand) is removed.
 */
import { readdirSync, statSync } from 'node:fs';
import { join, relative, sep } from 'node:path';
import { LINKTYPE_ETHERNET } from '../pcap/format.js';
import { repairPcap } from '../pcap/repair.js';
import { toMicros } from '../util/clock.js';
import type { Logger } from '../util/log.js';
import type { Catalog } from './catalog.js';
import { parseCaptureRelPath, PCAP_DIR } from './layout.js';

export interface RecoveryReport {
  repaired: number;
  truncatedBytes: number;
  adopted: number;
  removedRows: number;
}

export async function recoverCatalog(catalog: Catalog, dataDir: string, logger: Logger): Promise<RecoveryReport> {
  const report: RecoveryReport = { repaired: 0, truncatedBytes: 0, adopted: 0, removedRows: 0 };
  const nowUs = Date.now() * 1000;

  for (const row of await catalog.openRows()) {
    const abs = join(dataDir, row.path);
    if (!exists(abs)) {
      await catalog.deleteRow(row.id);
      report.removedRows++;
      continue;
    }
    const r = await repairPcap(abs, { linktype: LINKTYPE_ETHERNET });
    await catalog.closeRow(row.id, {
      closedUs: nowUs,
      firstUs: r.packets > 0 ? toMicros(r.firstSec, r.firstNsec) : null,
      lastUs: r.packets > 0 ? toMicros(r.lastSec, r.lastNsec) : null,
      packets: r.packets,
      bytes: r.bytes,
      sha256: r.sha256,
      reason: 'recovered',
    });
    report.repaired++;
    report.truncatedBytes += r.truncatedBytes;
    if (r.truncatedBytes > 0) logger.warn({ path: row.path, truncatedBytes: r.truncatedBytes }, 'repaired a PCAP file left open by a crash');
  }

  for (const rel of listPcaps(dataDir)) {
    if (await catalog.byPath(rel)) continue;
    const meta = parseCaptureRelPath(rel);
    if (!meta) {
      logger.warn({ path: rel }, 'a .pcap file under the data directory does not follow the layout; left alone');
      continue;
    }
    const r = await repairPcap(join(dataDir, rel), { linktype: LINKTYPE_ETHERNET });
    const firstUs = r.packets > 0 ? toMicros(r.firstSec, r.firstNsec) : null;
    await catalog.adopt({ path: rel, vni: meta.vni, sourceIp: meta.sourceIp, sessionId: null, worker: meta.worker, createdUs: firstUs ?? nowUs, firstUs: firstUs ?? nowUs }, {
      closedUs: nowUs,
      firstUs,
      lastUs: r.packets > 0 ? toMicros(r.lastSec, r.lastNsec) : null,
      packets: r.packets,
      bytes: r.bytes,
      sha256: r.sha256,
      reason: 'adopted',
    });
    report.adopted++;
    logger.warn({ path: rel }, 'adopted a PCAP file the catalog did not know');
  }

  for (const row of await catalog.closedOldestFirst()) {
    if (!exists(join(dataDir, row.path))) {
      await catalog.deleteRow(row.id);
      report.removedRows++;
    }
  }
  return report;
}

function exists(p: string): boolean {
  try {
    return statSync(p).isFile();
  } catch {
    return false;
  }
}

/** Relative paths (with '/') of every .pcap file under dataDir/pcap. */
export function listPcaps(dataDir: string): string[] {
  const out: string[] = [];
  const root = join(dataDir, PCAP_DIR);
  const walk = (dir: string, depth: number): void => {
    if (depth > 6) return;
    let entries;
    try {
      entries = readdirSync(dir, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) {
      const p = join(dir, e.name);
      if (e.isDirectory()) walk(p, depth + 1);
      else if (e.isFile() && e.name.endsWith('.pcap')) out.push(relative(dataDir, p).split(sep).join('/'));
    }
  };
  walk(root, 0);
  return out.sort();
}
