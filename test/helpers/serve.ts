/**
 * Run the real CLI (`node bin/mirrorguard.js ...`) as a child process, the way a user does. `npm test`
 * builds dist/ first. serve binds port 0; we learn the ports from its JSON log lines on stderr.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { afterEach } from 'vitest';
import { SERVE_NODE_FLAGS } from '../../src/util/v8-heap.js';
import { PROJECT_ROOT } from './fixtures.js';

export const BIN = join(PROJECT_ROOT, 'bin', 'mirrorguard.js');

/** The Node.js flags of the bin's shebang: serve is started as the `mirrorguard` command starts it. */
export const LAUNCH_NODE_ARGS: readonly string[] = SERVE_NODE_FLAGS;

export interface LogLine {
  level: number;
  msg: string;
  [k: string]: unknown;
}

export interface ServeHandle {
  proc: ChildProcess;
  udpPort: number;
  apiPort: number | null;
  logs: LogLine[];
  stderr: () => string;
  /** Resolves with the exit code. */
  exited: Promise<number | null>;
  stop(signal?: NodeJS.Signals): Promise<number | null>;
  waitForLog(pred: (l: LogLine) => boolean, timeoutMs?: number): Promise<LogLine>;
}

const running = new Set<ChildProcess>();
afterEach(() => {
  for (const p of running) p.kill('SIGKILL');
  running.clear();
});

export async function startServe(args: string[], env: NodeJS.ProcessEnv = {}, nodeArgs: readonly string[] = LAUNCH_NODE_ARGS): Promise<ServeHandle> {
  const proc = spawn(process.execPath, [...nodeArgs, BIN, 'serve', '--listen', '127.0.0.1:0', ...args], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  running.add(proc);
  const logs: LogLine[] = [];
  let err = '';
  let buf = '';
  const waiters: { pred: (l: LogLine) => boolean; resolve: (l: LogLine) => void }[] = [];
  proc.stderr!.setEncoding('utf8');
  proc.stderr!.on('data', (d: string) => {
    err += d;
    buf += d;
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      try {
        const l = JSON.parse(line) as LogLine;
        logs.push(l);
        for (const w of [...waiters]) if (w.pred(l)) {
          waiters.splice(waiters.indexOf(w), 1);
          w.resolve(l);
        }
      } catch {
        /* not a log line */
      }
    }
  });
  proc.stdout!.resume();
  const exited = new Promise<number | null>((resolve) => proc.on('exit', (code) => {
    running.delete(proc);
    resolve(code);
  }));

  const waitForLog = (pred: (l: LogLine) => boolean, timeoutMs = 20_000) =>
    new Promise<LogLine>((resolve, reject) => {
      const hit = logs.find(pred);
      if (hit) return resolve(hit);
      const t = setTimeout(() => reject(new Error(`timed out waiting for a log line; stderr so far:\n${err}`)), timeoutMs);
      waiters.push({ pred, resolve: (l) => (clearTimeout(t), resolve(l)) });
      void exited.then((code) => {
        clearTimeout(t);
        reject(new Error(`serve exited (${code}) before the expected log line; stderr:\n${err}`));
      });
    });

  const rx = await waitForLog((l) => l.msg === 'receiving VXLAN');
  // With --workers N, the first worker's line comes before the others have joined the port (SO_REUSEPORT
  // or the fanout group): traffic sent now would all reach worker 1. Ready is when every worker is.
  const w = args.indexOf('--workers');
  if (w >= 0 && Number(args[w + 1]) > 1) await waitForLog((l) => l.msg === 'receive workers started');
  let apiPort: number | null = null;
  if (!args.includes('off')) {
    const api = await waitForLog((l) => l.msg === 'api listening', 20_000).catch(() => null);
    apiPort = api ? (api.port as number) : null;
  }
  return {
    proc,
    udpPort: rx.port as number,
    apiPort,
    logs,
    stderr: () => err,
    exited,
    waitForLog,
    async stop(signal = 'SIGTERM') {
      proc.kill(signal);
      return exited;
    },
  };
}

/** Run a CLI command to completion. */
export function runCli(args: string[], opts: { input?: string; env?: NodeJS.ProcessEnv; cwd?: string } = {}) {
  const r = spawnSync(process.execPath, [BIN, ...args], {
    encoding: 'utf8',
    input: opts.input,
    cwd: opts.cwd,
    env: { ...process.env, ...opts.env },
    maxBuffer: 64 * 1024 * 1024,
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}
