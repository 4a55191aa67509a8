/**
 * `mirrorguard serve`: run the collector (and, as configured, the detector, webhooks and API) until
 * SIGTERM/SIGINT, then flush and close every file and exit 0. SIGHUP reloads the manifest.
 */
import { buildApp } from '../app.js';
import { checkStartup } from '../config/startup.js';
import { EXIT } from '../errors.js';
import { createLogger, resolveLogFormat } from '../util/log.js';
import { applyServeHeapFlags, MAX_SEMI_SPACE_MIB } from '../util/v8-heap.js';
import { CONFIG_FLAGS, commandHelp, parseCommand, usageError, type CommandSpec } from './flags.js';
import { PROCESS_IO, type CliIo } from './io.js';

export const SPEC: CommandSpec = {
  name: 'serve',
  usage: ['serve [options]'],
  description: 'Receive AWS Traffic Mirroring VXLAN on UDP, write decapsulated PCAP per mirror session, detect\nunauthorized sessions, alert, and serve the auditor API.',
  sections: [{ title: 'options', flags: Object.values(CONFIG_FLAGS) }],
};
/** A graceful stop must finish within this, or we exit anyway (systemd's stop timeout is longer). */
const STOP_TIMEOUT_MS = 10_000;

export async function run(argv: string[], io: CliIo = PROCESS_IO): Promise<number> {
  const flags = parseCommand(argv, SPEC);
  if (flags.help) {
    io.stdout.write(commandHelp(SPEC));
    return EXIT.OK;
  }
  if (flags.positionals.length) throw usageError(SPEC, `takes no arguments, got '${flags.positionals[0]}'`);
  const file = flags.values.config as string | undefined;
  // Before the manifest and the store fill the heap (src/util/v8-heap.ts).
  const heapFlags = applyServeHeapFlags();
  // Flags, file and environment checked together, and the files they name, before anything is bound or created.
  const { loaded, alerts, manifest, signingKey } = checkStartup({ file, overrides: flags.overrides });
  const config = loaded.config;
  const logger = createLogger(config.log.level, resolveLogFormat(config.log.format));
  if (!heapFlags.semiSpaceSet) {
    logger.info({ flag: `--max-semi-space-size=${MAX_SEMI_SPACE_MIB}` }, 'node was started without --max-semi-space-size: V8\'s young generation may grow to 32 MiB; the systemd unit, npm start and the mirrorguard command pass it (docs/operations.md)');
  }
  // The node's name: MIRRORGUARD_NODE (the fleet template sets the instance ID), else the host name.
  const nodeId = process.env.MIRRORGUARD_NODE || undefined;
  const app = buildApp(config, logger, { alerts, manifest, signingKey, ...(nodeId ? { nodeId } : {}) });

  // Signals are caught from the start: a stop asked for while starting (systemd, an impatient Ctrl-C)
  // waits for the start to finish, then stops cleanly, instead of killing the process mid-recovery.
  let signalled: ((signal: string) => void) | null = null;
  let pendingSignal: string | null = null;
  const onSignal = (signal: string) => {
    if (signalled) signalled(signal);
    else if (pendingSignal === null) pendingSignal = signal;
    else process.exit(EXIT.SOFTWARE); // a second signal while still starting
  };
  process.on('SIGTERM', () => onSignal('SIGTERM'));
  process.on('SIGINT', () => onSignal('SIGINT'));

  try {
    await app.start();
  } catch (e) {
    await app.stop().catch(() => undefined); // close whatever did start (catalog, timers)
    throw e;
  }
  process.on('SIGHUP', () => {
    // The detector logs why a reload was refused (every FILE:LINE: field: message); the old manifest stays.
    const r = app.reloadManifest();
    if (r === null) logger.warn('SIGHUP: no manifest file to reload (start with --manifest FILE)');
    else r.catch((e: unknown) => logger.error({ err: e }, 'manifest reload failed'));
  });

  return await new Promise<number>((resolve) => {
    let stopping = false;
    signalled = (signal: string) => {
      if (stopping) {
        logger.warn({ signal }, 'second signal: exiting without waiting');
        process.exit(EXIT.SOFTWARE);
      }
      stopping = true;
      logger.info({ signal }, 'stopping: flushing and closing files');
      const timer = setTimeout(() => {
        logger.error('graceful stop timed out');
        resolve(EXIT.SOFTWARE);
      }, STOP_TIMEOUT_MS);
      timer.unref();
      app.stop().then(
        () => {
          clearTimeout(timer);
          resolve(EXIT.OK);
        },
        (err: unknown) => {
          clearTimeout(timer);
          logger.error({ err }, 'error while stopping');
          resolve(EXIT.SOFTWARE);
        },
      );
    };
    if (pendingSignal !== null) signalled(pendingSignal);
  });
}
