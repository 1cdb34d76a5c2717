import type { Logger } from '../runtime/logger.js';
import { silentLogger } from '../runtime/logger.js';
import type { TrackerHooks } from '../runtime/types.js';
import { ChainConfigError } from './config.js';
import { type Chain, startChain } from './embedded.js';
import { errorMessage, redact } from './errors.js';
import { getChainId } from './getChainId.js';
import { createHttpTransport } from './transport.js';
import { createChainWatcher } from './watcher.js';
import type { ChainWatcherHealth, ChainWatcherOptions, TrackerSink } from './watcher-state.js';
import { createWebSocketHeadSource } from './web-socket.js';

/** One chain to follow. */
export interface ChainNodes {
  /** Lower-case name, for logs and the API. */
  name: string;
  /** Undefined: start an embedded anvil. */
  rpcUrl: string | undefined;
  fallbackUrl: string | undefined;
  /** The id its nodes must report; undefined: read from them. */
  chainId: number | undefined;
  pollIntervalMs: number;
  /** The configuration variables its URL and id came from, named in the line a start fails with. */
  variables: { rpcUrl: string; chainId: string | undefined };
}

export interface StartChainsOptions {
  chains: readonly ChainNodes[];
  droppedAfterMs: number;
  system: TrackerSink;
  logger?: Logger;
  /** Seconds between blocks of an embedded anvil (default 2). */
  blockTime?: number;
  /** How long the start waits for a node's `eth_chainId` (default 5,000 ms, tried twice). */
  chainIdTimeoutMs?: number;
  watcher?: Partial<Omit<ChainWatcherOptions, 'system' | 'url'>>;
  /**
   * false: each chain's watcher is made, and its hooks follow every tracker, but it is never
   * started: no node is started or called, and a chain without a configured id is taken to be
   * `UNWATCHED_CHAIN_ID`. For benchmarks that hand the system chain facts themselves. Default true.
   */
  watch?: boolean;
}

/** The id of a chain that is not watched and has no configured id: anvil's own. */
export const UNWATCHED_CHAIN_ID = 31337;

/** A chain being followed: its name and id, its watcher, and the embedded anvil when it is one. */
export interface FollowedChain extends Chain {
  name: string;
  chainId: number;
}

/** A chain's RPC health for people: `ok`; `degraded` (failing lately, or on its fallback node); `down`. */
export type RpcStatus = 'ok' | 'degraded' | 'down';

/**
 * How a watcher's health reads to people: `down` after three failed ticks in a row (or a failure
 * before any head), `degraded` after fewer, on the fallback node, or before the first head.
 *
 * @example
 * rpcStatus(chain.watcher.health()); // 'ok'
 */
export function rpcStatus(health: ChainWatcherHealth): RpcStatus {
  if (health.status === 'stopped') return 'down';
  if (health.consecutiveFailures >= 3 || (health.headNumber === null && health.consecutiveFailures > 0)) return 'down';
  if (health.consecutiveFailures > 0 || health.usingFallback || health.headNumber === null) return 'degraded';
  return 'ok';
}

