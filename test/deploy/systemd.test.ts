/**
 * The systemd unit, its libpcap drop-in, the sysctl and sysusers files, and deploy/install.sh staging
 * them into a temporary root. `systemd-analyze verify` must print nothing for our unit: every warning
 * it prints is a setting systemd would ignore at run time.
 *
 * The tests that run systemd-analyze, systemd-sysusers, openssl or bash declare them (test/helpers/needs.ts).
 */
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, lstatSync, mkdirSync, readFileSync, readlinkSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { maxOpenFilesFor } from '../../src/collector/open-files.js';
import { loadConfig } from '../../src/config/load.js';
import { DEFAULTS } from '../../src/config/schema.js';
import { parseBytes } from '../../src/util/units.js';
import { PROJECT_ROOT } from '../helpers/fixtures.js';
import { describeNeeds, itNeeds } from '../helpers/needs.js';
import { ERRORS, EXIT } from '../../src/errors.js';
import { useTmpDir } from '../helpers/tmp.js';

const DEPLOY = join(PROJECT_ROOT, 'deploy');
const UNIT = join(DEPLOY, 'systemd', 'mirrorguard.service');
const LIBPCAP = join(DEPLOY, 'systemd', 'mirrorguard.service.d', 'libpcap.conf');
const AF_PACKET = join(DEPLOY, 'systemd', 'mirrorguard.service.d', 'af-packet.conf');
const INSTALL = join(DEPLOY, 'install.sh');


/** `[Section] Key=value` lines of a unit file, in order (repeated keys kept). */
function unitSettings(text: string): { section: string; key: string; value: string }[] {
  const out: { section: string; key: string; value: string }[] = [];
  let section = '';
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#') || line.startsWith(';')) continue;
    const s = /^\[(.+)\]$/.exec(line);
    if (s) section = s[1]!;
    else {
      const i = line.indexOf('=');
      out.push({ section, key: line.slice(0, i), value: line.slice(i + 1) });
    }
  }
  return out;
}
const values = (text: string, key: string) => unitSettings(text).filter((s) => s.key === key).map((s) => s.value);

/**
 * A copy of the unit whose ExecStart runs this checkout with this node: verify checks that the
 * ExecStart binary exists, and /usr/bin/node or /opt/mirrorguard need not exist on a test machine.
 */
function stageUnit(dir: string, dropIns: string[] = []): string {
  const unit = readFileSync(UNIT, 'utf8').replace('/usr/bin/node /opt/mirrorguard/', `${process.execPath} ${PROJECT_ROOT}/`);
  writeFileSync(join(dir, 'mirrorguard.service'), unit);
  if (dropIns.length) mkdirSync(join(dir, 'mirrorguard.service.d'));
  for (const d of dropIns) cpSync(d, join(dir, 'mirrorguard.service.d', d.split('/').pop()!));
  return join(dir, 'mirrorguard.service');
}

function verify(unitPath: string): { status: number | null; output: string } {
  const r = spawnSync('systemd-analyze', ['verify', '--man=no', unitPath], { encoding: 'utf8', env: { ...process.env, SYSTEMD_LOG_COLOR: '0' } });
  return { status: r.status, output: `${r.stdout}${r.stderr}`.trim() };
}

