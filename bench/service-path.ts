/**
 * The service as `npm start` builds it, for the benchmarks that drive it in their own process:
 * `startService` (src/service.ts) itself, with the configuration parsed by src/config.ts. One
 * option differs: the bench is the chain. The chain watcher is made and its hooks follow every
 * tracker, but it does not run (`watchChains: false`: no embedded anvil, no JSON-RPC); the bench
 * hands chain facts to the system as the watcher does (`deliver`, `newHead`), which a running
 * watcher would contradict with lookups of transactions no node has.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { parseConfig } from '../src/config.js';
import { createStoreFromConfig, startService } from '../src/service.js';
import { openPlainFloor, sameSchema } from './plain-floor.js';

export interface ServicePathOptions {
  /** The SQLite file (`DATABASE_URL=sqlite:<path>`), or `memory:` for `DATABASE_URL=memory:`. */
  databasePath: string;
  /** More configuration, as environment variables (e.g. `FAULT_INJECTION: '1'`). */
  env?: Record<string, string>;
  /** Told each time a tracker leaves for good (the bench counts them), after the watcher is. */
  onGone?: () => void;
}

/**
 * Start the service path on a free port; `stop()` is `Service.stop`.
 *
 * @example
 * const service = await startServicePath({ databasePath: '/tmp/x/trackers.db' });
 * await service.system.startMany([{ txHash }]);
 */
export async function startServicePath(options: ServicePathOptions) {
  const config = parseConfig({
    LOG_LEVEL: 'warn',
    ...options.env,
    DATABASE_URL: options.databasePath === 'memory:' ? 'memory:' : `sqlite:${options.databasePath}`,
    PORT: '0',
    // The watcher does not run: this node is never called.
    ETH_RPC_URL: 'http://127.0.0.1:9',
  });
  // Logs are written as the service writes them, to nowhere: the bench's stdout carries its result.
  const logger = pino(
    { level: config.LOG_LEVEL, base: { service: 'tx-tracker' } },
    pino.destination({ dest: '/dev/null', sync: false }),
  );
  const onGone = options.onGone;
  const service = await startService(config, logger, {
    watchChains: false,
    ...(onGone ? { trackerGone: () => onGone() } : {}),
  });
  return { config, store: service.system.store, ...service };
}

export type ServicePath = Awaited<ReturnType<typeof startServicePath>>;

/**
 * Throws unless the floor's copy of the schema makes the table and index the service's store makes
 * (compared on two scratch files): the floor must write the rows the service writes.
 *
 * @example
 * assertFloorSchema(); // at the start of a bench
 */
export async function assertFloorSchema(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'bench-schema-'));
  try {
    const config = parseConfig({ DATABASE_URL: `sqlite:${join(dir, 'service.db')}` });
    const { store } = await createStoreFromConfig(config);
    await store.close();
    openPlainFloor(join(dir, 'floor.db')).close();
    sameSchema(join(dir, 'service.db'), join(dir, 'floor.db'));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
