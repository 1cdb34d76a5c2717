import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { TRACKER_STATE_NAMES } from '../../machines/tracker.machine.js';
import type { TrackerSystem } from '../runtime/system.js';
import { SqliteStore } from '../store/sqlite.js';
import type { ChangeFeedStats } from './sse.js';
import type { WebhookDispatcher } from '../webhooks/dispatcher.js';
import type { WebhookStore } from '../webhooks/types.js';

/** One chain's numbers from its watcher: cumulative counters and its latest state. */
export interface ChainMetrics {
  name: string;
  chainId: number;
  /** JSON-RPC round trips (a batch is one) and the ones that failed. */
  requests: number;
  errors: number;
  /** The newest block replayed; undefined before the first. */
  head: number | undefined;
  /** Blocks between the node's head and the newest block replayed; undefined before the first head. */
  blockLag: number | undefined;
  /** Reorgs the node reported at or below its finalized block. */
  reorgsBelowFinalized: number;
}

/** Numbers from parts the tracker system does not own (the chain watchers). */
export interface MetricsSources {
  /** Each chain followed, labelled `chain` (its name) and `chain_id`. */
  chains?: () => readonly ChainMetrics[];
}

/** How long a count of trackers by state is reused: scrapes close together share one scan of the store. */
const STATE_COUNT_TTL_MS = 1_000;

/** `read`, reused for `ttlMs` after it settles, and shared by the callers that come while it runs. */
export function cached<T>(read: () => Promise<T>, ttlMs: number): () => Promise<T> {
  let last: { value: Promise<T>; at: number } | undefined;
  return () => {
    if (last && performance.now() - last.at < ttlMs) return last.value;
    const entry = { value: read(), at: Number.POSITIVE_INFINITY };
    last = entry;
    // A failed read is not reused: the next scrape tries again.
    entry.value.then(
      () => (entry.at = performance.now()),
      () => {
        if (last === entry) last = undefined;
      },
    );
    return entry.value;
  };
}

/** A Prometheus counter fed from a cumulative number someone else keeps. */
function counterFrom(registry: Registry, name: string, help: string, read: () => number | undefined): void {
  let seen = 0;
  new Counter({
    name,
    help,
    registers: [registry],
    collect() {
      const now = read();
      if (now !== undefined && now > seen) {
        this.inc(now - seen);
        seen = now;
      }
    },
  });
}

const CHAIN_LABELS = ['chain', 'chain_id'];
const chainLabels = (chain: ChainMetrics) => ({ chain: chain.name, chain_id: String(chain.chainId) });

/** A labelled Prometheus counter per chain, fed from each chain's cumulative number. */
function chainCounter(
  registry: Registry,
  name: string,
  help: string,
  chains: () => readonly ChainMetrics[],
  read: (chain: ChainMetrics) => number,
): void {
  const seen = new Map<number, number>();
  new Counter({
    name,
    help,
    labelNames: CHAIN_LABELS,
    registers: [registry],
    collect() {
      for (const chain of chains()) {
        const now = read(chain);
        const before = seen.get(chain.chainId) ?? 0;
        // Zero too, so that every chain's series exists from the first scrape.
        this.inc(chainLabels(chain), Math.max(0, now - before));
        seen.set(chain.chainId, Math.max(before, now));
      }
    },
  });
}

/** A labelled Prometheus gauge per chain; a chain with no value yet has no series. */
function chainGauge(
  registry: Registry,
  name: string,
  help: string,
  chains: () => readonly ChainMetrics[],
  read: (chain: ChainMetrics) => number | undefined,
): void {
  new Gauge({
    name,
    help,
    labelNames: CHAIN_LABELS,
    registers: [registry],
    collect() {
      this.reset();
      for (const chain of chains()) {
        const value = read(chain);
        if (value !== undefined) this.set(chainLabels(chain), value);
      }
    },
  });
}

