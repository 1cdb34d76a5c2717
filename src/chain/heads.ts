import type { Logger } from '../runtime/logger.js';
import type { Transport } from './transport.js';

/**
 * Where new heads come from. Polling: `latest()` is null and the watcher asks the node for its
 * latest block every poll interval. WebSocket: `newHeads` pushes hashes and wakes the watcher.
 */
export interface HeadSource {
  /** The hash of the newest head pushed since the last call, if any. */
  latest(): string | null;
  /** A transport over the same connection (WebSocket), when there is one. */
  readonly transport: Transport | undefined;
  start(): void;
  stop(): void;
}

/** Polling for http(s) URLs. */
export function createHeadSource(url: string, _wake: () => void, _logger: Logger): HeadSource {
  if (/^wss?:/i.test(url)) throw new TypeError('WebSocket URLs are not supported yet; use http(s)');
  return { latest: () => null, transport: undefined, start() {}, stop() {} };
}
