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
import { spawnSync } from 'node:child_process';
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
  let size = 0;
  try {
    size = statSync(path).size;
  } catch {
    return loadManifest(path); // throws the read error, coded
  }
  if (size <= aboveBytes || !existsSync(moduleUrl)) return loadManifest(path);
  const script =
    `const { loadManifest } = await import(${JSON.stringify(moduleUrl.href)});` +
    `let out; try { out = { ok: true, manifest: loadManifest(process.argv[1]) }; }` +
    ` catch (e) { if (!e || typeof e.code !== 'string' || !e.code.startsWith('MG_ERR_')) throw e; out = { ok: false, code: e.code, message: e.message, problems: e.problems ?? [] }; }` +
    `process.stdout.write(JSON.stringify(out));`;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script, '--', path], {
    encoding: 'utf8',
    maxBuffer: 64 * size + (16 << 20),
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, NODE_OPTIONS: '' },
  });
  let answer: ChildAnswer | null = null;
  if (r.status === 0) {
    try {
      answer = JSON.parse(r.stdout) as ChildAnswer;
    } catch {
      answer = null;
    }
  }
  // The child could not run (no process slots, a killed child): the same load, in this process.
  if (answer === null) return loadManifest(path);
  if (answer.ok) return deepFreeze(answer.manifest);
  const prefix = `${ERRORS[answer.code].message}: `;
  const detail = answer.message.startsWith(prefix) ? answer.message.slice(prefix.length) : answer.message;
  throw new MgError(answer.code, detail, { problems: answer.problems });
}
