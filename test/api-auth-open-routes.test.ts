import { request } from 'node:http';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { type TestApi, startTestApi } from './helpers/api.js';

const TOKEN = 'open-routes-token-0123456789';

/** A request with the path sent as written (fetch would normalize it first). */
function raw(
  url: string,
  method: string,
  path: string,
  headers: Record<string, string> = {},
): Promise<{ status: number; body: string }> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const req = request({ hostname, port, method, path, headers }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode!, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

let api: TestApi;
beforeAll(async () => {
  api = await startTestApi({ server: { apiToken: TOKEN } });
});
afterAll(() => api.stop());

// Express matches routes case-insensitively and with or without one trailing slash.
const OPEN = [
  '/healthz',
  '/healthz/',
  '/HEALTHZ',
  '/Healthz/',
  '/healthz?probe=1',
  '/readyz/',
  '/READYZ',
  '/inspect/ui/',
  '/INSPECT/UI',
];
const PROTECTED = [
  '/healthz//',
  '//healthz',
  '/%68ealthz',
  '/healthz%2F',
  '/healthz/x',
  '/trackers',
  '/TRACKERS',
  '/trackers/',
  '/metrics/',
  '/METRICS',
  '/inspect',
  '/Inspect/',
  '/openapi.json/',
  '/events/',
];

it('regression: every spelling Express routes to /healthz, /readyz or /inspect/ui is open, and only those (no /healthz/ or /HEALTHZ behind the token)', async () => {
  for (const path of OPEN) {
    const open = await raw(api.url, 'GET', path);
    const authed = await raw(api.url, 'GET', path, { authorization: `Bearer ${TOKEN}` });
    expect([path, open.status]).toEqual([path, 200]);
    // The same route answered, token or not.
    expect(open.body.slice(0, 40)).toBe(authed.body.slice(0, 40));
  }
  for (const path of PROTECTED) {
    const res = await raw(api.url, 'GET', path);
    expect([path, res.status, (JSON.parse(res.body) as { error: { code: string } }).error.code]).toEqual([
      path,
      401,
      'unauthorized',
    ]);
  }
});

it('HEAD and OPTIONS on an open route are open in every spelling; OPTIONS elsewhere needs the token', async () => {
  expect((await raw(api.url, 'HEAD', '/HEALTHZ/')).status).toBe(200);
  const options = await raw(api.url, 'OPTIONS', '/Healthz/');
  expect(options.status).toBe(204);
  expect((await raw(api.url, 'OPTIONS', '/trackers')).status).toBe(401);
  expect((await raw(api.url, 'OPTIONS', '/TRACKERS/', { authorization: `Bearer ${TOKEN}` })).status).toBe(204);
});
