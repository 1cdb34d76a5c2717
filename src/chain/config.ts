import { BaseError } from './errors.js';

export interface ChainConfig {
  /** The node to follow; undefined: start an embedded anvil. */
  rpcUrl: string | undefined;
  /** A second node of the same chain, used while the first fails. */
  fallbackUrl?: string | undefined;
  /** The chain's id, checked against each node; undefined: read from the node. */
  chainId?: number | undefined;
  /** The chain's name, for logs. */
  name?: string | undefined;
  pollIntervalMs: number;
  droppedAfterMs: number;
}

export class ChainConfigError extends BaseError {
  override name = 'ChainConfigError';
}

function positiveInt(env: NodeJS.ProcessEnv, name: string, fallback: number): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value <= 0)
    throw new ChainConfigError(`${name} must be a positive integer (milliseconds)`, { details: raw });
  return value;
}

/**
 * The chain settings from the environment, parsed once at start: `ETH_RPC_URL` (http(s) or
 * ws(s); unset starts an embedded anvil), `POLL_INTERVAL_MS` (1000), `DROPPED_AFTER_MS` (600000).
 *
 * @example
 * const config = parseChainConfig(process.env); // throws ChainConfigError with one line on bad values
 */
export function parseChainConfig(env: NodeJS.ProcessEnv): ChainConfig {
  const rpcUrl = env.ETH_RPC_URL?.trim() || undefined;
  if (rpcUrl !== undefined && !/^(https?|wss?):\/\/.+/i.test(rpcUrl)) {
    throw new ChainConfigError('ETH_RPC_URL must be an http(s) or ws(s) URL');
  }
  return {
    rpcUrl,
    pollIntervalMs: positiveInt(env, 'POLL_INTERVAL_MS', 1000),
    droppedAfterMs: positiveInt(env, 'DROPPED_AFTER_MS', 600_000),
  };
}
