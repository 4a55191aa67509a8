/**
 * `mirrorguard store status|migrate|copy`, run as a user would: the real CLI against a SQLite file and
 * a throwaway PostgreSQL.
 */
import Database from 'better-sqlite3';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { createPrivateKey, createPublicKey } from 'node:crypto';
import { generateSigningKey, keyIdOf } from '../../src/ledger/keys.js';
import { exportJsonl, Ledger } from '../../src/ledger/ledger.js';
import { verifyLedger } from '../../src/ledger/verify.js';
import { SCHEMA_VERSION } from '../../src/store/migrations.js';
import { openStore } from '../../src/store/store.js';
import { describeNeeds } from '../helpers/needs.js';
import { useTestPg } from '../helpers/pg.js';
import { runCli } from '../helpers/serve.js';
import { useTmpDir } from '../helpers/tmp.js';

describe('mirrorguard store (SQLite)', () => {
  const tmp = useTmpDir();

  it('status shows pending migrations; migrate applies them; status is then up to date', () => {
    const url = `sqlite:${join(tmp.path, 'mirrorguard.db')}`;
    const none = runCli(['store', 'status', '--store', url]);
    expect([none.status, none.stderr.includes('MG_ERR_CATALOG_OPEN')]).toEqual([74, true]);
    new Database(join(tmp.path, 'mirrorguard.db')).close();
    const before = runCli(['store', 'status', '--store', url, '--json']);
    expect(before.status, before.stderr).toBe(0);
    expect(JSON.parse(before.stdout)).toMatchObject({ engine: 'sqlite', version: 0, latest: SCHEMA_VERSION });
    const m = runCli(['store', 'migrate', '--data-dir', tmp.path]);
    expect(m.status, m.stderr).toBe(0);
    expect(m.stdout).toContain(`now at version ${SCHEMA_VERSION}`);
    const after = runCli(['store', 'status', '--store', url]);
    expect(after.stdout).toContain('up to date');
    expect(runCli(['store', 'migrate', '--store', url]).stdout).toContain('up to date');
  });

  it('refuses a bad URL (78) and an unreachable PostgreSQL (69) without printing the password', async () => {
    const bad = runCli(['store', 'status', '--store', 'mysql://u:pw@h/db']);
    expect(bad.status).toBe(78);
    expect(bad.stderr).toContain('MG_ERR_STORE_URL');
    const port = await new Promise<number>((resolve) => {
      const s = createServer().listen(0, '127.0.0.1', () => {
        const p = (s.address() as { port: number }).port;
        s.close(() => resolve(p));
      });
    });
    const down = runCli(['store', 'status', '--store', `postgres://mg:topsecret9@127.0.0.1:${port}/fleet`]);
    expect(down.status).toBe(69);
    expect(down.stderr).toContain('MG_ERR_STORE_UNREACHABLE');
    expect(down.stderr).toContain(`postgres://mg:***@127.0.0.1:${port}/fleet`);
    expect(down.stdout + down.stderr).not.toContain('topsecret9');
  });
});

