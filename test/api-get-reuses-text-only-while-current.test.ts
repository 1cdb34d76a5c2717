import { afterAll, beforeAll, expect, it } from 'vitest';
import { type TestApi, hashOf, startTestApi } from './helpers/api.js';

let api: TestApi;
beforeAll(async () => {
  api = await startTestApi({ system: { defaultConfirmations: 5, faultInjection: true } });
});
afterAll(() => api.stop());

it('GET /trackers/:id never answers a stale text: a change, a new head or a restart shows at once', async () => {
  const id = hashOf(0x9e7);
  expect((await api.call('POST', '/trackers', { txHash: id })).status).toBe(201);
  const first = await api.call('GET', `/trackers/${id}`);
  expect(first.headers.get('content-type')).toBe('application/json; charset=utf-8');
  expect(first.json).toMatchObject({ id, state: 'pending', confirmations: 0 });
  // The same text again while nothing moved, and the same as the tracker's view.
  expect((await api.call('GET', `/trackers/${id}`)).text).toBe(first.text);
  expect(first.json).toEqual(api.system.peek(id));

  // A change of the tracker.
  api.system.deliver(id, { type: 'TX_MINED', blockNumber: 100, blockHash: hashOf(100), status: 'success', head: 100 });
  expect((await api.call('GET', `/trackers/${id}`)).json).toMatchObject({ state: 'confirming', confirmations: 1 });

  // A head that wakes no tracker (its snapshot stays the same object) still moves its confirmations.
  expect(api.system.newHead(102)).toBe(0);
  expect((await api.call('GET', `/trackers/${id}`)).json).toMatchObject({ state: 'confirming', confirmations: 3 });
  expect((await api.call('GET', `/trackers/${id}`)).json).toEqual(api.system.peek(id));

  // A crash: the restarted tracker is another actor, with its count of restarts.
  expect((await api.call('POST', `/trackers/${id}/events`, { type: 'CRASH' })).status).toBe(202);
  expect((await api.call('GET', `/trackers/${id}`)).json).toMatchObject({ state: 'confirming', restarts: 1 });
});