describe('the unit file', () => {
  const unit = readFileSync(UNIT, 'utf8');

  it('runs serve with the config file, reloads the manifest on SIGHUP, restarts on failure', () => {
    expect(values(unit, 'ExecStart')).toEqual(['/usr/bin/node --max-semi-space-size=4 --heap-growing-percent=20 /opt/mirrorguard/bin/mirrorguard.js serve --config /etc/mirrorguard/config.yaml $MIRRORGUARD_OPTS']);
    expect(values(unit, 'ExecReload')).toEqual(['/bin/kill -HUP $MAINPID']);
    expect(values(unit, 'Restart')).toEqual(['on-failure']);
    expect(values(unit, 'StateDirectory')).toEqual(['mirrorguard']);
    // The data directory of the example config is the one systemd creates for the service.
    const cfg = parseYaml(readFileSync(join(DEPLOY, 'examples', 'config.yaml'), 'utf8')) as { dataDir: string };
    expect(cfg.dataDir).toBe('/var/lib/mirrorguard');
  });

  it('does not restart on exit codes a restart cannot fix: usage, data directory, config (src/errors.ts)', () => {
    const codes = /^RestartPreventExitStatus=(.*)$/m.exec(unit)![1]!.trim().split(/\s+/).map(Number);
    expect(codes.sort((a, b) => a - b)).toEqual([EXIT.USAGE, ERRORS.MG_ERR_DATA_DIR.exit, ERRORS.MG_ERR_CONFIG_INVALID.exit].sort((a, b) => a - b));
    // A store that is not up yet (69) is worth another try.
    expect(codes).not.toContain(ERRORS.MG_ERR_STORE_UNREACHABLE.exit);
  });

  it('gives a graceful stop more time than serve allows itself', () => {
    // serve exits by itself when its flush and close take longer than STOP_TIMEOUT_MS (src/cli/serve.ts).
    const m = /STOP_TIMEOUT_MS = ([\d_]+);/.exec(readFileSync(join(PROJECT_ROOT, 'src', 'cli', 'serve.ts'), 'utf8'));
    expect(m, 'STOP_TIMEOUT_MS in src/cli/serve.ts').not.toBeNull();
    const serveMs = Number(m![1]!.replace(/_/g, ''));
    const [stop] = values(unit, 'TimeoutStopSec');
    expect(Number(stop) * 1000).toBeGreaterThan(serveMs);
  });

  it('allows enough open files for a full session table with the default maxOpenFiles (one file per pair, the reserve besides)', () => {
    // One descriptor per open capture file (src/collector/open-files.ts): the default table (maxSessions)
    // must fit under the limit the unit sets, less the reserve, with the default --workers 1.
    const [nofile] = values(unit, 'LimitNOFILE');
    expect(nofile).toMatch(/^\d+$/);
    const perReceiver = maxOpenFilesFor(0, 1, Number(nofile));
    expect(perReceiver).toBeGreaterThanOrEqual(DEFAULTS.maxSessions);
    // With --workers 3 each receiver still gets a share that holds the 10,000 sessions of an account.
    expect(maxOpenFilesFor(0, 4, Number(nofile))).toBeGreaterThanOrEqual(10_000);
  });

  it('runs with no capabilities and a read-only system; the libpcap drop-in adds CAP_NET_RAW and packet sockets only', () => {
    expect(values(unit, 'User')).toEqual(['mirrorguard']);
    expect(values(unit, 'CapabilityBoundingSet')).toEqual(['']);
    expect(values(unit, 'AmbientCapabilities')).toEqual(['']);
    expect(values(unit, 'NoNewPrivileges')).toEqual(['yes']);
    expect(values(unit, 'ProtectSystem')).toEqual(['strict']);
    expect(values(unit, 'RestrictAddressFamilies')).toEqual(['AF_INET AF_INET6 AF_UNIX']);
    expect(values(unit, 'SystemCallFilter')).toContain('@system-service');
    const pcap = readFileSync(LIBPCAP, 'utf8');
    expect(values(pcap, 'CapabilityBoundingSet')).toEqual(['CAP_NET_RAW']);
    expect(values(pcap, 'AmbientCapabilities')).toEqual(['CAP_NET_RAW']);
    expect(values(pcap, 'RestrictAddressFamilies')).toEqual(['AF_PACKET AF_NETLINK']);
    expect(unitSettings(pcap).map((s) => s.key).sort()).toEqual(['AmbientCapabilities', 'CapabilityBoundingSet', 'RestrictAddressFamilies']);
  });

  it('the af-packet drop-in adds CAP_NET_RAW (ambient, so the unprivileged user has it) and packet sockets, nothing else', () => {
    const ring = readFileSync(AF_PACKET, 'utf8');
    expect(values(ring, 'CapabilityBoundingSet')).toEqual(['CAP_NET_RAW']);
    expect(values(ring, 'AmbientCapabilities')).toEqual(['CAP_NET_RAW']);
    expect(values(ring, 'RestrictAddressFamilies')).toEqual(['AF_PACKET AF_NETLINK']);
    expect(unitSettings(ring).map((s) => s.key).sort()).toEqual(['AmbientCapabilities', 'CapabilityBoundingSet', 'RestrictAddressFamilies']);
  });
});