/**
 * The service's Prometheus registry: trackers by state, live and restarting, crashes, restarts,
 * crash loops, store write (flush) latency, HTTP requests, SSE streams (open, unsent bytes, replay
 * bytes, cut off, refused), and — when sources are
 * given — RPC requests, errors and block lag; with a SQLite store, its pending writes and threads.
 *
 * @example
 * const metrics = createMetrics(system, {});
 * app.get('/metrics', async (_req, res) => res.type(metrics.registry.contentType).send(await metrics.registry.metrics()));
 */
export function createMetrics(
  system: TrackerSystem,
  sources: MetricsSources,
  extra: {
    sse: () => ChangeFeedStats;
    webhooks?: { store: WebhookStore; dispatcher?: WebhookDispatcher | undefined };
  },
) {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'tx_tracker_process_' });

  const countByState = cached(() => system.store.countByState(), STATE_COUNT_TTL_MS);
  new Gauge({
    name: 'tx_tracker_trackers',
    help: 'Trackers by state, all of them in the store',
    labelNames: ['state'],
    registers: [registry],
    async collect() {
      const counts = await countByState().catch(() => undefined);
      // The store cannot be read: no numbers rather than old ones, and the rest of the scrape goes on.
      if (!counts) return this.reset();
      for (const state of TRACKER_STATE_NAMES) this.set({ state }, counts[state] ?? 0);
    },
  });
  new Gauge({
    name: 'tx_tracker_trackers_live',
    help: 'Tracker actors in the registry',
    registers: [registry],
    collect() {
      this.set(system.stats().live);
    },
  });
  new Gauge({
    name: 'tx_tracker_trackers_restarting',
    help: 'Trackers waiting for their restart',
    registers: [registry],
    collect() {
      this.set(system.stats().restarting);
    },
  });
  counterFrom(registry, 'tx_tracker_crashes_total', 'Tracker crashes', () => system.stats().crashes);
  counterFrom(
    registry,
    'tx_tracker_restarts_total',
    'Tracker restarts by the supervisor',
    () => system.stats().restarts,
  );
  counterFrom(
    registry,
    'tx_tracker_crash_loops_total',
    'Trackers given up after too many crashes',
    () => system.stats().crashLoops,
  );
  if (sources.chains) {
    const chains = sources.chains;
    chainCounter(
      registry,
      'tx_tracker_rpc_requests_total',
      'JSON-RPC requests to the chain (a batch is one)',
      chains,
      (c) => c.requests,
    );
    chainCounter(registry, 'tx_tracker_rpc_errors_total', 'JSON-RPC requests that failed', chains, (c) => c.errors);
    chainCounter(
      registry,
      'tx_tracker_reorgs_below_finalized_total',
      'Reorgs the node reported at or below the finalized block it had given (impossible by protocol)',
      chains,
      (c) => c.reorgsBelowFinalized,
    );
    chainGauge(
      registry,
      'tx_tracker_block_lag',
      "Blocks between the node's head and the newest block processed",
      chains,
      (c) => c.blockLag,
    );
    chainGauge(registry, 'tx_tracker_chain_head', 'The newest block processed', chains, (c) => c.head);
  }
  new Gauge({
    name: 'tx_tracker_sse_clients',
    help: 'Open /events streams',
    registers: [registry],
    collect() {
      this.set(extra.sse().clients);
    },
  });
  new Gauge({
    name: 'tx_tracker_sse_buffered_bytes',
    help: 'Bytes written to /events streams that their sockets have not taken yet, over all streams',
    registers: [registry],
    collect() {
      this.set(extra.sse().bufferedBytes);
    },
  });
  new Gauge({
    name: 'tx_tracker_sse_replay_bytes',
    help: 'Bytes of changes kept for Last-Event-ID replay',
    registers: [registry],
    collect() {
      this.set(extra.sse().keptBytes);
    },
  });
  counterFrom(
    registry,
    'tx_tracker_sse_dropped_total',
    '/events streams cut off for not taking data',
    () => extra.sse().dropped,
  );
  counterFrom(
    registry,
    'tx_tracker_sse_refused_total',
    '/events streams refused at SSE_MAX_CLIENTS',
    () => extra.sse().refused,
  );

  const storeWriteSeconds = new Histogram({
    name: 'tx_tracker_store_write_seconds',
    help: 'Latency of making writes durable (store flush)',
    labelNames: ['outcome'],
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1],
    registers: [registry],
  });
  const stopTimingFlushes = system.store.observeFlush((seconds, ok) =>
    storeWriteSeconds.observe({ outcome: ok ? 'ok' : 'error' }, seconds),
  );

  const { store } = system;
  if (store instanceof SqliteStore) {
    new Gauge({
      name: 'tx_tracker_store_pending_writes',
      help: 'Tracker writes not durable yet (waiting for their group commit, or in it)',
      registers: [registry],
      collect() {
        this.set(store.pendingCount);
      },
    });
    new Gauge({
      name: 'tx_tracker_store_thread_up',
      help: "Whether the store's writer and checkpoint threads run (0: off or stopped; the store does their work itself)",
      labelNames: ['thread'],
      registers: [registry],
      collect() {
        for (const [thread, up] of Object.entries(store.threads)) this.set({ thread }, up ? 1 : 0);
      },
    });
  }

  let stopTimingAttempts = (): void => undefined;
  if (extra.webhooks) {
    const { store: outbox, dispatcher } = extra.webhooks;
    const deliveries = new Counter({
      name: 'tx_tracker_webhook_attempts_total',
      help: 'Webhook delivery attempts by outcome: succeeded, retrying (failed, another attempt scheduled), failed (the last one)',
      labelNames: ['outcome'],
      registers: [registry],
    });
    for (const outcome of ['succeeded', 'retrying', 'failed']) deliveries.inc({ outcome }, 0);
    const latency = new Histogram({
      name: 'tx_tracker_webhook_attempt_seconds',
      help: 'Latency of webhook delivery attempts (request to response, or to the failure)',
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 15],
      registers: [registry],
    });
    if (dispatcher) {
      stopTimingAttempts = dispatcher.observeAttempts((outcome, seconds) => {
        deliveries.inc({ outcome });
        latency.observe(seconds);
      });
      let counted = 0;
      new Counter({
        name: 'tx_tracker_webhook_store_errors_total',
        help: 'Failed reads of the webhook outbox and failed writes of attempts by the dispatcher (each retried after a backoff)',
        registers: [registry],
        collect() {
          const { storeErrors } = dispatcher.health();
          this.inc(storeErrors - counted);
          counted = storeErrors;
        },
      });
      new Gauge({
        name: 'tx_tracker_webhook_store_failing_seconds',
        help: "How long the dispatcher's reads or writes of the store have been failing (0 while they succeed)",
        registers: [registry],
        collect() {
          const { failingSince } = dispatcher.health();
          this.set(failingSince === null ? 0 : Math.max(0, (Date.now() - failingSince) / 1000));
        },
      });
    }
    const stats = cached(async () => outbox.outboxStats(), STATE_COUNT_TTL_MS);
    new Gauge({
      name: 'tx_tracker_webhook_outbox_depth',
      help: 'Webhook deliveries pending (not yet succeeded or failed for good)',
      registers: [registry],
      async collect() {
        const now = await stats().catch(() => undefined);
        if (now) this.set(now.pending);
      },
    });
    new Gauge({
      name: 'tx_tracker_webhook_oldest_pending_seconds',
      help: 'Age of the oldest pending webhook delivery (0 when none)',
      registers: [registry],
      async collect() {
        const now = await stats().catch(() => undefined);
        if (now) this.set(now.oldestPendingAt === null ? 0 : Math.max(0, (Date.now() - now.oldestPendingAt) / 1000));
      },
    });
  }

  const httpRequests = new Counter({
    name: 'tx_tracker_http_requests_total',
    help: 'HTTP requests by method, route and status',
    labelNames: ['method', 'route', 'status'],
    registers: [registry],
  });

  return {
    registry,
    httpRequests,
    close(): void {
      stopTimingFlushes();
      stopTimingAttempts();
    },
  };
}

export type Metrics = ReturnType<typeof createMetrics>;
