import type { Logger } from '../runtime/logger.js';
import { silentLogger } from '../runtime/logger.js';
import { type Anvil, startAnvil } from './anvil.js';
import type { ChainConfig } from './config.js';
import { redact } from './errors.js';
import { type ChainWatcher, type ChainWatcherOptions, type TrackerSink, createChainWatcher } from './watcher.js';

export interface StartChainOptions {
  config: ChainConfig;
  system: TrackerSink;
  logger?: Logger;
  /** Seconds between blocks of the embedded anvil (default 2, so confirmations move). */
  blockTime?: number;
  /** More flags for the embedded anvil. */
  anvilArgs?: readonly string[];
  watcher?: Partial<Omit<ChainWatcherOptions, 'system' | 'url'>>;
  /**
   * Run once the node's URL is known (the embedded anvil started), before the watcher: what it
   * returns is given to the watcher (the chain id it checks nodes against). A throw stops the start.
   */
  beforeWatch?: (url: string) => Promise<Partial<ChainWatcherOptions>>;
}

export interface Chain {
  url: string;
  watcher: ChainWatcher;
  /** The embedded node, when no ETH_RPC_URL was given. */
  anvil: Anvil | undefined;
  stop(): Promise<void>;
}

/**
 * Follow `config.rpcUrl`, or start a local anvil (127.0.0.1, free port, a block every 2 s) when
 * there is none; the watcher is started. Plug `chain.watcher.hooks` into the tracker system.
 *
 * @example
 * const chain = await startChain({ config: parseChainConfig(process.env), system, logger });
 * Object.assign(hooks, chain.watcher.hooks);
 * // … on exit:
 * await chain.stop();
 */
export async function startChain(options: StartChainOptions): Promise<Chain> {
  const logger = options.logger ?? silentLogger;
  const { config } = options;
  let anvil: Anvil | undefined;
  let url = config.rpcUrl;
  if (!url) {
    anvil = await startAnvil({ blockTime: options.blockTime ?? 2, args: options.anvilArgs ?? [] });
    url = anvil.url;
    logger.info({ url, wsUrl: anvil.wsUrl, pid: anvil.pid }, `no ETH_RPC_URL: started a local anvil at ${url}`);
  } else {
    logger.info(
      { chain: config.name, url: redact(url), fallback: config.fallbackUrl && redact(config.fallbackUrl) },
      'following the node',
    );
  }
  let before: Partial<ChainWatcherOptions> = {};
  try {
    before = (await options.beforeWatch?.(url)) ?? {};
  } catch (error) {
    await anvil?.stop();
    throw error;
  }
  const watcher = createChainWatcher({
    url,
    fallbackUrl: config.fallbackUrl,
    chainId: config.chainId,
    name: config.name,
    system: options.system,
    pollIntervalMs: config.pollIntervalMs,
    droppedAfterMs: config.droppedAfterMs,
    logger,
    ...before,
    ...options.watcher,
  });
  watcher.start();
  return {
    url,
    watcher,
    anvil,
    async stop() {
      await watcher.stop();
      await anvil?.stop();
    },
  };
}
