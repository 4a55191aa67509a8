/**
 * The fleet end to end (issue 13, point 7), on one machine: a real PostgreSQL and moto_server; three
 * `serve` processes (their own node ids, data directories and UDP ports) behind a pretend NLB, with an
 * S3 archive rotating every 5 s and the ledger key from `keys init`.
 *
 * The NLB is imitated as AWS and the NLB behave: each mirrored packet's outer UDP source port comes from
 * a hash of its inner 5-tuple, and the collector is chosen by a hash of the outer 5-tuple, so one inner
 * flow always lands on one collector and a mirror session is spread over all three. Two sessions: one
 * the manifest authorizes, one rogue (source IP, VNI) pair. Every inner packet carries a unique sequence
 * number in its UDP payload.
 *
 * Mid-run node 2 is killed with SIGKILL once the store shows its packets so far are on disk; its share
 * is held back while it is down (an NLB stops sending to a dead target) and sent once it is back with
 * the same data directory and node id, which recovers and uploads the files it left open. Then a fourth
 * node with an empty data directory, on the same store and bucket, extracts both sessions: every packet
 * sent is there exactly once (by sequence number, in our reader and in tshark), in time order; there is
 * one finding and one webhook delivery for the rogue pair; every object's S3 checksum is the catalog's
 * SHA-256; `mirrorguard verify` passes on a downloaded capture and on the merged extraction, and fails,
 * naming why, after a one-byte change.
 */
import { HeadObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { recordLine, type LedgerRecord } from '../../src/ledger/record.js';
import { openCaptureAsync } from '../../src/pcap/reader.js';
import { openStore, type Store } from '../../src/store/store.js';
import { startMoto, type Moto } from '../helpers/moto.js';
import { describeNeeds, have } from '../helpers/needs.js';
import { tsharkFields, tsharkReadsCleanly } from '../helpers/oracles.js';
import { ether, ipv4, udp } from '../helpers/packets.js';
import { startTestPg, type TestPg } from '../helpers/pg.js';
import { sendVxlan, type VxlanSpec } from '../helpers/send-vxlan.js';
import { runCli, startServe, type ServeHandle } from '../helpers/serve.js';
import { makeTmpDir } from '../helpers/tmp.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until<T>(what: string, fn: () => Promise<T | undefined | null | false>, timeoutMs = 30_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(200);
  }
}

const hash32 = (s: string) => createHash('sha256').update(s).digest().readUInt32BE(0);

/** The NLB's own address and listener: part of the outer 5-tuple it hashes. */
const NLB = '10.0.100.10';
const MAGIC = 0x4d475351; // "MGSQ": the payload's marker, then the sequence number

interface Flow {
  session: 'auth' | 'rogue';
  src: string;
  vni: number;
  /** Inner 5-tuple. */
  a: string;
  b: string;
  sport: number;
  dport: number;
  /** What AWS would set: the outer source port, from the inner 5-tuple. */
  outerPort: number;
  /** What the NLB picks: the collector, from the outer 5-tuple. */
  node: number;
}

const SESSIONS = {
  auth: { src: '127.31.1.1', vni: 100, id: 'tms-0a1b2c3d4e5f60718' },
  rogue: { src: '127.31.2.2', vni: 200 },
} as const;

function makeFlows(perSession: number): Flow[] {
  const flows: Flow[] = [];
  for (const session of ['auth', 'rogue'] as const) {
    const s = SESSIONS[session];
    for (let i = 0; i < perSession; i++) {
      const a = `10.${session === 'auth' ? 1 : 2}.0.${10 + i}`;
      const b = `10.9.0.${1 + (i % 3)}`;
      const sport = 30000 + i * 7;
      const dport = 40000 + (i % 5);
      const outerPort = 49152 + (hash32(`${a}|${b}|17|${sport}|${dport}`) % 16384);
      const node = hash32(`${s.src}|${NLB}|17|${outerPort}|4789`) % 3;
      flows.push({ session, src: s.src, vni: s.vni, a, b, sport, dport, outerPort, node });
    }
  }
  return flows;
}

