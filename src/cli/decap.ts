/**
 * `mirrorguard decap IN... --out DIR`: read captures of encapsulated traffic (pcap or pcapng, e.g.
 * `tcpdump -i eth0 -w target.pcap udp port 4789` on the mirror target) and write the same per-session
 * output `serve` would (PCAP files, catalog, and findings when a manifest is given), using the
 * captures' own timestamps. Arkime's `-r file`: the same pipeline, another source.
 */
import { join } from 'node:path';
import { Catalog } from '../collector/catalog.js';
import { Collector } from '../collector/collector.js';
import { CATALOG_FILE } from '../collector/layout.js';
import { collectorSettings } from '../collector/settings.js';
import { recoverCatalog } from '../collector/recovery.js';
import { loadConfig } from '../config/load.js';
import { floodThresholds } from '../detect/config.js';
import { Detector } from '../detect/detector.js';
import { loadManifest } from '../detect/manifest.js';
import { EXIT } from '../errors.js';
import { nativeCopyBytes } from '../ingest/native-addon.js';
import { openCapture } from '../pcap/reader.js';
import { openDb } from '../store/db.js';
import { storeFromDb } from '../store/store.js';
import { createLogger, resolveLogFormat } from '../util/log.js';
import { CONFIG_FLAGS, commandHelp, parseCommand, usageError, type CommandSpec, type FlagSpec } from './flags.js';
import { PROCESS_IO, type CliIo } from './io.js';
import { checkHeaderLinktype, LinktypeTally } from './capture-linktype.js';

const FLAGS: FlagSpec[] = [
  { name: 'out', path: ['dataDir'], kind: 'string', arg: 'DIR', help: 'output directory (PCAP files and catalog), like serve --data-dir (required)' },
  CONFIG_FLAGS.config!,
  CONFIG_FLAGS.manifest!,
  CONFIG_FLAGS['vxlan-port']!,
  CONFIG_FLAGS['geneve-port']!,
  CONFIG_FLAGS['strict-vxlan']!,
  CONFIG_FLAGS['rotate-bytes']!,
  CONFIG_FLAGS['rotate-seconds']!,
  CONFIG_FLAGS['max-sessions']!,
  { name: 'json', kind: 'boolean', help: 'print the summary as JSON' },
  CONFIG_FLAGS['log-level']!,
  CONFIG_FLAGS['log-format']!,
];

export const SPEC: CommandSpec = {
  name: 'decap',
  usage: ['decap IN... --out DIR [options]'],
  description: 'Decapsulate VXLAN (UDP 4789), also inside GENEVE from a Gateway Load Balancer (UDP 6081), in pcap/pcapng captures into per-session PCAP files, as serve would.',
  sections: [{ title: 'options', flags: FLAGS }],
  epilogue:
    'exit status: 0 decapsulated, no finding; 1 decapsulated, and with --manifest it raised findings (as\ncloudtrail scan); 64 usage; 65 not pcap/pcapng or a link type with no IP layer; 66 a capture cannot be\nread; 74 the catalog in --out cannot be opened. docs/decap.md has the details.',
};

export async function run(argv: string[], io: CliIo = PROCESS_IO): Promise<number> {
  const flags = parseCommand(argv, SPEC);
  if (flags.help) {
    io.stdout.write(commandHelp(SPEC));
    return EXIT.OK;
  }
  if (flags.positionals.length === 0) throw usageError(SPEC, 'give at least one capture file');
  if (flags.values.out === undefined) throw usageError(SPEC, '--out DIR is required');
  const config = loadConfig({ file: flags.values.config as string | undefined, overrides: flags.overrides });
  const logger = createLogger(flags.values['log-level'] ? config.log.level : 'warn', resolveLogFormat(config.log.format));

  // Open every input first so a bad path or format fails before anything is written.
  const readers = flags.positionals.map((p) => openCapture(p));
  readers.forEach((r, k) => checkHeaderLinktype(flags.positionals[k]!, r.linktype));
  const manifest = config.manifest ? loadManifest(config.manifest) : null;

  const db = openDb(join(config.dataDir, CATALOG_FILE));
  const catalog = new Catalog(db);
  await recoverCatalog(catalog, config.dataDir, logger);
  const detector = manifest ? new Detector({ db, manifest, log: logger, newPairFlood: floodThresholds(config.detect) }) : null;
  const collector = new Collector({
    ...collectorSettings(config),
    // A capture file is read, not received: no source can crowd others out of it, so no admission budget.
    admission: { admitPerSource: 0, admitIntervalSeconds: config.detect.newPairFlood.intervalSeconds },
    copyBytes: nativeCopyBytes(),
    catalog,
    logger,
    ...(detector
      ? {
          onNewPair: (ip: string, vni: number, at: number) => detector.onNewPair(ip, vni, at),
          onGwlbEndpoint: (ip: string, vni: number, endpointId: string, attachmentId: string | null, at: number) => detector.onGwlbEndpoint(ip, vni, endpointId, attachmentId, at),
        }
      : {}),
  });

  const inputs: { file: string; frames: number; corrupt: boolean }[] = [];
  let i = 0;
  for (const r of readers) {
    let frames = 0;
    const tally = new LinktypeTally();
    try {
      while (r.next()) {
        const rec = r.record;
        tally.add(rec.linktype);
        collector.ingestFrame(rec.buf, rec.off, rec.off + rec.caplen, rec.linktype, rec.tsSec, rec.tsNsec);
        // Hand full buffers to the disk as we go; the queue bounds memory and replays faster than disk.
        if (++frames % 4096 === 0) {
          collector.flushAll();
          await collector.drain();
        }
      }
    } finally {
      r.close();
    }
    tally.check(flags.positionals[i]!);
    inputs.push({ file: flags.positionals[i++]!, frames, corrupt: r.truncated });
    if (r.truncated) io.stderr.write(`mirrorguard: warning: ${flags.positionals[i - 1]}: the capture ends in a corrupt or cut record; frames before it were processed\n`);
  }
  await collector.close();
  // What a flood in the capture coalesced is written on the detector's timer in serve; here, now.
  detector?.flushFlood(Date.now());
  await detector?.settled();

  const counters = collector.counters();
  const sessions = await storeFromDb(db).captures.pairs();
  const findings = detector ? (await detector.store.list({ limit: 1000 })).items : [];
  db.close();

  if (flags.values.json) {
    io.stdout.write(`${JSON.stringify({ inputs, sessions, counters, findings })}\n`);
  } else {
    const out: string[] = [];
    out.push(`${inputs.reduce((a, b) => a + b.frames, 0)} frames read from ${inputs.length} capture(s); output in ${config.dataDir}`);
    out.push('');
    out.push('VNI        SOURCE IP                                SESSION                 FILES    PACKETS');
    for (const s of sessions) {
      out.push(`${String(s.vni).padEnd(10)} ${s.sourceIp.padEnd(40)} ${(s.sessionId ?? '-').padEnd(22)} ${String(s.files).padStart(6)} ${String(s.packets).padStart(10)}`);
    }
    out.push('');
    for (const [name, n] of Object.entries(counters)) if (n > 0) out.push(`${name.padEnd(32)} ${n}`);
    if (findings.length) {
      out.push('');
      for (const f of findings) out.push(`FINDING ${f.severity.toUpperCase()} ${f.kind} ${f.summary}`);
    }
    io.stdout.write(`${out.join('\n')}\n`);
  }
  // Like `cloudtrail scan`: a script (or CI) can tell "clean" from "look at this" by the status alone.
  return findings.length > 0 ? EXIT.FINDINGS : EXIT.OK;
}
