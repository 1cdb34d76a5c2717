import { ChainIdMismatchError, HttpRequestError, InvalidRpcResponseError, RpcTimeoutError } from './errors.js';
import type { RpcCall, RpcOutcome, Transport } from './transport.js';

export interface FallbackTransportOptions {
  /** After switching to the fallback, the primary is tried again this long later (default 30,000 ms). */
  retryPrimaryMs?: number;
  /** Told when requests move to the other node. */
  onSwitch?: (to: 'primary' | 'fallback', error: unknown) => void;
  now?: () => number;
}

export interface FallbackTransport extends Transport {
  /** Which node answers now. */
  readonly active: 'primary' | 'fallback';
}

/** A failure of the node as a whole (unreachable, timing out, answering garbage, on another chain), not of one call. */
function nodeFailed(error: unknown): boolean {
  return (
    error instanceof HttpRequestError ||
    error instanceof RpcTimeoutError ||
    error instanceof InvalidRpcResponseError ||
    error instanceof ChainIdMismatchError
  );
}

/**
 * The same transport, with `check` run before its first request (and again after a check that
 * failed for any reason but a chain id mismatch, which stays): e.g. that the node is on the chain
 * it was configured for.
 *
 * @example
 * const checked = checkedTransport(transport, async (t) => assertChain(await t.request({ method: 'eth_chainId', params: [] })));
 */
export function checkedTransport(inner: Transport, check: (transport: Transport) => Promise<void>): Transport {
  let checked: Promise<void> | undefined;
  const ready = (): Promise<void> => {
    checked ??= check(inner).catch((error: unknown) => {
      if (!(error instanceof ChainIdMismatchError)) checked = undefined;
      throw error;
    });
    return checked;
  };
  return {
    get url() {
      return inner.url;
    },
    request: async <T>(call: RpcCall) => {
      await ready();
      return inner.request<T>(call);
    },
    batch: async (calls: readonly RpcCall[]) => {
      await ready();
      return inner.batch(calls);
    },
    close: () => inner.close(),
  };
}

/**
 * Two nodes of one chain as one transport: requests go to the primary while it answers; a request
 * the node as a whole fails (connection, HTTP status, timeout, malformed answer) is sent again to
 * the other one, which then takes the requests that follow. The primary gets them back once it
 * answers again, tried `retryPrimaryMs` after the switch. A JSON-RPC error for one call is that
 * call's answer, not a reason to switch.
 *
 * @example
 * const transport = createFallbackTransport(createHttpTransport(primaryUrl), createHttpTransport(fallbackUrl));
 * await transport.request({ method: 'eth_blockNumber', params: [] }); // from whichever answers
 */
export function createFallbackTransport(
  primary: Transport,
  fallback: Transport,
  options: FallbackTransportOptions = {},
): FallbackTransport {
  const retryPrimaryMs = options.retryPrimaryMs ?? 30_000;
  const now = options.now ?? Date.now;
  let active: 'primary' | 'fallback' = 'primary';
  let switchedAt = 0;

  const use = (to: 'primary' | 'fallback', error: unknown): void => {
    if (active === to) return;
    active = to;
    switchedAt = now();
    options.onSwitch?.(to, error);
  };

  async function call<T>(run: (transport: Transport) => Promise<T>): Promise<T> {
    // On the fallback for a while: the primary gets a chance first.
    const first = active === 'fallback' && now() - switchedAt >= retryPrimaryMs ? 'primary' : active;
    const second = first === 'primary' ? 'fallback' : 'primary';
    try {
      const result = await run(first === 'primary' ? primary : fallback);
      use(first, null);
      return result;
    } catch (error) {
      if (!nodeFailed(error)) throw error;
      if (first === 'primary' && active === 'fallback') switchedAt = now();
      const result = await run(second === 'primary' ? primary : fallback);
      use(second, error);
      return result;
    }
  }

  return {
    get url() {
      return active === 'primary' ? primary.url : fallback.url;
    },
    get active() {
      return active;
    },
    request: <T>(rpc: RpcCall) => call((transport) => transport.request<T>(rpc)),
    batch: (calls: readonly RpcCall[]): Promise<RpcOutcome[]> => call((transport) => transport.batch(calls)),
    close() {
      primary.close();
      fallback.close();
    },
  };
}
