import type { Logger } from '../runtime/logger.js';
import type { Transport } from './transport.js';
import { createWebSocketHeadSource } from './web-socket.js';

/**
 * Where new heads come from. Polling: `latest()` is null and the watcher asks the node for its
 * latest block every poll interval. WebSocket: `newHeads` pushes hashes and wakes the watcher.
 */
export interface HeadSource {
  /** The hash of the newest head pushed since the last call, if any. */
  latest(): string | null;
  /** Heads are pushed now (subscribed): the watcher polls only as a slow safety net. */
  readonly pushes: boolean;
  /** A transport over the same connection (WebSocket), when there is one. */
  readonly transport: Transport | undefined;
  start(): void;
  stop(): void;
}

/**
 * `eth_subscribe("newHeads")` over WebSocket for ws(s) URLs; polling otherwise.
 *
 * @example
 * const heads = createHeadSource('ws://127.0.0.1:8545', wake, logger, { timeoutMs: 10_000 });
 */
export function createHeadSource(
  url: string,
  wake: () => void,
  logger: Logger,
  options: { timeoutMs?: number; backoff?: { baseMs?: number; maxMs?: number } } = {},
): HeadSource {
  if (/^wss?:/i.test(url)) return createWebSocketHeadSource(url, wake, logger, options);
  return { latest: () => null, pushes: false, transport: undefined, start() {}, stop() {} };
}
