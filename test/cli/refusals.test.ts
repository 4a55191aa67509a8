/**
 * Issue 17: commands that used to report success on input they could not use. Each now refuses with
 * the code docs/errors.md gives it, through the real CLI.
 */
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createServer, type AddressInfo } from 'node:net';
import { describe, expect, it } from 'vitest';
import { openDb } from '../../src/store/db.js';
import { runCli } from '../helpers/serve.js';
import { useTmpDir } from '../helpers/tmp.js';

const tmp = useTmpDir('mg-refuse-');

/** A classic pcap (microsecond magic) with one 802.11 radiotap frame (LINKTYPE_IEEE802_11_RADIOTAP = 127). */
function radiotapPcap(): Buffer {
  const hdr = Buffer.alloc(24);
  hdr.writeUInt32LE(0xa1b2c3d4, 0);
  hdr.writeUInt16LE(2, 4);
  hdr.writeUInt16LE(4, 6);
  hdr.writeUInt32LE(65535, 16);
  hdr.writeUInt32LE(127, 20);
  // radiotap header: version 0, pad, length 8, present bitmap 0; then a 24-byte 802.11 data frame header
  const frame = Buffer.concat([Buffer.from([0, 0, 8, 0, 0, 0, 0, 0]), Buffer.alloc(24, 0x08)]);
  const rec = Buffer.alloc(16);
  rec.writeUInt32LE(1_700_000_000, 0);
  rec.writeUInt32LE(frame.length, 8);
  rec.writeUInt32LE(frame.length, 12);
  return Buffer.concat([hdr, rec, frame]);
}

describe('a capture with no IP layer (radiotap) is MG_ERR_CAPTURE_LINKTYPE', () => {
  it('decap exits 65 and writes nothing', () => {
    const f = join(tmp.path, 'wifi.pcap');
    writeFileSync(f, radiotapPcap());
    const out = join(tmp.path, 'out');
    const r = runCli(['decap', f, '--out', out]);
    expect(r.status).toBe(65);
    expect(r.stderr).toContain('MG_ERR_CAPTURE_LINKTYPE');
    expect(r.stderr).toContain('link type 127');
    expect(existsSync(join(out, 'mirrorguard.db'))).toBe(false);
  });

  it('replay exits 65 and sends nothing', () => {
    const f = join(tmp.path, 'wifi.pcap');
    writeFileSync(f, radiotapPcap());
    const r = runCli(['replay', f, '--to', '127.0.0.1:9']);
    expect(r.status).toBe(65);
    expect(r.stderr).toContain('MG_ERR_CAPTURE_LINKTYPE');
  });
});

describe('alerts status / enable on the wrong data directory or name', () => {
  it('a --data-dir that does not exist is MG_ERR_DATA_DIR (73) and creates nothing', () => {
    const dir = join(tmp.path, 'nosuch');
    const r = runCli(['alerts', 'status', '--data-dir', dir]);
    expect(r.status).toBe(73);
    expect(r.stderr).toContain('MG_ERR_DATA_DIR');
    expect(existsSync(dir)).toBe(false);
  });

  it('a directory without a catalog is MG_ERR_CATALOG_OPEN (74), not zeros', () => {
    const dir = join(tmp.path, 'empty');
    mkdirSync(dir);
    const r = runCli(['alerts', 'status', '--data-dir', dir]);
    expect(r.status).toBe(74);
    expect(r.stderr).toContain('MG_ERR_CATALOG_OPEN');
    expect(existsSync(join(dir, 'mirrorguard.db'))).toBe(false);
  });

  it('alerts enable NOSUCH is MG_ERR_WEBHOOK_UNKNOWN (65)', () => {
    const dir = join(tmp.path, 'data');
    openDb(join(dir, 'mirrorguard.db')).close();
    const r = runCli(['alerts', 'enable', 'NOSUCH', '--data-dir', dir]);
    expect(r.status).toBe(65);
    expect(r.stderr).toContain("MG_ERR_WEBHOOK_UNKNOWN: no webhook by that name: 'NOSUCH'");
    expect(runCli(['alerts', 'status', '--data-dir', dir]).status).toBe(0);
  });

  it('alerts test --config FILE with no webhooks says the file has none', () => {
    const cfg = join(tmp.path, 'c.yaml');
    writeFileSync(cfg, 'dataDir: ./data\n');
    const r = runCli(['alerts', 'test', '--config', cfg]);
    expect(r.status).toBe(64);
    expect(r.stderr).toContain(`${cfg} has no webhooks`);
  });

  it('serve --store with PostgreSQL unreachable is MG_ERR_STORE_UNREACHABLE (69), the URL shown without its password', async () => {
    // A port nothing listens on: bind one, then close it.
    const port = await new Promise<number>((resolve) => {
      const srv = createServer();
      srv.listen(0, '127.0.0.1', () => {
        const p = (srv.address() as AddressInfo).port;
        srv.close(() => resolve(p));
      });
    });
    const r = runCli(['serve', '--listen', '127.0.0.1:0', '--api', 'off', '--data-dir', join(tmp.path, 'pg-data'), '--store', `postgres://mg:hunter2secret@127.0.0.1:${port}/mirrorguard`]);
    expect(r.status).toBe(69);
    expect(r.stderr).toContain('MG_ERR_STORE_UNREACHABLE');
    expect(r.stderr).toContain(`postgres://mg:***@127.0.0.1:${port}/mirrorguard`);
    expect(r.stdout + r.stderr).not.toContain('hunter2secret');
  });
});
