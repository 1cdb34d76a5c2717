import { type Inspection, createInspection } from './api/inspector.js';
import { type DashboardAssets, buildDashboard } from './api/dashboard.js';
import { Cluster } from './cluster/cluster.js';
import { type InspectorRelay, reachableHost, startInspectorRelay } from './api/inspector-relay.js';
import { type RunningServer, startServer, storeIsReachable } from './api/server.js';
import type { Config } from './config.js';
import type { Finality } from '../machines/tracker.machine.js';
import type { Logger } from './runtime/logger.js';
import { type ChainSet, type FollowedChain, rpcStatus, startChains } from './chain/chain-set.js';
import { redact } from './chain/errors.js';
import type { TrackerSink } from './chain/watcher-state.js';
import { type TrackerSystem, createTrackerSystem } from './runtime/system.js';
import { startHistoryRetention } from './store/history-retention.js';
import { PostgresStore, databaseLocation, openStore } from './store/index.js';
import { MemoryStore } from './store/memory.js';
import type { SnapshotStore } from './store/types.js';
import { WebhookDispatcher } from './webhooks/dispatcher.js';

export interface ConfiguredStore {
  store: SnapshotStore;
  /** Where the data lives, for the startup line. */
  location: string;
}

/**
 * The one place a store is made from the configuration: SQLite (`sqlite:<path>`, the default
 * `sqlite:./data/trackers.db`), PostgreSQL (`postgres://…`), or `memory:` for a throwaway run. The store is handed over as it
 * is, never wrapped, so that the runtime sees all it can do (`getNow`, `getManyNow`); it times its
 * own flushes for `/metrics` (`observeFlush`). A SQLite file is locked for this process
 * (`DatabaseLockedError` when another holds it).
 *
 * @example
 * const { store, location } = await createStoreFromConfig(config);
 */
export async function createStoreFromConfig(
  config: Pick<Config, 'DATABASE_URL'>,
  logger?: Logger,
): Promise<ConfiguredStore> {
  if (config.DATABASE_URL === 'memory:') return { store: new MemoryStore(), location: 'memory: (not durable)' };
  const store = await openStore(config.DATABASE_URL, {
    lock: true,
    onThreadFailure: (thread, error) =>
      logger?.error(
        { thread, err: error },
        `the store's ${thread} thread stopped; the store does its work on its own connection`,
      ),
    onHealthChange: ({ reachable, lastError, pending }) =>
      reachable
        ? logger?.info({ pending }, 'the database is reachable again')
        : logger?.error({ lastError, pending }, 'the database is unreachable; writes wait and are retried'),
  });
  return { store, location: databaseLocation(config.DATABASE_URL) };
}

export interface Service {
  system: TrackerSystem;
  /** Every chain followed. */
  chains: ChainSet;
  /** The default chain. */
  chain: FollowedChain;
  server: RunningServer;
  inspection: Inspection | undefined;
  /** Sends the webhook outbox (absent when the store has no webhook tables). */
  webhooks: WebhookDispatcher | undefined;
  /** The inspector relay this process started (with INSPECT, when INSPECT_PORT was free). */
  inspectorRelay: InspectorRelay | undefined;
  /** Where the API, the chain, the database and the inspector are. */
  where: { api: string; chain: string; database: string; inspector: string | null };
  /** Graceful stop: HTTP first (in-flight requests finish), then the system, then the store. */
  stop(): Promise<void>;
}

/** What a benchmark changes of the service `npm start` builds; `npm start` passes none. */
export interface ServiceOptions {
  /**
   * false: the chain watchers are made and follow every tracker, but do not run (no embedded
   * anvil, no JSON-RPC): the caller hands the system chain facts (`deliver`, `newHead`).
   * Default true.
   */
  watchChains?: boolean;
  /** Told each time a tracker leaves for good, after the watchers are. */
  trackerGone?: (id: string) => void;
}

/**
 * Start everything `npm start` runs: store, inspector relay (with INSPECT), tracker system, HTTP.
 *
 * @example
 * const service = await startService(parseConfig(process.env), pino());
 * logger.info(service.where, 'tx-tracker started');
 */
