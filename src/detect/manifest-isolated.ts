/**
 * Loading a large manifest in a short-lived child process (issue 16). Parsing YAML with positions (for
 * problems that name their line) allocates far more than the result keeps: for 10,004 sessions the
 * document is ~20 MB while it lives and the manifest ~5 MB after, but the parse lifted a process's peak
 * RSS from 52 to 153 MB, because V8 promotes the parse's garbage faster than it collects it and keeps
 * the heap it grew. serve's memory budget (docs/operations.md "Many sessions") is spent on capture, so a
 * manifest above ISOLATE_ABOVE_BYTES is parsed and checked by a child Node process (the same code,
 * loadManifest), which hands back the checked manifest as JSON, or the same coded error with the same
 * problems. Below it, or when running from TypeScript sources (tests), or when the child cannot run,
 * the manifest is loaded here as before: the result is the same either way.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { ERRORS, MgError, type ErrorCode, type Problem } from '../errors.js';
import { deepFreeze, loadManifest } from './manifest.js';
import type { Manifest } from './manifest-types.js';

/** Manifests larger than this are parsed in a child process: about 3,000 sessions and up. */
export const ISOLATE_ABOVE_BYTES = 256 * 1024;

type ChildAnswer = { ok: true; manifest: Manifest } | { ok: false; code: ErrorCode; message: string; problems: Problem[] };

/**
 * loadManifest(path), with a large file parsed in a child process (same result, same errors).
 * `moduleUrl`: the compiled manifest module the child imports (tests point it at dist/).
 */
export function loadManifestIsolated(path: string, aboveBytes = ISOLATE_ABOVE_BYTES, moduleUrl = new URL('./manifest.js', import.meta.url)): Manifest {
  const size = isolatedSize(path, aboveBytes, moduleUrl);
  if (size === null) return loadManifest(path);
  const r = spawnSync(process.execPath, childArgs(moduleUrl, path), {
    encoding: 'utf8',
    maxBuffer: maxAnswerBytes(size),
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, NODE_OPTIONS: '' },
  });
  return fromAnswer(path, r.status === 0 ? r.stdout : null);
}

/**
 * loadManifestIsolated without blocking: a manifest reload (SIGHUP, POST /v1/manifest/reload) while
 * capture runs. Parsed in process, a manifest of 10,000 sessions held the packet thread for 1-2 s and
 * lifted its memory by ~100 MB; in a child the event loop goes on reading packets meanwhile.
 */
export async function loadManifestIsolatedAsync(path: string, aboveBytes = ISOLATE_ABOVE_BYTES, moduleUrl = new URL('./manifest.js', import.meta.url)): Promise<Manifest> {
  const size = isolatedSize(path, aboveBytes, moduleUrl);
  if (size === null) return loadManifest(path);
  const limit = maxAnswerBytes(size);
  const stdout = await new Promise<string | null>((resolve) => {
    let child;
    try {
      child = spawn(process.execPath, childArgs(moduleUrl, path), { stdio: ['ignore', 'pipe', 'ignore'], env: { ...process.env, NODE_OPTIONS: '' } });
    } catch {
      resolve(null);
      return;
    }
    const parts: Buffer[] = [];
    let bytes = 0;
    child.stdout.on('data', (d: Buffer) => {
      bytes += d.length;
      if (bytes > limit) child.kill('SIGKILL');
      else parts.push(d);
    });
    child.on('error', () => resolve(null));
    child.on('close', (code) => resolve(code === 0 && bytes <= limit ? Buffer.concat(parts).toString('utf8') : null));
  });
  return fromAnswer(path, stdout);
}

/** The file's size when it is to be parsed in a child; null to parse it here (small, unreadable, or no compiled module). */
function isolatedSize(path: string, aboveBytes: number, moduleUrl: URL): number | null {
  let size = 0;
  try {
    size = statSync(path).size;
  } catch {
    return null; // loadManifest throws the read error, coded
  }
  return size <= aboveBytes || !existsSync(moduleUrl) ? null : size;
}

function maxAnswerBytes(size: number): number {
  return 64 * size + (16 << 20);
}

function childArgs(moduleUrl: URL, path: string): string[] {
  const script =
    `const { loadManifest } = await import(${JSON.stringify(moduleUrl.href)});` +
    `let out; try { out = { ok: true, manifest: loadManifest(process.argv[1]) }; }` +
    ` catch (e) { if (!e || typeof e.code !== 'string' || !e.code.startsWith('MG_ERR_')) throw e; out = { ok: false, code: e.code, message: e.message, problems: e.problems ?? [] }; }` +
    `process.stdout.write(JSON.stringify(out));`;
  return ['--input-type=module', '-e', script, '--', path];
}

/** The child's answer as the manifest or its coded error; without one (the child could not run), the same load here. */
function fromAnswer(path: string, stdout: string | null): Manifest {
  let answer: ChildAnswer | null = null;
  if (stdout !== null) {
    try {
      answer = JSON.parse(stdout) as ChildAnswer;
    } catch {
      answer = null;
    }
  }
  if (answer === null) return loadManifest(path);
  if (answer.ok) return deepFreeze(answer.manifest);
  const prefix = `${ERRORS[answer.code].message}: `;
  const detail = answer.message.startsWith(prefix) ? answer.message.slice(prefix.length) : answer.message;
  throw new MgError(answer.code, detail, { problems: answer.problems });
}