/** The node's chain id, over http(s) or a WebSocket opened for it, within `timeoutMs`. */
async function readChainId(url: string, timeoutMs: number, logger: Logger): Promise<number> {
  if (!/^wss?:/i.test(url)) return getChainId(createHttpTransport(url, { timeoutMs }));
  const socket = createWebSocketHeadSource(url, () => {}, logger, { timeoutMs });
  socket.start();
  const deadline = Date.now() + timeoutMs;
  try {
    for (;;) {
      try {
        return await getChainId(socket.transport!);
      } catch (error) {
        if (Date.now() > deadline) throw error;
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    }
  } finally {
    socket.stop();
  }
}

/**
 * The chain id a chain is on, from its nodes (each node is asked; both must agree with each other
 * and with the configured id). A node that cannot be reached is fine when the id is configured (the
 * watcher checks it once it answers); without one, the start fails with one line.
 */
async function resolveChainId(
  chain: ChainNodes,
  url: string,
  options: StartChainsOptions,
  logger: Logger,
): Promise<number> {
  const timeoutMs = options.chainIdTimeoutMs ?? 5_000;
  const nodes = [
    { url, variable: chain.variables.rpcUrl },
    ...(chain.fallbackUrl
      ? [{ url: chain.fallbackUrl, variable: chain.variables.rpcUrl.replace(/RPC_URL$/, 'FALLBACK_URL') }]
      : []),
  ];
  let found: { id: number; variable: string } | undefined =
    chain.chainId === undefined ? undefined : { id: chain.chainId, variable: chain.variables.chainId! };
  let failure: unknown;
  for (const node of nodes) {
    let id: number;
    try {
      // Without a configured id the start needs this answer: one more try.
      id = await readChainId(node.url, timeoutMs, logger).catch(async (error: unknown) => {
        if (chain.chainId !== undefined) throw error;
        await new Promise((resolve) => setTimeout(resolve, 500));
        return readChainId(node.url, timeoutMs, logger);
      });
    } catch (error) {
      failure ??= error;
      logger.warn(
        { chain: chain.name, url: redact(node.url), err: errorMessage(error) },
        'could not read the chain id of a node at start',
      );
      continue;
    }
    if (found && found.id !== id) {
      throw new ChainConfigError(
        `invalid configuration: ${node.variable} is a node of chain ${id}, but ${found.variable} says ${found.id}`,
      );
    }
    found ??= { id, variable: node.variable };
  }
  if (found) return found.id;
  const hint = chain.variables.rpcUrl.startsWith('CHAIN_')
    ? `; set ${chain.variables.rpcUrl.replace(/RPC_URL$/, 'ID')} to start while it is down`
    : '';
  throw new ChainConfigError(
    `invalid configuration: ${chain.variables.rpcUrl}: no node answered eth_chainId (${redact(url)}: ${errorMessage(failure)})${hint}`,
  );
}

/**
 * Several chains followed side by side: a watcher each (its own transport, poll loop and backoff,
 * so one chain's dead node stalls only its own trackers), and one set of hooks for the tracker
 * system that reaches the watcher of the tracker's chain.
 *
 * @example
 * const chains = await startChains({ chains: config.chains, droppedAfterMs: 600_000, system: sink, logger });
 * const system = await createTrackerSystem({ store, hooks: chains.hooks, chains: chains.list.map(({ chainId, name }) => ({ id: chainId, name })) });
 */
export class ChainSet {
  readonly hooks: Required<TrackerHooks>;
  private readonly byId: Map<number, FollowedChain>;

  constructor(readonly list: readonly FollowedChain[]) {
    this.byId = new Map(list.map((chain) => [chain.chainId, chain]));
    this.hooks = {
      trackerLive: (context, state) => this.byId.get(context.chainId)?.watcher.hooks.trackerLive(context, state),
      // Only the id is known here; each watcher forgets it only if it follows it.
      trackerGone: (id) => {
        for (const chain of list) chain.watcher.hooks.trackerGone(id);
      },
      recheck: (context) => this.byId.get(context.chainId)?.watcher.hooks.recheck(context),
      rebroadcast: (context) => this.byId.get(context.chainId)?.watcher.hooks.rebroadcast(context),
      // Only the id again: the watcher that follows it is the one that may have its signed form.
      canRebroadcast: (id) => list.some((chain) => chain.watcher.hooks.canRebroadcast(id)),
    };
  }

  get(chainId: number): FollowedChain | undefined {
    return this.byId.get(chainId);
  }

  /** Stop every watcher (and embedded anvil), all at once. */
  async stop(): Promise<void> {
    await Promise.all(this.list.map((chain) => chain.stop()));
  }
}

/**
 * Start following every configured chain: an embedded anvil for a chain without URL, the chain id
 * of each read from its nodes (and checked against the configured one), a started watcher each.
 * A bad chain fails the start with one line (`ChainConfigError`), and the chains started already
 * are stopped.
 *
 * @example
 * const chains = await startChains({ chains: [{ name: 'base', rpcUrl, … }], droppedAfterMs, system });
 */
export async function startChains(options: StartChainsOptions): Promise<ChainSet> {
  const logger = options.logger ?? silentLogger;
  const started: FollowedChain[] = [];
  const ids = new Map<number, string>();
  try {
    // Chains one after the other: a failure names the first bad one, and the start stays readable.
    for (const nodes of options.chains) {
      let chainId: number | undefined = nodes.chainId;
      const chain =
        options.watch === false
          ? unwatchedChain(nodes, options, logger)
          : await startChain({
              config: {
                rpcUrl: nodes.rpcUrl,
                fallbackUrl: nodes.fallbackUrl,
                name: nodes.name,
                pollIntervalMs: nodes.pollIntervalMs,
                droppedAfterMs: options.droppedAfterMs,
              },
              system: options.system,
              logger,
              ...(options.blockTime !== undefined ? { blockTime: options.blockTime } : {}),
              // The id is known before the watcher starts: it checks every node against it.
              beforeWatch: async (url) => {
                chainId = await resolveChainId(nodes, url, options, logger);
                return { chainId };
              },
              ...(options.watcher ? { watcher: options.watcher } : {}),
            });
      chainId ??= UNWATCHED_CHAIN_ID;
      started.push({ ...chain, name: nodes.name, chainId });
      const other = ids.get(chainId);
      if (other !== undefined) {
        throw new ChainConfigError(
          `invalid configuration: ${nodes.variables.rpcUrl} is a node of chain ${chainId}, as the chain ${other} is`,
        );
      }
      ids.set(chainId, nodes.name);
    }
  } catch (error) {
    await Promise.all(started.map((chain) => chain.stop()));
    throw error;
  }
  return new ChainSet(started);
}

/** A chain whose watcher follows trackers but never runs (`watch: false`). */
function unwatchedChain(nodes: ChainNodes, options: StartChainsOptions, logger: Logger): Chain {
  const url = nodes.rpcUrl ?? 'http://127.0.0.1:9';
  const watcher = createChainWatcher({
    url,
    name: nodes.name,
    chainId: nodes.chainId ?? UNWATCHED_CHAIN_ID,
    system: options.system,
    pollIntervalMs: nodes.pollIntervalMs,
    droppedAfterMs: options.droppedAfterMs,
    logger,
    ...options.watcher,
  });
  return { url, watcher, anvil: undefined, stop: () => watcher.stop() };
}
