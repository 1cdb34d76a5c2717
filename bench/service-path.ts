/**
 * The service as `npm start` builds it (`startService` in src/service.ts), for the benchmarks that
 * drive it in their own process: the configuration parsed by src/config.ts, the store from
 * `createStoreFromConfig`, the tracker system with the service's options and the chain watcher's
 * hooks, and the HTTP server with its metrics, validation and change feed. One difference: the
 * bench is the chain. The watcher is made and its hooks follow every tracker, but its loop (heads
 * and lookups over JSON-RPC) is not started; the bench hands chain facts to the system as the
 * watcher does (`deliver`, `newHead`), which a running watcher would contradict with lookups of
 * transactions no node has.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { parseConfig } from '../src/config.js';
import { createChainWatcher } from '../src/chain/watcher.js';
import type { DashboardAssets } from '../src/api/dashboard.js';
import { startServer, storeIsReachable } from '../src/api/server.js';
import { createStoreFromConfig } from '../src/service.js';
import { type TrackerSystem, createTrackerSystem } from '../src/runtime/system.js';
import { openPlainFloor, sameSchema } from './plain-floor.js';

export interface ServicePathOptions {
  /** The SQLite file (`DATABASE_URL=sqlite:<path>`), or `memory:` for `DATABASE_URL=memory:`. */
  databasePath: string;
  /** More configuration, as environment variables (e.g. `FAULT_INJECTION: '1'`). */
  env?: Record<string, string>;
  /** Told each time a tracker leaves for good (the bench counts them), after the watcher is. */
  onGone?: () => void;
  /** Serve the dashboard (`buildDashboard`) at `/`, as the service does. */
  dashboard?: DashboardAssets;
}

/**
 * Start the service path on a free port; `stop()` stops it as `Service.stop` does.
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
    // Only the watcher's hooks run; this node is never called.
    ETH_RPC_URL: 'http://127.0.0.1:9',
  });
  // Logs are written as the service writes them, to nowhere: the bench's stdout carries its result.
  const logger = pino(
    { level: config.LOG_LEVEL, base: { service: 'tx-tracker' } },
    pino.destination({ dest: '/dev/null', sync: false }),
  );
  const { store } = await createStoreFromConfig(config, logger);
  // The watcher is made before the system (its hooks go in), and reaches it through this.
  const sink: { system?: TrackerSystem } = {};
  const watcher = createChainWatcher({
    url: config.ETH_RPC_URL!,
    system: {
      deliver: (id, event) => sink.system?.deliver(id, event) ?? false,
      newHead: (blockNumber) => void sink.system?.newHead(blockNumber),
    },
    pollIntervalMs: config.POLL_INTERVAL_MS,
    droppedAfterMs: config.DROPPED_AFTER_MS,
    logger,
  });
  const onGone = options.onGone;
  const system = await createTrackerSystem({
    store,
    hooks: onGone
      ? {
          ...watcher.hooks,
          trackerGone: (id) => {
            watcher.hooks.trackerGone(id);
            onGone();
          },
        }
      : watcher.hooks,
    defaultConfirmations: config.REQUIRED_CONFIRMATIONS,
    faultInjection: config.FAULT_INJECTION,
    restartPolicy: { maxRestarts: config.MAX_RESTARTS, restartWindowMs: config.RESTART_WINDOW_MS },
    logger,
  });
  const server = await startServer({
    system,
    port: config.PORT,
    host: config.HOST,
    apiToken: config.API_TOKEN,
    faultInjection: config.FAULT_INJECTION,
    ...(options.dashboard ? { dashboard: () => options.dashboard } : {}),
    logger,
    readiness: async () => ({ store: await storeIsReachable(store), chain: true }),
    metricsSources: {
      chains: () => [
        {
          name: 'default',
          chainId: 31337,
          requests: watcher.rpc.requests,
          errors: watcher.rpc.errors,
          head: watcher.health().headNumber ?? undefined,
          blockLag: watcher.blockLag(),
          reorgsBelowFinalized: watcher.health().reorgsBelowFinalized,
        },
      ],
    },
  });
  sink.system = system;
  return {
    config,
    store,
    system,
    server,
    watcher,
    async stop(): Promise<void> {
      await server.close();
      await system.shutdown({ stopActors: false });
      await store.close();
    },
  };
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