function packet(f: Flow, seq: number): VxlanSpec {
  const payload = Buffer.alloc(24);
  payload.writeUInt32BE(MAGIC, 0);
  payload.writeUInt32BE(seq, 4);
  payload.write(`${f.session}-${seq}`.padEnd(16, '.'), 8, 'latin1');
  return { src: f.src, vni: f.vni, sport: f.outerPort, inner: ether({}, ipv4({ src: f.a, dst: f.b }, udp({ sport: f.sport, dport: f.dport }, payload))) };
}

/** Sequence numbers of the inner packets of a PCAP, in file order, and whether their times never go back. */
async function seqsOf(file: string): Promise<{ seqs: number[]; ordered: boolean }> {
  const r = await openCaptureAsync(file);
  const seqs: number[] = [];
  let ordered = true;
  let prev = -1n;
  while (await r.next()) {
    const rec = r.record;
    const ns = BigInt(rec.tsSec) * 1_000_000_000n + BigInt(rec.tsNsec);
    if (ns < prev) ordered = false;
    prev = ns;
    const off = rec.off + 14 + 20 + 8; // Ethernet, IPv4 (no options), UDP
    if (rec.caplen >= 14 + 20 + 8 + 8 && rec.buf.readUInt32BE(off) === MAGIC) seqs.push(rec.buf.readUInt32BE(off + 4));
  }
  expect(r.truncated).toBe(false);
  await r.close();
  return { seqs, ordered };
}

