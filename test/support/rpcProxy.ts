import { type IncomingMessage, type Server, type ServerResponse, createServer } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

export type ProxyFault = 'pass' | 'down' | 'http-error' | 'rpc-error' | 'delay' | 'truncate';

export interface RpcProxy {
  url: string;
  /** Where requests go; may be changed (a restarted node on another port). */
  target: string;
  /** Fault for the next requests: fixed, or chosen per request. */
  fault: ProxyFault | (() => ProxyFault);
  delayMs: number;
  /** Changes the result of each call passed through (by method), e.g. to report another base fee. */
  rewrite: ((method: string, result: unknown) => unknown) | null;
  /** JSON-RPC calls seen (batch items counted one by one), by method. */
  calls: Map<string, number>;
  /** Told of each call passed through (batch items one by one), with its params. */
  observe: ((method: string, params: unknown) => void) | null;
  totalCalls(): number;
  httpRequests: number;
  reset(): void;
  close(): Promise<void>;
}

/**
 * A JSON-RPC proxy on 127.0.0.1 that counts calls and injects faults: connection resets, HTTP 500,
 * JSON-RPC errors, delays and truncated bodies; `rewrite` changes what the node answered.
 *
 * @example
 * const proxy = await startRpcProxy(anvil.url);
 * proxy.fault = 'down';
 */
export async function startRpcProxy(target: string): Promise<RpcProxy> {
  const sockets = new Set<Socket>();
  const proxy: RpcProxy = {
    url: '',
    target,
    fault: 'pass',
    delayMs: 3000,
    rewrite: null,
    calls: new Map(),
    observe: null,
    totalCalls: () => [...proxy.calls.values()].reduce((a, b) => a + b, 0),
    httpRequests: 0,
    reset() {
      proxy.calls.clear();
      proxy.httpRequests = 0;
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
  const server: Server = createServer((req, res) => void handle(proxy, req, res));
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  proxy.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return proxy;
}

async function handle(proxy: RpcProxy, req: IncomingMessage, res: ServerResponse): Promise<void> {
  // GET /stats (and /reset) for a proxy run in its own process (the benchmark).
  if (req.method === 'GET') {
    if (req.url === '/reset') proxy.reset();
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ calls: Object.fromEntries(proxy.calls), httpRequests: proxy.httpRequests }));
    return;
  }
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  const body = Buffer.concat(chunks).toString('utf8');
  proxy.httpRequests++;
  try {
    type Call = { method: string; params?: unknown };
    const parsed = JSON.parse(body) as Call | Call[];
    for (const call of Array.isArray(parsed) ? parsed : [parsed]) {
      proxy.calls.set(call.method, (proxy.calls.get(call.method) ?? 0) + 1);
      proxy.observe?.(call.method, call.params);
    }
  } catch {
    // counted as an HTTP request only
  }
  const fault = typeof proxy.fault === 'function' ? proxy.fault() : proxy.fault;
  if (fault === 'down') {
    req.socket.destroy();
    return;
  }
  if (fault === 'http-error') {
    res.writeHead(502).end('bad gateway');
    return;
  }
  if (fault === 'rpc-error') {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ jsonrpc: '2.0', id: null, error: { code: -32603, message: 'injected fault' } }));
    return;
  }
  if (fault === 'delay') await new Promise((resolve) => setTimeout(resolve, proxy.delayMs));
  let upstream: Response;
  try {
    upstream = await fetch(proxy.target, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
  } catch {
    req.socket.destroy();
    return;
  }
  let text = await upstream.text();
  if (proxy.rewrite && upstream.ok) text = rewritten(proxy.rewrite, body, text);
  res.writeHead(upstream.status, { 'content-type': 'application/json' });
  res.end(fault === 'truncate' ? text.slice(0, Math.floor(text.length / 2)) : text);
}

type RpcMessage = { id?: unknown; method?: string; result?: unknown };

/** The node's answer with each result passed through `rewrite`, matched to its call by id. */
function rewritten(rewrite: (method: string, result: unknown) => unknown, request: string, response: string): string {
  try {
    const calls = [JSON.parse(request) as RpcMessage | RpcMessage[]].flat();
    const methods = new Map(calls.map((c) => [JSON.stringify(c.id), c.method ?? '']));
    const parsed = JSON.parse(response) as RpcMessage | RpcMessage[];
    const answers = [parsed].flat();
    for (const answer of answers) {
      const method = methods.get(JSON.stringify(answer.id));
      if (method !== undefined && 'result' in answer) answer.result = rewrite(method, answer.result);
    }
    return JSON.stringify(Array.isArray(parsed) ? answers : answers[0]);
  } catch {
    return response;
  }
}
