import { HttpRequestError, InvalidRpcResponseError, RpcRequestError, RpcTimeoutError } from './errors.js';

export interface RpcCall {
  method: string;
  params: readonly unknown[];
}

/** One answer of a batch: a result, or the node's error for that call alone. */
export type RpcOutcome = { ok: true; result: unknown } | { ok: false; error: RpcRequestError };

/** How the watcher talks to a node. Errors that concern the whole request are thrown. */
export interface Transport {
  readonly url: string;
  request<T = unknown>(call: RpcCall): Promise<T>;
  /** One JSON-RPC batch; answers in call order. */
  batch(calls: readonly RpcCall[]): Promise<RpcOutcome[]>;
  close(): void;
}

export interface HttpTransportOptions {
  /** Per request (default 10,000 ms). */
  timeoutMs?: number;
}

interface JsonRpcResponse {
  id: number;
  result?: unknown;
  error?: { code: number; message: string };
}

/**
 * A minimal JSON-RPC client over HTTP(S) with batching and a timeout. No caching and no retries:
 * the watcher decides what to retry.
 *
 * @example
 * const transport = createHttpTransport('http://127.0.0.1:8545');
 * const hex = await transport.request<string>({ method: 'eth_blockNumber', params: [] });
 */
export function createHttpTransport(url: string, options: HttpTransportOptions = {}): Transport {
  const timeoutMs = options.timeoutMs ?? 10_000;
  let nextId = 1;

  async function post(body: unknown, label: string): Promise<unknown> {
    let response: Response;
    try {
      response = await fetch(url, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(body),
        signal: AbortSignal.timeout(timeoutMs),
      });
    } catch (error) {
      if (error instanceof Error && (error.name === 'TimeoutError' || error.name === 'AbortError')) {
        throw new RpcTimeoutError(label, timeoutMs);
      }
      throw new HttpRequestError(url, { cause: error });
    }
    let text: string;
    try {
      text = await response.text();
    } catch (error) {
      if (error instanceof Error && (error.name === 'TimeoutError' || error.name === 'AbortError')) {
        throw new RpcTimeoutError(label, timeoutMs);
      }
      throw new HttpRequestError(url, { cause: error });
    }
    if (!response.ok) throw new HttpRequestError(url, { status: response.status });
    try {
      return JSON.parse(text) as unknown;
    } catch (error) {
      throw new InvalidRpcResponseError(`${label}: not JSON (${text.length} bytes)`, error);
    }
  }

  return {
    url,
    async request<T>(call: RpcCall): Promise<T> {
      const id = nextId++;
      const body = await post({ jsonrpc: '2.0', id, method: call.method, params: call.params }, call.method);
      const response = asResponse(body, call.method);
      if (response.error) throw new RpcRequestError(call.method, response.error);
      if (!('result' in response)) throw new InvalidRpcResponseError(`${call.method}: no result`);
      return response.result as T;
    },
    async batch(calls: readonly RpcCall[]): Promise<RpcOutcome[]> {
      if (calls.length === 0) return [];
      const first = nextId;
      nextId += calls.length;
      const label = `batch of ${calls.length} (${calls[0]!.method}…)`;
      const body = await post(
        calls.map((call, i) => ({ jsonrpc: '2.0', id: first + i, method: call.method, params: call.params })),
        label,
      );
      if (!Array.isArray(body)) {
        // Some nodes answer a whole batch with one error object (e.g. batch too large).
        const single = asResponse(body, label);
        if (single.error) throw new RpcRequestError(label, single.error);
        throw new InvalidRpcResponseError(`${label}: not an array`);
      }
      const byId = new Map<number, JsonRpcResponse>();
      for (const item of body) {
        const response = asResponse(item, label);
        byId.set(response.id, response);
      }
      return calls.map((call, i) => {
        const response = byId.get(first + i);
        if (!response) throw new InvalidRpcResponseError(`${label}: answer ${i} missing`);
        if (response.error) return { ok: false, error: new RpcRequestError(call.method, response.error) };
        if (!('result' in response)) throw new InvalidRpcResponseError(`${call.method}: no result`);
        return { ok: true, result: response.result };
      });
    },
    close() {},
  };
}

function asResponse(value: unknown, label: string): JsonRpcResponse {
  if (typeof value !== 'object' || value === null) throw new InvalidRpcResponseError(`${label}: not an object`);
  const response = value as Partial<JsonRpcResponse>;
  if (response.error !== undefined) {
    const error = response.error as Partial<{ code: unknown; message: unknown }> | null;
    if (typeof error !== 'object' || error === null || typeof error.code !== 'number') {
      throw new InvalidRpcResponseError(`${label}: bad error object`);
    }
    return { id: Number(response.id), error: { code: error.code, message: String(error.message) } };
  }
  return response as JsonRpcResponse;
}

/** Throw the error of a failed batch item, or return its result. */
export function unwrap<T>(outcome: RpcOutcome): T {
  if (!outcome.ok) throw outcome.error;
  return outcome.result as T;
}
