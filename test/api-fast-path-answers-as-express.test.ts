import { type Server, createServer, request } from 'node:http';
import type { AddressInfo } from 'node:net';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fastPath } from '../src/api/fast-path.js';
import { silentLogger } from '../src/runtime/logger.js';
import { type ApiResponse, type TestApi, hashOf, startTestApi } from './helpers/api.js';

const TOKEN = 'fast-path-token-of-at-least-32-characters';
let api: TestApi;
beforeAll(async () => {
  api = await startTestApi({ server: { apiToken: TOKEN } });
});
afterAll(() => api.stop());

const auth = { authorization: `Bearer ${TOKEN}` };
/** Express routes case-insensitively, the fast path takes only the exact path: `/Trackers` is Express's. */
const viaExpress = (path: string) => path.replace('/trackers', '/Trackers');
const VARYING_HEADERS = new Set(['date', 'x-request-id']);
const VARYING_FIELDS = ['id', 'txHash', 'createdAt', 'updatedAt'];

function shape(response: ApiResponse) {
  const headers = [...response.headers].filter(([name]) => !VARYING_HEADERS.has(name));
  const json = response.json as Record<string, unknown> | undefined;
  const body =
    json && typeof json === 'object' && 'txHash' in json
      ? Object.fromEntries(Object.entries(json).filter(([key]) => !VARYING_FIELDS.includes(key)))
      : response.text;
  return { status: response.status, headers, body, requestId: response.headers.has('x-request-id') };
}

/** The same request to both paths; bodies may differ only in the tracker's hash and times. */
async function both(method: string, path: string, body?: (n: number) => unknown, headers = {}) {
  const n = Math.floor(Math.random() * 2 ** 40);
  const fast = await api.call(method, path, body?.(n), { ...auth, ...headers });
  const slow = await api.call(method, viaExpress(path), body?.(n + 1), { ...auth, ...headers });
  expect(shape(fast)).toEqual(shape(slow));
  return fast;
}

describe('POST /trackers and GET /trackers/:id answer the same before Express as through it', () => {
  it('creates, finds again and reads a live tracker', async () => {
    expect((await both('POST', '/trackers', (n) => ({ txHash: hashOf(n), confirmations: 3 }))).status).toBe(201);
    const txHash = hashOf(0xfa57);
    expect((await api.call('POST', '/trackers', { txHash }, auth)).status).toBe(201);
    const again = await api.call('POST', '/trackers', { txHash: txHash.toUpperCase().replace('0X', '0x') }, auth);
    const againExpress = await api.call('POST', '/Trackers', { txHash }, auth);
    expect([again.status, againExpress.status]).toEqual([200, 200]);
    expect(again.text).toBe(againExpress.text);
    const read = await api.call('GET', `/trackers/${txHash.toUpperCase().replace('0X', '0x')}`, undefined, auth);
    const readExpress = await api.call('GET', `/Trackers/${txHash}`, undefined, auth);
    expect(read.status).toBe(200);
    expect(shape(read)).toEqual(shape(readExpress));
    expect(read.text).toBe(readExpress.text);
  });

  it('answers every kind of bad body with the same error', async () => {
    const cases: Array<[string, number, string]> = [
      ['{"txHash":', 400, 'invalid_json'],
      ['null', 400, 'invalid_body'],
      ['[]', 400, 'invalid_body'],
      ['"0x12"', 400, 'invalid_body'],
      ['{"txHash":"0x12"}', 400, 'invalid_tx_hash'],
      [`{"txHash":"${hashOf(1)}","extra":1}`, 400, 'invalid_body'],
      [`{"txHash":"${hashOf(1)}","confirmations":0}`, 400, 'invalid_confirmations'],
    ];
    for (const [body, status, code] of cases) {
      const fast = await both('POST', '/trackers', () => body);
      expect([fast.status, (fast.json as { error: { code: string } }).error.code]).toEqual([status, code]);
    }
  });

  it('reads a body as Express reads it: any content type, a leading BOM, UTF-8 only', async () => {
    const json = (n: number) => JSON.stringify({ txHash: hashOf(n) });
    expect((await both('POST', '/trackers', json, { 'content-type': 'text/plain' })).status).toBe(201);
    expect((await both('POST', '/trackers', (n) => `\uFEFF${json(n)}`)).status).toBe(201);
    const utf8 = { 'content-type': 'application/json; charset=UTF-8' };
    expect((await both('POST', '/trackers', json, utf8)).status).toBe(201);
    const latin = { 'content-type': 'application/json; charset=latin1' };
    expect((await both('POST', '/trackers', json, latin)).status).toBe(415);
  });

  it('answers an id taken by another hash with 409, and a missing token with 401', async () => {
    const id = `order-${Math.floor(Math.random() * 1e9)}`;
    expect((await api.call('POST', '/trackers', { id, txHash: hashOf(7) }, auth)).status).toBe(201);
    const fast = await api.call('POST', '/trackers', { id, txHash: hashOf(8) }, auth);
    const slow = await api.call('POST', '/Trackers', { id, txHash: hashOf(8) }, auth);
    expect(fast.status).toBe(409);
    expect(shape(fast)).toEqual(shape(slow));
    const anonymous = await api.call('POST', '/trackers', { txHash: hashOf(9) });
    expect(anonymous.status).toBe(401);
    expect((await api.call('GET', `/trackers/${id}`)).status).toBe(401);
  });

  it('counts fast answers in the metrics under their route', async () => {
    const before = await routeCount('/trackers', '201');
    await api.call('POST', '/trackers', { txHash: hashOf(Math.floor(Math.random() * 2 ** 40)) }, auth);
    expect(await routeCount('/trackers', '201')).toBe(before + 1);
  });
});

