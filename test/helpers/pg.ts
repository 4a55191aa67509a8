/**
 * A throwaway PostgreSQL for tests: MIRRORGUARD_TEST_PG_URL when set (a server someone else runs; we
 * only create and drop databases on it), otherwise a cluster of our own from Debian's server binaries
 * (/usr/lib/postgresql/<version>/bin): initdb into a temporary folder, `postgres` on an ephemeral port
 * with its unix socket in that folder, stopped and removed by `stop()`. initdb refuses to run as root,
 * so as root the cluster runs as the `postgres` user (`setpriv`, which execs postgres itself so that
 * our signals reach it), in a folder chowned to it.
 *
 * One cluster per test file (start it in beforeAll, stop it in afterAll); `freshUrl()` gives each test
 * a database of its own.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll } from 'vitest';

export interface TestPg {
  /** The server's admin URL (database `postgres`). */
  readonly url: string;
  /** A new, empty database on the server; its URL. */
  freshUrl(): Promise<string>;
  /** Stop the server (our own cluster) and remove its folder; drop the databases we made on an outside one. */
  stop(): Promise<void>;
  /** Our own cluster only: stop the server process but keep its data (an outage); `resume()` starts it again on the same port. */
  pause(): Promise<void>;
  resume(): Promise<void>;
}

function binDir(): string | null {
  const base = '/usr/lib/postgresql';
  if (!existsSync(base)) return null;
  const versions = readdirSync(base)
    .filter((v) => existsSync(join(base, v, 'bin', 'initdb')) && existsSync(join(base, v, 'bin', 'postgres')))
    .sort((a, b) => Number(b) - Number(a));
  return versions.length ? join(base, versions[0]!, 'bin') : null;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const a = s.address();
      const port = typeof a === 'object' && a ? a.port : 0;
      s.close(() => resolve(port));
    });
  });
}

let dbSeq = 0;

async function adminQuery(url: string, sql: string): Promise<void> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    await c.query(sql);
  } finally {
    await c.end();
  }
}

function withDb(url: string, db: string): string {
  const u = new URL(url);
  u.pathname = `/${db}`;
  return u.toString();
}

export interface TestPgOptions {
  /** Serve TLS with this server certificate and key (PEM); our own cluster only. */
  tls?: { cert: string; key: string };
}

