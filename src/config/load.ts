/**
 * Loading the configuration: embedded defaults, then the YAML file, then flags (flags win). The merged
 * value is validated once; every problem is reported with where it came from (`FILE:LINE: key` or
 * `--flag`), and the result is deep-frozen so nothing changes it behind the loader's back.
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { MgError, type Problem } from '../errors.js';
import { formatPath, parseYamlWithLines, type PathSegment } from '../util/yaml-source.js';
import { configSchema, type Config } from './schema.js';

export interface ConfigOverride {
  /** Path in the config, e.g. ['pcap', 'rotateBytes']. */
  path: PathSegment[];
  value: unknown;
  /** The flag it came from, for messages. */
  flag: string;
}

export interface LoadConfigOptions {
  file?: string | undefined;
  overrides?: ConfigOverride[];
}

export interface LoadedConfig {
  config: Readonly<Config>;
  /** The config file, when one was read. */
  file: string | undefined;
  /** Line of a key in the config file, for sections validated later (webhooks); undefined for values a flag set. */
  lineOf: (path: readonly PathSegment[]) => number | undefined;
  /** The flag that set a value (`--webhook` for an entry it appended to the file's list), if one did. */
  flagOf: (path: readonly PathSegment[]) => string | undefined;
  /** Where a problem with the value at this path is: `{ file, line }` or `{ flag }`, for Problem messages. */
  locate: (path: readonly PathSegment[]) => { file?: string; line?: number; flag?: string };
}

export function loadConfig(opts: LoadConfigOptions = {}): Readonly<Config> {
  return loadConfigWithSource(opts).config;
}

export function loadConfigWithSource(opts: LoadConfigOptions = {}): LoadedConfig {
  let raw: Record<string, unknown> = {};
  let lineOf: ((p: readonly PathSegment[]) => number | undefined) | undefined;
  const file = opts.file;
  if (file !== undefined) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (e) {
      throw new MgError('MG_ERR_CONFIG_READ', `${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, { cause: e });
    }
    const src = parseYamlWithLines(text, file);
    if (src.syntaxProblems.length) {
      throw new MgError('MG_ERR_CONFIG_PARSE', file, { problems: src.syntaxProblems });
    }
    if (src.value !== null && src.value !== undefined) {
      if (typeof src.value !== 'object' || Array.isArray(src.value)) {
        throw new MgError('MG_ERR_CONFIG_INVALID', file, { problems: [{ file, line: 1, message: 'the config file must be a YAML mapping of keys' }] });
      }
      raw = src.value as Record<string, unknown>;
    }
    lineOf = (p) => src.lineOf(p);
  }

  const fromFlag = new Map<string, string>();
  // A repeatable flag appends to the file's list: entries from index `start` on are the flag's.
  const appended: { path: PathSegment[]; start: number; flag: string }[] = [];
  for (const o of opts.overrides ?? []) {
    const start = setPath(raw, o.path, o.value);
    if (start !== null) appended.push({ path: o.path, start, flag: o.flag });
    else fromFlag.set(formatPath(o.path), o.flag);
  }
  const flagOf = (p: readonly PathSegment[]): string | undefined => {
    for (let n = p.length; n > 0; n--) {
      const f = fromFlag.get(formatPath(p.slice(0, n)));
      if (f) return f;
    }
    for (const a of appended) {
      const i = p[a.path.length];
      if (a.path.every((seg, k) => p[k] === seg) && typeof i === 'number' && i >= a.start) return a.flag;
    }
    return undefined;
  };

  const parsed = configSchema.safeParse(raw);
  if (!parsed.success) {
    const problems: Problem[] = [];
    for (const issue of parsed.error.issues) {
      const base = issue.path.filter((s): s is string | number => typeof s !== 'symbol');
      // zod reports unknown keys on the parent object; report each key on its own line.
      const keys = issue.code === 'unrecognized_keys' ? issue.keys.map((k) => [...base, k]) : [base];
      for (const path of keys) {
        const field = formatPath(path);
        const flag = flagOf(path);
        const message = issue.code === 'unrecognized_keys' ? 'unknown key' : issue.message;
        if (flag) problems.push({ field: flag, message });
        else problems.push({ file, line: lineOf?.(path), field, message });
      }
    }
    throw new MgError('MG_ERR_CONFIG_INVALID', file ?? 'flags', { problems });
  }
  const cfg = parsed.data;
  // Paths in the file are relative to the process's working directory, like the flags.
  cfg.dataDir = resolve(cfg.dataDir);
  if (cfg.manifest) cfg.manifest = resolve(cfg.manifest);
  const lineOfKey = (p: readonly PathSegment[]): number | undefined => (flagOf(p) ? undefined : lineOf?.(p));
  const locate = (p: readonly PathSegment[]): { file?: string; line?: number; flag?: string } => {
    const flag = flagOf(p);
    if (flag) return { flag };
    const line = lineOf?.(p);
    return { ...(file !== undefined ? { file } : {}), ...(line !== undefined ? { line } : {}) };
  };
  return { config: deepFreeze(cfg), file, lineOf: lineOfKey, flagOf, locate };
}

/** Sets the value; for a list appended to a list already there, returns the index the new entries start at. */
function setPath(obj: Record<string, unknown>, path: PathSegment[], value: unknown): number | null {
  let cur: Record<string, unknown> = obj;
  for (let i = 0; i < path.length - 1; i++) {
    const k = path[i] as string;
    const next = cur[k];
    if (next === null || typeof next !== 'object' || Array.isArray(next)) cur[k] = {};
    cur = cur[k] as Record<string, unknown>;
  }
  const last = path[path.length - 1] as string;
  // A repeatable flag (e.g. --webhook) appends to the list the file gave.
  if (Array.isArray(value)) {
    const before = Array.isArray(cur[last]) ? (cur[last] as unknown[]) : [];
    cur[last] = [...before, ...value];
    return before.length;
  }
  cur[last] = value;
  return null;
}

export function deepFreeze<T>(v: T): T {
  if (v && typeof v === 'object' && !Object.isFrozen(v)) {
    Object.freeze(v);
    for (const k of Object.keys(v)) deepFreeze((v as Record<string, unknown>)[k]);
  }
  return v;
}
