import { mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { gzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { MgError } from '../../../src/errors.js';
import {
  isCloudTrailFileName,
  listCloudTrailFiles,
  readCloudTrailPath,
  readCloudTrailStream,
  recordsFromJson,
  recordsFromText,
  type ReadItem,
} from '../../../src/detect/cloudtrail/parse.js';
import { tmpDir } from '../../helpers/tmp.js';
import { createSession, deleteSession, IDS } from './events.js';

async function collect(
  it: AsyncIterable<ReadItem>,
): Promise<{ records: unknown[]; errors: MgError[]; ends: { file: string; bytes: number }[]; skipped: [string, string][]; batches: number }> {
  const out = { records: [] as unknown[], errors: [] as MgError[], ends: [] as { file: string; bytes: number }[], skipped: [] as [string, string][], batches: 0 };
  for await (const item of it) {
    if (item.type === 'records') {
      out.records.push(...item.records);
      out.batches++;
    } else if (item.type === 'error') out.errors.push(item.error);
    else if (item.type === 'skipped') out.skipped.push([item.file.split('/').pop()!, item.reason]);
    else out.ends.push({ file: item.file, bytes: item.bytes });
  }
  return out;
}

function catchErr(fn: () => unknown): MgError {
  try {
    fn();
  } catch (e) {
    if (e instanceof MgError) return e;
    throw e;
  }
  throw new Error('did not throw');
}

const eventBridge = (detail: unknown, detailType = 'AWS API Call via CloudTrail'): Record<string, unknown> => ({
  version: '0',
  id: '6f87d04b-9f74-4f04-a780-7acf4b0a9b38',
  'detail-type': detailType,
  source: 'aws.ec2',
  account: '111122223333',
  time: '2024-03-05T10:15:42Z',
  region: 'eu-central-1',
  resources: [],
  detail,
});

describe('recordsFromJson', () => {
  const a = createSession();
  const b = deleteSession();

  it('accepts a single record, a Records file, an EventBridge event, lookup-events output and arrays of them', () => {
    expect(recordsFromJson(a)).toEqual([a]);
    expect(recordsFromJson({ Records: [a, b] })).toEqual([a, b]);
    expect(recordsFromJson(eventBridge(a))).toEqual([a]);
    expect(recordsFromJson({ Events: [{ EventId: 'x', EventName: 'CreateTrafficMirrorSession', CloudTrailEvent: JSON.stringify(a) }] })).toEqual([a]);
    expect(recordsFromJson([a, { Records: [b] }, eventBridge(b)])).toEqual([a, b, b]);
    expect(recordsFromJson({ Records: [] })).toEqual([]);
  });

  it('takes the record from other "via CloudTrail" EventBridge types and ignores non-CloudTrail events', () => {
    expect(recordsFromJson(eventBridge(a, 'AWS Service Event via CloudTrail'))).toEqual([a]);
    expect(recordsFromJson(eventBridge({ 'instance-id': 'i-0123', state: 'running' }, 'EC2 Instance State-change Notification'))).toEqual([]);
  });

  it('refuses other JSON with MG_ERR_CLOUDTRAIL_FORMAT (HTTP 400), saying where', () => {
    for (const bad of [42, 'x', null, { foo: 1 }, { Records: 'nope' }, eventBridge('text')]) {
      const e = catchErr(() => recordsFromJson(bad, 'body'));
      expect(e.code).toBe('MG_ERR_CLOUDTRAIL_FORMAT');
      expect(e.statusCode).toBe(400);
      expect(e.message).toContain('body');
    }
    const e = catchErr(() => recordsFromJson([a, 7], 'body'));
    expect(e.message).toContain('body[1]');
    expect(catchErr(() => recordsFromJson({ Events: [{ CloudTrailEvent: '{oops' }] })).problems[0]!.message).toMatch(/not JSON/);
    expect(catchErr(() => recordsFromJson([[[[[a]]]]])).problems[0]!.message).toMatch(/nested too deeply/);
  });
});

describe('recordsFromText', () => {
  const a = createSession();
  const b = deleteSession();

  it('reads a JSON document, JSON lines, a BOM, CRLF and blank lines', () => {
    expect(recordsFromText(JSON.stringify({ Records: [a, b] }, null, 2))).toEqual([a, b]);
    expect(recordsFromText(`${JSON.stringify(a)}\n${JSON.stringify(eventBridge(b))}\n`)).toEqual([a, b]);
    expect(recordsFromText(`\uFEFF${JSON.stringify(a)}\r\n\r\n${JSON.stringify(b)}\r\n`)).toEqual([a, b]);
    expect(recordsFromText('  \n')).toEqual([]);
  });

  it('names the file and the line of a bad JSON line, all of them', () => {
    const text = [JSON.stringify(a), '{"eventName": "x",', JSON.stringify(b), '{"foo": 1}', ''].join('\n');
    const e = catchErr(() => recordsFromText(text, 'logs.jsonl'));
    expect(e.code).toBe('MG_ERR_CLOUDTRAIL_FORMAT');
    expect(e.message).toContain('logs.jsonl: 2 malformed JSON lines');
    expect(e.problems.map((p) => [p.file, p.line])).toEqual([
      ['logs.jsonl', 2],
      ['logs.jsonl', 4],
    ]);
    expect(e.describe()).toContain('logs.jsonl:2: not JSON');
  });

  it('names the line of a syntax error in a pretty-printed document', () => {
    const text = JSON.stringify({ Records: [a] }, null, 2).replace('"eventName"', '"eventName" "');
    const e = catchErr(() => recordsFromText(text, 'bad.json'));
    expect(e.code).toBe('MG_ERR_CLOUDTRAIL_FORMAT');
    expect(e.problems[0]!.file).toBe('bad.json');
    const expectedLine = text.slice(0, text.indexOf('"eventName" "')).split('\n').length;
    expect(e.problems[0]!.line).toBe(expectedLine); // from V8's "at position N"
    expect(e.describe()).toContain(`bad.json:${expectedLine}: not JSON`);
  });
});

describe('readCloudTrailPath', () => {
  const a = createSession();
  const b = deleteSession(IDS.session2);

  it('reads plain and gzip files, deciding gzip by magic bytes and not by name', async () => {
    const dir = tmpDir();
    const body = JSON.stringify({ Records: [a, b] });
    writeFileSync(join(dir, 'plain.json'), body);
    writeFileSync(join(dir, 'zipped.json.gz'), gzipSync(body));
    writeFileSync(join(dir, 'misnamed.json'), gzipSync(body)); // gzip without the .gz
    writeFileSync(join(dir, 'lines.jsonl.gz'), gzipSync(`${JSON.stringify(a)}\n${JSON.stringify(b)}\n`));
    for (const f of ['plain.json', 'zipped.json.gz', 'misnamed.json', 'lines.jsonl.gz']) {
      const r = await collect(readCloudTrailPath(join(dir, f)));
      expect([f, r.errors]).toEqual([f, []]);
      expect(r.records).toEqual([a, b]);
      expect(r.ends).toHaveLength(1);
    }
  });

  it('walks an S3 delivery tree in order, skipping (and saying so) digests, hidden and non-JSON files', async () => {
    const dir = tmpDir();
    const day = (d: string): string => join(dir, 'AWSLogs', '111122223333', 'CloudTrail', 'eu-central-1', '2024', '03', d);
    mkdirSync(day('05'), { recursive: true });
    mkdirSync(day('06'), { recursive: true });
    const digest = join(dir, 'AWSLogs', '111122223333', 'CloudTrail-Digest', 'eu-central-1', '2024', '03', '05');
    mkdirSync(digest, { recursive: true });
    writeFileSync(join(day('05'), '111122223333_CloudTrail_eu-central-1_20240305T1015Z_abc.json.gz'), gzipSync(JSON.stringify({ Records: [a] })));
    writeFileSync(join(day('06'), '111122223333_CloudTrail_eu-central-1_20240306T0000Z_def.json.gz'), gzipSync(JSON.stringify({ Records: [b] })));
    writeFileSync(join(digest, '111122223333_CloudTrail-Digest_eu-central-1_trail_eu-central-1_20240305T101542Z.json.gz'), gzipSync('{"awsAccountId":"111122223333","logFiles":[]}'));
    writeFileSync(join(day('05'), '.DS_Store'), 'junk');
    writeFileSync(join(day('05'), 'README.txt'), 'not a log');
    symlinkSync(dir, join(day('06'), 'loop')); // a link back to the top must not loop
    const r = await collect(readCloudTrailPath(dir));
    expect(r.errors).toEqual([]);
    expect(r.records).toEqual([a, b]);
    expect(r.ends.map((e) => e.file.split('/').pop())).toEqual([
      '111122223333_CloudTrail_eu-central-1_20240305T1015Z_abc.json.gz',
      'README.txt', // sniffed, then skipped
      '111122223333_CloudTrail_eu-central-1_20240306T0000Z_def.json.gz',
    ]);
    expect(r.skipped).toEqual([
      ['.DS_Store', 'hidden'],
      ['README.txt', 'not-json'],
      ['loop', 'seen-dir'],
      ['CloudTrail-Digest', 'digest'],
    ]);
    expect(r.ends.every((e) => e.bytes > 0)).toBe(true);
    const listed: string[] = [];
    for await (const f of listCloudTrailFiles(dir)) if ('bytes' in f) listed.push(f.file);
    expect(listed).toHaveLength(3);
  });

  it('sniffs files whose names do not say JSON: reads gzip, JSON documents and JSON lines holding CloudTrail, skips the rest with a reason', async () => {
    const dir = tmpDir();
    writeFileSync(join(dir, 'a-records.log'), `\ufeff  ${JSON.stringify({ Records: [a] })}`);
    writeFileSync(join(dir, 'b-lines.log'), `${JSON.stringify(b)}\n\n${JSON.stringify(a)}\n`);
    writeFileSync(join(dir, 'c-zipped.log.gz'), gzipSync(JSON.stringify([{ Records: [b] }])));
    writeFileSync(join(dir, 'd-export'), gzipSync(`${JSON.stringify(a)}\n`));
    writeFileSync(join(dir, 'e-syslog.log'), '<134>Dec  3 09:00:00 host app: hello\n');
    writeFileSync(join(dir, 'f-other.log'), JSON.stringify({ level: 'info', msg: 'an app log, not CloudTrail' }));
    writeFileSync(join(dir, 'g-other-lines.txt'), '{"a":1}\n{"b":2}\n');
    writeFileSync(join(dir, 'h-empty.log'), ' \n');
    writeFileSync(join(dir, 'i-binary.bin'), Buffer.from([0x00, 0x01, 0x7b]));
    const r = await collect(readCloudTrailPath(dir));
    expect(r.errors).toEqual([]);
    expect(r.records).toEqual([a, b, a, b, a]);
    expect(r.skipped).toEqual([
      ['e-syslog.log', 'not-json'],
      ['f-other.log', 'not-cloudtrail'],
      ['g-other-lines.txt', 'not-cloudtrail'],
      ['h-empty.log', 'empty'],
      ['i-binary.bin', 'not-json'],
    ]);
    expect(r.ends).toHaveLength(9); // every file found ends once, read or skipped
  });

  it('still reports a broken file whose name says JSON, and a sniffed file that mixes CloudTrail with garbage', async () => {
    const dir = tmpDir();
    writeFileSync(join(dir, 'app.json'), JSON.stringify({ level: 'info' }));
    writeFileSync(join(dir, 'mixed.log'), `${JSON.stringify(a)}\nnot json\n`);
    const r = await collect(readCloudTrailPath(dir));
    expect(r.skipped).toEqual([]);
    expect(r.errors.map((e) => e.code)).toEqual(['MG_ERR_CLOUDTRAIL_FORMAT', 'MG_ERR_CLOUDTRAIL_FORMAT']);
  });

  it('knows which names in a tree are logs', () => {
    expect(isCloudTrailFileName('x.json')).toBe(true);
    expect(isCloudTrailFileName('x.JSON.GZ')).toBe(true);
    expect(isCloudTrailFileName('x.ndjson')).toBe(true);
    expect(isCloudTrailFileName('x.json.bak')).toBe(false);
    expect(isCloudTrailFileName('1_CloudTrail-Digest_r_t_r_20240305T101542Z.json.gz')).toBe(false);
  });

  it('reports a missing path, bad gzip and malformed JSON as errors naming the file, and ends each file', async () => {
    const dir = tmpDir();
    const good = gzipSync(JSON.stringify({ Records: [a] }));
    writeFileSync(join(dir, 'truncated.json.gz'), good.subarray(0, good.length - 12));
    writeFileSync(join(dir, 'garbage.json.gz'), Buffer.from([0x1f, 0x8b, 0x08, 0x00, 1, 2, 3, 4, 5, 6, 7, 8, 9]));
    writeFileSync(join(dir, 'notjson.json'), 'hello');
    writeFileSync(join(dir, 'ok.json'), JSON.stringify(b));
    const r = await collect(readCloudTrailPath(dir));
    expect(r.records).toEqual([b]);
    const byFile = new Map(r.errors.map((e) => [e.message.split(': ')[1], e]));
    expect(byFile.get(join(dir, 'truncated.json.gz'))?.code).toBe('MG_ERR_CLOUDTRAIL_READ');
    expect(byFile.get(join(dir, 'truncated.json.gz'))?.message).toMatch(/bad gzip data/);
    expect(byFile.get(join(dir, 'garbage.json.gz'))?.code).toBe('MG_ERR_CLOUDTRAIL_READ');
    expect(r.errors.find((e) => e.code === 'MG_ERR_CLOUDTRAIL_FORMAT')?.message).toContain('notjson.json');
    expect(r.ends).toHaveLength(4);

    const missing = await collect(readCloudTrailPath(join(dir, 'nope.json')));
    expect(missing.errors[0]!.code).toBe('MG_ERR_CLOUDTRAIL_READ');
    expect(missing.errors[0]!.message).toContain(`${join(dir, 'nope.json')}: no such file or directory`);
    expect(missing.ends).toHaveLength(0); // nothing was found to end
  });

  it('stops a gzip bomb at the decompressed size cap', async () => {
    const dir = tmpDir();
    // 64 MiB of spaces compress to about 64 KiB; with a 1 MiB cap we must stop early.
    writeFileSync(join(dir, 'bomb.json.gz'), gzipSync(Buffer.alloc(64 * 1024 * 1024, 0x20), { level: 9 }));
    const r = await collect(readCloudTrailPath(join(dir, 'bomb.json.gz'), { maxBytes: 1024 * 1024 }));
    expect(r.errors).toHaveLength(1);
    expect(r.errors[0]!.code).toBe('MG_ERR_CLOUDTRAIL_READ');
    expect(r.errors[0]!.message).toMatch(/bomb\.json\.gz: more than 1048576 bytes once decompressed/);
  });

  it('streams JSON lines in batches, keeps the good lines around bad ones, and names the bad lines', async () => {
    const dir = tmpDir();
    const lines: string[] = [];
    for (let i = 0; i < 2500; i++) lines.push(JSON.stringify({ ...a, eventID: `id-${i}` }));
    lines.splice(1000, 0, '{broken');
    writeFileSync(join(dir, 'big.jsonl'), `${lines.join('\n')}\n`);
    const r = await collect(readCloudTrailPath(join(dir, 'big.jsonl'), { batchRecords: 1000 }));
    expect(r.records).toHaveLength(2500);
    expect(r.batches).toBe(3);
    expect(r.errors).toHaveLength(1);
    expect(r.errors[0]!.problems[0]).toMatchObject({ file: join(dir, 'big.jsonl'), line: 1001 });
  });

  it('gives up on an over-long gzip stream that never ends (stdin) instead of hanging', async () => {
    const pass = new PassThrough();
    pass.write(gzipSync(Buffer.alloc(8 * 1024 * 1024, 0x20)));
    // No end(): like a pipe whose writer is still there.
    const r = await collect(readCloudTrailStream(pass, '<stdin>', { maxBytes: 1024 * 1024 }));
    expect(r.errors.map((e) => e.code)).toEqual(['MG_ERR_CLOUDTRAIL_READ']);
    expect(pass.destroyed).toBe(true);
  });

  it('reads a stream that delivers one byte at a time (stdin, HTTP bodies)', async () => {
    const bytes = gzipSync(JSON.stringify({ Records: [a] }));
    const stream = Readable.from((function* () {
      for (const byte of bytes) yield Buffer.from([byte]);
    })());
    const r = await collect(readCloudTrailStream(stream, '<stdin>'));
    expect(r.errors).toEqual([]);
    expect(r.records).toEqual([a]);
  });
});