export async function startTestPg(opts: TestPgOptions = {}): Promise<TestPg> {
  const made: string[] = [];
  const fresh = (base: string) => async (): Promise<string> => {
    const name = `mg_test_${process.pid}_${++dbSeq}_${Date.now() % 100000}`;
    await adminQuery(base, `CREATE DATABASE ${name}`);
    made.push(name);
    return withDb(base, name);
  };

  const outside = process.env.MIRRORGUARD_TEST_PG_URL;
  if (outside) {
    return {
      url: outside,
      freshUrl: fresh(outside),
      async stop() {
        for (const n of made.splice(0)) await adminQuery(outside, `DROP DATABASE IF EXISTS ${n} WITH (FORCE)`).catch(() => undefined);
      },
      async pause() {
        throw new Error('pause() needs a cluster of our own (MIRRORGUARD_TEST_PG_URL is set)');
      },
      async resume() {
        throw new Error('resume() needs a cluster of our own');
      },
    };
  }

  const bin = binDir();
  if (!bin) throw new Error('no PostgreSQL server binaries under /usr/lib/postgresql and MIRRORGUARD_TEST_PG_URL is not set');
  const root = process.getuid?.() === 0;
  const dir = mkdtempSync(join(tmpdir(), 'mg-pg-'));
  chmodSync(dir, 0o700);
  let uid = -1;
  let gid = -1;
  if (root) {
    const u = spawnSync('id', ['-u', 'postgres'], { encoding: 'utf8' });
    const g = spawnSync('id', ['-g', 'postgres'], { encoding: 'utf8' });
    uid = Number(u.stdout.trim());
    gid = Number(g.stdout.trim());
    chownSync(dir, uid, gid);
  }
  // setpriv execs the command itself (runuser forks and would stand between us and postgres's signals).
  const as = (cmd: string, args: string[]): [string, string[]] =>
    root ? ['setpriv', [`--reuid=${uid}`, `--regid=${gid}`, '--init-groups', '--', cmd, ...args]] : [cmd, args];
  const data = join(dir, 'data');
  const [c0, a0] = as(join(bin, 'initdb'), ['-D', data, '-U', 'postgres', '--auth=trust', '--no-sync', '-E', 'UTF8', '--locale=C']);
  const init = spawnSync(c0, a0, { encoding: 'utf8' });
  if (init.status !== 0) {
    rmSync(dir, { recursive: true, force: true });
    throw new Error(`initdb failed: ${init.stderr || init.stdout}`);
  }
  const tlsArgs: string[] = [];
  if (opts.tls) {
    writeFileSync(join(data, 'server.crt'), opts.tls.cert);
    writeFileSync(join(data, 'server.key'), opts.tls.key, { mode: 0o600 });
    if (root) {
      chownSync(join(data, 'server.crt'), uid, gid);
      chownSync(join(data, 'server.key'), uid, gid);
    }
    tlsArgs.push('-c', 'ssl=on', '-c', 'ssl_cert_file=server.crt', '-c', 'ssl_key_file=server.key');
  }
  const port = await freePort();
  const url = `postgres://postgres@127.0.0.1:${port}/postgres`;
  let proc: ChildProcess | null = null;

  const startServer = async (): Promise<void> => {
    const [c1, a1] = as(join(bin, 'postgres'), [
      '-D', data, '-p', String(port), '-h', '127.0.0.1', '-k', dir,
      '-c', 'fsync=off', '-c', 'synchronous_commit=off', '-c', 'full_page_writes=off', '-c', 'max_connections=100',
      '-c', 'shared_buffers=16MB', '-c', 'log_min_messages=fatal', ...tlsArgs,
    ]);
    const p = spawn(c1, a1, { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    p.stderr!.on('data', (b: Buffer) => {
      if (err.length < 4000) err += b.toString();
    });
    proc = p;
    const deadline = Date.now() + 30_000;
    for (;;) {
      if (p.exitCode !== null) throw new Error(`postgres exited ${p.exitCode}: ${err}`);
      try {
        await adminQuery(url, 'SELECT 1');
        return;
      } catch {
        if (Date.now() > deadline) throw new Error(`postgres did not accept connections in 30 s: ${err}`);
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  };
  const stopServer = async (): Promise<void> => {
    const p = proc;
    proc = null;
    if (!p || p.exitCode !== null) return;
    const exited = new Promise<void>((r) => p.once('exit', () => r()));
    // SIGINT: "fast" shutdown (roll back open transactions, disconnect clients).
    p.kill('SIGINT');
    const t = setTimeout(() => p.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(t);
  };

  try {
    await startServer();
  } catch (e) {
    await stopServer();
    rmSync(dir, { recursive: true, force: true });
    throw e;
  }
  return {
    url,
    freshUrl: fresh(url),
    async stop() {
      await stopServer();
      rmSync(dir, { recursive: true, force: true });
    },
    pause: stopServer,
    resume: startServer,
  };
}

/**
 * One cluster for the enclosing describe block: started in its beforeAll, stopped in its afterAll. The
 * object answers for the cluster once it runs (use it inside tests and hooks, not at collection time).
 */
export function useTestPg(opts: TestPgOptions = {}): TestPg {
  let pg: TestPg | undefined;
  beforeAll(async () => {
    pg = await startTestPg(opts);
  });
  afterAll(async () => {
    await pg?.stop();
  });
  const running = (): TestPg => {
    if (pg === undefined) throw new Error('the test PostgreSQL is not started (use it inside a test or hook)');
    return pg;
  };
  return {
    get url() {
      return running().url;
    },
    freshUrl: () => running().freshUrl(),
    stop: () => running().stop(),
    pause: () => running().pause(),
    resume: () => running().resume(),
  };
}
