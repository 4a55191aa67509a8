/**
 * `mirrorguard store status|migrate|copy`, run as a user would: the real CLI against a SQLite file and
 * a throwaway PostgreSQL.
 */
import Database from 'better-sqlite3';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SCHEMA_VERSION } from '../../src/store/migrations.js';
import { openStore } from '../../src/store/store.js';
import { describeNeeds } from '../helpers/needs.js';
import { startTestPg, type TestPg } from '../helpers/pg.js';
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
  let pg: TestPg;
  beforeAll(async () => {
    pg = await startTestPg();
  });
  afterAll(async () => {
    await pg?.stop();
  });

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
      expect((await dst.audit.list({ limit: 5 }))[0]).toMatchObject({ actor: 'ann', bytes: 100 });
      // The copied outbox row is delivered from the fleet like any other.
      expect((await dst.outbox.claim('hook', 10, 100, 5)).map((r) => r.msg_id)).toEqual(['msg_1']);
      const st = runCli(['store', 'status', '--store', to]);
      expect(st.stdout).toContain(`postgres, schema version ${SCHEMA_VERSION} of ${SCHEMA_VERSION}`);
    } finally {
      await dst.close();
    }
  });
});
