/**
 * The archive end to end, the way a fleet node runs it: `mirrorguard serve` as a process with archive.s3
 * pointing at moto and the ledger key from `keys init`, VXLAN over real UDP, files rotated every few
 * seconds. Checked from outside: the object in S3 carries the catalog's SHA-256 as its ChecksumSHA256,
 * the catalog row names the object, the ledger record exists and `mirrorguard verify` proves the local
 * file against the exported ledger (and refuses it after a one-byte change); kill -9 mid-run, then a
 * restart uploads the file the dead process left open. A missing signing key refuses to start.
 */
import Database from 'better-sqlite3';
import { HeadObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { describeNeeds, itNeeds } from '../helpers/needs.js';
import { startMoto, type Moto } from '../helpers/moto.js';
import { ether, ipv4, raw, udp } from '../helpers/packets.js';
import { sendVxlan } from '../helpers/send-vxlan.js';
import { runCli, startServe } from '../helpers/serve.js';
import { makeTmpDir } from '../helpers/tmp.js';

interface Row {
  id: number;
  path: string;
  state: string;
  packets: number;
  sha256: string | null;
  s3_bucket: string | null;
  s3_key: string | null;
  s3_version_id: string | null;
  ledger_seq: number | null;
  node: string;
}

function rows(dataDir: string): Row[] {
  const db = new Database(join(dataDir, 'mirrorguard.db'), { readonly: true });
  try {
    return db.prepare('SELECT * FROM captures ORDER BY id').all() as Row[];
  } finally {
    db.close();
  }
}

function ledgerLines(dataDir: string): string {
  const db = new Database(join(dataDir, 'mirrorguard.db'), { readonly: true });
  try {
    return (db.prepare('SELECT line FROM ledger ORDER BY seq').all() as { line: string }[]).map((r) => `${r.line}\n`).join('');
  } finally {
    db.close();
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until<T>(what: string, fn: () => T | undefined | null | false, timeoutMs = 30_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(200);
  }
}

const frame = (i: number) => ether({}, ipv4({ src: '172.31.0.10', dst: '172.31.0.20' }, udp({ sport: 40000 + i, dport: 53 }, raw(i & 0xff, 100))));

describeNeeds(['s3'], 'serve with an S3 archive (moto)', () => {
  let moto: Moto;
  let s3: S3Client;
  const tmp = makeTmpDir('mg-archive-e2e-');
  const bucket = 'mg-evidence';
  const keyFile = join(tmp.dir, 'ledger.key');
  const pubFile = join(tmp.dir, 'ledger.pub');
  const env = { AWS_ACCESS_KEY_ID: 'testing', AWS_SECRET_ACCESS_KEY: 'testing', AWS_EC2_METADATA_DISABLED: 'true', MIRRORGUARD_NODE: 'node-1' };

  function config(name: string, signingKey: string | null): string {
    const file = join(tmp.dir, `${name}.yaml`);
    const lines = ['archive:', '  s3:', `    bucket: ${bucket}`, `    endpoint: ${moto.endpoint}`, '    region: us-east-1', '    forcePathStyle: true', '    prefix: evidence', '  rotateSeconds: 5'];
    if (signingKey !== null) lines.push(`  signingKey: ${signingKey}`);
    writeFileSync(file, `${lines.join('\n')}\n`);
    return file;
  }

  beforeAll(async () => {
    moto = await startMoto();
    await moto.bucket(bucket);
    s3 = moto.client(3);
    expect(runCli(['keys', 'init', '--private-key', keyFile, '--public-key', pubFile]).status).toBe(0);
  }, 60_000);
  afterAll(async () => {
    s3?.destroy();
    await moto?.stop();
    tmp.remove();
  });

  it('a rotated file lands in S3 with the catalog SHA-256, in the ledger, and verifies; a changed byte does not', async () => {
    const dataDir = join(tmp.dir, 'data-a');
    const srv = await startServe(['--data-dir', dataDir, '--api', '127.0.0.1:0', '--flush-interval-ms', '200', '--config', config('a', keyFile)], env);
    const token = readFileSync(join(dataDir, 'api-admin.token'), 'utf8').trim();
    const api = `http://127.0.0.1:${srv.apiPort}`;
    try {
      await sendVxlan(srv.udpPort, Array.from({ length: 20 }, (_, i) => ({ src: '127.31.7.1', vni: 77, inner: frame(i) })));
      await sleep(5500); // past archive.rotateSeconds: the next packet rotates the file
      await sendVxlan(srv.udpPort, [{ src: '127.31.7.1', vni: 77, inner: frame(99) }]);
      const row = await until('the first file archived', () => rows(dataDir).find((r) => r.state === 'closed' && r.s3_key !== null && r.ledger_seq !== null));
      expect(row).toMatchObject({ packets: 20, s3_bucket: bucket, node: 'node-1' });
      expect(row.s3_key).toMatch(/^evidence\/vni=77\/src=127\.31\.7\.1\/\d{4}\/\d{2}\/\d{2}\/\d{2}\/node-1-/);
      // (moto's GetObjectAttributes answers a date the SDK refuses; HeadObject with ChecksumMode says the same.)
      const head = await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: row.s3_key!, VersionId: row.s3_version_id!, ChecksumMode: 'ENABLED' }));
      expect(head.ChecksumSHA256).toBe(Buffer.from(row.sha256!, 'hex').toString('base64'));
      const local = readFileSync(join(dataDir, row.path));
      expect(head.ContentLength).toBe(local.length);

      const ledgerFile = join(tmp.dir, 'ledger-a.jsonl');
      writeFileSync(ledgerFile, ledgerLines(dataDir));
      const rec = JSON.parse(readFileSync(ledgerFile, 'utf8').split('\n')[row.ledger_seq! - 1]!);
      expect(rec).toMatchObject({ kind: 'archive', seq: row.ledger_seq, node: 'node-1', bucket, key: row.s3_key, versionId: row.s3_version_id, sha256: row.sha256 });

      // Download through the API: the header names the ledger record; verify --api reads the ledger from serve.
      const dl = await fetch(`${api}/v1/captures/${row.id}/pcap`, { headers: { authorization: `Bearer ${token}` } });
      expect(dl.status).toBe(200);
      expect(dl.headers.get('x-ledger-seq')).toBe(String(row.ledger_seq));
      const got = Buffer.from(await dl.arrayBuffer());
      expect(got.equals(local)).toBe(true);
      const listed = (await (await fetch(`${api}/v1/captures/${row.id}`, { headers: { authorization: `Bearer ${token}` } })).json()) as Record<string, unknown>;
      expect(listed).toMatchObject({ node: 'node-1', location: 'both', s3: { bucket, key: row.s3_key, versionId: row.s3_version_id }, ledgerSeq: row.ledger_seq });

      const copy = join(tmp.dir, 'copy.pcap');
      writeFileSync(copy, got);
      const ok = runCli(['verify', copy, '--ledger', ledgerFile, '--public-key', pubFile]);
      expect(ok.status, ok.stderr).toBe(0);
      const viaApi = runCli(['verify', copy, '--api', api, '--public-key', pubFile], { env: { MIRRORGUARD_TOKEN: token } });
      expect(viaApi.status, viaApi.stderr).toBe(0);
      expect(viaApi.stdout).toMatch(new RegExp(`is ledger record ${row.ledger_seq} \\(archive, node node-1`));
      got[got.length - 1] ^= 0x01;
      writeFileSync(copy, got);
      const bad = runCli(['verify', copy, '--ledger', ledgerFile, '--public-key', pubFile]);
      expect(bad.status).toBe(1);
      expect(bad.stderr + bad.stdout).toMatch(/MG_ERR_VERIFY_FAILED/);
      const badApi = runCli(['verify', copy, '--api', api, '--public-key', pubFile], { env: { MIRRORGUARD_TOKEN: token } });
      expect(badApi.status).toBe(1);
      const noToken = runCli(['verify', copy, '--api', api, '--public-key', pubFile], { env: { MIRRORGUARD_TOKEN: '' } });
      expect(noToken.stderr).toMatch(/MG_ERR_LEDGER_READ.*MIRRORGUARD_TOKEN|MIRRORGUARD_TOKEN/);
    } finally {
      // SIGTERM: the open file is closed and uploaded within the stop grace.
      expect(await srv.stop('SIGTERM')).toBe(0);
    }
    const all = rows(dataDir);
    expect(all.length).toBe(2);
    for (const r of all) {
      expect(r.state).toBe('closed');
      expect(r.s3_key).not.toBeNull();
      const head = await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: r.s3_key!, VersionId: r.s3_version_id!, ChecksumMode: 'ENABLED' }));
      expect(head.ChecksumSHA256).toBe(Buffer.from(r.sha256!, 'hex').toString('base64'));
    }
  }, 90_000);

  it('kill -9 mid-run: the restarted node closes the file the dead one left open and uploads it', async () => {
    const dataDir = join(tmp.dir, 'data-b');
    const cfg = config('b', keyFile);
    const first = await startServe(['--data-dir', dataDir, '--api', 'off', '--flush-interval-ms', '200', '--config', cfg], env);
    await sendVxlan(first.udpPort, Array.from({ length: 10 }, (_, i) => ({ src: '127.31.7.2', vni: 78, inner: frame(i) })));
    await until('the open file synced', () => rows(dataDir).find((r) => r.state === 'open' && r.packets === 10));
    expect(await first.stop('SIGKILL')).toBeNull();
    expect(rows(dataDir).every((r) => r.s3_key === null)).toBe(true);

    const second = await startServe(['--data-dir', dataDir, '--api', 'off', '--flush-interval-ms', '200', '--config', cfg], env);
    try {
      const row = await until('the recovered file archived', () => rows(dataDir).find((r) => r.state === 'closed' && r.packets === 10 && r.s3_key !== null && r.ledger_seq !== null));
      const head = await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: row.s3_key!, VersionId: row.s3_version_id!, ChecksumMode: 'ENABLED' }));
      expect(head.ChecksumSHA256).toBe(Buffer.from(row.sha256!, 'hex').toString('base64'));
      expect(head.ContentLength).toBe(readFileSync(join(dataDir, row.path)).length);
    } finally {
      expect(await second.stop('SIGTERM')).toBe(0);
    }
  }, 90_000);

  itNeeds(['native'], 'with --workers 2 the workers\' files carry the node name and are archived by the sweep; SIGTERM uploads them all', async () => {
    const dataDir = join(tmp.dir, 'data-w');
    const srv = await startServe(['--data-dir', dataDir, '--api', 'off', '--flush-interval-ms', '200', '--receiver', 'native', '--workers', '2', '--config', config('w', keyFile)], { ...env, MIRRORGUARD_NODE: 'node-w' });
    const sent = Array.from({ length: 8 }, (_, i) => ({ src: `127.31.8.${i + 1}`, vni: 80, inner: frame(i), count: 3 }));
    await sendVxlan(srv.udpPort, sent);
    await until('rows of the workers', () => rows(dataDir).filter((r) => r.packets === 3).length === 8 || null);
    expect(await srv.stop('SIGTERM')).toBe(0);
    const all = rows(dataDir);
    expect(all.length).toBe(8);
    for (const r of all) expect(r).toMatchObject({ node: 'node-w', state: 'closed', s3_bucket: bucket });
    expect(all.every((r) => r.s3_key !== null && r.ledger_seq !== null)).toBe(true);
  }, 90_000);

  it('archive.s3 without archive.signingKey refuses to start (MG_ERR_CONFIG_INVALID naming the key); an unreadable key: MG_ERR_KEY_READ', () => {
    const missing = runCli(['serve', '--data-dir', join(tmp.dir, 'data-c'), '--api', 'off', '--listen', '127.0.0.1:0', '--config', config('c', null)], { env });
    expect(missing.status).toBe(78);
    expect(missing.stderr).toMatch(/MG_ERR_CONFIG_INVALID/);
    expect(missing.stderr).toMatch(/archive\.signingKey/);
    const unreadable = runCli(['serve', '--data-dir', join(tmp.dir, 'data-c'), '--api', 'off', '--listen', '127.0.0.1:0', '--config', config('d', join(tmp.dir, 'nope.key'))], { env });
    expect(unreadable.status).toBe(66);
    expect(unreadable.stderr).toMatch(/MG_ERR_KEY_READ/);
  });
});
