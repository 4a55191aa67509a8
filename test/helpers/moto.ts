/**
 * A real S3 emulator for the archive tests: Python moto's `moto_server`, started on 127.0.0.1 with an
 * ephemeral port (`-p 0`; the port is read from its "Running on" line), stopped after use, always. It
 * keeps its state in memory, so a restart (stop, then start() on the same port) comes back empty, as a
 * fresh endpoint: tests that restart it create their bucket again.
 *
 * What moto 5.2 does and does not do, found by trying (docs/architecture.md, "Archive"): it stores the
 * x-amz-checksum-sha256 we send and returns it, composes multipart checksums like S3, enforces Object
 * Lock retention and legal holds, and requires a checksum on Object Lock uploads; it does NOT recompute
 * the SHA-256 of the body, so a wrong checksum is stored instead of refused (real S3 answers BadDigest).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { CreateBucketCommand, PutBucketVersioningCommand, S3Client } from '@aws-sdk/client-s3';

export interface Moto {
  readonly port: number;
  readonly endpoint: string;
  /** A client for it: path-style, dummy credentials, no retries unless asked. */
  client(maxAttempts?: number): S3Client;
  /** Create a bucket, with Object Lock (which also turns versioning on) or plain versioning. */
  bucket(name: string, opts?: { objectLock?: boolean }): Promise<void>;
  stop(): Promise<void>;
  /** Start again on the same port (after stop()). */
  start(): Promise<void>;
  readonly running: boolean;
}

const live = new Set<ChildProcess>();
process.once('exit', () => {
  for (const p of live) p.kill('SIGKILL');
});

function launch(port: number): Promise<{ proc: ChildProcess; port: number }> {
  return new Promise((resolve, reject) => {
    const proc = spawn('moto_server', ['-H', '127.0.0.1', '-p', String(port)], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, PYTHONUNBUFFERED: '1' } });
    live.add(proc);
    let out = '';
    const timer = setTimeout(() => {
      proc.kill('SIGKILL');
      reject(new Error(`moto_server did not start within 30 s: ${out}`));
    }, 30_000);
    const onData = (d: Buffer) => {
      out += d.toString();
      const m = /Running on http:\/\/127\.0\.0\.1:(\d+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve({ proc, port: Number(m[1]) });
      }
    };
    proc.stdout!.on('data', onData);
    proc.stderr!.on('data', onData);
    proc.once('exit', (code) => {
      live.delete(proc);
      clearTimeout(timer);
      reject(new Error(`moto_server exited (${code}) before it was ready: ${out}`));
    });
  });
}

async function kill(proc: ChildProcess): Promise<void> {
  if (proc.exitCode !== null || proc.signalCode !== null) return;
  const gone = new Promise<void>((r) => proc.once('exit', () => r()));
  proc.kill('SIGTERM');
  const t = setTimeout(() => proc.kill('SIGKILL'), 3000);
  await gone;
  clearTimeout(t);
  live.delete(proc);
}

export async function startMoto(): Promise<Moto> {
  let { proc, port } = await launch(0);
  let running = true;
  const endpoint = `http://127.0.0.1:${port}`;
  const client = (maxAttempts = 1) =>
    new S3Client({
      endpoint,
      region: 'us-east-1',
      forcePathStyle: true,
      credentials: { accessKeyId: 'testing', secretAccessKey: 'testing' },
      requestChecksumCalculation: 'WHEN_REQUIRED',
      maxAttempts,
    });
  return {
    port,
    endpoint,
    client,
    get running() {
      return running;
    },
    async bucket(name, opts = {}) {
      const c = client();
      await c.send(new CreateBucketCommand({ Bucket: name, ObjectLockEnabledForBucket: opts.objectLock === true }));
      if (!opts.objectLock) await c.send(new PutBucketVersioningCommand({ Bucket: name, VersioningConfiguration: { Status: 'Enabled' } }));
      c.destroy();
    },
    async stop() {
      running = false;
      await kill(proc);
    },
    async start() {
      ({ proc } = await launch(port));
      running = true;
    },
  };
}
