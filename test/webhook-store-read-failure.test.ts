import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SqliteStore } from '../src/store/sqlite.js';
import { type WebhookApi, startWebhookApi } from './helpers/webhooks.js';
import { waitUntil } from './support/wait.js';
import { type Receiver, startReceiver } from './support/webhook-receiver.js';

const error = (json: unknown) => (json as { error: { code: string; message: string } }).error;

// The tables are renamed away on the writer's connection: the reading connection then fails every
// query on them with a real SQLite error ("no such table"), as a damaged file would.
describe('webhook tables that cannot be read: 503 store_unavailable, the service stays up', () => {
  let api: WebhookApi;
  let receiver: Receiver;
  beforeAll(async () => {
    receiver = await startReceiver(() => 204);
    api = await startWebhookApi();
  });
  afterAll(async () => {
    await api?.stop();
    await receiver?.close();
  });

  it('regression: failed reads on the webhook tables answered 500; now 503, and delivery resumes after', async () => {
    const created = await api.call('POST', '/webhooks', { url: receiver.url });
    expect(created.status).toBe(201);
    const { id } = created.json as { id: string };
    await api.startTracker(1, 'before-outage');
    await waitUntil(() => receiver.accepted().size === 1, 'the receiver to get it');
    const store = api.store as SqliteStore;

    await store.writeInCommit([
      ['ALTER TABLE webhook_endpoints RENAME TO webhook_endpoints_away', []],
      ['ALTER TABLE webhook_deliveries RENAME TO webhook_deliveries_away', []],
    ]);
    for (const [method, path, body] of [
      ['GET', '/webhooks', undefined],
      ['GET', `/webhooks/${id}`, undefined],
      ['PATCH', `/webhooks/${id}`, { enabled: true }],
      ['DELETE', `/webhooks/${id}`, undefined],
      ['GET', `/webhooks/${id}/deliveries`, undefined],
      ['POST', `/webhooks/${id}/deliveries/1/retry`, undefined],
    ] as const) {
      const res = await api.call(method, path, body);
      expect([res.status, error(res.json).code], `${method} ${path}`).toEqual([503, 'store_unavailable']);
      expect(error(res.json).message).toBe('the webhook tables could not be read');
    }
    // The rest of the service answers meanwhile; the dispatcher, polling every 20 ms throughout,
    // logs its failed reads and carries on (a throw would have ended this process).
    expect((await api.call('GET', '/trackers/before-outage')).status).toBe(200);

    await store.writeInCommit([
      ['ALTER TABLE webhook_endpoints_away RENAME TO webhook_endpoints', []],
      ['ALTER TABLE webhook_deliveries_away RENAME TO webhook_deliveries', []],
    ]);
    expect((await api.call('GET', `/webhooks/${id}`)).status).toBe(200);
    await api.startTracker(2, 'after-outage');
    await waitUntil(() => receiver.accepted().size === 2, 'the receiver to get it');
    const trackers = [...receiver.accepted().values()].map((p) => p.data.trackerId);
    expect(trackers).toEqual(['before-outage', 'after-outage']);
  });
});
