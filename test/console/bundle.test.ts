/**
 * The console's files as shipped (console/, package.json "files"): small, no HTML sinks, no eval, no
 * inline code in the page, nothing from another origin; and the pure helpers of console/lib.js.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CONSOLE_ROOT } from '../../src/api/routes/console.js';
import { PROJECT_ROOT } from '../helpers/fixtures.js';
// @ts-expect-error: a browser ES module without types; its pure helpers run in Node as they are.
import { bytes, dispositionName, qs, utc } from '../../console/lib.js';

/** docs/console.md states the size; this keeps it honest (raw bytes of every file). */
export const CONSOLE_BUDGET_BYTES = 80 * 1024;

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((n) => {
    const p = join(dir, n);
    return statSync(p).isDirectory() ? files(p) : [p];
  });
}

describe('console bundle', () => {
  const all = files(CONSOLE_ROOT);

  it(`is shipped and stays under ${CONSOLE_BUDGET_BYTES / 1024} KiB`, () => {
    const pkg = JSON.parse(readFileSync(join(PROJECT_ROOT, 'package.json'), 'utf8')) as { files: string[] };
    expect(pkg.files).toContain('console/');
    const total = all.reduce((a, f) => a + statSync(f).size, 0);
    expect(total).toBeLessThan(CONSOLE_BUDGET_BYTES);
  });

  it('never parses strings as HTML or code, and loads nothing from elsewhere', () => {
    for (const f of all.filter((x) => x.endsWith('.js'))) {
      const src = readFileSync(f, 'utf8').replace(/^\s*\/\/.*$/gm, '');
      const name = relative(PROJECT_ROOT, f);
      expect(src, name).not.toMatch(/\.(innerHTML|outerHTML)\s*=|insertAdjacentHTML|document\.write|\beval\s*\(|new Function\s*\(|setTimeout\(\s*['"`]|DOMParser|createContextualFragment/);
      expect(src, name).not.toMatch(/https?:\/\//);
      expect(src, name).not.toMatch(/localStorage|document\.cookie/);
    }
    const html = readFileSync(join(CONSOLE_ROOT, 'index.html'), 'utf8');
    expect(html).not.toMatch(/<script(?![^>]*\bsrc=)/);
    expect(html).not.toMatch(/<style|\sstyle=|\son[a-z]+=/i);
    expect(html).not.toMatch(/(src|href)="(https?:)?\/\//);
  });
});

describe('console helpers', () => {
  it('shows times in UTC', () => {
    expect(utc('2026-12-03T09:49:37.123456789Z')).toBe('2026-12-03 09:49:37 UTC');
    expect(utc('2026-12-03T10:49:37+01:00')).toBe('2026-12-03 09:49:37 UTC');
    expect(utc('not a time')).toBe('not a time');
  });
  it('builds query strings without empty values', () => {
    expect(qs({ vni: 777, sourceIp: '', filter: 'udp and port 53', to: undefined })).toBe('?vni=777&filter=udp+and+port+53');
    expect(qs({})).toBe('');
  });
  it('reads file names from Content-Disposition, filename* first', () => {
    expect(dispositionName(`attachment; filename="a.pcap"; filename*=UTF-8''b%20c.pcap`, 'x')).toBe('b c.pcap');
    expect(dispositionName('attachment; filename="a.pcap"', 'x')).toBe('a.pcap');
    expect(dispositionName(null, 'x')).toBe('x');
  });
  it('writes sizes in binary units', () => {
    expect(bytes(404)).toBe('404 B');
    expect(bytes(1536)).toBe('1.5 KiB');
    expect(bytes(null)).toBe('-');
  });
});
