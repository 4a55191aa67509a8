import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/load.js';
import { DEFAULTS } from '../../src/config/schema.js';
import { MgError } from '../../src/errors.js';
import { useTmpDir } from '../helpers/tmp.js';

function loadError(fn: () => unknown): MgError {
  try {
    fn();
  } catch (e) {
    if (e instanceof MgError) return e;
    throw e;
  }
  throw new Error('expected an MgError');
}

describe('config loader', () => {
  const tmp = useTmpDir();

  it('runs on embedded defaults with no file and no flags', () => {
    const c = loadConfig();
    expect(c.listen).toBe('0.0.0.0:4789');
    expect(c.recvBufferBytes).toBe(128 * 1024 * 1024);
    expect(c.pcap.flushIntervalMs).toBe(1000);
    expect(c.pcap.rotateBytes).toBe(DEFAULTS.pcap.rotateBytes);
    expect(c.manifest).toBeNull();
    expect(c.api.listen).toBe('127.0.0.1:8080');
    expect(Object.isFrozen(c) && Object.isFrozen(c.pcap)).toBe(true);
  });

  it('takes the file, then flags over it, with byte units', () => {
    const dir = tmp.path;
    const f = join(dir, 'c.yaml');
    writeFileSync(f, 'listen: 127.0.0.1:5000\nrecvBufferBytes: 8MiB\npcap:\n  rotateBytes: 1GiB\n  rotateSeconds: 60\n');
    const c = loadConfig({ file: f, overrides: [{ path: ['pcap', 'rotateSeconds'], value: 30, flag: '--rotate-seconds' }] });
    expect(c.listen).toBe('127.0.0.1:5000');
    expect(c.recvBufferBytes).toBe(8 * 1024 * 1024);
    expect(c.pcap.rotateBytes).toBe(1024 ** 3);
    expect(c.pcap.rotateSeconds).toBe(30);
  });

  it('names file, line and key for every problem at once', () => {
    const dir = tmp.path;
    const f = join(dir, 'bad.yaml');
    writeFileSync(f, ['listen: 0.0.0.0:4789', 'pcap:', '  rotateSecs: 5', '  flushIntervalMs: -1', 'recvBufferBytes: lots', ''].join('\n'));
    const e = loadError(() => loadConfig({ file: f }));
    expect(e.code).toBe('MG_ERR_CONFIG_INVALID');
    expect(e.exitCode).toBe(78);
    const lines = e.describe().split('\n').slice(1).sort();
    expect(lines).toEqual(
      [
        `${f}:3: pcap.rotateSecs: unknown key`,
        expect.stringMatching(new RegExp(`^${f}:4: pcap.flushIntervalMs: `)),
        expect.stringMatching(new RegExp(`^${f}:5: recvBufferBytes: .*byte size`)),
      ].sort((a, b) => String(a).localeCompare(String(b))),
    );
  });

  it('reports a bad flag value by the flag name', () => {
    const e = loadError(() => loadConfig({ overrides: [{ path: ['listen'], value: 'nowhere', flag: '--listen' }] }));
    expect(e.problems[0]).toMatchObject({ field: '--listen' });
    expect(e.describe()).toMatch(/--listen: must be HOST:PORT/);
  });

  it('accepts IPv6 listen addresses in brackets', () => {
    expect(loadConfig({ overrides: [{ path: ['listen'], value: '[::]:4789', flag: '--listen' }] }).listen).toBe('[::]:4789');
    const e = loadError(() => loadConfig({ overrides: [{ path: ['listen'], value: '::1:4789', flag: '--listen' }] }));
    expect(e.code).toBe('MG_ERR_CONFIG_INVALID');
  });

  it('reports YAML syntax errors with their line', () => {
    const dir = tmp.path;
    const f = join(dir, 'syntax.yaml');
    writeFileSync(f, 'listen: 0.0.0.0:4789\npcap:\n  rotateBytes: [1, 2\n');
    const e = loadError(() => loadConfig({ file: f }));
    expect(e.code).toBe('MG_ERR_CONFIG_PARSE');
    expect(e.problems[0]!.line).toBeGreaterThanOrEqual(3);
  });

  it('says when the file cannot be read', () => {
    const dir = tmp.path;
    const e = loadError(() => loadConfig({ file: join(dir, 'missing.yaml') }));
    expect(e.code).toBe('MG_ERR_CONFIG_READ');
    expect(e.message).toMatch(/ENOENT/);
  });

  it('takes pcap.dropBehindBytes in pages, 0 to turn it off, and names the line of a bad one', () => {
    expect(loadConfig({}).pcap.dropBehindBytes).toBe(32 * 1024);
    expect(loadConfig({ overrides: [{ path: ['pcap', 'dropBehindBytes'], value: 0, flag: '--x' }] }).pcap.dropBehindBytes).toBe(0);
    expect(loadConfig({ overrides: [{ path: ['pcap', 'dropBehindBytes'], value: '1MiB', flag: '--x' }] }).pcap.dropBehindBytes).toBe(1024 * 1024);
    const f = join(tmp.path, 'drop.yaml');
    writeFileSync(f, 'pcap:\n  dropBehindBytes: 5000\n');
    const e = loadError(() => loadConfig({ file: f }));
    expect(e.describe()).toContain(`${f}:2: pcap.dropBehindBytes: must be 0 or a multiple of 4096`);
  });

  it('takes pcap.directWriteBytes in pages (256 KiB by default, 0 to turn direct writes off) and names the line of a bad one', () => {
    expect(loadConfig({}).pcap.directWriteBytes).toBe(256 * 1024);
    expect(loadConfig({ overrides: [{ path: ['pcap', 'directWriteBytes'], value: 0, flag: '--x' }] }).pcap.directWriteBytes).toBe(0);
    expect(loadConfig({ overrides: [{ path: ['pcap', 'directWriteBytes'], value: '1MiB', flag: '--x' }] }).pcap.directWriteBytes).toBe(1024 * 1024);
    const f = join(tmp.path, 'direct.yaml');
    writeFileSync(f, 'pcap:\n  directWriteBytes: 100000\n');
    const e = loadError(() => loadConfig({ file: f }));
    expect(e.describe()).toContain(`${f}:2: pcap.directWriteBytes: must be 0 or a multiple of 4096`);
  });

  it('takes recvCoalesceMs (1 by default, 0 to read at every readiness) and names the line of a bad one', () => {
    expect(loadConfig({}).recvCoalesceMs).toBe(1);
    const f = join(tmp.path, 'coalesce.yaml');
    writeFileSync(f, 'recvCoalesceMs: 0\n');
    expect(loadConfig({ file: f }).recvCoalesceMs).toBe(0);
    writeFileSync(f, 'listen: 0.0.0.0:4789\nrecvCoalesceMs: 2.5\n');
    expect(loadError(() => loadConfig({ file: f })).describe()).toContain(`${f}:2: recvCoalesceMs:`);
  });

  it('keeps buffer and queue sizes consistent', () => {
    const e = loadError(() =>
      loadConfig({ overrides: [{ path: ['pcap', 'queueBytes'], value: '1MiB', flag: '--queue' }, { path: ['pcap', 'bufferBytes'], value: '1MiB', flag: '--buf' }] }),
    );
    expect(e.describe()).toMatch(/--queue: must be at least twice pcap.bufferBytes/);
  });
});
