/**
 * The S3 archive against a real S3 emulator (moto_server): real PCAP files from our writer, uploaded with
 * their SHA-256 as the S3 checksum, read back and hashed independently; Object Lock, legal hold, SSE,
 * multipart with per-part checksums, the key layout, and retries across an emulator outage.
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { appendFileSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  DeleteObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectVersionsCommand,
  ListObjectsV2Command,
  type S3Client,
} from '@aws-sdk/client-s3';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { hourPrefixes, objectKey } from '../../src/archive/key.js';
import { MemoryArchiveJobs } from '../../src/archive/memory-jobs.js';
import { ArchiveIntegrityError, compositeSha256, S3Archiver } from '../../src/archive/s3-archiver.js';
import { ArchiveWorker } from '../../src/archive/worker.js';
import { MemoryLedgerChain } from '../../src/ledger/chain.js';
import { loadSigningKey } from '../../src/ledger/keys.js';
import { exportJsonl, Ledger } from '../../src/ledger/ledger.js';
import { PROJECT_ROOT } from '../helpers/fixtures.js';
import { runCli } from '../helpers/serve.js';
import { checkIfHave, describeNeeds } from '../helpers/needs.js';
import { tsharkReadsCleanly } from '../helpers/oracles.js';
import { startMoto, type Moto } from '../helpers/moto.js';
import { useTmpDir } from '../helpers/tmp.js';
import { T0_SEC, writeCapture } from './archive-helpers.js';

const MiB = 1024 * 1024;
const hexToB64 = (hex: string) => Buffer.from(hex, 'hex').toString('base64');

async function getBytes(c: S3Client, Bucket: string, Key: string, VersionId?: string): Promise<Buffer> {
  const r = await c.send(new GetObjectCommand({ Bucket, Key, VersionId }));
  return Buffer.from(await r.Body!.transformToByteArray());
}

describeNeeds(['s3'], 'S3 archive (moto_server)', () => {
  let moto: Moto;
  let c: S3Client;
  const tmp = useTmpDir('mg-archive-');
  let n = 0;
  /** A fresh bucket per test, so tests never see each other's objects. */
  const newBucket = async (objectLock = false) => {
    const b = `evidence-${++n}`;
    await moto.bucket(b, { objectLock });
    return b;
  };

  beforeAll(async () => {
    moto = await startMoto();
    c = moto.client(1);
  });
  afterAll(async () => {
    c?.destroy();
    await moto?.stop();
  });

  it('uploads a real PCAP with its SHA-256 as the S3 checksum; the bytes read back hash to the catalog SHA-256', async () => {
    const bucket = await newBucket();
    const file = await writeCapture(join(tmp.path, '1764763200000000000-w0-1.pcap'), { packets: 300 });
    const a = new S3Archiver({ client: c, bucket, prefix: 'mg/prod' });
    const r = await a.upload(file);

    expect(r.key).toBe('mg/prod/vni=42/src=10.0.1.5/2025/12/03/12/i-0abc-1764763200000000000-w0-1.pcap');
    expect(r.versionId).toMatch(/\S/);
    expect(r.parts).toBe(1);
    const head = await c.send(new HeadObjectCommand({ Bucket: bucket, Key: r.key, ChecksumMode: 'ENABLED' }));
    // S3's stored checksum is the catalog's SHA-256 (hex there, base64 in S3).
    expect(head.ChecksumSHA256).toBe(hexToB64(file.sha256));
    expect(head.ContentLength).toBe(file.bytes);
    expect(head.ServerSideEncryption).toBe('AES256');
    expect(head.Metadata).toEqual({
      node: 'i-0abc',
      vni: '42',
      'source-ip': '10.0.1.5',
      session: 'tms-0123456789abcdef0',
      'first-packet': '2025-12-03T12:00:00.000Z',
      'last-packet': '2025-12-03T12:00:00.299Z',
      'first-us': String(T0_SEC * 1e6),
      'last-us': String(T0_SEC * 1e6 + 299_000),
      packets: '300',
      sha256: file.sha256,
      'capture-id': '1',
    });
    // Independent of anything S3 says: download and hash.
    const body = await getBytes(c, bucket, r.key, r.versionId!);
    expect(createHash('sha256').update(body).digest('hex')).toBe(file.sha256);
    const copy = join(tmp.path, 'downloaded.pcap');
    writeFileSync(copy, body);
    checkIfHave('tshark', () => expect(tsharkReadsCleanly(copy)).toMatchObject({ ok: true, packets: 300 }));
  });

  it('refuses to archive a file that changed on disk since the catalog hashed it; nothing reaches the bucket', async () => {
    const bucket = await newBucket();
    const file = await writeCapture(join(tmp.path, 'a.pcap'), { packets: 20 });
    const a = new S3Archiver({ client: c, bucket, prefix: 'mg' });
    // Same size, one byte different: only the hash can tell.
    const path = file.path;
    const bytes = readFileSync(path);
    bytes[bytes.length - 1] ^= 0x01;
    writeFileSync(path, bytes);
    await expect(a.upload(file)).rejects.toThrow(ArchiveIntegrityError);
    await expect(a.upload(file)).rejects.toThrow(/SHA-256 [0-9a-f]{64} on disk, the catalog says/);
    appendFileSync(path, 'x');
    await expect(a.upload(file)).rejects.toThrow(/bytes on disk, the catalog says/);
    const listed = await c.send(new ListObjectsV2Command({ Bucket: bucket }));
    expect(listed.KeyCount ?? 0).toBe(0);
  });

  it('sets Object Lock retention on each object; deleting the locked version is refused; a legal hold can be set and cleared', async () => {
    const bucket = await newBucket(true);
    const now = Date.now();
    const file = await writeCapture(join(tmp.path, 'locked.pcap'), { packets: 10 });
    const a = new S3Archiver({ client: c, bucket, prefix: 'mg', objectLock: { mode: 'GOVERNANCE', days: 3 }, now: () => now });
    const r = await a.upload(file);
    expect(r.retainUntil?.getTime()).toBe(now + 3 * 86_400_000);
    const ret = await c.send(new HeadObjectCommand({ Bucket: bucket, Key: r.key, VersionId: r.versionId! }));
    expect(ret.ObjectLockMode).toBe('GOVERNANCE');
    expect(Math.abs(ret.ObjectLockRetainUntilDate!.getTime() - (now + 3 * 86_400_000))).toBeLessThan(1000);
    // Deleting that version (the only way to destroy the bytes in a versioned bucket) is refused.
    await expect(c.send(new DeleteObjectCommand({ Bucket: bucket, Key: r.key, VersionId: r.versionId! }))).rejects.toMatchObject({ name: 'AccessDenied' });
    expect(createHash('sha256').update(await getBytes(c, bucket, r.key, r.versionId!)).digest('hex')).toBe(file.sha256);

    await a.setLegalHold(r.key, r.versionId, true);
    expect((await c.send(new HeadObjectCommand({ Bucket: bucket, Key: r.key, VersionId: r.versionId! }))).ObjectLockLegalHoldStatus).toBe('ON');
    await a.setLegalHold(r.key, r.versionId, false);
    expect((await c.send(new HeadObjectCommand({ Bucket: bucket, Key: r.key, VersionId: r.versionId! }))).ObjectLockLegalHoldStatus).toBe('OFF');
  });

  it('COMPLIANCE mode and SSE-KMS with a key ID are passed through', async () => {
    const bucket = await newBucket(true);
    const file = await writeCapture(join(tmp.path, 'kms.pcap'), { packets: 5 });
    const a = new S3Archiver({ client: c, bucket, prefix: '', objectLock: { mode: 'COMPLIANCE', days: 1 }, kmsKeyId: 'alias/mirrorguard-evidence' });
    const r = await a.upload(file);
    expect(r.key.startsWith('vni=42/src=10.0.1.5/2025/12/03/12/')).toBe(true);
    const head = await c.send(new HeadObjectCommand({ Bucket: bucket, Key: r.key, VersionId: r.versionId! }));
    expect(head.ObjectLockMode).toBe('COMPLIANCE');
    expect(head.ServerSideEncryption).toBe('aws:kms');
    expect(head.SSEKMSKeyId).toContain('mirrorguard-evidence');
  });

  it('uploads a large file multipart with a SHA-256 per part: S3 stores the composite, metadata the whole-file SHA-256', async () => {
    const bucket = await newBucket(true);
    // About 12.5 MiB: three 5 MiB parts (the last shorter).
    const file = await writeCapture(join(tmp.path, 'big.pcap'), { packets: 9000, frameBytes: 1440 });
    expect(file.bytes).toBeGreaterThan(10 * MiB);
    const a = new S3Archiver({ client: c, bucket, prefix: 'mg', partBytes: 5 * MiB, multipartThresholdBytes: 5 * MiB, objectLock: { mode: 'GOVERNANCE', days: 1 } });
    const r = await a.upload(file);
    expect(r.parts).toBe(3);
    const body = await getBytes(c, bucket, r.key, r.versionId!);
    expect(body.length).toBe(file.bytes);
    expect(createHash('sha256').update(body).digest('hex')).toBe(file.sha256);
    // The composite, recomputed from the downloaded bytes, is what S3 stored.
    const parts = [0, 5 * MiB, 10 * MiB].map((o) => createHash('sha256').update(body.subarray(o, Math.min(o + 5 * MiB, body.length))).digest());
    const composite = compositeSha256(parts);
    expect(r.s3ChecksumSha256).toBe(composite);
    const head = await c.send(new HeadObjectCommand({ Bucket: bucket, Key: r.key, ChecksumMode: 'ENABLED' }));
    expect(head.ChecksumSHA256?.replace(/-\d+$/, '')).toBe(composite.replace(/-3$/, ''));
    expect(head.Metadata?.sha256).toBe(file.sha256);
    expect(head.ObjectLockMode).toBe('GOVERNANCE');
  });

  it('lays keys out by VNI, source and hour, so a time window is a few prefix listings', async () => {
    const bucket = await newBucket();
    const a = new S3Archiver({ client: c, bucket, prefix: 'mg' });
    const files = [
      await writeCapture(join(tmp.path, 'h12.pcap'), { packets: 3, captureId: 1 }),
      await writeCapture(join(tmp.path, 'h13.pcap'), { packets: 3, captureId: 2, t0Sec: T0_SEC + 3600 }),
      await writeCapture(join(tmp.path, 'h15.pcap'), { packets: 3, captureId: 3, t0Sec: T0_SEC + 3 * 3600 }),
      await writeCapture(join(tmp.path, 'v6.pcap'), { packets: 3, captureId: 4, sourceIp: '2001:db8::5', vni: 7 }),
    ];
    for (const f of files) await a.upload(f);
    // 12:30 to 13:30 on pair (10.0.1.5, 42): the 12h and 13h prefixes, and only those files.
    const keys: string[] = [];
    for (const p of hourPrefixes('mg', 42, '10.0.1.5', T0_SEC * 1000 + 1_800_000, T0_SEC * 1000 + 5_400_000)) {
      const l = await c.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: p }));
      keys.push(...(l.Contents ?? []).map((o) => o.Key!));
    }
    expect(keys.sort()).toEqual([objectKey('mg', files[0]!), objectKey('mg', files[1]!)].sort());
    const v6 = await c.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: 'mg/vni=7/src=2001-db8--5/2025/12/03/12/' }));
    expect(v6.Contents?.map((o) => o.Key)).toEqual(['mg/vni=7/src=2001-db8--5/2025/12/03/12/i-0abc-v6.pcap']);
  });

  it('retries with backoff while S3 is down and uploads once it is back', async () => {
    const bucket = 'evidence-outage';
    await moto.bucket(bucket);
    let now = 1_000_000;
    const jobs = new MemoryArchiveJobs();
    const w = new ArchiveWorker({ jobs, archiver: new S3Archiver({ client: c, bucket, prefix: 'mg' }), node: 'i-0abc', now: () => now, random: () => 0.5 });
    const file = await writeCapture(join(tmp.path, 'outage.pcap'), { packets: 40 });
    await moto.stop();
    try {
      const job = await jobs.enqueue(file, now);
      expect(await w.runOnce()).toBe(true);
      let j = (await jobs.get(job.id))!;
      expect(j).toMatchObject({ state: 'pending', attempts: 1 });
      expect(j.lastError).toMatch(/ECONNREFUSED|connect/i);
      // Equal jitter at 0.5 of a 1 s first step: 750 ms. Not due before then.
      expect(j.notBeforeMs).toBe(now + 750);
      expect(await w.runOnce()).toBe(false);
      now += 750;
      expect(await w.runOnce()).toBe(true);
      j = (await jobs.get(job.id))!;
      expect(j).toMatchObject({ state: 'pending', attempts: 2, notBeforeMs: now + 1500 });
      expect(w.counters['archive.upload.retry']).toBe(2);
    } finally {
      if (!moto.running) await moto.start();
    }
    await moto.bucket(bucket); // the emulator came back empty, as a new endpoint would
    now += 1500;
    expect(await w.runOnce()).toBe(true);
    const j = (await jobs.get(1))!;
    expect(j.state).toBe('done');
    expect(j.result?.versionId).toMatch(/\S/);
    expect(await jobs.pending()).toBe(0);
    expect(w.counters['archive.upload.ok']).toBe(1);
    const body = await getBytes(c, bucket, j.result!.key);
    expect(createHash('sha256').update(body).digest('hex')).toBe(file.sha256);
  });

  it('a job left claimed by a process that died is uploaded after restart: at once by recoverOwn, else when the lease ends', async () => {
    const bucket = await newBucket();
    let now = 5_000_000;
    const jobs = new MemoryArchiveJobs();
    const archiver = new S3Archiver({ client: c, bucket, prefix: 'mg' });
    const f1 = await writeCapture(join(tmp.path, 'k1.pcap'), { packets: 5, captureId: 1 });
    const f2 = await writeCapture(join(tmp.path, 'k2.pcap'), { packets: 5, captureId: 2 });
    await jobs.enqueue(f1, now);
    await jobs.enqueue(f2, now);
    // The dead process of node i-0abc held both (it claimed them, then kill -9).
    await jobs.claim('i-0abc', 'i-0abc/4242/1', now, 60_000);
    await jobs.claim('i-0abc', 'i-0abc/4242/1', now, 60_000);
    // Another node never takes them: the files are on i-0abc's disk.
    const otherNode = new ArchiveWorker({ jobs, archiver, node: 'i-0def', now: () => now, leaseMs: 60_000 });
    expect(await otherNode.runOnce()).toBe(false);
    // The restarted node takes its own back at once and uploads one ...
    const restarted = new ArchiveWorker({ jobs, archiver, node: 'i-0abc', now: () => now, leaseMs: 60_000 });
    expect(await restarted.recoverOwn()).toBe(1 + 1);
    expect(restarted.counters['archive.upload.recovered']).toBe(2);
    expect(await restarted.runOnce()).toBe(true);
    // ... and had it died again holding the second, without recoverOwn the job waits for the lease to end.
    await jobs.claim('i-0abc', 'i-0abc/4243/2', now, 60_000);
    expect(await restarted.runOnce()).toBe(false);
    now += 60_000;
    expect(await restarted.runOnce()).toBe(true);
    expect(await otherNode.runOnce()).toBe(false);
    expect((await jobs.get(1))!.state).toBe('done');
    expect((await jobs.get(2))!.state).toBe('done');
    // A late done() from the process that lost the lease changes nothing.
    expect(await jobs.done(2, 'i-0abc/4243/2', (await jobs.get(2))!.result!, now)).toBe(false);
    const listed = await c.send(new ListObjectsV2Command({ Bucket: bucket }));
    expect(listed.KeyCount).toBe(2);
  });

  it('the worker loop drains the queue by itself and stops cleanly', async () => {
    const bucket = await newBucket();
    const jobs = new MemoryArchiveJobs();
    const done: number[] = [];
    const w = new ArchiveWorker({ jobs, archiver: new S3Archiver({ client: c, bucket, prefix: 'mg' }), node: 'i-0abc', pollMs: 20, onUploaded: async (j) => void done.push(j.id) });
    for (let i = 1; i <= 5; i++) await jobs.enqueue(await writeCapture(join(tmp.path, `loop-${i}.pcap`), { packets: 5, captureId: i }), Date.now());
    w.start();
    const t0 = Date.now();
    while ((await jobs.pending()) > 0 && Date.now() - t0 < 20_000) await new Promise((r) => setTimeout(r, 20));
    await w.stop();
    expect(done.sort()).toEqual([1, 2, 3, 4, 5]);
    expect(w.counters['archive.upload.ok']).toBe(5);
    expect((await c.send(new ListObjectsV2Command({ Bucket: bucket }))).KeyCount).toBe(5);
  });

  it('archive to ledger to verify: the object downloaded from S3 verifies offline against the signed export', async () => {
    const bucket = await newBucket(true);
    const priv = join(tmp.path, 'ledger.key');
    const pub = join(tmp.path, 'ledger.pub');
    expect(runCli(['keys', 'init', '--private-key', priv, '--public-key', pub]).status).toBe(0);
    const chain = new MemoryLedgerChain();
    const ledger = new Ledger(chain, loadSigningKey(priv), 'i-0abc');
    const jobs = new MemoryArchiveJobs();
    const w = new ArchiveWorker({
      jobs,
      archiver: new S3Archiver({ client: c, bucket, prefix: 'mg', objectLock: { mode: 'GOVERNANCE', days: 1 } }),
      node: 'i-0abc',
      onUploaded: async (job, result) => void (await ledger.appendArchive(job.file, result)),
    });
    for (let i = 1; i <= 3; i++) await jobs.enqueue(await writeCapture(join(tmp.path, `e2e-${i}.pcap`), { packets: 30 * i, captureId: i }), Date.now());
    while (await w.runOnce());
    const done = await jobs.doneFor('i-0abc');
    expect(done).toHaveLength(3);
    let text = '';
    await exportJsonl(chain, (x) => (text += x));
    const exp = join(tmp.path, 'ledger.jsonl');
    writeFileSync(exp, text);
    const recs = await chain.page(1, 10);
    for (const j of done) {
      const rec = recs.find((r) => r.key === j.result!.key)!;
      expect(rec).toMatchObject({ kind: 'archive', bucket, versionId: j.result!.versionId, sha256: j.file.sha256, size: j.file.bytes });
      // The ledger's SHA-256 is the checksum S3 stored for the object.
      const head = await c.send(new HeadObjectCommand({ Bucket: bucket, Key: rec.key!, VersionId: rec.versionId!, ChecksumMode: 'ENABLED' }));
      expect(head.ChecksumSHA256).toBe(hexToB64(rec.sha256));
    }
    const dl = join(tmp.path, 'from-s3.pcap');
    writeFileSync(dl, await getBytes(c, bucket, done[1]!.result!.key, done[1]!.result!.versionId!));
    const ok = runCli(['verify', dl, '--ledger', exp, '--public-key', pub]);
    expect([ok.status, ok.stderr]).toEqual([0, '']);
    expect(ok.stdout).toContain(`s3://${bucket}/${done[1]!.result!.key} version ${done[1]!.result!.versionId}`);
    const b = readFileSync(dl);
    b[100] ^= 0x01;
    writeFileSync(dl, b);
    const bad = runCli(['verify', dl, '--ledger', exp, '--public-key', pub]);
    expect(bad.status).toBe(1);
    expect(bad.stderr).toContain('is in no ledger record');
  });

  it('sends what S3 verifies: x-amz-checksum-sha256 on every PUT and every part, no other checksum in its place', async () => {
    // moto stores the checksum we send without recomputing it (real S3 answers BadDigest on a mismatch),
    // so check on the wire that the header S3 verifies is there, with the catalog's digest.
    const bucket = await newBucket(true);
    const seen: { method: string; query: Record<string, unknown>; headers: Record<string, string> }[] = [];
    const client = moto.client(1);
    client.middlewareStack.add(
      (next) => async (args) => {
        const req = args.request as { method: string; query: Record<string, unknown>; headers: Record<string, string> };
        seen.push({ method: req.method, query: { ...req.query }, headers: { ...req.headers } });
        return next(args);
      },
      { step: 'finalizeRequest', name: 'recordRequests' },
    );
    try {
      const small = await writeCapture(join(tmp.path, 'wire-small.pcap'), { packets: 10, captureId: 1 });
      const big = await writeCapture(join(tmp.path, 'wire-big.pcap'), { packets: 5000, frameBytes: 1440, captureId: 2 });
      const a = new S3Archiver({ client, bucket, prefix: 'mg', partBytes: 5 * MiB, multipartThresholdBytes: 5 * MiB, objectLock: { mode: 'GOVERNANCE', days: 1 } });
      await a.upload(small);
      await a.upload(big);
      const puts = seen.filter((r) => r.method === 'PUT' && !('retention' in r.query));
      // One single PUT, then two parts.
      expect(puts.map((r) => ('partNumber' in r.query ? `part ${r.query.partNumber}` : 'object'))).toEqual(['object', 'part 1', 'part 2']);
      expect(puts[0]!.headers['x-amz-checksum-sha256']).toBe(hexToB64(small.sha256));
      const bytes = readFileSync(big.path);
      expect(puts[1]!.headers['x-amz-checksum-sha256']).toBe(createHash('sha256').update(bytes.subarray(0, 5 * MiB)).digest('base64'));
      expect(puts[2]!.headers['x-amz-checksum-sha256']).toBe(createHash('sha256').update(bytes.subarray(5 * MiB)).digest('base64'));
      for (const r of puts) {
        expect(Object.keys(r.headers).filter((h) => h.startsWith('x-amz-checksum-'))).toEqual(['x-amz-checksum-sha256']);
        expect(r.headers['x-amz-sdk-checksum-algorithm']).toBe('SHA256');
      }
      // The object's retention, encryption and metadata travel with the request that creates it.
      expect(puts[0]!.headers).toMatchObject({ 'x-amz-object-lock-mode': 'GOVERNANCE', 'x-amz-server-side-encryption': 'AES256', 'x-amz-meta-sha256': small.sha256 });
      const create = seen.find((r) => r.method === 'POST' && 'uploads' in r.query)!;
      expect(create.headers).toMatchObject({ 'x-amz-checksum-algorithm': 'SHA256', 'x-amz-object-lock-mode': 'GOVERNANCE', 'x-amz-meta-sha256': big.sha256 });
    } finally {
      client.destroy();
    }
  });

  it('kill -9 in the middle of a multipart upload: nothing half-made is visible, and the upload after restart is whole', async () => {
    const bucket = await newBucket(true);
    const file = await writeCapture(join(tmp.path, 'killed.pcap'), { packets: 12_000, frameBytes: 1440, captureId: 7 });
    const jobs = new MemoryArchiveJobs();
    await jobs.enqueue(file, Date.now());
    // The process that will die: it claimed the job (as it would in the store) and uploads part by part, slowly.
    const dead = (await jobs.claim('i-0abc', 'i-0abc/999/1', Date.now(), 300_000))!;
    const script = `
      const { S3Client } = await import('@aws-sdk/client-s3');
      const { S3Archiver } = await import(${JSON.stringify(join(PROJECT_ROOT, 'dist', 'archive', 's3-archiver.js'))});
      const client = new S3Client({ endpoint: ${JSON.stringify(moto.endpoint)}, region: 'us-east-1', forcePathStyle: true,
        credentials: { accessKeyId: 'testing', secretAccessKey: 'testing' }, requestChecksumCalculation: 'WHEN_REQUIRED' });
      client.middlewareStack.add((next) => async (args) => {
        const r = await next(args);
        if ('partNumber' in args.request.query) { process.stdout.write('part ' + args.request.query.partNumber + '\\n'); await new Promise((s) => setTimeout(s, 5000)); }
        return r;
      }, { step: 'finalizeRequest', name: 'slow' });
      await new S3Archiver({ client, bucket: ${JSON.stringify(bucket)}, prefix: 'mg', partBytes: 5 * 1024 * 1024, multipartThresholdBytes: 5 * 1024 * 1024, objectLock: { mode: 'GOVERNANCE', days: 1 } })
        .upload(${JSON.stringify(dead.file)});
      process.stdout.write('finished\\n');`;
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], { cwd: PROJECT_ROOT, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true' } });
    let out = '';
    let err = '';
    child.stderr.on('data', (d) => (err += d));
    const exited = new Promise<NodeJS.Signals | null>((r) => child.once('exit', (_c, sig) => r(sig)));
    try {
      await new Promise<void>((resolve, reject) => {
        const t = setTimeout(() => reject(new Error(`no part uploaded within 20 s: ${out} ${err}`)), 20_000);
        child.stdout.on('data', (d) => {
          out += d;
          if (out.includes('part 1\n')) {
            clearTimeout(t);
            resolve();
          }
        });
        child.once('exit', () => reject(new Error(`the uploader exited early: ${out} ${err}`)));
      });
      child.kill('SIGKILL');
      expect(await exited).toBe('SIGKILL');
    } finally {
      child.kill('SIGKILL');
    }
    expect(out).not.toContain('finished');
    // What the dead process left: an unfinished multipart upload (the lifecycle rule aborts it), no object.
    const key = objectKey('mg', file);
    const mpu = await c.send(new ListMultipartUploadsCommand({ Bucket: bucket }));
    expect(mpu.Uploads?.map((u) => u.Key)).toEqual([key]);
    expect((await c.send(new ListObjectsV2Command({ Bucket: bucket }))).KeyCount ?? 0).toBe(0);

    // Restart: the node's worker takes its job back at once and uploads the file whole.
    const w = new ArchiveWorker({ jobs, archiver: new S3Archiver({ client: c, bucket, prefix: 'mg', partBytes: 5 * MiB, multipartThresholdBytes: 5 * MiB, objectLock: { mode: 'GOVERNANCE', days: 1 } }), node: 'i-0abc' });
    expect(await w.recoverOwn()).toBe(1);
    expect(await w.runOnce()).toBe(true);
    const j = (await jobs.get(dead.id))!;
    expect(j).toMatchObject({ state: 'done', result: { key, parts: 4 } });
    const versions = await c.send(new ListObjectVersionsCommand({ Bucket: bucket, Prefix: key }));
    expect(versions.Versions?.map((v) => v.VersionId)).toEqual([j.result!.versionId]);
    expect(createHash('sha256').update(await getBytes(c, bucket, key, j.result!.versionId!)).digest('hex')).toBe(file.sha256);
  });
});
