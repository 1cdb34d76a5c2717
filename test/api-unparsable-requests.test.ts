import { connect } from 'node:net';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { type TestApi, startTestApi } from './helpers/api.js';

/** Send bytes on a fresh connection; resolves with everything the server sent once it closes. */
function exchange(url: string, bytes: string): Promise<string> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), hostname, () => socket.write(bytes));
    let received = '';
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => (received += chunk));
    socket.on('end', () => resolve(received));
    socket.on('error', reject);
  });
}

function parse(response: string) {
  const [head, body] = response.split('\r\n\r\n', 2) as [string, string];
  const [statusLine, ...lines] = head.split('\r\n');
  const headers = Object.fromEntries(
    lines.map((line) => [line.slice(0, line.indexOf(':')).toLowerCase(), line.slice(line.indexOf(':') + 1).trim()]),
  );
  return { status: Number(statusLine!.split(' ')[1]), headers, body: JSON.parse(body) as unknown };
}

let api: TestApi;
beforeAll(async () => {
  api = await startTestApi({ server: { apiToken: 'unparsable-token-0123456789' } });
});
afterAll(() => api.stop());

it('regression: headers over the limit get 431 with a JSON error body, not an empty answer', async () => {
  const response = await exchange(
    api.url,
    `GET /healthz HTTP/1.1\r\nHost: x\r\nX-Padding: ${'a'.repeat(20_000)}\r\n\r\n`,
  );
  const { status, headers, body } = parse(response);
  expect(status).toBe(431);
  expect(headers['content-type']).toMatch(/^application\/json/);
  expect(headers.connection).toBe('close');
  expect(Number(headers['content-length'])).toBe(Buffer.byteLength(JSON.stringify(body)));
  expect(body).toMatchObject({ error: { code: 'headers_too_large', message: expect.stringMatching(/header/) } });
});

it('answers a request that is not HTTP with 400 bad_request JSON, and keeps serving', async () => {
  for (const bytes of [
    'NOT A REQUEST\r\n\r\n',
    'GET / HTTP/9.9\r\n\r\n',
    'GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n',
  ]) {
    const { status, headers, body } = parse(await exchange(api.url, bytes));
    expect([bytes, status]).toEqual([bytes, 400]);
    expect(headers['content-type']).toMatch(/^application\/json/);
    expect(body).toMatchObject({ error: { code: 'bad_request', message: expect.any(String) } });
  }
  expect((await api.call('GET', '/healthz')).status).toBe(200);
});
