import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Tracker } from '../src/api/schemas.js';
import { type TestApi, hashOf, startTestApi, waitFor } from './helpers/api.js';
import { openStream } from './helpers/sse.js';

let api: TestApi;
beforeAll(async () => {
  api = await startTestApi();
});
afterAll(() => api.stop());

// The chain watcher's verdicts (stuck-transactions.test.ts makes them on anvil) as HTTP clients see them.
describe('a stuck tracker over HTTP: stays pending, shows stuck, announced on /events', () => {
  it('GET shows stuck while it is, SSE sends each change, and stuck goes once it is mined', async () => {
    const stream = await openStream(`${api.url}/events?id=stuck-1`);
    await api.call('POST', '/trackers', { txHash: hashOf(1), id: 'stuck-1', confirmations: 2 });
    api.system.deliver('stuck-1', { type: 'TX_SEEN' });
    api.system.deliver('stuck-1', {
      type: 'TX_STUCK',
      reason: 'nonce_gap',
      detail: 'nonce 4 waits for nonce 3',
      blockNumber: 20,
    });

    const res = await api.call('GET', '/trackers/stuck-1');
    expect(res.status).toBe(200);
    const shown = Tracker.strict().parse(res.json);
    expect(shown).toMatchObject({
      state: 'pending',
      stuck: { reason: 'nonce_gap', since: 20, detail: 'nonce 4 waits for nonce 3' },
    });
    expect((await api.call('GET', '/trackers?state=pending')).json).toMatchObject({
      items: [{ id: 'stuck-1', stuck: { reason: 'nonce_gap' } }],
    });

    // Another reason: a change (since kept); the same reason again: none.
    api.system.deliver('stuck-1', { type: 'TX_STUCK', reason: 'not_included', detail: 'left out', blockNumber: 30 });
    api.system.deliver('stuck-1', { type: 'TX_STUCK', reason: 'not_included', detail: 'left out', blockNumber: 40 });
    api.system.deliver('stuck-1', {
      type: 'TX_MINED',
      blockNumber: 41,
      blockHash: hashOf(41),
      status: 'success',
      head: 41,
    });

    const frames = await waitFor('the mined change', () => {
      const all = stream.trackerFrames().map((f) => Tracker.strict().parse(f.data));
      return all.at(-1)?.state === 'confirming' ? all : undefined;
    });
    expect(frames.map((t) => [t.state, t.stuck?.reason ?? null, t.stuck?.since ?? null])).toEqual([
      ['pending', null, null],
      ['pending', null, null],
      ['pending', 'nonce_gap', 20],
      ['pending', 'not_included', 20],
      ['confirming', null, null],
    ]);
    expect((await api.call('GET', '/trackers/stuck-1')).json).not.toHaveProperty('stuck');
    await stream.close();
  });

  it('clients cannot send TX_STUCK or TX_UNSTUCK: they come from the chain watcher', async () => {
    await api.call('POST', '/trackers', { txHash: hashOf(2), id: 'stuck-2' });
    for (const type of ['TX_STUCK', 'TX_UNSTUCK']) {
      const res = await api.call('POST', '/trackers/stuck-2/events', { type });
      expect(res.status).toBe(400);
      expect(res.json).toMatchObject({ error: { code: 'event_not_allowed' } });
    }
  });

  it('the OpenAPI document describes stuck on the tracker', async () => {
    const doc = (await api.call('GET', '/openapi.json')).json as {
      components: { schemas: { Tracker: { properties: Record<string, unknown>; required: string[] } } };
    };
    const tracker = doc.components.schemas.Tracker;
    expect(tracker.required).not.toContain('stuck');
    expect(tracker.properties.stuck).toMatchObject({
      type: 'object',
      properties: {
        reason: { enum: ['fee_below_base_fee', 'nonce_gap', 'not_included'] },
        since: { type: 'integer' },
        detail: { type: 'string' },
      },
    });
  });
});