describeNeeds(['postgres'], 'mirrorguard store (PostgreSQL)', () => {
  const tmp = useTmpDir();
  const pg = useTestPg();

  it("copy moves a single target's history into PostgreSQL, and a second copy inserts nothing", async () => {
    const from = `sqlite:${join(tmp.path, 'mirrorguard.db')}`;
    const to = await pg.freshUrl();
    // A target's history: captures, an observed pair, a finding with its alert, a control event, audit rows.
    const src = await openStore({ url: from, nodeId: 'ignored' });
    for (let i = 0; i < 3; i++) {
      const id = await src.captures.open({ path: `pcap/vni-5/10.0.0.1/2026-01-01/f${i}.pcap`, vni: 5, sourceIp: '10.0.0.1', sessionId: null, worker: 0, createdUs: i, firstUs: i });
      await src.captures.close(id, { closedUs: 9, firstUs: i, lastUs: 9, packets: 2, bytes: 100, sha256: 'ab', reason: 'rotate' });
    }
    await src.observed.observe({ sourceIp: '10.0.0.1', vni: 5, sessionId: null, firstSeenMs: 1, lastSeenMs: 2, packets: 6, bytes: 300 });
    await src.findings.create({ id: 'f_00000000000000000001', kind: 'unauthorized-vni', severity: 'high', status: 'open', first_seen: 1, last_seen: 2, count: 4, vni: 5, source_ip: '10.0.0.1', session_id: null, summary: 's', evidence: '{}', correlated: null, updated_at: 2 });
    await src.outbox.insert({ msgId: 'msg_1', endpoint: 'hook', eventType: 'finding.created', findingId: 'f_00000000000000000001', payload: '{}', createdAt: 1, nextAttemptAt: 1 });
    await src.controlEvents.record({ event_id: 'e1', event_name: 'CreateTrafficMirrorSession', event_time: 1, actor_arn: null, source_ip: null, session_id: 'tms-1', eni: null, vni: 5, target_id: null, filter_id: null, error_code: null, record: '{}' });
    await src.audit.write({ at: 5, actor: 'ann', role: 'auditor', remoteIp: null, action: 'capture.download', target: 'capture:1', status: 200, bytes: 100, sha256: 'ab', detail: null });
    // The first capture was archived: its S3 location and legal hold are set, and its ledger record
    // (seq 1) is followed by an extraction record (seq 2).
    const pair = generateSigningKey();
    const privateKey = createPrivateKey(pair.privatePem);
    const publicKey = createPublicKey(privateKey);
    const key = { privateKey, publicKey, keyId: keyIdOf(publicKey) };
    const ledger = new Ledger(src.ledger, key, 'target-1');
    const rec = await ledger.appendArchive(
      { captureId: 1, node: 'target-1', path: '/x', vni: 5, sourceIp: '10.0.0.1', sessionId: null, createdUs: 0, firstUs: 0, lastUs: 9, packets: 2, bytes: 100, sha256: 'ab'.repeat(32) },
      { bucket: 'evidence', key: 'mg/vni=5/f0.pcap', versionId: 'v1', etag: 'e', sha256: 'ab'.repeat(32), s3ChecksumSha256: 'x', parts: 1, size: 100, retainUntil: null },
    );
    await ledger.appendExtraction({ sha256: 'cd'.repeat(32), size: 50, firstUs: 0, lastUs: 9, session: null, merged: [rec.seq] });
    src.sqlite!.prepare(`UPDATE captures SET s3_bucket = 'evidence', s3_key = 'mg/vni=5/f0.pcap', s3_version_id = 'v1', archived_us = 10, ledger_seq = 1, local_removed_us = 11, legal_hold = 1 WHERE path LIKE '%f0.pcap'`).run();
    // Rows from before the store layer have no node: the copy gives them --node-id.
    src.sqlite!.prepare(`UPDATE captures SET node = ''`).run();
    await src.close();

    const first = runCli(['store', 'copy', '--from', from, '--to', to, '--node-id', 'target-1', '--json']);
    expect(first.status, first.stderr).toBe(0);
    const r1 = JSON.parse(first.stdout) as { tables: Record<string, { read: number; inserted: number }> };
    expect(r1.tables).toMatchObject({
      captures: { read: 3, inserted: 3 },
      observed_sessions: { read: 1, inserted: 1 },
      findings: { read: 1, inserted: 1 },
      outbox: { read: 1, inserted: 1 },
      control_events: { read: 1, inserted: 1 },
      audit_log: { read: 1, inserted: 1 },
      ledger: { read: 2, inserted: 2 },
    });
    const again = JSON.parse(runCli(['store', 'copy', '--from', from, '--to', to, '--node-id', 'target-1', '--json']).stdout) as typeof r1;
    expect(Object.values(again.tables).every((t) => t.inserted === 0)).toBe(true);

    const dst = await openStore({ url: to, nodeId: 'target-1' });
    try {
      const caps = await dst.captures.list({ limit: 10 });
      expect(caps.map((c) => [c.node, c.state, c.bytes])).toEqual([
        ['target-1', 'closed', 100],
        ['target-1', 'closed', 100],
        ['target-1', 'closed', 100],
      ]);
      expect(await dst.findings.get('f_00000000000000000001')).toMatchObject({ count: 4, kind: 'unauthorized-vni' });
      // The archived capture is still archived (its S3 version, hold and ledger record), and the copied
      // chain verifies against the deployment's public key.
      const archived = caps.find((c) => c.path.endsWith('f0.pcap'))!;
      expect(archived).toMatchObject({ s3_bucket: 'evidence', s3_key: 'mg/vni=5/f0.pcap', s3_version_id: 'v1', archived_us: 10, ledger_seq: 1, local_removed_us: 11, legal_hold: 1 });
      let jsonl = '';
      expect(await exportJsonl(dst.ledger, (c) => (jsonl += c))).toBe(2);
      const v = verifyLedger(Buffer.from(jsonl), publicKey, key.keyId, 'ab'.repeat(32));
      expect(v.problems).toEqual([]);
      expect(v.ok).toBe(true);
      expect((await dst.audit.list({ limit: 5 }))[0]).toMatchObject({ actor: 'ann', bytes: 100 });
      // The copied outbox row is delivered from the fleet like any other.
      expect((await dst.outbox.claim('hook', 10, 100, 5)).map((r) => r.msg_id)).toEqual(['msg_1']);
      const st = runCli(['store', 'status', '--store', to]);
      expect(st.stdout).toContain(`postgres, schema version ${SCHEMA_VERSION} of ${SCHEMA_VERSION}`);
    } finally {
      await dst.close();
    }

    // Another target's history, with its own chain, cannot go into the same store: nothing is copied.
    const other = `sqlite:${join(tmp.path, 'other.db')}`;
    const o = await openStore({ url: other, nodeId: 'target-2' });
    const id = await o.captures.open({ path: 'pcap/vni-6/10.0.0.2/2026-01-01/g.pcap', vni: 6, sourceIp: '10.0.0.2', sessionId: null, worker: 0, createdUs: 1, firstUs: 1 });
    await o.captures.close(id, { closedUs: 9, firstUs: 1, lastUs: 9, packets: 2, bytes: 100, sha256: 'ef', reason: 'rotate' });
    await new Ledger(o.ledger, key, 'target-2').appendExtraction({ sha256: 'ef'.repeat(32), size: 5, firstUs: null, lastUs: null, session: null, merged: [] });
    await o.close();
    const refused = runCli(['store', 'copy', '--from', other, '--to', to, '--node-id', 'target-2']);
    expect(refused.status).toBe(65);
    expect(refused.stderr).toContain('MG_ERR_STORE_COPY_LEDGER');
    expect(refused.stderr).toContain('seq 1');
    const after = await openStore({ url: to, nodeId: 'x' });
    try {
      expect((await after.captures.list({ limit: 10 })).some((c) => c.node === 'target-2')).toBe(false);
    } finally {
      await after.close();
    }
  });
});