describeNeeds(['systemd-analyze'], 'systemd-analyze', () => {
  const tmp = useTmpDir('mg-deploy-');

  it('verify prints nothing for the unit', () => {
    const r = verify(stageUnit(tmp.path));
    expect(r.output).toBe('');
    expect(r.status).toBe(0);
  });

  it('verify prints nothing for the unit with the libpcap drop-in', () => {
    const r = verify(stageUnit(tmp.path, [LIBPCAP]));
    expect(r.output).toBe('');
    expect(r.status).toBe(0);
  });

  it('verify prints nothing for the unit with the af-packet drop-in', () => {
    const r = verify(stageUnit(tmp.path, [AF_PACKET]));
    expect(r.output).toBe('');
    expect(r.status).toBe(0);
  });

  it('verify does complain about a broken unit (the check is not vacuous)', () => {
    const path = stageUnit(tmp.path);
    writeFileSync(path, readFileSync(path, 'utf8').replace('RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX', 'RestrictAddressFamilies=AF_INET AF_BOGUS\nProtectSystm=strict'));
    const r = verify(path);
    expect(r.output).toMatch(/AF_BOGUS/);
    expect(r.output).toMatch(/ProtectSystm/);
  });

  it("rates the unit's exposure OK (2.0 or below) in systemd-analyze security", () => {
    const r = spawnSync('systemd-analyze', ['security', '--offline=true', '--no-pager', stageUnit(tmp.path)], { encoding: 'utf8' });
    const m = /Overall exposure level for mirrorguard\.service: ([\d.]+)/.exec(`${r.stdout}${r.stderr}`);
    expect(m, `${r.stdout}${r.stderr}`).not.toBeNull();
    expect(Number(m![1])).toBeLessThanOrEqual(2.0);
  });
});

describe('the sysctl and sysusers files', () => {
  it('raise net.core.rmem_max to at least the receive buffer the example config asks for', () => {
    const lines = readFileSync(join(DEPLOY, 'sysctl.d', '60-mirrorguard.conf'), 'utf8')
      .split('\n')
      .filter((l) => l.trim() && !l.trim().startsWith('#'));
    const kv = Object.fromEntries(lines.map((l) => l.split('=').map((s) => s.trim()) as [string, string]));
    expect(Object.keys(kv)).toEqual(['net.core.rmem_max']);
    const cfg = loadConfig({ file: join(DEPLOY, 'examples', 'config.yaml') });
    expect(Number(kv['net.core.rmem_max'])).toBeGreaterThanOrEqual(cfg.recvBufferBytes);
    expect(cfg.recvBufferBytes).toBe(parseBytes('128MiB'));
  });

  itNeeds(['systemd-sysusers'], 'sysusers.d creates the mirrorguard system user (dry run)', () => {
    const r = spawnSync('systemd-sysusers', ['--dry-run', '--root=/nonexistent-root', join(DEPLOY, 'sysusers.d', 'mirrorguard.conf')], { encoding: 'utf8' });
    expect(`${r.stdout}${r.stderr}`).toMatch(/mirrorguard/);
    expect(r.status).toBe(0);
  });
});

