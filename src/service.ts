import { createServer } from 'node:net';
import { createInspectorServer } from '@statelyai/inspect/server';
import { type Inspection, createInspection } from './api/inspector.js';
import { TimedStore } from './api/metrics.js';
import { type RunningServer, startServer } from './api/server.js';
import type { Config } from './config.js';
import type { Logger } from './runtime/logger.js';
import { type TrackerSystem, createTrackerSystem } from './runtime/system.js';
import { openStore } from './store/index.js';
import { MemoryStore } from './store/memory.js';
import type { SnapshotStore } from './store/types.js';

export interface ConfiguredStore {
  store: SnapshotStore;
  /** Where the data lives, for the startup line. */
  location: string;
}

/**
 * The one place a store is made from the configuration: SQLite (`sqlite:<path>`, the default
 * `sqlite:./data/trackers.db`), or `memory:` for a throwaway run. Store writes are timed for
 * `/metrics`.
 *
 * @example
 * const { store, location } = await createStoreFromConfig(config);
 */
export async function createStoreFromConfig(config: Pick<Config, 'DATABASE_URL'>): Promise<ConfiguredStore> {
  if (config.DATABASE_URL === 'memory:') return { store: new TimedStore(new MemoryStore()), location: 'memory: (not durable)' };
  return { store: new TimedStore(openStore(config.DATABASE_URL)), location: config.DATABASE_URL };
}

export interface Service {
  system: TrackerSystem;
  server: RunningServer;
  inspection: Inspection | undefined;
  /** Where the API, the chain, the database and the inspector are. */
  where: { api: string; chain: string; database: string; inspector: string | null };
  /** Graceful stop: HTTP first (in-flight requests finish), then the system, then the store. */
  stop(): Promise<void>;
}

function portIsFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const probe = createServer()
      .once('error', () => resolve(false))
      .listen(port, () => probe.close(() => resolve(true)));
  });
}

/**
 * Start everything `npm start` runs: store, inspector relay (with INSPECT), tracker system, HTTP.
 *
 * @example
 * const service = await startService(parseConfig(process.env), pino());
 * logger.info(service.where, 'tx-tracker started');
 */
export async function startService(config: Config, logger: Logger): Promise<Service> {
  const { store, location } = await createStoreFromConfig(config);

  let relay: { stop(): void } | undefined;
  let inspection: Inspection | undefined;
  if (config.inspectFilter !== undefined) {
    // The relay's listen error would be unhandled: only start it on a free port.
    const free = await portIsFree(config.INSPECT_PORT);
    if (free) relay = createInspectorServer({ port: config.INSPECT_PORT, autoOpen: false });
    else logger.warn({ port: config.INSPECT_PORT }, 'INSPECT_PORT is taken; streaming to the relay already there');
    inspection = createInspection({ filter: config.inspectFilter, relayUrl: `ws://localhost:${config.INSPECT_PORT}` });
  }

  const system = await createTrackerSystem({
    store,
    defaultConfirmations: config.REQUIRED_CONFIRMATIONS,
    faultInjection: config.FAULT_INJECTION,
    restartPolicy: { maxRestarts: config.MAX_RESTARTS, restartWindowMs: config.RESTART_WINDOW_MS },
    logger,
    ...(inspection ? { inspect: inspection.observe } : {}),
  });
  const server = await startServer({
    system,
    port: config.PORT,
    host: config.HOST,
    apiToken: config.API_TOKEN,
    faultInjection: config.FAULT_INJECTION,
    logger,
    inspection,
  });

  return {
    system,
    server,
    inspection,
    where: {
      api: server.url,
      // The chain watcher plugs in beside the store; until then no chain is followed.
      chain: config.ETH_RPC_URL ? `${config.ETH_RPC_URL} (no chain watcher in this build)` : 'none (no chain watcher in this build)',
      database: location,
      inspector: inspection ? `ws://localhost:${config.INSPECT_PORT} (open http://localhost:${config.INSPECT_PORT}); ${server.url}/inspect/ui` : null,
    },
    async stop() {
      await server.close();
      await system.shutdown();
      inspection?.stop();
      relay?.stop();
      await store.close();
    },
  };
}