export async function startService(config: Config, logger: Logger, options: ServiceOptions = {}): Promise<Service> {
  const { store, location } = await createStoreFromConfig(config, logger);
  // A start that fails part way stops what it had started, last first (the embedded anvil too),
  // and then fails with the error that stopped it.
  const started: Array<{ what: string; stop: () => unknown }> = [{ what: 'store', stop: () => store.close() }];
  // Several instances share a PostgreSQL database: each runs the shards it holds a lease on.
  let cluster: Cluster | undefined;
  if (/^postgres(ql)?:\/\//.test(config.DATABASE_URL)) {
    try {
      cluster = await Cluster.open({
        url: config.DATABASE_URL,
        instanceId: config.INSTANCE_ID,
        leaseTtlMs: config.LEASE_TTL_MS,
        heartbeatMs: config.HEARTBEAT_MS,
        logger,
      });
    } catch (error) {
      await store.close().catch(() => {});
      throw error;
    }
    fenceCommits(store, cluster);
  }
  const failStart = async (error: unknown): Promise<never> => {
    for (const { what, stop } of started.reverse()) {
      await Promise.resolve()
        .then(stop)
        .catch((stopError: unknown) => logger.warn({ err: stopError }, `failed start: could not stop the ${what}`));
    }
    throw error;
  };

  // Built beside the start (tens of ms); until it is done, or if it fails, `/` says why (503).
  let dashboard: DashboardAssets | Error | undefined;
  const dashboardBuilt = buildDashboard().then(
    (assets) => (dashboard = assets),
    (error: unknown) => {
      dashboard = error instanceof Error ? error : new Error(String(error));
      logger.error({ err: dashboard }, dashboard.message);
    },
  );

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

  // The watchers start first, so that every tracker the system brings back from the store is
  // followed (its `trackerLive` hook); they reach the system through a sink set just below.
  let system: TrackerSystem | undefined;
  /** Heads and finality reported while the system was still being brought back, handed over after. */
  const early = {
    heads: new Map<number, number>(),
    finality: new Map<string, { chainId: number; tag: Finality; blockNumber: number }>(),
  };
  const sink: TrackerSink = {
    deliver: (id, event) => system?.deliver(id, event) ?? false,
    newHead: (blockNumber, chainId) => {
      if (system) system.newHead(blockNumber, chainId);
      else early.heads.set(chainId, blockNumber);
    },
    newFinality: (chainId, tag, blockNumber) => {
      if (system) system.newFinality(chainId, tag, blockNumber);
      else early.finality.set(`${chainId}/${tag}`, { chainId, tag, blockNumber });
    },
    awaitsFinality: (chainId, tag) => system?.awaitsFinality(chainId, tag) ?? false,
  };
  let chains: ChainSet;
  try {
    chains = await startChains({
      chains: config.chains,
      droppedAfterMs: config.DROPPED_AFTER_MS,
      system: sink,
      logger,
      watcher: { stuckAfterBlocks: config.STUCK_AFTER_BLOCKS },
      ...(options.watchChains === false ? { watch: false } : {}),
    });
  } catch (error) {
    return failStart(error);
  }
  started.push({ what: 'chains', stop: () => chains.stop() });
  const byName = new Map(chains.list.map((chain) => [chain.name, chain]));
  const defaultChain = byName.get(config.defaultChain)!;
  try {
    const gone = options.trackerGone;
    system = await createTrackerSystem({
      store,
      hooks: gone
        ? {
            ...chains.hooks,
            trackerGone: (id) => {
              chains.hooks.trackerGone(id);
              gone(id);
            },
          }
        : chains.hooks,
      chains: config.chains.map((settings) => ({
        id: byName.get(settings.name)!.chainId,
        name: settings.name,
        confirmations: settings.confirmations,
      })),
      defaultChain: defaultChain.chainId,
      defaultConfirmations: config.REQUIRED_CONFIRMATIONS,
      faultInjection: config.FAULT_INJECTION,
      restartPolicy: { maxRestarts: config.MAX_RESTARTS, restartWindowMs: config.RESTART_WINDOW_MS },
      logger,
      ...(inspection ? { inspect: inspection.observe } : {}),
      // In a cluster, the shards' leases decide what is brought back, and when.
      ...(cluster ? { placement: cluster.placement, rehydrate: false } : {}),
    });
  } catch (error) {
    return failStart(error);
  }
  const running = system;
  started.push({ what: 'tracker system', stop: () => running.shutdown({ stopActors: false }) });
  if (cluster) {
    const member = cluster;
    started.push({ what: 'cluster membership', stop: () => member.stop() });
    try {
      await member.start(system);
    } catch (error) {
      return failStart(error);
    }
  }
  const stopRetention =
    config.HISTORY_RETENTION_DAYS > 0
      ? startHistoryRetention(store, {
          retentionMs: config.HISTORY_RETENTION_DAYS * 86_400_000,
          onError: (error) => logger.warn({ err: error }, 'could not prune tracker history; trying again'),
        })
      : async () => {};
  started.push({ what: 'history retention', stop: stopRetention });
  for (const [chainId, blockNumber] of early.heads) {
    if (system.chains.get(chainId)?.due.head === null) system.newHead(blockNumber, chainId);
  }
  for (const { chainId, tag, blockNumber } of early.finality.values()) system.newFinality(chainId, tag, blockNumber);

  const outbox = store.webhooks;
  const webhooks = outbox
    ? new WebhookDispatcher({
        store: outbox,
        allow: config.WEBHOOK_ALLOW_HOSTS,
        retryScheduleMs: config.WEBHOOK_RETRY_SCHEDULE,
        timeoutMs: config.WEBHOOK_TIMEOUT_MS,
        concurrency: config.WEBHOOK_CONCURRENCY,
        disableAfterMs: config.WEBHOOK_DISABLE_AFTER_MS,
        logger,
      })
    : undefined;
  if (webhooks) {
    webhooks.start();
    started.push({ what: 'webhook dispatcher', stop: () => webhooks.stop() });
  }

  const serving = (chain: FollowedChain): boolean => {
    const health = chain.watcher.health();
    return health.headNumber !== null && rpcStatus(health) !== 'down';
  };
  let server: RunningServer;
  try {
    server = await startServer({
      system,
      port: config.PORT,
      host: config.HOST,
      apiToken: config.API_TOKEN,
      faultInjection: config.FAULT_INJECTION,
      dashboard: () => dashboard,
      logger,
      inspection,
      webhooks: { allow: config.WEBHOOK_ALLOW_HOSTS, dispatcher: webhooks },
      sse: {
        maxClients: config.SSE_MAX_CLIENTS,
        replay: config.SSE_REPLAY_EVENTS,
        replayBytes: config.SSE_REPLAY_BYTES,
        stallTimeoutMs: config.SSE_STALL_TIMEOUT_MS,
        // In a cluster, every instance's changes, with ids valid on every instance.
        ...(cluster ? { changes: cluster.changeSource(system) } : {}),
      },
      // Ready while the store answers and some chain is followed: one chain's dead node stalls only
      // its own trackers, and says so in `chains`.
      readiness: async () => ({
        store: (await storeIsReachable(store)) && (cluster?.stats().connected ?? true),
        chain: chains.list.some(serving),
        chains: Object.fromEntries(chains.list.map((chain) => [chain.name, rpcStatus(chain.watcher.health())])),
      }),
      metricsSources: {
        chains: () =>
          chains.list.map((chain) => {
            const health = chain.watcher.health();
            return {
              name: chain.name,
              chainId: chain.chainId,
              requests: chain.watcher.rpc.requests,
              errors: chain.watcher.rpc.errors,
              head: health.headNumber ?? undefined,
              blockLag: chain.watcher.blockLag(),
              reorgsBelowFinalized: health.reorgsBelowFinalized,
            };
          }),
      },
      chainHealth: (chainId) => {
        const chain = chains.get(chainId);
        if (!chain) return undefined;
        const health = chain.watcher.health();
        return {
          rpc: {
            status: rpcStatus(health),
            url: health.url,
            fallback: health.usingFallback,
            lastError: health.lastError,
          },
          lag: chain.watcher.blockLag() ?? null,
        };
      },
      ...(cluster ? { cluster: clusterView(cluster, system) } : {}),
    });
  } catch (error) {
    return failStart(error);
  }
  await dashboardBuilt;

  const describe = (chain: FollowedChain): string => {
    const where = chain.anvil ? `${chain.url} (embedded anvil, a block every 2 s)` : redact(chain.url);
    return config.chains.length === 1
      ? where
      : `${chain.name} (${chain.chainId}${chain === defaultChain ? ', default' : ''}) ${where}`;
  };
  const tokenHint = config.API_TOKEN ? '/#token=<API_TOKEN>' : '';
  const relayPage = relay ? `open ${relay.url}${tokenHint}` : `the relay already on port ${config.INSPECT_PORT}`;
  return {
    system,
    chains,
    chain: defaultChain,
    server,
    inspection,
    webhooks,
    inspectorRelay: relay,
    where: {
      api: server.url,
      chain: chains.list.map(describe).join('; '),
      database: location,
      inspector: inspection ? `${relayPage}; ${server.url}/inspect/ui` : null,
    },
    async stop() {
      await server.close();
      // No chain fact after this; then every write durable. The process exits next, so the actors
      // are left inert rather than torn down one by one (seconds at 100,000 trackers).
      await chains.stop();
      // Leases handed back at once (their trackers' writes durable first): others take them now.
      await cluster?.stop();
      await running.shutdown({ stopActors: false });
      await webhooks?.stop();
      await stopInspection();
      await stopRetention();
      await store.close();
    },
  };
}

/**
 * Every commit of the store checks this instance's leases on the rows' shards in its transaction;
 * the webhook outbox is sent, by each instance, for the trackers of the shards it holds.
 */
function fenceCommits(store: SnapshotStore, cluster: Cluster): void {
  if (!(store instanceof PostgresStore)) throw new Error('a cluster needs the PostgreSQL store');
  store.setCommitHook(cluster.commitHook);
  store.webhooks.dispatchFor({
    shardCount: cluster.shardCount,
    owns: (shard) => cluster.leases.owns(shard),
    ownedShards: () => cluster.leases.ownedShards(),
  });
}

/** `GET /cluster`: this instance, the shards it holds and those it runs trackers of. */
function clusterView(cluster: Cluster, system: TrackerSystem): () => object {
  return () => {
    const stats = cluster.stats();
    return {
      ...stats,
      shards: cluster.leases.ownedShards(),
      liveShards: system.occupiedShards(),
      live: system.stats().live,
    };
  };
}
