import { connect as tcpConnect, createServer } from 'node:net';
import { networkInterfaces } from 'node:os';
import { WebSocket } from 'ws';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { parseConfig } from '../src/config.js';
import { silentLogger } from '../src/runtime/logger.js';
import { type Service, startService } from '../src/service.js';
import { hashOf, waitFor } from './helpers/api.js';

const TOKEN = 'relay-token-0123456789abcdef';

async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const probe = createServer().listen(0, '127.0.0.1', () => {
      const { port } = probe.address() as { port: number };
      probe.close(() => resolve(port));
    });
  });
}

/** Open a WebSocket; resolves with it once open, or with the HTTP status the upgrade was refused with. */
function open(url: string, headers: Record<string, string> = {}): Promise<WebSocket | number> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { headers });
    ws.once('open', () => resolve(ws));
    ws.once('unexpected-response', (_req, res) => {
      resolve(res.statusCode ?? 0);
      res.resume();
    });
    ws.once('error', reject);
  });
}

let service: Service;
let relayPort: number;
beforeAll(async () => {
  relayPort = await freePort();
  const config = parseConfig({
    PORT: '0',
    HOST: '127.0.0.1',
    API_TOKEN: TOKEN,
    INSPECT: 'relay-',
    INSPECT_PORT: String(relayPort),
    DATABASE_URL: 'memory:',
    // A node nobody answers at: the watcher retries in the background, the API serves meanwhile
    // (the chain's id is configured: without it the start would need the node's answer).
    CHAIN_LOCAL_RPC_URL: 'http://127.0.0.1:9',
    CHAIN_LOCAL_ID: '31337',
  });
  service = await startService(config, silentLogger);
});
afterAll(() => service.stop());

it('regression: the inspector relay listens on HOST only, not on every interface', async () => {
  expect(service.inspectorRelay!.address).toMatchObject({ address: '127.0.0.1', port: relayPort });
  const external = Object.values(networkInterfaces())
    .flat()
    .find((net) => net && net.family === 'IPv4' && !net.internal)?.address;
  if (external) {
    const refused = await new Promise<string>((resolve) => {
      const socket = tcpConnect(relayPort, external, () => {
        socket.destroy();
        resolve('connected');
      });
      socket.once('error', (error: NodeJS.ErrnoException) => resolve(error.code ?? 'error'));
    });
    expect(refused).toBe('ECONNREFUSED');
  }
});

it('regression: with API_TOKEN the relay refuses WebSocket clients without the token (401), and streams to those with it', async () => {
  const url = `ws://127.0.0.1:${relayPort}`;
  expect(await open(url)).toBe(401);
  expect(await open(url, { authorization: 'Bearer wrong-token-0123456789' })).toBe(401);
  expect(await open(`${url}/?access_token=wrong`)).toBe(401);
  // A page of another site in the user's browser may not connect, token or not.
  expect(await open(`${url}/?access_token=${TOKEN}`, { origin: 'https://evil.example' })).toBe(403);

  const withHeader = await open(url, { authorization: `Bearer ${TOKEN}` });
  const withQuery = await open(`${url}/?access_token=${TOKEN}`, { origin: `http://127.0.0.1:${relayPort}` });
  expect(withHeader).toBeInstanceOf(WebSocket);
  expect(withQuery).toBeInstanceOf(WebSocket);
  const heard: Array<{ type: string; name?: string }> = [];
  (withHeader as WebSocket).on('message', (data) =>
    heard.push(JSON.parse(String(data)) as { type: string; name?: string }),
  );

  // The service itself streams to the relay with the token.
  const res = await fetch(`${service.server.url}/trackers`, {
    method: 'POST',
    headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
    body: JSON.stringify({ txHash: hashOf(1), id: 'relay-1' }),
  });
  expect(res.status).toBe(201);
  await waitFor('the tracker on the relay', () =>
    heard.some((m) => m.type === '@xstate.actor' && m.name === 'relay-1') ? true : undefined,
  );
  (withHeader as WebSocket).close();
  (withQuery as WebSocket).close();
});

it('serves its page without the token, and the page holds no secret', async () => {
  const page = await fetch(service.inspectorRelay!.url);
  expect(page.status).toBe(200);
  const html = await page.text();
  expect(html).toContain('stately.ai/inspect');
  expect(html).not.toContain(TOKEN);
  expect(service.where.inspector).not.toContain(TOKEN);
});
