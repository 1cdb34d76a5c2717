/**
 * The service's entry: `node dist/src/main.js` after `npm run build` (production), or `npm start`
 * (the same from source, through tsx). Parse the configuration, start the service, log where
 * everything is on one line, stop gracefully on SIGTERM/SIGINT (stop accepting, finish in-flight
 * requests, make every write durable, exit 0; exit 1 if that takes longer than SHUTDOWN_BOUND_MS).
 *
 * Flags: `--demo` (see below); `--exit-with-parent`, which `npm start` passes: the service stops, as
 * on SIGTERM, when the process that started it exits, so it is not left serving if npm is killed.
 */
import { pino } from 'pino';
import { ConfigError, type Config, parseConfig } from './config.js';
import { ChainConfigError } from './chain/config.js';
import { runDemo } from './chain/demo.js';
import { DatabaseLockedError } from './errors.js';
import { startService } from './service.js';

const SHUTDOWN_BOUND_MS = 15_000;
const PARENT_CHECK_MS = 250;

// Read before anything else: if the parent is gone by the time the service is up, it still shows.
const parentPid = process.ppid;

let config: Config;
try {
  config = parseConfig(process.env);
} catch (error) {
  if (!(error instanceof ConfigError)) throw error;
  process.stderr.write(`${error.message}\n`);
  process.exit(1);
}

const logger = pino({ level: config.LOG_LEVEL, base: { service: 'tx-tracker' } });
const service = await startService(config, logger).catch((error: unknown) => {
  // Another server has the database, or a chain does not match its settings (checked against its
  // node): one line, as for bad configuration.
  if (error instanceof DatabaseLockedError || error instanceof ChainConfigError)
    process.stderr.write(`${error.message}\n`);
  else logger.fatal({ err: error }, 'start failed');
  process.exit(1);
});
logger.info(
  { ...service.where, pid: process.pid },
  `tx-tracker: API ${service.where.api} · chain ${service.where.chain} · database ${service.where.database}`,
);

// `npm run demo` (npm start -- --demo): send a few transactions to the embedded chain and track them,
// so a newcomer sees trackers move (watch them with GET /trackers or GET /events).
if (process.argv.includes('--demo')) {
  if (!service.chain.anvil) {
    logger.warn({}, '--demo only runs against the embedded anvil (a chain is configured); skipped');
  } else {
    runDemo({
      url: service.chain.url,
      onTransaction: async ({ label, hash }) => {
        await service.system.start(undefined, { txHash: hash, confirmations: 3 });
        logger.info(
          { label, txHash: hash },
          `demo: sent ${label}, tracking it at ${service.where.api}/trackers/${hash}`,
        );
      },
    }).catch((error: unknown) => logger.error({ err: error }, 'demo failed'));
  }
}

let stopping = false;
function shutDown(reason: Record<string, unknown>): void {
  if (stopping) return;
  stopping = true;
  logger.info(reason, 'shutting down');
  setTimeout(() => {
    logger.error({ boundMs: SHUTDOWN_BOUND_MS }, 'shutdown took too long; exiting');
    process.exit(1);
  }, SHUTDOWN_BOUND_MS).unref();
  service.stop().then(
    () => {
      logger.info({}, 'stopped');
      process.exit(0);
    },
    (error: unknown) => {
      logger.error({ err: error }, 'shutdown failed');
      process.exit(1);
    },
  );
}

for (const signal of ['SIGTERM', 'SIGINT'] as const) process.on(signal, () => shutDown({ signal }));

if (process.argv.includes('--exit-with-parent')) {
  // An orphan is adopted (its ppid changes) on POSIX; on Windows the ppid stays and the pid dies.
  const parentGone = (): boolean => {
    if (process.ppid !== parentPid) return true;
    try {
      process.kill(parentPid, 0);
      return false;
    } catch (error) {
      return (error as NodeJS.ErrnoException).code === 'ESRCH';
    }
  };
  const watch = setInterval(() => {
    if (!parentGone()) return;
    clearInterval(watch);
    shutDown({ parentPid, reason: 'the process that started it exited' });
  }, PARENT_CHECK_MS);
  watch.unref();
}