async function routeCount(route: string, status: string): Promise<number> {
  const text = (await api.call('GET', '/metrics', undefined, auth)).text;
  const line = text
    .split('\n')
    .find(
      (l) =>
        l.startsWith('tx_tracker_http_requests_total{') &&
        l.includes(`route="${route}"`) &&
        l.includes(`status="${status}"`) &&
        l.includes('method="POST"'),
    );
  return line ? Number(line.split(' ').at(-1)) : 0;
}

describe('the fast path takes only what Express would answer the same way', () => {
  let server: Server;
  let url: string;
  let closing = false;
  beforeAll(async () => {
    const fast = fastPath({
      system: api.system,
      logger: silentLogger,
      begin: () => 'req',
      closing: () => closing,
      authorized: (token) => token === TOKEN,
    });
    // Whatever the fast path passes on gets 599 here.
    server = createServer((req, res) => {
      if (fast(req, res)) return;
      req.resume();
      res.statusCode = 599;
      res.end();
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

  function send(method: string, path: string, body?: Buffer, headers: Record<string, string> = {}): Promise<number> {
    return new Promise((resolve, reject) => {
      const req = request(`${url}${path}`, { method, headers: { ...auth, ...headers } }, (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode!));
      });
      req.on('error', reject);
      if (body) req.write(body);
      req.end();
    });
  }

  it('passes on what it does not take', async () => {
    const live = hashOf(0xbeef);
    await api.system.start(undefined, { txHash: live });
    const json = (n: number) => Buffer.from(JSON.stringify({ txHash: hashOf(n) }));
    const length = (body: Buffer) => ({ 'content-length': String(body.length) });

    expect(await send('GET', `/trackers/${live}`)).toBe(200);
    expect(await send('GET', `/trackers/${live}?x=1`)).toBe(200);
    expect(await send('POST', '/trackers', json(0xf1), length(json(0xf1)))).toBe(201);

    expect(await send('GET', `/trackers/${hashOf(0xdead)}`)).toBe(599); // not live: the store answers
    expect(await send('HEAD', `/trackers/${live}`)).toBe(599);
    expect(await send('GET', `/trackers/${live}/history`)).toBe(599);
    expect(await send('GET', `/trackers/a%20b`)).toBe(599);
    expect(await send('POST', '/trackers', json(0xf2), { 'transfer-encoding': 'chunked' })).toBe(599);
    const zipped = gzipSync(json(0xf3));
    expect(await send('POST', '/trackers', zipped, { ...length(zipped), 'content-encoding': 'gzip' })).toBe(599);
    expect(await send('POST', '/trackers', Buffer.alloc(0), { 'content-length': '0' })).toBe(599);
    expect(await send('POST', '/trackers/batch', json(0xf4), length(json(0xf4)))).toBe(599);
    expect(await send('POST', '/trackers', json(0xf5), { ...length(json(0xf5)), authorization: 'Bearer wrong' })).toBe(
      599,
    );
    closing = true;
    expect(await send('GET', `/trackers/${live}`)).toBe(599);
    closing = false;
  });

  it('regression: a throw in the fast path goes to Express instead of out of the request listener', async () => {
    const peekText = api.system.peekText.bind(api.system);
    api.system.peekText = () => {
      throw new Error('a bug in a view');
    };
    try {
      expect(await send('GET', `/trackers/${hashOf(0xbeef)}`)).toBe(599);
    } finally {
      api.system.peekText = peekText;
    }
    expect(await send('GET', `/trackers/${hashOf(0xbeef)}`)).toBe(200);
  });
});