describeNeeds(['bash', 'openssl'], 'deploy/install.sh --root', () => {
  const tmp = useTmpDir('mg-install-');
  const install = (...args: string[]) =>
    spawnSync('bash', [INSTALL, '--root', tmp.path, '--node', process.execPath, ...args], { encoding: 'utf8' });

  it('stages the unit, drop-in, sysctl, sysusers, config, an empty manifest, a certificate and the secrets file', () => {
    const r = install('--libpcap', '--af-packet', '--api-san', 'IP:10.0.1.5');
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    const etc = join(tmp.path, 'etc');
    const unit = readFileSync(join(etc, 'systemd', 'system', 'mirrorguard.service'), 'utf8');
    expect(values(unit, 'ExecStart')).toEqual([`${process.execPath} --max-semi-space-size=4 --heap-growing-percent=20 ${PROJECT_ROOT}/bin/mirrorguard.js serve --config /etc/mirrorguard/config.yaml $MIRRORGUARD_OPTS`]);
    expect(existsSync(join(etc, 'systemd', 'system', 'mirrorguard.service.d', 'libpcap.conf'))).toBe(true);
    expect(readFileSync(join(etc, 'systemd', 'system', 'mirrorguard.service.d', 'af-packet.conf'), 'utf8')).toBe(readFileSync(AF_PACKET, 'utf8'));
    expect(readFileSync(join(etc, 'sysctl.d', '60-mirrorguard.conf'), 'utf8')).toBe(readFileSync(join(DEPLOY, 'sysctl.d', '60-mirrorguard.conf'), 'utf8'));
    expect(existsSync(join(etc, 'sysusers.d', 'mirrorguard.conf'))).toBe(true);
    expect(readFileSync(join(etc, 'mirrorguard', 'config.yaml'), 'utf8')).toBe(readFileSync(join(DEPLOY, 'examples', 'config.yaml'), 'utf8'));
    expect(readlinkSync(join(tmp.path, 'usr', 'local', 'bin', 'mirrorguard'))).toBe(join(PROJECT_ROOT, 'bin', 'mirrorguard.js'));

    // Modes: secrets for root only, the key for the service's group, the certificate for anyone.
    const mode = (p: string) => statSync(join(etc, 'mirrorguard', p)).mode & 0o777;
    expect(mode('mirrorguard.env')).toBe(0o600);
    expect(mode('config.yaml')).toBe(0o640);
    expect(mode('tls/api.key')).toBe(0o640);
    expect(mode('tls/api.crt')).toBe(0o644);
    expect(lstatSync(join(etc, 'mirrorguard')).mode & 0o777).toBe(0o750);

    // The certificate names the addresses the API is reached at.
    const x = spawnSync('openssl', ['x509', '-in', join(etc, 'mirrorguard', 'tls', 'api.crt'), '-noout', '-ext', 'subjectAltName'], { encoding: 'utf8' });
    expect(x.stdout).toMatch(/DNS:localhost/);
    expect(x.stdout).toMatch(/IP Address:127\.0\.0\.1/);
    expect(x.stdout).toMatch(/IP Address:10\.0\.1\.5/);

    // The generated tokens are usable bearer tokens (RFC 6750 b64token), one per tokenEnv of the config.
    const env = Object.fromEntries(
      readFileSync(join(etc, 'mirrorguard', 'mirrorguard.env'), 'utf8')
        .split('\n')
        .filter((l) => /^[A-Z_]+=/.test(l))
        .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]),
    );
    expect(env.MIRRORGUARD_ADMIN_TOKEN).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(env.MIRRORGUARD_INGEST_TOKEN).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(env.MIRRORGUARD_ADMIN_TOKEN).not.toBe(env.MIRRORGUARD_INGEST_TOKEN);
  });

  it('leaves an empty manifest that passes manifest check and authorizes nothing', () => {
    expect(install().status).toBe(0);
    const r = spawnSync(process.execPath, [join(PROJECT_ROOT, 'bin', 'mirrorguard.js'), 'manifest', 'check', join(tmp.path, 'etc', 'mirrorguard', 'manifest.yaml')], { encoding: 'utf8' });
    expect(r.stdout).toMatch(/valid, 0 sessions/);
    expect(r.status).toBe(0);
  });

  it('never overwrites the config, manifest, secrets or certificate on a second run (an upgrade)', () => {
    expect(install().status).toBe(0);
    const conf = join(tmp.path, 'etc', 'mirrorguard');
    const files = ['config.yaml', 'manifest.yaml', 'mirrorguard.env', 'tls/api.crt', 'tls/api.key'];
    writeFileSync(join(conf, 'config.yaml'), 'listen: 0.0.0.0:4789\n# edited by the operator\n');
    const before = files.map((f) => readFileSync(join(conf, f), 'utf8'));
    const r = install();
    expect(r.status).toBe(0);
    expect(r.stdout).not.toMatch(/wrote/);
    expect(files.map((f) => readFileSync(join(conf, f), 'utf8'))).toEqual(before);
  });

  itNeeds(['systemd-analyze'], 'installs a unit that systemd-analyze verify accepts', () => {
    expect(install('--libpcap').status).toBe(0);
    const r = verify(join(tmp.path, 'etc', 'systemd', 'system', 'mirrorguard.service'));
    expect(r.output).toBe('');
    expect(r.status).toBe(0);
  });

  it('refuses a node older than 20.12 and an unknown option, changing nothing', () => {
    const fake = join(tmp.path, 'node18');
    writeFileSync(fake, '#!/bin/sh\nif [ "$1" = --version ]; then echo v18.19.0; exit 0; fi\nexit 1\n', { mode: 0o755 });
    const r = spawnSync('bash', [INSTALL, '--root', tmp.path, '--node', fake], { encoding: 'utf8' });
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/Node\.js v18\.19\.0; mirrorguard needs 20\.12 or later/);
    const u = spawnSync('bash', [INSTALL, '--root', tmp.path, '--bogus'], { encoding: 'utf8' });
    expect(u.status).toBe(1);
    expect(u.stderr).toMatch(/unknown option '--bogus'/);
    expect(existsSync(join(tmp.path, 'etc'))).toBe(false);
  });
});
