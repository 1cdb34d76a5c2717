import WebSocket from 'ws';
import type { Logger } from '../runtime/logger.js';
import { HttpRequestError, InvalidRpcResponseError, RpcRequestError, RpcTimeoutError, redact } from './errors.js';
import type { HeadSource } from './heads.js';
import type { RpcCall, RpcOutcome, Transport } from './transport.js';

interface Waiting {
  resolve: (value: unknown) => void;
  reject: (error: Error) => void;
  timer: NodeJS.Timeout;
}

interface Message {
  id?: number;
  result?: unknown;
  error?: { code: number; message: string };
  method?: string;
  params?: { subscription?: string; result?: { hash?: unknown } };
}

/**
 * One WebSocket to the node: JSON-RPC requests and the `newHeads` subscription, reconnected with
 * exponential backoff and jitter when it drops (and re-subscribed). While it is down, requests
 * fail at once and the watcher backs off.
 *
 * @example
 * const heads = createWebSocketHeadSource('ws://127.0.0.1:8545', () => watcher.wake(), logger);
 */
export function createWebSocketHeadSource(
  url: string,
  wake: () => void,
  logger: Logger,
  options: { timeoutMs?: number; backoff?: { baseMs?: number; maxMs?: number } } = {},
): HeadSource {
  const timeoutMs = options.timeoutMs ?? 10_000;
  const baseMs = options.backoff?.baseMs ?? 250;
  const maxMs = options.backoff?.maxMs ?? 30_000;
  let socket: WebSocket | null = null;
  let open = false;
  let stopped = true;
  let nextId = 1;
  let attempts = 0;
  let subscription: string | null = null;
  let latest: string | null = null;
  let reconnectTimer: NodeJS.Timeout | null = null;
  const waiting = new Map<number, Waiting>();

  function failAll(error: Error): void {
    for (const [id, w] of waiting) {
      clearTimeout(w.timer);
      waiting.delete(id);
      w.reject(error);
    }
  }

  function connect(): void {
    if (stopped) return;
    const ws = new WebSocket(url);
    socket = ws;
    ws.on('open', () => {
      open = true;
      attempts = 0;
      send({ method: 'eth_subscribe', params: ['newHeads'] })
        .then((id) => {
          subscription = String(id);
          logger.info({ url: redact(url) }, 'subscribed to newHeads');
          wake(); // catch up on what came while we were away
        })
        .catch((error: unknown) => logger.warn({ err: error }, 'eth_subscribe failed; polling meanwhile'));
    });
    ws.on('message', (data) => {
      let message: Message;
      try {
        message = JSON.parse(String(data)) as Message;
      } catch {
        logger.warn({}, 'malformed WebSocket message ignored');
        return;
      }
      if (message.method === 'eth_subscription' && message.params?.subscription === subscription) {
        const hash = message.params?.result?.hash;
        if (typeof hash === 'string') {
          latest = hash.toLowerCase();
          wake();
        }
        return;
      }
      const w = message.id === undefined ? undefined : waiting.get(message.id);
      if (!w) return;
      waiting.delete(message.id!);
      clearTimeout(w.timer);
      if (message.error) w.reject(new RpcRequestError('request', message.error));
      else w.resolve(message.result);
    });
    ws.on('error', (error) => logger.warn({ err: error }, 'WebSocket error'));
    ws.on('close', () => {
      open = false;
      subscription = null;
      failAll(new HttpRequestError(url, { cause: new Error('WebSocket closed') }));
      if (stopped) return;
      attempts++;
      const delay = Math.random() * Math.min(maxMs, baseMs * 2 ** Math.min(attempts, 16));
      logger.warn({ retryInMs: Math.round(delay) }, 'WebSocket closed; reconnecting');
      reconnectTimer = setTimeout(connect, delay);
    });
  }

  function send(call: { method: string; params: readonly unknown[] }): Promise<unknown> {
    if (!socket || !open)
      return Promise.reject(new HttpRequestError(url, { cause: new Error('WebSocket not connected') }));
    const id = nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        waiting.delete(id);
        reject(new RpcTimeoutError(call.method, timeoutMs));
      }, timeoutMs);
      waiting.set(id, { resolve, reject, timer });
      socket!.send(JSON.stringify({ jsonrpc: '2.0', id, method: call.method, params: call.params }));
    });
  }

  const transport: Transport = {
    url,
    async request<T>(call: RpcCall): Promise<T> {
      try {
        return (await send(call)) as T;
      } catch (error) {
        if (error instanceof RpcRequestError)
          throw new RpcRequestError(call.method, { code: error.code, message: error.details ?? '' });
        throw error;
      }
    },
    // Calls go out together over the one socket; each answer is matched by id.
    async batch(calls: readonly RpcCall[]): Promise<RpcOutcome[]> {
      const settled = await Promise.allSettled(calls.map((call) => send(call)));
      return settled.map((s, i) => {
        if (s.status === 'fulfilled') return { ok: true, result: s.value };
        if (s.reason instanceof RpcRequestError)
          return {
            ok: false,
            error: new RpcRequestError(calls[i]!.method, { code: s.reason.code, message: s.reason.details ?? '' }),
          };
        throw s.reason instanceof Error ? s.reason : new InvalidRpcResponseError(String(s.reason));
      });
    },
    close() {},
  };

  return {
    transport,
    get pushes() {
      return subscription !== null;
    },
    latest() {
      const hash = latest;
      latest = null;
      return hash;
    },
    start() {
      if (!stopped) return;
      stopped = false;
      connect();
    },
    stop() {
      stopped = true;
      if (reconnectTimer) clearTimeout(reconnectTimer);
      failAll(new HttpRequestError(url, { cause: new Error('WebSocket closed') }));
      socket?.terminate();
      socket = null;
      open = false;
    },
  };
}
