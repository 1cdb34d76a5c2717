import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type WebhookApi, startWebhookApi } from './helpers/webhooks.js';
import { waitUntil } from './support/wait.js';
import { type Receiver, startReceiver } from './support/webhook-receiver.js';

describe('webhooks: an endpoint that never answers does not slow another', () => {
  let api: WebhookApi;
  let dead: Receiver;
  let live: Receiver;

  beforeAll(async () => {
    dead = await startReceiver(() => 'hang');
    live = await startReceiver(() => 204);
    // The timeout is far longer than the test: the dead endpoint's requests stay open throughout.
    api = await startWebhookApi({ dispatcher: { concurrency: 2, timeoutMs: 120_000 } });
  });
  afterAll(async () => {
    await api?.stop();
    await Promise.all([dead?.close(), live?.close()]);
  });

  it('the live endpoint gets every change while the dead one holds all of its own requests open', async () => {
    const deadEndpoint = await api.call('POST', '/webhooks', { url: dead.url });
    const liveEndpoint = await api.call('POST', '/webhooks', { url: live.url });
    expect([deadEndpoint.status, liveEndpoint.status]).toEqual([201, 201]);
    for (let i = 1; i <= 30; i++) await api.startTracker(i);

    await waitUntil(() => live.accepted().size === 30, 'the live endpoint to accept 30 changes', 20_000);
    // The dead lane is full (its concurrency) and nothing of it has come back.
    expect(dead.received).toHaveLength(2);
    expect(dead.received.every((r) => r.status === null)).toBe(true);
    const deadId = (deadEndpoint.json as { id: string }).id;
    const pending = (await api.call('GET', `/webhooks/${deadId}/deliveries?status=pending&limit=1000`)).json as {
      items: Array<{ attempts: unknown[] }>;
    };
    expect(pending.items).toHaveLength(30);
    expect(pending.items.every((d) => d.attempts.length === 0)).toBe(true);
    expect(api.dispatcher.inflight).toBe(2);
  });
});