describeNeeds(['postgres', 's3'], 'a fleet of three collectors behind an NLB, and a fourth that extracts', () => {
  let pg: TestPg;
  let moto: Moto;
  let s3: S3Client;
  let hooks: Server;
  const bodies: string[] = [];
  const tmp = makeTmpDir('mg-fleet3-');
  const bucket = 'mg-fleet-evidence';
  const keyFile = join(tmp.dir, 'ledger.key');
  const pubFile = join(tmp.dir, 'ledger.pub');
  const env = { AWS_ACCESS_KEY_ID: 'testing', AWS_SECRET_ACCESS_KEY: 'testing', AWS_EC2_METADATA_DISABLED: 'true' };

  beforeAll(async () => {
    [pg, moto] = await Promise.all([startTestPg(), startMoto()]);
    await moto.bucket(bucket, { objectLock: true });
    s3 = moto.client(3);
    expect(runCli(['keys', 'init', '--private-key', keyFile, '--public-key', pubFile]).status).toBe(0);
    hooks = createServer((req, res) => {
      let body = '';
      req.on('data', (c) => (body += c));
      req.on('end', () => {
        bodies.push(body);
        res.writeHead(204).end();
      });
    });
    await new Promise<void>((r) => hooks.listen(0, '127.0.0.1', () => r()));
  }, 60_000);
  afterAll(async () => {
    hooks?.close();
    s3?.destroy();
    await Promise.all([moto?.stop(), pg?.stop()]);
    tmp.remove();
  });

  it('every packet exactly once from a node with an empty disk, one finding and one webhook, checksums and the ledger hold', async () => {
    const started = Date.now();
    const url = await pg.freshUrl();
    const manifest = join(tmp.dir, 'manifest.yaml');
    writeFileSync(manifest, ['version: 1', 'sessions:', `  - id: ${SESSIONS.auth.id}`, `    vni: ${SESSIONS.auth.vni}`, `    sourceIps: [${SESSIONS.auth.src}]`, ''].join('\n'));
    const config = join(tmp.dir, 'config.yaml');
    writeFileSync(
      config,
      [
        'webhooks:',
        `  - url: http://127.0.0.1:${(hooks.address() as AddressInfo).port}/hook`,
        `    secret: whsec_${Buffer.alloc(32, 7).toString('base64')}`,
        'archive:',
        '  s3:',
        `    bucket: ${bucket}`,
        `    endpoint: ${moto.endpoint}`,
        '    region: us-east-1',
        '    forcePathStyle: true',
        '    prefix: fleet',
        '  rotateSeconds: 5',
        `  signingKey: ${keyFile}`,
        '',
      ].join('\n'),
    );
    const args = (n: number, api: boolean) => [
      '--store', url, '--node-id', `node-${n}`, '--data-dir', join(tmp.dir, `data-${n}`), '--api', api ? '127.0.0.1:0' : 'off',
      '--flush-interval-ms', '200', '--manifest', manifest, '--config', config,
    ];
    const store: Store = await openStore({ url, migrate: false });
    const nodes: (ServeHandle | null)[] = [];
    try {
      // Node 1 migrates the store first; then the other two.
      nodes[0] = await startServe(args(1, true), env);
      [nodes[1], nodes[2]] = await Promise.all([startServe(args(2, false), env), startServe(args(3, false), env)]);

      const flows = makeFlows(16);
      for (const n of [0, 1, 2]) for (const s of ['auth', 'rogue'] as const) expect(flows.some((f) => f.node === n && f.session === s), `node ${n + 1} gets ${s} flows`).toBe(true);
      let seq = 0;
      const sentTo = [0, 0, 0];
      const all: { seq: number; session: 'auth' | 'rogue' }[] = [];
      /** One round: `rounds` packets of every flow, interleaved flow by flow; returns the specs per node. */
      const round = (rounds: number): VxlanSpec[][] => {
        const per: VxlanSpec[][] = [[], [], []];
        for (let r = 0; r < rounds; r++)
          for (const f of flows) {
            const s = ++seq;
            all.push({ seq: s, session: f.session });
            per[f.node]!.push(packet(f, s));
          }
        return per;
      };
      const send = async (per: VxlanSpec[][], to: number[]) => {
        await Promise.all(to.map((n) => sendVxlan(nodes[n]!.udpPort, per[n]!)));
        for (const n of to) sentTo[n] += per[n]!.length;
      };
      const written = async (node: string) => (await store.engine.get<{ n: number | null }>(`SELECT SUM(packets) AS n FROM captures WHERE node = ?`, [node]))?.n ?? 0;

      // Phase 1: all three nodes.
      await send(round(6), [0, 1, 2]);
      // Node 2's packets so far are on disk (the store's rows count committed records), then kill -9.
      await until('node-2 committed its packets', async () => (await written('node-2')) === sentTo[1]);
      expect(await nodes[1]!.stop('SIGKILL')).toBeNull();
      nodes[1] = null;
      // What the dead node left open: the restarted node must recover and upload these.
      const leftOpen = (await store.engine.all<{ id: number }>(`SELECT id FROM captures WHERE node = 'node-2' AND state = 'open'`)).map((r) => r.id);
      expect(leftOpen.length).toBeGreaterThan(0);
      // Phase 2 while it is down: the NLB sends to the healthy two; node 2's share waits.
      const held = round(6);
      await send(held, [0, 2]);
      nodes[1] = await startServe(args(2, false), env);
      await send(held, [1]);
      // Phase 3: all three again, once the first files are old enough to rotate (archive.rotateSeconds).
      const newest = (await store.engine.get<{ us: number }>(`SELECT MAX(created_us) AS us FROM captures WHERE node IN ('node-1', 'node-3')`))!.us;
      await sleep(Math.max(0, newest / 1000 + 5100 - Date.now()));
      await send(round(6), [0, 1, 2]);
      for (const [i, n] of ['node-1', 'node-2', 'node-3'].entries()) await until(`${n} committed every packet`, async () => (await written(n)) === sentTo[i]);

      // Mid-run, node 1 extracts the rogue pair: its own open file is read up to its last record, files
      // still open on the other nodes are named in X-Missing-Captures and the audit row (docs/api.md).
      {
        const token1 = readFileSync(join(tmp.dir, 'data-1', 'api-admin.token'), 'utf8').trim();
        const openElsewhere = async () => new Set((await store.engine.all<{ id: number }>(`SELECT id FROM captures WHERE node <> 'node-1' AND state = 'open' AND vni = ?`, [SESSIONS.rogue.vni])).map((r) => r.id));
        const before = await openElsewhere();
        const res = await fetch(`http://127.0.0.1:${nodes[0]!.apiPort}/v1/pcap?vni=${SESSIONS.rogue.vni}&from=${new Date(started - 1000).toISOString()}&to=${new Date(Date.now() + 1000).toISOString()}`, { headers: { authorization: `Bearer ${token1}` } });
        const body = Buffer.from(await res.arrayBuffer());
        expect(res.status, body.toString()).toBe(200);
        const after = await openElsewhere();
        const missing = (res.headers.get('x-missing-captures') ?? '').split(',').filter(Boolean).map(Number);
        const stillOpen = [...before].filter((id) => after.has(id));
        expect(stillOpen.length).toBeGreaterThan(0);
        for (const id of stillOpen) expect(missing).toContain(id);
        const ownRows = new Set((await store.engine.all<{ id: number }>(`SELECT id FROM captures WHERE node = 'node-1'`)).map((r) => r.id));
        expect(missing.filter((id) => ownRows.has(id))).toEqual([]);
        const audit = (await (await fetch(`http://127.0.0.1:${nodes[0]!.apiPort}/v1/audit/${res.headers.get('x-audit-id')}`, { headers: { authorization: `Bearer ${token1}` } })).json()) as { detail: { missingFiles: number[] } };
        expect(audit.detail.missingFiles).toEqual(missing);
      }

      // Files age out (archive.rotateSeconds 5) with the nodes running, and are uploaded and signed.
      type Row = { id: number; node: string; state: string; packets: number; bytes: number; sha256: string | null; s3_key: string | null; s3_version_id: string | null; ledger_seq: number | null; session_id: string | null };
      const rows = await until(
        'every file closed, archived and in the ledger',
        async () => {
          const r = await store.engine.all<Row>(`SELECT id, node, state, packets, bytes, sha256, s3_key, s3_version_id, ledger_seq, session_id FROM captures ORDER BY id`);
          return r.length > 0 && r.every((x) => x.state === 'closed' && x.s3_key !== null && x.ledger_seq !== null) ? r : null;
        },
        30_000,
      );
      expect(rows.reduce((a, r) => a + r.packets, 0)).toBe(seq);
      expect(new Set(rows.map((r) => r.node))).toEqual(new Set(['node-1', 'node-2', 'node-3']));
      for (const id of leftOpen) expect(rows.find((r) => r.id === id), `recovered capture ${id}`).toMatchObject({ state: 'closed', packets: expect.any(Number) });
      // Files rotated during the run (phase 3 came after archive.rotateSeconds): two or more per node and pair.
      for (const n of ['node-1', 'node-3']) expect(rows.filter((r) => r.node === n).length, n).toBeGreaterThanOrEqual(4);

      // Every object's S3 checksum is the catalog's SHA-256, and its size the catalog's.
      for (const r of rows) {
        const head = await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: r.s3_key!, VersionId: r.s3_version_id!, ChecksumMode: 'ENABLED' }));
        expect(head.ChecksumSHA256, `capture ${r.id}`).toBe(Buffer.from(r.sha256!, 'hex').toString('base64'));
        expect(head.ContentLength).toBe(r.bytes);
      }

      // One finding for the rogue pair (the three nodes and the restart saw it), one webhook delivery.
      const findings = await store.engine.all<{ kind: string; vni: number | null; count: number }>(`SELECT kind, vni, count FROM findings`);
      expect(findings.map((f) => [f.kind, f.vni])).toEqual([['unauthorized-vni', SESSIONS.rogue.vni]]);
      expect(findings[0]!.count).toBeGreaterThanOrEqual(3);
      await until('the webhook delivery', async () => bodies.length >= 1);
      await sleep(1000); // room for a wrong second delivery
      expect(bodies).toHaveLength(1);
      expect((JSON.parse(bodies[0]!) as { data: { kind: string; vni: number } }).data).toMatchObject({ kind: 'unauthorized-vni', vni: SESSIONS.rogue.vni });

      // A fourth node with an empty data directory on the same store and bucket serves the extraction.
      const fourth = await startServe(args(4, true), env);
      nodes[3] = fourth;
      const api = `http://127.0.0.1:${fourth.apiPort}`;
      const token = readFileSync(join(tmp.dir, 'data-4', 'api-admin.token'), 'utf8').trim();
      const auth = { authorization: `Bearer ${token}` };
      const from = new Date(started - 1000).toISOString();
      const to = new Date(Date.now() + 1000).toISOString();
      const extract = async (query: string, file: string) => {
        const res = await fetch(`${api}/v1/pcap?${query}&from=${from}&to=${to}`, { headers: auth });
        const body = Buffer.from(await res.arrayBuffer());
        expect(res.status, body.toString()).toBe(200);
        expect(res.headers.get('x-missing-captures')).toBeNull();
        writeFileSync(file, body);
        return { body, headers: res.headers };
      };
      const merged = join(tmp.dir, 'auth.pcap');
      const authX = await extract(`session=${SESSIONS.auth.id}`, merged);
      const rogueFile = join(tmp.dir, 'rogue.pcap');
      await extract(`vni=${SESSIONS.rogue.vni}&sourceIp=${SESSIONS.rogue.src}`, rogueFile);
      for (const [session, file] of [['auth', merged], ['rogue', rogueFile]] as const) {
        const want = all.filter((p) => p.session === session).map((p) => p.seq);
        const got = await seqsOf(file);
        expect(got.ordered, `${session}: time order`).toBe(true);
        expect(got.seqs.length, `${session}: packets`).toBe(want.length);
        expect([...got.seqs].sort((x, y) => x - y), `${session}: each packet exactly once`).toEqual(want);
        if (have('tshark')) {
          // tshark as the oracle: it reads the file cleanly and finds the same sequence numbers.
          expect(tsharkReadsCleanly(file)).toMatchObject({ ok: true, packets: want.length });
          const seqs = tsharkFields(file, ['udp.payload']).map(([hex]) => Buffer.from(hex!.replace(/:/g, ''), 'hex').readUInt32BE(4));
          expect(seqs.sort((x, y) => x - y)).toEqual(want);
        }
      }
      // The extraction read every file from S3 (this node has none) and is in the ledger.
      const auditId = authX.headers.get('x-audit-id');
      const audit = (await (await fetch(`${api}/v1/audit/${auditId}`, { headers: auth })).json()) as { detail: { files: number[]; fromS3: number[]; complete: boolean; ledgerSeq: number } };
      expect(audit.detail.complete).toBe(true);
      expect([...audit.detail.fromS3].sort()).toEqual([...audit.detail.files].sort());
      expect(audit.detail.ledgerSeq).toBeGreaterThan(0);

      // verify: a downloaded capture (from S3 through node 4) and the merged extraction pass...
      const one = rows.find((r) => r.node === 'node-2' && r.packets > 0)!;
      const dl = await fetch(`${api}/v1/captures/${one.id}/pcap`, { headers: auth });
      expect(dl.status).toBe(200);
      expect(dl.headers.get('x-capture-source')).toBe('s3');
      const capture = join(tmp.dir, 'capture.pcap');
      writeFileSync(capture, Buffer.from(await dl.arrayBuffer()));
      const ledgerFile = join(tmp.dir, 'ledger.jsonl');
      const ledger = (await (await fetch(`${api}/v1/ledger?limit=1000`, { headers: auth })).json()) as { items: LedgerRecord[]; nextFrom: number | null };
      expect(ledger.nextFrom).toBeNull();
      // Records as signed, one a line: the export form.
      writeFileSync(ledgerFile, ledger.items.map((r) => `${recordLine(r)}\n`).join(''));
      const verifyEnv = { env: { MIRRORGUARD_TOKEN: token } };
      for (const f of [capture, merged]) {
        const ok = runCli(['verify', f, '--api', api, '--public-key', pubFile], verifyEnv);
        expect(ok.status, `${f}: ${ok.stderr}`).toBe(0);
      }
      const offline = runCli(['verify', merged, '--ledger', ledgerFile, '--public-key', pubFile]);
      expect(offline.status, offline.stderr).toBe(0);
      expect(offline.stdout).toMatch(/extraction/);
      // ... and fail, naming why, after a one-byte change.
      for (const f of [capture, merged]) {
        const b = readFileSync(f);
        b[b.length - 1] ^= 0x01;
        writeFileSync(f, b);
        const bad = runCli(['verify', f, '--api', api, '--public-key', pubFile], verifyEnv);
        expect(bad.status, f).toBe(1);
        expect(bad.stderr + bad.stdout).toMatch(/MG_ERR_VERIFY_FAILED/);
      }
      // Scale-in: every node stops cleanly.
      for (const [i, n] of nodes.entries()) {
        nodes[i] = null;
        expect(await n!.stop('SIGTERM'), `node-${i + 1} exit`).toBe(0);
      }
    } finally {
      for (const n of nodes) if (n) n.proc.kill('SIGKILL');
      await store.close();
    }
  }, 120_000);
});
