/**
 * Opening a store: URLs, coded errors without the password, migrations applied once when several
 * nodes start at the same moment (PostgreSQL advisory lock).
 */
import { createServer } from 'node:net';
import { describe, expect, it } from 'vitest';
import { MgError } from '../../src/errors.js';
import { SCHEMA_VERSION } from '../../src/store/migrations.js';
import { openStore } from '../../src/store/store.js';
import { parseStoreUrl, redactUrl } from '../../src/store/url.js';
import { describeNeeds } from '../helpers/needs.js';
import { useTestPg } from '../helpers/pg.js';

describe('store.url', () => {
  it('parses both engines and never shows a password', () => {
    expect(parseStoreUrl('sqlite:/var/lib/mirrorguard/mirrorguard.db')).toEqual({ engine: 'sqlite', target: '/var/lib/mirrorguard/mirrorguard.db', display: 'sqlite:/var/lib/mirrorguard/mirrorguard.db' });
    const pg = parseStoreUrl('postgres://mg:s3cr3t@db.example:5432/mirrorguard?sslmode=verify-full');
    expect(pg.engine).toBe('postgres');
    expect(pg.display).toBe('postgres://mg:***@db.example:5432/mirrorguard?sslmode=verify-full');
    expect(redactUrl('postgresql://u:p%40ss@h/db?password=x&a=1')).toBe('postgresql://u:***@h/db?password=***&a=1');
    for (const bad of ['mysql://h/db', 'postgres://u:pw@h:5432', 'sqlite:']) {
      let err: unknown;
      try {
        parseStoreUrl(bad);
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(MgError);
      expect((err as MgError).code).toBe('MG_ERR_STORE_URL');
      expect((err as MgError).message).not.toContain(':pw@');
    }
  });

  it('PostgreSQL unreachable at start: MG_ERR_STORE_UNREACHABLE naming the URL without the password', async () => {
    // A port nobody listens on: bind one, note it, close it.
    const port = await new Promise<number>((resolve) => {
      const s = createServer().listen(0, '127.0.0.1', () => {
        const p = (s.address() as { port: number }).port;
        s.close(() => resolve(p));
      });
    });
    const err = await openStore({ url: `postgres://mg:hunter2secret@127.0.0.1:${port}/mirrorguard`, connectTimeoutMs: 2000 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(MgError);
    expect((err as MgError).code).toBe('MG_ERR_STORE_UNREACHABLE');
    expect((err as MgError).message).toContain(`postgres://mg:***@127.0.0.1:${port}/mirrorguard`);
    expect(JSON.stringify({ m: (err as MgError).message, s: (err as MgError).stack })).not.toContain('hunter2secret');
  });
});

describeNeeds(['postgres'], 'PostgreSQL migrations with several nodes starting at once', () => {
  const pg = useTestPg();

  it('four nodes open a fresh database together: every version applied once, all at the latest', async () => {
    const url = await pg.freshUrl();
    const stores = await Promise.all([1, 2, 3, 4].map((n) => openStore({ url, nodeId: `n${n}` })));
    try {
      for (const s of stores) expect((await s.status()).version).toBe(SCHEMA_VERSION);
      const rows = await stores[0]!.engine.all<{ version: number }>('SELECT version FROM schema_migrations ORDER BY version');
      expect(rows.map((r) => r.version)).toEqual(Array.from({ length: SCHEMA_VERSION }, (_, i) => i + 1));
    } finally {
      for (const s of stores) await s.close();
    }
  });

  it('status without migrating: everything pending on an empty database', async () => {
    const url = await pg.freshUrl();
    const s = await openStore({ url, migrate: false });
    try {
      const st = await s.status();
      expect(st.version).toBe(0);
      expect(st.pending.length).toBe(SCHEMA_VERSION);
      expect(await s.migrate()).toHaveLength(SCHEMA_VERSION);
      expect((await s.status()).pending).toEqual([]);
    } finally {
      await s.close();
    }
  });

  it('a migration that fails: MG_ERR_STORE_MIGRATE, the database left at the previous version', async () => {
    const url = await pg.freshUrl();
    const s = await openStore({ url, migrate: false });
    try {
      // Something else already owns a table migration 1 creates.
      await s.engine.exec('CREATE TABLE findings (x INTEGER)');
      const err = await s.migrate().catch((e: unknown) => e);
      expect((err as MgError).code).toBe('MG_ERR_STORE_MIGRATE');
      expect((err as MgError).message).toContain('migration 3 (findings)');
      expect((await s.status()).version).toBe(2);
    } finally {
      await s.close();
    }
  });

  it('the password comes from PGPASSWORD or store.passwordFile when the URL has none', async () => {
    // The test cluster trusts every local connection, so this checks that the option is accepted and
    // the URL display stays clean; a password-checking server is the operator's.
    const url = await pg.freshUrl();
    const s = await openStore({ url, passwordFile: '/dev/null' });
    try {
      expect(s.display).not.toContain('***');
      expect(await s.ping()).toBe(true);
    } finally {
      await s.close();
    }
  });
});
