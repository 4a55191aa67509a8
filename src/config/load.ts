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
  /** Line of a key in the config file, for sections validated later (webhooks). */
  lineOf: (path: readonly PathSegment[]) => number | undefined;
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
  for (const o of opts.overrides ?? []) {
    setPath(raw, o.path, o.value);
    fromFlag.set(formatPath(o.path), o.flag);
  }

  const parsed = configSchema.safeParse(raw);
  if (!parsed.success) {
    const problems: Problem[] = [];
    for (const issue of parsed.error.issues) {
      const base = issue.path.filter((s): s is string | number => typeof s !== 'symbol');
      // zod reports unknown keys on the parent object; report each key on its own line.
      const keys = issue.code === 'unrecognized_keys' ? issue.keys.map((k) => [...base, k]) : [base];
      for (const path of keys) {
        const field = formatPath(path);
        const flag = fromFlag.get(field);
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
  return { config: deepFreeze(cfg), lineOf: (p) => (fromFlag.has(formatPath(p)) ? undefined : lineOf?.(p)) };
}

function setPath(obj: Record<string, unknown>, path: PathSegment[], value: unknown): void {
  let cur: Record<string, unknown> = obj;
  for (let i = 0; i < path.length - 1; i++) {
    const k = path[i] as string;
    const next = cur[k];
    if (next === null || typeof next !== 'object' || Array.isArray(next)) cur[k] = {};
    cur = cur[k] as Record<string, unknown>;
  }
  const last = path[path.length - 1] as string;
  // A repeatable flag (e.g. --webhook) appends to the list the file gave.
  if (Array.isArray(value) && Array.isArray(cur[last])) cur[last] = [...(cur[last] as unknown[]), ...value];
  else cur[last] = value;
}

export function deepFreeze<T>(v: T): T {
  if (v && typeof v === 'object' && !Object.isFrozen(v)) {
    Object.freeze(v);
    for (const k of Object.keys(v)) deepFreeze((v as Record<string, unknown>)[k]);
  }
  return v;
}
