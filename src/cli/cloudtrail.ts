/**
 * `mirrorguard cloudtrail scan PATH... [--manifest FILE] [--json]`: check CloudTrail logs for
 * traffic-mirroring changes the manifest does not authorize, without a database.
 *
 * PATH is a file (a record, a Records file, an EventBridge event, lookup-events output, JSON lines;
 * plain or gzip), a directory tree (the S3 delivery layout, walked recursively), or `-` for stdin.
 * Findings are de-duplicated by (kind, incident key) as the findings store does, with the same ids,
 * and printed when the scan ends: one line each, or one JSON object per line with --json.
 *
 * Exit status: 0 no findings, 1 findings, 2 some input could not be read (bad path, bad gzip,
 * malformed JSON, a traffic-mirroring record we could not read). 2 wins over 1: the scan goes on past
 * a bad input, prints what the rest gave, and still says that something was missed.
 */
import { FindingAggregator } from '../detect/cloudtrail/aggregate.js';
import { classifyRecord } from '../detect/cloudtrail/normalize.js';
import { FILE_SKIP_REASONS, listCloudTrailFiles, readCloudTrailPath, readCloudTrailStream, type FileSkipReason, type ReadItem } from '../detect/cloudtrail/parse.js';
import { evaluateControlEvent } from '../detect/cloudtrail/rules/index.js';
import type { Finding } from '../detect/finding.js';
import type { Manifest } from '../detect/manifest-types.js';
import { EXIT, MgError } from '../errors.js';
import { commandHelp, parseCommand, usageError, type CommandSpec } from './flags.js';
import { PROCESS_IO, type CliIo } from './io.js';

export const SPEC: CommandSpec = {
  name: 'cloudtrail',
  usage: ['cloudtrail scan PATH... [--manifest FILE] [--json] [--verbose]'],
  description: `Check CloudTrail logs for traffic-mirroring changes (docs/detection.md, "Control plane").

PATH is a CloudTrail file or a directory walked recursively (the S3 layout
AWSLogs/<account>/CloudTrail/<region>/YYYY/MM/DD/*.json.gz), or - for stdin. Accepted:
one event record, {"Records": [...]} log files, EventBridge "AWS API Call via CloudTrail"
events, 'aws cloudtrail lookup-events' output and JSON lines; plain or gzip. In a directory,
files not named *.json, *.jsonl or *.ndjson (optionally .gz) are read when their content is
gzip or JSON holding CloudTrail; the others are skipped and counted in the summary.`,
  subcommands: [{ name: 'scan', args: 'PATH...', summary: 'scan files, directories or stdin (-); print findings, a summary on stderr' }],
  sections: [
    {
      title: 'options',
      flags: [
        { name: 'manifest', kind: 'string', arg: 'FILE', help: 'authorized sessions (docs/manifest.md); without it every change is reported' },
        { name: 'json', kind: 'boolean', help: "one finding per line as JSON (the API's Finding shape)" },
        { name: 'verbose', short: 'v', kind: 'boolean', help: 'list every file skipped, with the reason' },
      ],
    },
  ],
  epilogue: 'exit status: 0 no findings, 1 findings, 2 an input could not be read (the others are still scanned)',
};

/** Below this many files a progress bar would only flicker. */
const PROGRESS_MIN_FILES = 2;
const PROGRESS_REDRAW_MS = 100;

export type { CliIo };

export async function run(argv: string[], io: CliIo = PROCESS_IO): Promise<number> {
  const { values, positionals, subcommand, help } = parseCommand(argv, SPEC);
  if (help) {
    io.stdout.write(commandHelp(SPEC));
    return EXIT.OK;
  }
  if (subcommand === undefined) throw usageError(SPEC, "missing command 'scan'");
  const paths = positionals.slice(1);
  if (paths.length === 0) throw usageError(SPEC, 'scan: give at least one PATH (a file, a directory or -)');

  let manifest: Manifest | null = null;
  if (values.manifest !== undefined) {
    const { loadManifest } = await import('../detect/manifest.js');
    manifest = loadManifest(values.manifest as string);
  }
  return scan(paths, manifest, values.json === true, values.verbose === true, io);
}

