/**
 * Executable documentation: fenced `sh` blocks in README.md and docs/*.md, and the marker comment
 * before a block (`<!-- doc-test: NAME -->`) that says which test runs it. `<!-- doc-test: aws -->`
 * marks a block that needs AWS: never run, but its mirrorguard command lines are checked like the rest.
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { createSocket } from 'node:dgram';
import { join } from 'node:path';
import { PROJECT_ROOT } from '../helpers/fixtures.js';
import { BIN } from '../helpers/serve.js';

export interface DocBlock {
  file: string;
  /** 1-based line of the opening fence. */
  line: number;
  lang: string;
  /** The doc-test marker's name, if the block has one. */
  marker: string | null;
  code: string;
}

export const DOC_FILES = ['README.md', ...readdirSync(join(PROJECT_ROOT, 'docs')).filter((f) => f.endsWith('.md')).map((f) => `docs/${f}`)];

export function docBlocks(file: string): DocBlock[] {
  const lines = readFileSync(join(PROJECT_ROOT, file), 'utf8').split('\n');
  const out: DocBlock[] = [];
  let marker: string | null = null;
  for (let i = 0; i < lines.length; i++) {
    const m = /^\s*<!-- doc-test: ([\w-]+) -->\s*$/.exec(lines[i]!);
    if (m) {
      marker = m[1]!;
      continue;
    }
    const open = /^(\s*)```(\w*)\s*$/.exec(lines[i]!);
    if (!open) {
      if (lines[i]!.trim() !== '') marker = null;
      continue;
    }
    const indent = open[1]!.length;
    const body: string[] = [];
    const start = i + 1;
    for (i++; i < lines.length && !/^\s*```\s*$/.test(lines[i]!); i++) body.push(lines[i]!.slice(indent));
    out.push({ file, line: start, lang: open[2]!, marker, code: body.join('\n') });
    marker = null;
  }
  return out;
}

/** Every block with this marker, in document order, joined into one script. */
export function markedScript(file: string, name: string): string {
  const blocks = docBlocks(file).filter((b) => b.marker === name);
  if (blocks.length === 0) throw new Error(`${file}: no block marked doc-test: ${name}`);
  return blocks.map((b) => `# ${file}:${b.line}\n${b.code}`).join('\n');
}

/** A folder with a `mirrorguard` on PATH that runs this checkout's bin/mirrorguard.js. */
export function shimDir(dir: string): string {
  const bin = join(dir, '.bin');
  mkdirSync(bin, { recursive: true });
  writeFileSync(join(bin, 'mirrorguard'), `#!/bin/sh\nexec "${process.execPath}" "${BIN}" "$@"\n`);
  chmodSync(join(bin, 'mirrorguard'), 0o755);
  return bin;
}

/** Run a script as the reader would paste it, with `set -euo pipefail`, in `cwd`. */
export function runScript(script: string, cwd: string, env: NodeJS.ProcessEnv = {}, timeoutMs = 90_000) {
  const r = spawnSync('bash', ['-c', `set -euo pipefail\n${script}`], {
    cwd,
    encoding: 'utf8',
    timeout: timeoutMs,
    env: { ...process.env, ...env, PATH: `${shimDir(cwd)}:${process.env.PATH}` },
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr, signal: r.signal };
}

/** A TCP port and a UDP port that were free a moment ago. */
export async function freePort(kind: 'tcp' | 'udp'): Promise<number> {
  if (kind === 'tcp') {
    const s = createServer();
    await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
    const p = (s.address() as { port: number }).port;
    await new Promise((r) => s.close(r));
    return p;
  }
  const s = createSocket('udp4');
  await new Promise<void>((r) => s.bind(0, '127.0.0.1', r));
  const p = s.address().port;
  await new Promise<void>((r) => s.close(r));
  return p;
}
