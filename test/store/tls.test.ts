/**
 * store.tls.ca against a PostgreSQL serving TLS: the server certificate must chain to the CA and name
 * the host (verify-full), or the store does not open (MG_ERR_STORE_UNREACHABLE).
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { MgError } from '../../src/errors.js';
import { openStore } from '../../src/store/store.js';
import { describeNeeds } from '../helpers/needs.js';
import { startTestPg, type TestPg } from '../helpers/pg.js';

function openssl(dir: string, args: string[]): void {
  execFileSync('openssl', args, { cwd: dir, stdio: 'ignore' });
}

/** A CA, and a server certificate it signs for DNS:localhost only. */
function makeCerts(dir: string): void {
  for (const ca of ['ca', 'other-ca']) {
    openssl(dir, ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', `${ca}.key`, '-out', `${ca}.crt`, '-days', '2', '-subj', `/CN=mirrorguard test ${ca}`]);
  }
  openssl(dir, ['req', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'server.key', '-out', 'server.csr', '-subj', '/CN=localhost']);
  writeSanConfig(dir);
  openssl(dir, ['x509', '-req', '-in', 'server.csr', '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'server.crt', '-days', '2', '-extfile', 'ext.cnf']);
}

function writeSanConfig(dir: string): void {
  execFileSync('sh', ['-c', 'printf "subjectAltName=DNS:localhost\\n" > ext.cnf'], { cwd: dir });
}

describeNeeds(['postgres', 'openssl'], 'PostgreSQL over TLS (store.tls.ca, verify-full)', () => {
  let pg: TestPg;
  let dir: string;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'mg-pg-tls-'));
    makeCerts(dir);
    pg = await startTestPg({ tls: { cert: readFileSync(join(dir, 'server.crt'), 'utf8'), key: readFileSync(join(dir, 'server.key'), 'utf8') } });
  });
  afterAll(async () => {
    await pg?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('connects over TLS when the certificate chains to the CA and names the host', async () => {
    if (process.env.MIRRORGUARD_TEST_PG_URL) return; // an outside server has certificates of its own
    const url = (await pg.freshUrl()).replace('127.0.0.1', 'localhost');
    const s = await openStore({ url, tlsCa: join(dir, 'ca.crt') });
    try {
      expect((await s.engine.get<{ ssl: boolean }>('SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()'))?.ssl).toBe(true);
    } finally {
      await s.close();
    }
  });

  it('refuses a certificate from another CA, and one that does not name the host', async () => {
    if (process.env.MIRRORGUARD_TEST_PG_URL) return;
    const url = await pg.freshUrl();
    const wrongCa = await openStore({ url: url.replace('127.0.0.1', 'localhost'), tlsCa: join(dir, 'other-ca.crt') }).catch((e: unknown) => e);
    expect((wrongCa as MgError).code).toBe('MG_ERR_STORE_UNREACHABLE');
    // 127.0.0.1 is not in the certificate (DNS:localhost only): verify-full refuses it.
    const wrongHost = await openStore({ url, tlsCa: join(dir, 'ca.crt') }).catch((e: unknown) => e);
    expect((wrongHost as MgError).code).toBe('MG_ERR_STORE_UNREACHABLE');
    expect((wrongHost as MgError).message).toMatch(/altnames|Hostname|IP/i);
  });
});