interface ScanStats {
  files: number;
  records: number;
  events: number;
  /** Traffic-mirroring events seen before under the same eventID (another file of the same logs). */
  duplicates: number;
  unreadable: number;
  /** Entries not read, by reason (FILE_SKIP_REASONS). */
  skipped: Map<FileSkipReason, number>;
}

async function scan(paths: string[], manifest: Manifest | null, json: boolean, verbose: boolean, io: CliIo): Promise<number> {
  const agg = new FindingAggregator();
  // Each event counts once by eventID, as the catalog stores it (docs/detection.md): overlapping
  // downloads, or an S3 prefix and a local copy of the same logs, must not double the counts.
  const seenEvents = new Set<string>();
  const stats: ScanStats = { files: 0, records: 0, events: 0, duplicates: 0, unreadable: 0, skipped: new Map() };
  let lastSkipped: string | null = null;
  const progress = io.stderr.isTTY ? await Progress.forPaths(paths, io.stderr) : null;
  const say = (s: string): void => {
    progress?.clear();
    io.stderr.write(s);
  };

  const handle = (item: ReadItem): void => {
    if (item.type === 'error') {
      stats.unreadable++;
      say(`mirrorguard: ${item.error.describe()}\n`);
    } else if (item.type === 'skipped') {
      stats.skipped.set(item.reason, (stats.skipped.get(item.reason) ?? 0) + 1);
      lastSkipped = item.file;
      if (verbose) say(`mirrorguard: skipped ${item.file}: ${FILE_SKIP_REASONS[item.reason]}\n`);
    } else if (item.type === 'end') {
      if (item.file !== lastSkipped) stats.files++;
      progress?.fileDone(item.bytes);
    } else {
      let unread = 0;
      let firstDetail: string | undefined;
      for (const rec of item.records) {
        stats.records++;
        const c = classifyRecord(rec);
        if (c.ok) {
          if (seenEvents.has(c.event.eventId)) {
            stats.duplicates++;
            continue;
          }
          seenEvents.add(c.event.eventId);
          stats.events++;
          for (const f of evaluateControlEvent(c.event, manifest)) agg.add(f);
        } else if (c.reason === 'bad-event-time' || c.reason === 'malformed') {
          // A traffic-mirroring call we could not read may be the one that matters: never exit 0 past it.
          unread++;
          firstDetail ??= c.detail;
        }
      }
      if (unread > 0) {
        stats.unreadable++;
        const e = new MgError('MG_ERR_CLOUDTRAIL_FORMAT', `${item.file}: ${unread} traffic-mirroring record${unread === 1 ? '' : 's'} skipped (${firstDetail ?? 'unreadable'})`);
        say(`mirrorguard: ${e.describe()}\n`);
      }
    }
  };

  for (const p of paths) {
    if (p === '-') {
      const stdin = (io.stdin ?? process.stdin) as unknown as import('node:stream').Readable;
      for await (const item of readCloudTrailStream(stdin, '<stdin>')) handle(item);
      handle({ type: 'end', file: '<stdin>', bytes: 0 });
    } else {
      for await (const item of readCloudTrailPath(p)) handle(item);
    }
  }
  progress?.clear();

  const findings = agg.findings();
  for (const f of findings) io.stdout.write(json ? `${JSON.stringify(f)}\n` : `${humanLine(f)}\n`);
  const plural = (n: number, w: string): string => `${n} ${w}${n === 1 ? '' : 's'}`;
  io.stderr.write(
    `mirrorguard: cloudtrail scan: ${plural(stats.records, 'record')} in ${plural(stats.files, 'file')}, ` +
      `${plural(stats.events, 'traffic-mirroring call')}${stats.duplicates > 0 ? ` (${stats.duplicates} duplicate${stats.duplicates === 1 ? '' : 's'} by eventID ignored)` : ''}, ${plural(findings.length, 'finding')}` +
      `${manifest === null ? ' (no manifest)' : ''}${skippedText(stats.skipped, verbose)}` +
      `${stats.unreadable > 0 ? `; ${plural(stats.unreadable, 'input problem')} (see above)` : ''}\n`,
  );
  if (stats.unreadable > 0) return EXIT.INPUT_UNREADABLE;
  return findings.length > 0 ? EXIT.FINDINGS : EXIT.OK;
}

