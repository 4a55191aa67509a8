// What of a file is in the page cache, and a folder where that means something. The oracle is util-linux's
// fincore (mincore(2) on a mapping of the file); tests that use it need 'fincore'.
import { execFileSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** Resident bytes of `path` in the page cache (fincore). */
export function resident(path: string): number {
  return Number(execFileSync('fincore', ['--bytes', '--noheadings', '--output', 'RES', path], { encoding: 'utf8' }).trim());
}

/**
 * A new folder on a disk-backed file system, named `prefix` and a random suffix: on tmpfs the page cache is
 * the file (nothing can be dropped, and O_DIRECT is buffered). The caller removes it.
 */
export function diskDir(prefix: string): string {
  for (const base of [tmpdir(), '/var/tmp']) {
    const type = execFileSync('stat', ['-f', '-c', '%T', base], { encoding: 'utf8' }).trim();
    if (type !== 'tmpfs' && type !== 'ramfs') return mkdtempSync(join(base, prefix));
  }
  throw new Error('no disk-backed temporary folder (both the temporary folder and /var/tmp are tmpfs)');
}
