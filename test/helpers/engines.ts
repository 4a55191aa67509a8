/**
 * Run a store suite on both engines: SQLite in a temporary file, and PostgreSQL (a throwaway cluster
 * per file from test/helpers/pg.ts, or MIRRORGUARD_TEST_PG_URL) with a fresh database per test. The
 * PostgreSQL half declares the `postgres` need: skipped with the summary line where it is absent, a
 * failure under CI=true.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe } from 'vitest';
import { openStore, type Store, type StoreOptions } from '../../src/store/store.js';
import { describeNeeds } from './needs.js';
import { startTestPg, type TestPg } from './pg.js';

export interface EngineContext {
  readonly engine: 'sqlite' | 'postgres';
  /** The store opened for the current test (node `node-a`). */
  readonly store: Store;
  /** The current test's store URL. */
  readonly url: string;
  /** Another store on the same database (another node), closed after the test. */
  open(opts?: Partial<StoreOptions>): Promise<Store>;
  /** PostgreSQL only: the test cluster (outages). */
  readonly pg: TestPg | null;
}

export function describeEngines(name: string, body: (ctx: EngineContext) => void): void {
  for (const engine of ['sqlite', 'postgres'] as const) {
    const suite = (): void => {
      let pg: TestPg | null = null;
      let dir = '';
      let url = '';
      let store: Store | undefined;
      const extra: Store[] = [];
      if (engine === 'postgres') {
        beforeAll(async () => {
          pg = await startTestPg();
        });
        afterAll(async () => {
          await pg?.stop();
        });
      }
      beforeEach(async () => {
        if (engine === 'sqlite') {
          dir = mkdtempSync(join(tmpdir(), 'mg-store-'));
          url = `sqlite:${join(dir, 'mirrorguard.db')}`;
        } else url = await pg!.freshUrl();
        store = await openStore({ url, nodeId: 'node-a' });
      });
      afterEach(async () => {
        for (const s of extra.splice(0)) await s.close().catch(() => undefined);
        await store?.close().catch(() => undefined);
        store = undefined;
        if (dir) rmSync(dir, { recursive: true, force: true });
        dir = '';
      });
      body({
        engine,
        get store() {
          return store!;
        },
        get url() {
          return url;
        },
        get pg() {
          return pg;
        },
        async open(opts = {}) {
          const s = await openStore({ url, nodeId: 'node-b', ...opts });
          extra.push(s);
          return s;
        },
      });
    };
    if (engine === 'sqlite') describe(`${name} [sqlite]`, suite);
    else describeNeeds(['postgres'], `${name} [postgres]`, suite);
  }
}