/** `; 3 skipped (2 neither gzip nor JSON, 1 hidden (name starts with a dot)); --verbose lists them` */
function skippedText(skipped: Map<FileSkipReason, number>, verbose: boolean): string {
  if (skipped.size === 0) return '';
  const total = [...skipped.values()].reduce((a, b) => a + b, 0);
  const parts = [...skipped].sort((a, b) => b[1] - a[1]).map(([r, n]) => `${n} ${FILE_SKIP_REASONS[r]}`);
  return `; ${total} skipped (${parts.join(', ')})${verbose ? ' (listed above)' : '; --verbose lists them'}`;
}

/** `2022-11-15T22:58:35Z  high      mirror-attempt-failed   <summary>  [f_..., 3 events]` */
export function humanLine(f: Finding): string {
  const events = f.count === 1 ? '1 event' : `${f.count} events, last ${f.lastSeen}`;
  return `${f.firstSeen}  ${f.severity.padEnd(8)}  ${f.kind.padEnd(23)}  ${f.summary}  [${f.id}, ${events}]`;
}

/**
 * A one-line progress bar on a terminal's stderr: files done of total, and bytes (on disk) done of
 * total. Redrawn at most every 100 ms; cleared before any other stderr line and at the end.
 */
export class Progress {
  private files = 0;
  private bytes = 0;
  private lastDraw = 0;
  private shown = false;

  constructor(
    private readonly out: { write(s: string): unknown; columns?: number },
    private readonly totalFiles: number,
    private readonly totalBytes: number,
    private readonly now: () => number = Date.now,
  ) {}

  /** Counts what is under the paths first (a walk with stat only); null for a scan too small to need it. */
  static async forPaths(paths: string[], out: { write(s: string): unknown; columns?: number }): Promise<Progress | null> {
    let files = 0;
    let bytes = 0;
    for (const p of paths) {
      if (p === '-') continue;
      for await (const f of listCloudTrailFiles(p)) {
        if ('bytes' in f) {
          files++;
          bytes += f.bytes;
        }
      }
    }
    return files >= PROGRESS_MIN_FILES ? new Progress(out, files, bytes) : null;
  }

  fileDone(bytes: number): void {
    this.files++;
    this.bytes += bytes;
    const t = this.now();
    if (t - this.lastDraw >= PROGRESS_REDRAW_MS || this.files === this.totalFiles) {
      this.lastDraw = t;
      this.draw();
    }
  }

  /** The bar's text, without control characters. */
  line(): string {
    const frac = this.totalBytes > 0 ? Math.min(1, this.bytes / this.totalBytes) : this.totalFiles > 0 ? Math.min(1, this.files / this.totalFiles) : 1;
    const width = Math.max(10, Math.min(30, (this.out.columns ?? 80) - 50));
    const full = Math.round(frac * width);
    return `[${'#'.repeat(full)}${'-'.repeat(width - full)}] ${this.files}/${this.totalFiles} files  ${mib(this.bytes)}/${mib(this.totalBytes)} MiB`;
  }

  private draw(): void {
    this.out.write(`\r${this.line()}\x1b[K`);
    this.shown = true;
  }

  clear(): void {
    if (!this.shown) return;
    this.out.write('\r\x1b[K');
    this.shown = false;
  }
}

function mib(n: number): string {
  return (n / (1024 * 1024)).toFixed(1);
}
