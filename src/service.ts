import { type Inspection, createInspection } from './api/inspector.js';
import { type InspectorRelay, reachableHost, startInspectorRelay } from './api/inspector-relay.js';
import { type RunningServer, startServer, storeIsReachable } from './api/server.js';
import type { Config } from './config.js';
import type { Logger } from './runtime/logger.js';
import { type Chain, startChain } from './chain/embedded.js';
import { redact } from './chain/errors.js';
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
 * `sqlite:./data/trackers.db`), or `memory:` for a throwaway run. The store is handed over as it
 * is, never wrapped, so that the runtime sees all it can do (`getNow`, `getManyNow`); it times its
 * own flushes for `/metrics` (`observeFlush`). A SQLite file is locked for this process
 * (`DatabaseLockedError` when another holds it).
 *
 * @example
 * const { store, location } = await createStoreFromConfig(config);
 */
export async function createStoreFromConfig(config: Pick<Config, 'DATABASE_URL'>, logger?: Logger): Promise<ConfiguredStore> {
  if (config.DATABASE_URL === 'memory:') return { store: new MemoryStore(), location: 'memory: (not durable)' };
  const store = openStore(config.DATABASE_URL, {
    lock: true,
    onThreadFailure: (thread, error) =>
      logger?.error({ thread, err: error }, `the store's ${thread} thread stopped; the store does its work on its own connection`),
  });
  return { store, location: config.DATABASE_URL };
}

export interface Service {
  system: TrackerSystem;
  chain: Chain;
  server: RunningServer;
  inspection: Inspection | undefined;
  /** The inspector relay this process started (with INSPECT, when INSPECT_PORT was free). */
  inspectorRelay: InspectorRelay | undefined;
  /** Where the API, the chain, the database and the inspector are. */
  where: { api: string; chain: string; database: string; inspector: string | null };
  /** Graceful stop: HTTP first (in-flight requests finish), then the system, then the store. */
  stop(): Promise<void>;
}

/**
 * Start everything `npm start` runs: store, inspector relay (with INSPECT), tracker system, HTTP.
 *
 * @example
 * const service = await startService(parseConfig(process.env), pino());
 * logger.info(service.where, 'tx-tracker started');
 */
export async function startService(config: Config, logger: Logger): Promise<Service> {
  const { store, location } = await createStoreFromConfig(config, logger);
  // A start that fails part way stops what it had started, last first (the embedded anvil too),
  // and then fails with the error that stopped it.
  const started: Array<{ what: string; stop: () => unknown }> = [{ what: 'store', stop: () => store.close() }];
  const failStart = async (error: unknown): Promise<never> => {
    for (const { what, stop } of started.reverse()) {
      await Promise.resolve()
        .then(stop)
        .catch((stopError: unknown) => logger.warn({ err: stopError }, `failed start: could not stop the ${what}`));
    }
    throw error;
  };

  let relay: InspectorRelay | undefined;
  let inspection: Inspection | undefined;
  const stopInspection = async () => {
    inspection?.stop();
    await relay?.stop();
  };
  if (config.inspectFilter !== undefined) {
    // On the API's interface and behind the API's token: the stream shows every tracker's context.
    relay = await startInspectorRelay({ port: config.INSPECT_PORT, host: config.HOST, token: config.API_TOKEN }).catch(
      async (error: unknown) => {
        if ((error as { code?: unknown }).code !== 'EADDRINUSE') return failStart(error);
        logger.warn({ port: config.INSPECT_PORT }, 'INSPECT_PORT is taken; streaming to the relay already there');
        return undefined;
      },
    );
    const relayUrl = relay?.wsUrl ?? `ws://${reachableHost(config.HOST)}:${config.INSPECT_PORT}`;
    inspection = createInspection({ filter: config.inspectFilter, relayUrl, relayToken: config.API_TOKEN });
    started.push({ what: 'inspector relay', stop: stopInspection });
  }

  // The watcher starts first, so that every tracker the system brings back from the store is
  // followed (its `trackerLive` hook); it reaches the system through a sink set just below.
  let system: TrackerSystem | undefined;
  /** A head reported while the system was still being brought back is handed over after. */
  let lastHead: number | null = null;
  let chain: Chain;
  try {
    chain = await startChain({
      config: { rpcUrl: config.ETH_RPC_URL, pollIntervalMs: config.POLL_INTERVAL_MS, droppedAfterMs: config.DROPPED_AFTER_MS },
      system: {
        deliver: (id, event) => system?.deliver(id, event) ?? false,
        newHead: (blockNumber) => {
          lastHead = blockNumber;
          system?.newHead(blockNumber);
        },
      },
      logger,
    });
  } catch (error) {
    return failStart(error);
  }
  started.push({ what: 'chain', stop: () => chain.stop() });
  try {
    system = await createTrackerSystem({
      store,
      hooks: chain.watcher.hooks,
      defaultConfirmations: config.REQUIRED_CONFIRMATIONS,
      faultInjection: config.FAULT_INJECTION,
      restartPolicy: { maxRestarts: config.MAX_RESTARTS, restartWindowMs: config.RESTART_WINDOW_MS },
      logger,
      ...(inspection ? { inspect: inspection.observe } : {}),
    });
  } catch (error) {
    return failStart(error);
  }
  const running = system;
  started.push({ what: 'tracker system', stop: () => running.shutdown({ stopActors: false }) });
  if (lastHead !== null && system.chainHead === null) system.newHead(lastHead);

  let server: RunningServer;
  try {
    server = await startServer({
      system,
      port: config.PORT,
      host: config.HOST,
      apiToken: config.API_TOKEN,
      faultInjection: config.FAULT_INJECTION,
      logger,
      inspection,
      sse: {
        maxClients: config.SSE_MAX_CLIENTS,
        replay: config.SSE_REPLAY_EVENTS,
        replayBytes: config.SSE_REPLAY_BYTES,
        stallTimeoutMs: config.SSE_STALL_TIMEOUT_MS,
      },
      readiness: async () => ({
        store: await storeIsReachable(store),
        chain: chain.watcher.health().status === 'ok',
      }),
      metricsSources: {
        rpc: () => chain.watcher.rpc,
        blockLag: () => chain.watcher.blockLag(),
      },
    });
  } catch (error) {
    return failStart(error);
  }

  const tokenHint = config.API_TOKEN ? '/#token=<API_TOKEN>' : '';
  const relayPage = relay ? `open ${relay.url}${tokenHint}` : `the relay already on port ${config.INSPECT_PORT}`;
  return {
    system,
    chain,
    server,
    inspection,
    inspectorRelay: relay,
    where: {
      api: server.url,
      chain: chain.anvil ? `${chain.url} (embedded anvil, a block every 2 s)` : redact(chain.url),
      database: location,
      inspector: inspection ? `${relayPage}; ${server.url}/inspect/ui` : null,
    },
    async stop() {
      await server.close();
      // No chain fact after this; then every write durable. The process exits next, so the actors
      // are left inert rather than torn down one by one (seconds at 100,000 trackers).
      await chain.stop();
      await running.shutdown({ stopActors: false });
      await stopInspection();
      await store.close();
    },
  };
}
