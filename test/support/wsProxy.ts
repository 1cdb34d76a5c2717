import type { AddressInfo } from 'node:net';
import WebSocket, { WebSocketServer } from 'ws';

export interface WsProxy {
  url: string;
  /** Refuse (close at once) new connections while true. */
  down: boolean;
  /** Cut every open connection. */
  dropAll(): void;
  connections(): number;
  close(): Promise<void>;
}

/**
 * A WebSocket relay on 127.0.0.1 to `target` that can cut connections and refuse new ones: a node
 * that goes away and comes back.
 *
 * @example
 * const proxy = await startWsProxy(anvil.wsUrl);
 * proxy.down = true; proxy.dropAll();
 */
export async function startWsProxy(target: string): Promise<WsProxy> {
  const server = new WebSocketServer({ host: '127.0.0.1', port: 0 });
  await new Promise<void>((resolve) => server.once('listening', () => resolve()));
  const pairs = new Set<{ client: WebSocket; upstream: WebSocket }>();
  const proxy: WsProxy = {
    url: `ws://127.0.0.1:${(server.address() as AddressInfo).port}`,
    down: false,
    dropAll() {
      for (const { client, upstream } of pairs) {
        client.terminate();
        upstream.terminate();
      }
      pairs.clear();
    },
    connections: () => pairs.size,
    close: () =>
      new Promise<void>((resolve) => {
        proxy.dropAll();
        server.close(() => resolve());
      }),
  };
  server.on('connection', (client) => {
    if (proxy.down) {
      client.terminate();
      return;
    }
    const upstream = new WebSocket(target);
    const pair = { client, upstream };
    pairs.add(pair);
    const queued: string[] = [];
    upstream.on('open', () => {
      for (const message of queued.splice(0)) upstream.send(message);
    });
    client.on('message', (data) => {
      const text = String(data);
      if (upstream.readyState === WebSocket.OPEN) upstream.send(text);
      else queued.push(text);
    });
    upstream.on('message', (data) => client.readyState === WebSocket.OPEN && client.send(String(data)));
    const end = (): void => {
      pairs.delete(pair);
      client.terminate();
      upstream.terminate();
    };
    client.on('close', end);
    upstream.on('close', end);
    client.on('error', end);
    upstream.on('error', end);
  });
  return proxy;
}
