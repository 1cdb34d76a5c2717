import { Agent as HttpAgent, request as httpRequest } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
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
 * the watcher decides what to retry. It is node:http with a keep-alive agent rather than `fetch`:
 * each tracker's first lookup is a round trip, and undici's web streams cost more per call than
 * the node's answer does. Redirects are not followed (an RPC endpoint answers where it is).
 *
 * @example
 * const transport = createHttpTransport('http://127.0.0.1:8545');
 * const hex = await transport.request<string>({ method: 'eth_blockNumber', params: [] });
 */
export function createHttpTransport(url: string, options: HttpTransportOptions = {}): Transport {
  const timeoutMs = options.timeoutMs ?? 10_000;
  let nextId = 1;

  const target = new URL(url);
  const secure = target.protocol === 'https:';
  const send = secure ? httpsRequest : httpRequest;
  // One keep-alive connection pool per transport: the watcher's round trips reuse sockets.
  const agent = secure ? new HttpsAgent({ keepAlive: true }) : new HttpAgent({ keepAlive: true });
  const requestOptions = {
    method: 'POST',
    agent,
    hostname: target.hostname.replace(/^\[|\]$/g, ''),
    port: target.port,
    path: `${target.pathname}${target.search}`,
    auth: target.username ? `${decodeURIComponent(target.username)}:${decodeURIComponent(target.password)}` : undefined,
  };

  /** One POST of a JSON body over node:http(s), its JSON answer parsed. */
  function post(body: unknown, label: string): Promise<unknown> {
    const payload = JSON.stringify(body);
    return new Promise((resolve, reject) => {
      const request = send({
        ...requestOptions,
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) },
      });
      let timedOut = false;
      const timer = setTimeout(() => {
        timedOut = true;
        request.destroy();
      }, timeoutMs);
      const fail = (error: unknown) => {
        clearTimeout(timer);
        reject(timedOut ? new RpcTimeoutError(label, timeoutMs) : new HttpRequestError(url, { cause: error }));
      };
      request.once('error', fail);
      request.once('response', (response) => {
        const chunks: Buffer[] = [];
        response.on('data', (chunk: Buffer) => chunks.push(chunk));
        response.once('error', fail);
        response.once('close', () => {
          if (!response.complete) fail(new Error('the connection closed before the whole answer came'));
        });
        response.once('end', () => {
          clearTimeout(timer);
          const status = response.statusCode ?? 0;
          if (status < 200 || status > 299) return reject(new HttpRequestError(url, { status }));
          const text = chunks.length === 1 ? chunks[0]!.toString('utf8') : Buffer.concat(chunks).toString('utf8');
          try {
            resolve(JSON.parse(text) as unknown);
          } catch (error) {
            reject(new InvalidRpcResponseError(`${label}: not JSON (${text.length} bytes)`, error));
          }
        });
      });
      request.end(payload);
    });
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
    close() {
      agent.destroy();
    },
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
