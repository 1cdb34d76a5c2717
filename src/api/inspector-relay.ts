import { type IncomingMessage, type Server, createServer } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { WebSocket, WebSocketServer } from 'ws';
import { rawErrorResponse } from './errors.js';
import { bearerToken, tokenMatcher } from './middleware.js';

export interface InspectorRelayOptions {
  port: number;
  /** The interface to listen on: the API's `HOST`. */
  host: string;
  /**
   * When set, a WebSocket client needs it: `Authorization: Bearer <token>`, or `?access_token=<token>`
   * for clients that cannot set headers (browsers, `createWebSocketInspector`; RFC 6750 section 2.3).
   */
  token?: string | undefined;
  /** Messages kept for a page opened late (default 200, as `createInspectorServer` keeps). */
  keep?: number;
}

export interface InspectorRelay {
  /** The page to open in a browser (with a token: add `#token=<token>`). */
  url: string;
  /** Where inspectors stream to (`createInspection({ relayUrl })`). */
  wsUrl: string;
  address: AddressInfo;
  stop(): Promise<void>;
}

const STATELY_INSPECTOR = 'https://stately.ai/inspect';
/** A client that reads this far behind is cut off rather than buffered for without end. */
const MAX_BUFFERED_BYTES = 8 * 1024 * 1024;

/**
 * The relay between the service's inspector and the Stately inspector page, in place of
 * `createInspectorServer` from `@statelyai/inspect/server`, which listens on every interface and
 * lets anyone connect: this one listens on `host`, needs `token` when one is set, refuses
 * WebSocket upgrades from pages of other origins, and serves a page that reads the token from
 * `#token=`. Every message a client sends goes to the other clients; the last `keep` go to a newcomer.
 *
 * @example
 * const relay = await startInspectorRelay({ port: 8080, host: '127.0.0.1', token: config.API_TOKEN });
 * const inspection = createInspection({ filter: '*', relayUrl: relay.wsUrl, relayToken: config.API_TOKEN });
 */
export async function startInspectorRelay(options: InspectorRelayOptions): Promise<InspectorRelay> {
  const keep = options.keep ?? 200;
  const matches = options.token ? tokenMatcher(options.token) : undefined;
  const kept: string[] = [];

  const server: Server = createServer((req, res) => {
    const path = new URL(req.url ?? '/', 'http://relay').pathname;
    if ((req.method === 'GET' || req.method === 'HEAD') && path === '/') {
      res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8', 'Cache-Control': 'no-store' }).end(RELAY_PAGE);
      return;
    }
    res.writeHead(404, { 'Content-Type': 'application/json; charset=utf-8' });
    res.end(JSON.stringify({ error: { code: 'not_found', message: `no route ${req.method} ${path}` } }));
  });
  const wss = new WebSocketServer({ noServer: true, maxPayload: 16 * 1024 * 1024 });

  /** Why an upgrade is refused, or undefined to accept it. */
  const refusal = (req: IncomingMessage): string | undefined => {
    // Browsers send Origin: only the relay's own page may connect, not any site the user visits.
    const origin = req.headers.origin;
    if (origin !== undefined && originHost(origin) !== req.headers.host) {
      return rawErrorResponse(403, 'forbidden_origin', 'WebSocket connections from other origins are refused');
    }
    if (!matches) return undefined;
    const given =
      bearerToken(req.headers.authorization) ??
      new URL(req.url ?? '/', 'http://relay').searchParams.get('access_token');
    if (given && matches(given)) return undefined;
    return rawErrorResponse(
      401,
      'unauthorized',
      'a valid bearer token is required (Authorization header or access_token)',
      {
        'WWW-Authenticate': 'Bearer',
      },
    );
  };

  server.on('upgrade', (req: IncomingMessage, socket: Socket, head: Buffer) => {
    socket.on('error', () => socket.destroy());
    const refused = refusal(req);
    if (refused) {
      socket.end(refused, () => socket.destroy());
      return;
    }
    wss.handleUpgrade(req, socket, head, (ws) => wss.emit('connection', ws, req));
  });

  wss.on('connection', (ws: WebSocket) => {
    ws.on('error', () => ws.terminate());
    for (const message of kept) ws.send(message);
    ws.on('message', (data) => {
      const message = String(data);
      kept.push(message);
      if (kept.length > keep) kept.shift();
      for (const client of wss.clients) {
        if (client === ws || client.readyState !== WebSocket.OPEN) continue;
        if (client.bufferedAmount > MAX_BUFFERED_BYTES) client.terminate();
        else client.send(message);
      }
    });
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address() as AddressInfo;
  const host = reachableHost(address.address);
  return {
    url: `http://${host}:${address.port}`,
    wsUrl: `ws://${host}:${address.port}`,
    address,
    async stop() {
      for (const client of wss.clients) client.terminate();
      wss.close();
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeAllConnections();
      await closed;
    },
  };
}

function originHost(origin: string): string | undefined {
  try {
    return new URL(origin).host;
  } catch {
    return undefined;
  }
}

/**
 * How a client on this host reaches a listener on `address`, as a URL's host: the loopback for a
 * wildcard, an IPv6 address in brackets.
 *
 * @example
 * reachableHost('0.0.0.0'); // '127.0.0.1'
 */
export function reachableHost(address: string): string {
  if (address === '0.0.0.0') return '127.0.0.1';
  if (address === '::') return '[::1]';
  return address.includes(':') ? `[${address}]` : address;
}

/** The relay's page: the Stately inspector in a frame, fed from this relay. No secret in it. */
const RELAY_PAGE = `<!doctype html>
<html><head><meta charset="utf-8"><title>tx-tracker: Stately inspector</title>
<style>*{margin:0;padding:0}html,body{height:100%}iframe{width:100%;height:100%;border:none}</style>
</head><body><iframe id="inspector" src="${STATELY_INSPECTOR}"></iframe>
<script>
const inspectorOrigin = new URL('${STATELY_INSPECTOR}').origin;
const frame = document.getElementById('inspector');
const token = new URLSearchParams(location.hash.slice(1)).get('token');
const waiting = [];
let connected = false;
window.addEventListener('message', (e) => {
  if (e.origin !== inspectorOrigin || !e.data || e.data.type !== '@statelyai.connected') return;
  connected = true;
  for (const event of waiting.splice(0)) frame.contentWindow.postMessage(event, inspectorOrigin);
});
const ws = new WebSocket((location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/' +
  (token ? '?access_token=' + encodeURIComponent(token) : ''));
ws.onmessage = (message) => {
  const event = JSON.parse(message.data);
  if (connected) frame.contentWindow.postMessage(event, inspectorOrigin);
  else if (waiting.push(event) > 1000) waiting.shift();
};
ws.onclose = (e) => { if (e.code === 1006) document.title = 'tx-tracker: relay refused (add #token=<API_TOKEN>)'; };
</script></body></html>`;
