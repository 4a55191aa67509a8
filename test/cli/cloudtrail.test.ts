/**
 * `mirrorguard cloudtrail scan` end to end through run(): real temp files and trees, real manifest
 * files loaded by the manifest loader, output captured from the streams run() writes to.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { gzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { humanLine, Progress, run, type CliIo } from '../../src/cli/cloudtrail.js';
import { findingId } from '../../src/detect/finding-id.js';
import { FINDING_KINDS, SEVERITIES } from '../../src/detect/finding.js';
import { MgError } from '../../src/errors.js';
import { tmpDir } from '../helpers/tmp.js';
import {
  AUTHORIZED_YAML,
  createFilterRule,
  createSession,
  createTarget,
  deleteSession,
  describeSessions,
  IDS,
  modifySession,
  serviceActor,
} from '../detect/cloudtrail/events.js';

interface Captured extends CliIo {
  out: () => string;
  err: () => string;
}

function io(opts: { tty?: boolean; stdin?: Readable } = {}): Captured {
  let out = '';
  let err = '';
  const c: Captured = {
    stdout: { write: (s: string) => (out += s) },
    stderr: { write: (s: string) => (err += s), isTTY: opts.tty ?? false, columns: 100 },
    out: () => out,
    err: () => err,
  };
  if (opts.stdin) c.stdin = opts.stdin;
  return c;
}

async function usageError(p: Promise<number>): Promise<MgError> {
  try {
    await p;
  } catch (e) {
    if (e instanceof MgError) return e;
    throw e;
  }
  throw new Error('expected an MgError');
}

const records = (...recs: unknown[]): string => JSON.stringify({ Records: recs });

describe('mirrorguard cloudtrail scan', () => {
  it('exits 0 and prints no finding when every change is authorized by the manifest', async () => {
    const dir = tmpDir();
    writeFileSync(join(dir, 'manifest.yaml'), AUTHORIZED_YAML);
    writeFileSync(join(dir, 'trail.json'), records(createSession(), createTarget(IDS.target), modifySession({}, { Description: 'x' }), describeSessions(), describeSessions({ actor: serviceActor() })));
    const c = io();
    expect(await run(['scan', join(dir, 'trail.json'), '--manifest', join(dir, 'manifest.yaml')], c)).toBe(0);
    expect(c.out()).toBe('');
    expect(c.err()).toBe('mirrorguard: cloudtrail scan: 5 records in 1 file, 5 traffic-mirroring calls, 0 findings\n');
  });

  it('exits 1 and prints one line per incident, repeats counted', async () => {
    const dir = tmpDir();
    writeFileSync(join(dir, 'manifest.yaml'), AUTHORIZED_YAML);
    const rogue = createSession({ id: IDS.session2, eni: IDS.eni2, target: IDS.rogueTarget, vni: 4242 });
    // The same S3 object delivered twice (two trails) is the same event: stored once by eventID
    // (docs/detection.md), as POST /v1/cloudtrail does (issue 17).
    writeFileSync(join(dir, 'a.json'), records(rogue, createFilterRule(IDS.rogueFilter)));
    writeFileSync(join(dir, 'b.json.gz'), gzipSync(records(rogue)));
    const c = io();
    expect(await run(['scan', dir, '--manifest', join(dir, 'manifest.yaml')], c)).toBe(1);
    const lines = c.out().trimEnd().split('\n');
    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatch(/^2024-03-05T10:15:42Z {2}critical {2}mirror-session-created +arn:aws:iam::111122223333:user\/mallory created mirror session tms-0f9e8d7c6b5a40312/);
    expect(lines[0]).toContain(`[${findingId('mirror-session-created', IDS.session2)}, 1 event]`);
    expect(lines[1]).toContain('mirror-filter-changed');
    expect(c.err()).toContain('3 records in 2 files, 2 traffic-mirroring calls (1 duplicate by eventID ignored), 2 findings');
  });

  it('reads SIEM exports named *.log, and counts (with --verbose, lists) every file it skips with the reason', async () => {
    const dir = tmpDir();
    const rogue = createSession({ id: IDS.session2, eni: IDS.eni2, target: IDS.rogueTarget, vni: 4242 });
    writeFileSync(join(dir, 'export-1.log'), `${JSON.stringify(rogue)}\n${JSON.stringify(createFilterRule(IDS.rogueFilter))}\n`);
    writeFileSync(join(dir, 'export-2.log'), gzipSync(records(rogue)));
    writeFileSync(join(dir, 'notes.txt'), 'exported from the SIEM on Monday\n');
    writeFileSync(join(dir, 'app.log'), '{"level":30,"msg":"not CloudTrail"}\n');
    writeFileSync(join(dir, '.cache'), 'x');
    const c = io();
    expect(await run(['scan', dir], c)).toBe(1);
    expect(c.err()).toBe(
      'mirrorguard: cloudtrail scan: 3 records in 2 files, 2 traffic-mirroring calls (1 duplicate by eventID ignored), 2 findings (no manifest); ' +
        '3 skipped (1 hidden (name starts with a dot), 1 JSON, but no CloudTrail records, 1 neither gzip nor JSON); --verbose lists them\n',
    );
    const v = io();
    expect(await run(['scan', dir, '--verbose'], v)).toBe(1);
    expect(v.err()).toContain(`mirrorguard: skipped ${join(dir, 'notes.txt')}: neither gzip nor JSON\n`);
    expect(v.err()).toContain(`mirrorguard: skipped ${join(dir, 'app.log')}: JSON, but no CloudTrail records\n`);
    expect(v.err()).toContain(`mirrorguard: skipped ${join(dir, '.cache')}: hidden (name starts with a dot)\n`);
    expect(v.err()).toContain('3 skipped (1 hidden (name starts with a dot), 1 JSON, but no CloudTrail records, 1 neither gzip nor JSON) (listed above)\n');
  });

  it('--json prints one Finding per line', async () => {
    const dir = tmpDir();
    writeFileSync(join(dir, 'trail.jsonl'), [createSession(), deleteSession(IDS.session)].map((r) => JSON.stringify(r)).join('\n'));
    const c = io();
    expect(await run(['scan', '--json', join(dir, 'trail.jsonl')], c)).toBe(1);
    const found = c.out().trimEnd().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(found.map((f) => f.kind)).toEqual(['mirror-session-created', 'mirror-session-deleted']);
    for (const f of found) {
      expect(f.id).toBe(findingId(f.kind as keyof typeof FINDING_KINDS, IDS.session));
      expect(SEVERITIES).toContain(f.severity);
      expect(f).toMatchObject({ status: 'open', count: 1, firstSeen: '2024-03-05T10:15:42Z', lastSeen: '2024-03-05T10:15:42Z', sessionId: IDS.session });
      expect(typeof f.summary).toBe('string');
      expect(f.evidence).toMatchObject({ eventName: expect.any(String), actorArn: 'arn:aws:iam::111122223333:user/mallory', callerIp: '203.0.113.9', manifest: null });
    }
    expect(c.err()).toContain('(no manifest)');
  });

  it('exits 2 when an input is unreadable, naming it, after printing the findings of the others', async () => {
    const dir = tmpDir();
    const good = join(dir, 'good.json');
    const truncated = join(dir, 'cut.json.gz');
    const missing = join(dir, 'missing.json');
    writeFileSync(good, records(createTarget(IDS.rogueTarget)));
    const gz = gzipSync(records(createSession()));
    writeFileSync(truncated, gz.subarray(0, gz.length - 10));
    const c = io();
    expect(await run(['scan', missing, truncated, good], c)).toBe(2);
    expect(c.out()).toContain('mirror-target-created');
    expect(c.err()).toContain(`MG_ERR_CLOUDTRAIL_READ: cannot read a CloudTrail input: ${missing}: no such file or directory`);
    expect(c.err()).toMatch(new RegExp(`MG_ERR_CLOUDTRAIL_READ: cannot read a CloudTrail input: ${truncated.replace(/[.]/g, '\\.')}: bad gzip data`));
    expect(c.err()).toContain('1 record in 2 files, 1 traffic-mirroring call, 1 finding (no manifest); 2 input problems (see above)');
  });

  it('exits 2 for malformed JSON lines, naming file and line, and still reports the good lines', async () => {
    const dir = tmpDir();
    const f = join(dir, 'events.ndjson');
    writeFileSync(f, `${JSON.stringify(createTarget(IDS.rogueTarget))}\n{"eventName": \n`);
    const c = io();
    expect(await run(['scan', f], c)).toBe(2);
    expect(c.out()).toContain('mirror-target-created');
    expect(c.err()).toContain(`${f}:2: not JSON`);
  });

  it('exits 2 when a traffic-mirroring record cannot be read (its eventTime), rather than 0', async () => {
    const dir = tmpDir();
    writeFileSync(join(dir, 't.json'), records({ ...createSession(), eventTime: 'soon' }));
    const c = io();
    expect(await run(['scan', join(dir, 't.json')], c)).toBe(2);
    expect(c.err()).toContain('1 traffic-mirroring record skipped (CreateTrafficMirrorSession: eventTime "soon")');
  });

  it('reads stdin for -', async () => {
    const c = io({ stdin: Readable.from([Buffer.from(JSON.stringify({ 'detail-type': 'AWS API Call via CloudTrail', detail: createTarget(IDS.rogueTarget) }))]) });
    expect(await run(['scan', '-'], c)).toBe(1);
    expect(c.out()).toContain('mirror-target-created');
  });

  it('refuses unknown flags, a missing command or path with MG_ERR_CLI_USAGE (exit 64), and prints help', async () => {
    for (const argv of [['scan', 'x', '--bogus'], ['scan'], [], ['list', 'x'], ['scan', 'x', '--manifest']]) {
      const e = await usageError(run(argv, io()));
      expect([argv, e.code, e.exitCode]).toEqual([argv, 'MG_ERR_CLI_USAGE', 64]);
    }
    expect((await usageError(run(['scan', 'x', '--bogus'], io()))).message).toBe(
      "invalid command line: cloudtrail: Unknown option '--bogus'; see 'mirrorguard cloudtrail --help'",
    );
    const c = io();
    expect(await run(['--help'], c)).toBe(0);
    expect(c.out()).toMatch(/^usage: mirrorguard cloudtrail scan PATH\.\.\. \[--manifest FILE\] \[--json\]/);
  });

  it('fails with the manifest loader error before scanning when the manifest is bad', async () => {
    const dir = tmpDir();
    writeFileSync(join(dir, 'm.yaml'), 'version: 1\nsessions:\n  - id: nope\n    vni: 99999999\n');
    writeFileSync(join(dir, 't.json'), records(createSession()));
    const e = await usageError(run(['scan', join(dir, 't.json'), '--manifest', join(dir, 'm.yaml')], io()));
    expect(e.code).toBe('MG_ERR_MANIFEST_INVALID');
    const missing = await usageError(run(['scan', join(dir, 't.json'), '--manifest', join(dir, 'none.yaml')], io()));
    expect(missing.code).toBe('MG_ERR_MANIFEST_READ');
  });

  it('draws a progress bar on a terminal only, and clears it', async () => {
    const dir = tmpDir();
    for (let i = 0; i < 5; i++) {
      const d = join(dir, 'AWSLogs', '111122223333', 'CloudTrail', 'eu-central-1', '2024', '03', `0${i + 1}`);
      mkdirSync(d, { recursive: true });
      writeFileSync(join(d, `f${i}.json.gz`), gzipSync(records(describeSessions())));
    }
    const tty = io({ tty: true });
    expect(await run(['scan', dir], tty)).toBe(0);
    expect(tty.err()).toMatch(/\r\[#+\] 5\/5 files {2}0\.0\/0\.0 MiB\x1b\[K/);
    expect(tty.err()).toContain('\r\x1b[K'); // cleared before the summary line
    const pipe = io();
    expect(await run(['scan', dir], pipe)).toBe(0);
    expect(pipe.err()).not.toContain('\r');
  });
});

describe('Progress', () => {
  it('shows files and MiB done against the totals and throttles redraws', () => {
    let out = '';
    let now = 0;
    const p = new Progress({ write: (s: string) => (out += s), columns: 80 }, 4, 8 * 1024 * 1024, () => now);
    now = 1000;
    p.fileDone(2 * 1024 * 1024);
    expect(p.line()).toBe(`[${'#'.repeat(8)}${'-'.repeat(22)}] 1/4 files  2.0/8.0 MiB`); // 30 wide on 80 columns
    now = 1050; // within 100 ms: no redraw
    const before = out;
    p.fileDone(2 * 1024 * 1024);
    expect(out).toBe(before);
    now = 1200;
    p.fileDone(4 * 1024 * 1024);
    expect(out.endsWith('[##############################] 3/4 files  8.0/8.0 MiB\x1b[K')).toBe(true);
    p.clear();
    expect(out.endsWith('\r\x1b[K')).toBe(true);
  });

  it('formats a finding line', () => {
    expect(
      humanLine({
        id: 'f_0123456789abcdef0123',
        kind: 'mirror-attempt-failed',
        severity: 'high',
        status: 'open',
        firstSeen: '2024-03-05T10:15:42Z',
        lastSeen: '2024-03-05T10:15:42Z',
        count: 1,
        summary: 's',
        evidence: {},
      }),
    ).toBe('2024-03-05T10:15:42Z  high      mirror-attempt-failed    s  [f_0123456789abcdef0123, 1 event]');
  });
});
