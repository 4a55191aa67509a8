// The store layer, hand-written repositories against Kysely, on both engines: findings.raise (insert
// once, then repeat under a row lock, one transaction each) and captures.open (one insert each).
// Ratios side by side in one run (docs/architecture.md, The store layer). Needs `npm run build`.
// PostgreSQL: MIRRORGUARD_BENCH_PG_URL (a database this may fill); without it only SQLite runs.
//   node bench/store.mjs [ops]
import Database from 'better-sqlite3';
import { Kysely, PostgresDialect, SqliteDialect, sql } from 'kysely';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { openStore } from '../dist/store/store.js';

const OPS = Number(process.argv[2] ?? 2000);
const KEYS = 50; // distinct findings: most raises are repeats, as in a real run

async function timed(fn) {
  const t0 = process.hrtime.bigint();
  await fn();
  return Number(process.hrtime.bigint() - t0) / 1e6;
}

function findingRow(i, now) {
  return { id: `f_${String(i % KEYS).padStart(20, '0')}`, kind: 'unauthorized-vni', severity: 'high', status: 'open', first_seen: now, last_seen: now, count: 1, vni: i % KEYS, source_ip: '10.0.0.1', session_id: null, summary: 's', evidence: '{}', correlated: null, updated_at: now };
}

async function handWritten(store) {
  const raise = await timed(async () => {
    for (let i = 0; i < OPS; i++) {
      const r = findingRow(i, i);
      await store.tx(async (q) => {
        if (await store.findings.create(r, q)) return;
        const cur = await store.findings.lock(r.id, q);
        await store.findings.repeat({ ...cur, last_seen: i }, 1, q);
      });
    }
  });
  const open = await timed(async () => {
    for (let i = 0; i < OPS; i++) await store.captures.open({ path: `pcap/h/${i}.pcap`, vni: 1, sourceIp: '10.0.0.1', sessionId: null, worker: 0, createdUs: i, firstUs: i });
  });
  return { raise, open };
}

async function viaKysely(db, engine) {
  const greatest = engine === 'postgres' ? 'greatest' : 'max';
  const raise = await timed(async () => {
    for (let i = 0; i < OPS; i++) {
      const r = findingRow(i, i);
      await db.transaction().execute(async (trx) => {
        const ins = await trx.insertInto('findings').values(r).onConflict((oc) => oc.column('id').doNothing()).executeTakeFirst();
        if (Number(ins.numInsertedOrUpdatedRows ?? 0n) === 1) return;
        let sel = trx.selectFrom('findings').selectAll().where('id', '=', r.id);
        if (engine === 'postgres') sel = sel.forUpdate();
        const cur = await sel.executeTakeFirst();
        await trx
          .updateTable('findings')
          .set({ count: sql`count + 1`, last_seen: sql`${sql.raw(greatest)}(last_seen, ${i})`, summary: cur.summary, updated_at: i })
          .where('id', '=', r.id)
          .execute();
      });
    }
  });
  const open = await timed(async () => {
    for (let i = 0; i < OPS; i++) {
      await db
        .insertInto('captures')
        .values({ path: `pcap/k/${i}.pcap`, vni: 1, source_ip: '10.0.0.1', session_id: null, worker: 0, state: 'open', created_us: i, first_us: i, last_us: i, packets: 0, bytes: 0, node: 'n' })
        .returning('id')
        .executeTakeFirst();
    }
  });
  return { raise, open };
}

const rows = [];
const dir = mkdtempSync(join(tmpdir(), 'mg-bench-store-'));
try {
  // SQLite: two files so the engines do not share pages.
  // SQLite: each implementation on a file of its own, after a warm-up round on another.
  const w = await openStore({ url: `sqlite:${join(dir, 'w.db')}`, nodeId: 'n' });
  await handWritten(w);
  await w.close();
  const a = await openStore({ url: `sqlite:${join(dir, 'a.db')}`, nodeId: 'n' });
  rows.push(['sqlite', 'hand-written', await handWritten(a)]);
  await a.close();
  const b = await openStore({ url: `sqlite:${join(dir, 'b.db')}`, nodeId: 'n' });
  await b.close();
  const kdb = new Kysely({ dialect: new SqliteDialect({ database: new Database(join(dir, 'b.db')) }) });
  rows.push(['sqlite', 'kysely', await viaKysely(kdb, 'sqlite')]);
  await kdb.destroy();

  const pgUrl = process.env.MIRRORGUARD_BENCH_PG_URL;
  if (pgUrl) {
    // Two rounds, alternating which goes first, each on emptied tables; the second round is reported
    // (the first pays for the server's cold caches and fresh WAL segments).
    for (let round = 0; round < 2; round++) {
      const s = await openStore({ url: pgUrl, nodeId: 'n' });
      const k = new Kysely({ dialect: new PostgresDialect({ pool: new pg.Pool({ connectionString: pgUrl, max: 4 }) }) });
      const runs = [
        async () => ['postgres', 'hand-written', await handWritten(s)],
        async () => ['postgres', 'kysely', await viaKysely(k, 'postgres')],
      ];
      if (round === 1) runs.reverse();
      const got = [];
      for (const r of runs) {
        await s.engine.exec('TRUNCATE findings, captures');
        got.push(await r());
      }
      if (round === 1) rows.push(...got.reverse());
      await k.destroy();
      await s.close();
    }
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}

console.log(`store: ${OPS} findings.raise (${KEYS} distinct findings) and ${OPS} captures.open per row; ops/s, and Kysely as a ratio of hand-written on the same engine`);
for (const [engine, impl, r] of rows) {
  const base = rows.find((x) => x[0] === engine && x[1] === 'hand-written')[2];
  const ratio = (k) => (impl === 'hand-written' ? '' : ` (x${(base[k] / r[k]).toFixed(2)})`);
  console.log(`${engine.padEnd(9)} ${impl.padEnd(13)} raise ${Math.round((OPS / r.raise) * 1000)}/s${ratio('raise')}  open ${Math.round((OPS / r.open) * 1000)}/s${ratio('open')}`);
}
