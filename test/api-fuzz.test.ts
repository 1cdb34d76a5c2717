import fc from 'fast-check';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { z } from 'zod';
import { ApiErrorBody, BatchResponse, Tracker, TrackerPage } from '../src/api/schemas.js';
import { type TestApi, hashOf, startTestApi } from './helpers/api.js';

let api: TestApi;
const TOKEN = 'fuzz-token-0123456789abcdef';
const auth = { authorization: `Bearer ${TOKEN}` };
const CONTROL = Array.from({ length: 20 }, (_, i) => ({
  id: `control-${i}`,
  txHash: hashOf(0xc0 + i),
  confirmations: 1 + i,
}));
let controlBefore: unknown[];

beforeAll(async () => {
  api = await startTestApi({ system: { faultInjection: true }, server: { apiToken: TOKEN } });
  const res = await api.call('POST', '/trackers/batch', { trackers: CONTROL }, auth);
  expect(res.status).toBe(200);
  controlBefore = await Promise.all(
    CONTROL.map(async (c) => (await api.call('GET', `/trackers/${c.id}`, undefined, auth)).json),
  );
});
afterAll(() => api.stop());

const hexChar = fc.constantFrom(...'0123456789abcdefABCDEF');
const hash = fc.oneof(
  fc.array(hexChar, { minLength: 64, maxLength: 64 }).map((chars) => `0x${chars.join('')}`),
  fc.array(hexChar, { minLength: 0, maxLength: 70 }).map((chars) => `0x${chars.join('')}`),
  fc.string(),
);
const fuzzId = fc.oneof(
  fc.constantFrom('fz-1', 'fz-2', 'fz-3', 'Fz_4', '0xAB'),
  fc.stringMatching(/^[A-Za-z0-9_.:-]{1,20}$/),
  fc.string({ maxLength: 140 }),
);
const trackerBody = fc.record(
  {
    txHash: hash,
    id: fuzzId,
    confirmations: fc.oneof(fc.integer({ min: -5, max: 1200 }), fc.double(), fc.string()),
    extra: fc.jsonValue(),
  },
  { requiredKeys: [] },
);
const eventBody = fc.oneof(
  fc.record(
    { type: fc.constantFrom('RECHECK', 'CRASH', 'TX_MINED', 'STOP', 'GIVE_UP', 'NOPE', '') },
    { requiredKeys: ['type'] },
  ),
  fc.record({ type: fc.constantFrom('RECHECK'), more: fc.jsonValue() }),
  fc.jsonValue(),
);
const body = fc.oneof(
  trackerBody,
  fc.record({ trackers: fc.array(fc.oneof(trackerBody, fc.jsonValue()), { maxLength: 30 }) }),
  eventBody,
  fc.jsonValue().map((v) => JSON.stringify(v)),
  fc.string({ maxLength: 200 }),
  fc
    .constantFrom(1024 * 1024 + 10, 200_000)
    .map((size) => JSON.stringify({ txHash: hashOf(1), pad: 'x'.repeat(size) })),
  fc.constant(undefined),
);
const pathSegment = fuzzId.map((id) => encodeURIComponent(id));
const path = fc.oneof(
  fc.constant('/trackers'),
  fc.constant('/trackers/batch'),
  pathSegment.map((id) => `/trackers/${id}`),
  pathSegment.map((id) => `/trackers/${id}/events`),
  fc
    .tuple(
      fc.constantFrom('pending', 'stopped', 'bogus', ''),
      fc.integer({ min: -2, max: 2000 }),
      fc.string({ maxLength: 12 }),
    )
    .map(([state, limit, cursor]) => `/trackers?state=${state}&limit=${limit}&cursor=${encodeURIComponent(cursor)}`),
  fc.constantFrom(
    '/healthz',
    '/readyz',
    '/openapi.json',
    '/metrics',
    '/inspect',
    '/',
    '/trackers/',
    '//trackers',
    '/%E0%A4%A',
  ),
  fc.webPath(),
);
const headerValue = fc.stringMatching(/^[\x20-\x7e]{0,60}$/);
const headers = fc.record(
  {
    authorization: fc.oneof(fc.constant(auth.authorization), fc.constant(auth.authorization), headerValue),
    'content-type': fc.oneof(
      fc.constantFrom(
        'application/json',
        'text/plain',
        'application/x-www-form-urlencoded',
        'application/json; charset=utf-16',
      ),
      headerValue,
    ),
    'content-encoding': fc.constantFrom('gzip', 'identity', 'br', 'zz'),
    'x-request-id': headerValue,
    'last-event-id': headerValue,
  },
  { requiredKeys: [] },
);
const method = fc.constantFrom('GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS', 'HEAD');

const SUCCESS: Record<string, z.ZodType> = { tracker: Tracker.strict(), page: TrackerPage, batch: BatchResponse };
function successSchema(method: string, path: string): z.ZodType | undefined {
  // The client resolves dot segments (`/trackers/.` is `/trackers/`), and Express matches a trailing slash.
  const bare = new URL(`http://x${path}`).pathname.replace(/(.)\/+$/, '$1');
  if (bare === '/trackers/batch' && method === 'POST') return SUCCESS.batch;
  if (bare === '/trackers') return method === 'GET' ? SUCCESS.page : SUCCESS.tracker;
  if (bare.startsWith('/trackers/')) return SUCCESS.tracker;
  return undefined;
}

it('answers every fuzzed request with contract JSON, never crashes, and leaves the control trackers intact', async () => {
  await fc.assert(
    fc.asyncProperty(method, path, body, headers, async (m, p, b, h) => {
      if (p.split('?')[0] === '/events') return; // a stream; covered by its own tests
      const withBody = !['GET', 'HEAD'].includes(m) && b !== undefined;
      const res = await fetch(`${api.url}${p}`, {
        method: m,
        headers: h,
        ...(withBody ? { body: typeof b === 'string' ? b : JSON.stringify(b) } : {}),
      });
      const text = await res.text();
      expect(text).not.toMatch(/\n\s+at |<html|<!DOCTYPE/i);
      expect(res.status).toBeLessThan(500);
      if (m === 'HEAD' || res.status === 204 || p === '/metrics' || p.startsWith('/inspect/ui')) return;
      expect(res.headers.get('content-type')).toMatch(/^application\/json/);
      const json: unknown = JSON.parse(text);
      if (res.status >= 400) {
        ApiErrorBody.parse(json);
        return;
      }
      const schema = successSchema(m, p);
      if (schema) schema.parse(json);
    }),
    { numRuns: 400 },
  );

  expect((await api.call('GET', '/healthz')).status).toBe(200);
  const controlAfter = await Promise.all(
    CONTROL.map(async (c) => (await api.call('GET', `/trackers/${c.id}`, undefined, auth)).json),
  );
  expect(controlAfter).toEqual(controlBefore);
});
