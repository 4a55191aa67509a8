#!/usr/bin/env -S node --max-semi-space-size=4 --heap-growing-percent=20
// The shebang's flags are how the unit and `npm start` run serve too: V8's young generation at 8 MiB, not
// 32, and the old generation allowed to grow 20 % past what its last full collection kept, not 1.5-4x:
// -20 MB of peak RSS at 10,000 sessions for the same CPU per packet (docs/performance.md).
// Thin launcher: the CLI lives in dist/ (built by `npm ci` through the prepare script, or `npm run build`).
// mirrorguard supports Node 20; the AWS SDK's notice about its own Node support schedule is not for operators.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
// Capture files are created, written, fsynced and closed on libuv's threadpool (src/pcap/disk-queue.ts).
// Its default of 4 threads lets only 4 fsyncs share a journal commit: stopping with 10,000 files open
// took 6.7 s with 4 threads and 4.3 s with 32 on the bench VM (docs/performance.md). Read by libuv when
// the pool first starts, which is after this line; an operator's own setting wins.
process.env.UV_THREADPOOL_SIZE ??= '16';

const { main } = await import('../dist/cli/main.js');

main(process.argv.slice(2)).then(
  (code) => {
    if (typeof code === 'number') process.exitCode = code;
    // Everything is closed by now; if a stray handle lingers, do not hang the caller (or systemd).
    setTimeout(() => process.exit(), 2000).unref();
  },
  (err) => {
    process.stderr.write(`mirrorguard: ${err && err.stack ? err.stack : err}\n`);
    process.exitCode = 70;
  },
);
