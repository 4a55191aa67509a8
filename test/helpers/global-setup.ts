/**
 * Probes, once per run, for everything a test may need from outside Node (test/helpers/needs.ts) and
 * hands the answers to every test worker. Probing costs a few process starts; doing it here keeps it
 * out of the hundreds of test files and workers.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createRequire } from 'node:module';
import type { TestProject } from 'vitest/node';
import { loadNativeAddon } from '../../src/ingest/native-addon.js';
import { loadMergeStep } from '../../src/api/native-merge.js';
import type { Need } from './needs.js';

const require = createRequire(import.meta.url);
const PYTHON = existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3';

function runs(cmd: string, args: string[]): boolean {
  const r = spawnSync(cmd, args, { stdio: 'ignore', timeout: 20_000 });
  return r.status === 0;
}

function resolves(pkg: string): boolean {
  try {
    require.resolve(pkg);
    return true;
  } catch {
    return false;
  }
}

function loads(pkg: string): boolean {
  try {
    require(pkg);
    return true;
  } catch {
    return false;
  }
}

/** Root alone is not enough: a container may forbid mount(2). Mount and unmount a tiny tmpfs to know. */
function mountsTmpfs(): boolean {
  if (process.getuid?.() !== 0) return false;
  const dir = mkdtempSync(join(tmpdir(), 'mg-mount-probe-'));
  try {
    if (!runs('mount', ['-t', 'tmpfs', '-o', 'size=64k', 'tmpfs', dir])) return false;
    runs('umount', [dir]);
    return true;
  } finally {
    rmdirSync(dir);
  }
}

function postgresBinaries(): boolean {
  if (process.env.MIRRORGUARD_TEST_PG_URL) return true;
  const base = '/usr/lib/postgresql';
  if (!existsSync(base)) return false;
  const found = readdirSync(base).some((v) => existsSync(`${base}/${v}/bin/initdb`) && existsSync(`${base}/${v}/bin/postgres`));
  // initdb refuses root: test/helpers/pg.ts runs the cluster as the `postgres` user through setpriv.
  if (found && process.getuid?.() === 0) return runs('sh', ['-c', 'setpriv --reuid=$(id -u postgres) --regid=$(id -g postgres) --init-groups -- true']);
  return found;
}

/**
 * moto_server on PATH is not enough (a pip install without Flask, a Debian package missing a
 * dependency): start it on an ephemeral port, wait for its "Running on" line, stop it.
 */
function motoStarts(): boolean {
  if (!runs('sh', ['-c', 'command -v moto_server'])) return false;
  const script = 'moto_server -H 127.0.0.1 -p 0 >"$1" 2>&1 & p=$!; for i in $(seq 1 100); do grep -q "Running on" "$1" && { kill $p; wait $p 2>/dev/null; exit 0; }; kill -0 $p 2>/dev/null || exit 1; sleep 0.1; done; kill $p; exit 1';
  const dir = mkdtempSync(join(tmpdir(), 'mg-moto-probe-'));
  try {
    return runs('sh', ['-c', script, 'sh', join(dir, 'log')]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export function probeNeeds(): Record<Need, boolean> {
  const root = process.getuid?.() === 0;
  const found: Record<Need, boolean> = {
    tshark: runs('tshark', ['--version']),
    mergecap: runs('mergecap', ['--version']),
    editcap: runs('editcap', ['--version']),
    tcpdump: runs('tcpdump', ['--version']),
    scapy: runs(PYTHON, ['-c', 'import scapy.all']),
    python3: runs(PYTHON, ['--version']),
    libpcap: root && loads('cap'),
    native: loadNativeAddon().ok,
    'native-merge': loadMergeStep().ok,
    gcc: runs('gcc', ['--version']),
    root,
    procfs: existsSync('/proc/self/fdinfo'),
    tmpfs: mountsTmpfs(),
    openssl: runs('openssl', ['version']),
    script: runs('script', ['--version']),
    fincore: runs('fincore', ['--version']),
    'systemd-analyze': runs('systemd-analyze', ['--version']),
    'systemd-sysusers': runs('systemd-sysusers', ['--version']),
    bash: runs('bash', ['-c', 'true']),
    curl: runs('curl', ['--version']),
    jq: runs('jq', ['--version']),
    postgres: postgresBinaries(),
    s3: motoStarts(),
    chromium: existsSync(process.env.MIRRORGUARD_CHROMIUM ?? '/usr/bin/chromium') && resolves('playwright-core'),
  };
  for (const n of (process.env.MIRRORGUARD_TEST_WITHOUT ?? '').split(',')) {
    const k = n.trim() as Need;
    if (k in found) found[k] = false;
  }
  return found;
}

export default function setup(project: TestProject): void {
  project.provide('mirrorguardNeeds', probeNeeds());
}
