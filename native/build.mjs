#!/usr/bin/env node
// Build the optional native receiver at install time, and never fail the install: without a compiler
// (or on a platform other than Linux) mirrorguard runs on node:dgram, and this prints one line saying so.
//
//   node native/build.mjs            build (npm's "install" script runs this)
//   MIRRORGUARD_SKIP_NATIVE=1        skip the build
//
// node-gyp comes from npm itself (npm exports its path as npm_config_node_gyp to scripts), else from
// node_modules. Headers: the ones installed next to this node binary (Debian's nodejs and the official
// tarballs both ship include/node), so the build needs no download.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const root = dirname(here);
const require = createRequire(join(root, 'package.json'));

function say(line) {
  process.stderr.write(`mirrorguard: ${line}\n`);
}

function findNodeGyp() {
  const candidates = [];
  if (process.env.npm_config_node_gyp) candidates.push(process.env.npm_config_node_gyp);
  try {
    candidates.push(require.resolve('node-gyp/bin/node-gyp.js'));
  } catch {
    /* not a dependency */
  }
  if (process.env.npm_execpath) candidates.push(join(dirname(process.env.npm_execpath), '..', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'));
  const prefix = dirname(dirname(process.execPath));
  candidates.push(join(prefix, 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'));
  return candidates.find((p) => existsSync(p)) ?? null;
}

function main() {
  if (process.env.MIRRORGUARD_SKIP_NATIVE) {
    say('native receiver build skipped (MIRRORGUARD_SKIP_NATIVE); using node:dgram');
    return;
  }
  if (process.platform !== 'linux') {
    say(`native receiver not built: it needs Linux (this is ${process.platform}); using node:dgram`);
    return;
  }
  try {
    require.resolve('node-addon-api');
  } catch {
    say('native receiver not built: node-addon-api is not installed; using node:dgram');
    return;
  }
  const gyp = findNodeGyp();
  if (gyp === null) {
    say('native receiver not built: node-gyp not found; using node:dgram');
    return;
  }
  const args = [gyp, 'rebuild', '-C', here];
  const prefix = dirname(dirname(process.execPath));
  if (existsSync(join(prefix, 'include', 'node', 'node_api.h'))) args.push(`--nodedir=${prefix}`);
  const started = Date.now();
  const r = spawnSync(process.execPath, args, { cwd: here, encoding: 'utf8', maxBuffer: 16 * 1024 * 1024, env: { ...process.env, JOBS: '2' } });
  const log = `${r.stdout ?? ''}\n${r.stderr ?? ''}`;
  if (r.status !== 0) {
    try {
      mkdirSync(join(here, 'build'), { recursive: true });
      writeFileSync(join(here, 'build', 'build.log'), log);
    } catch {
      /* the reason below is enough */
    }
    const why =
      log.split('\n').find((l) => /error|not found|No such file/i.test(l) && !/^gyp info/.test(l))?.trim() ??
      (r.error ? r.error.message : `node-gyp exited with ${r.status}`);
    say(`native receiver not built (${why.slice(0, 200)}); using node:dgram. Details: native/build/build.log`);
    return;
  }
  say(`native modules built in ${((Date.now() - started) / 1000).toFixed(1)} s (native/build/Release/mirrorguard_native.node, mirrorguard_merge.node)`);
}

try {
  main();
} catch (e) {
  say(`native receiver not built (${e instanceof Error ? e.message : String(e)}); using node:dgram`);
}
process.exitCode = 0;
