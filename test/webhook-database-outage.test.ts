import { afterAll, beforeAll, expect, it } from 'vitest';
import { type WebhookApi, startWebhookApi } from './helpers/webhooks.js';
import { type PostgresServer, describeWithPostgres, startPostgres } from './support/postgres.js';
import { waitUntil } from './support/wait.js';
import { type Receiver, startReceiver } from './support/webhook-receiver.js';

/** A metric's value in a `/metrics` text, or undefined. */
const metric = (text: string, name: string): number | undefined => {
  const line = text.split('\n').find((l) => l.startsWith(`${name} `));
  return line === undefined ? undefined : Number(line.split(' ')[1]);
};

describeWithPostgres('webhooks while PostgreSQL is down: the dispatcher backs off, says so, and carries on', () => {
  let pg: PostgresServer;
  let api: WebhookApi;
  let receiver: Receiver;
  beforeAll(async () => {
    pg = await startPostgres();
    receiver = await startReceiver(() => 204);
    api = await startWebhookApi({
      databaseUrl: await pg.createDatabase(),
      dispatcher: { pollMs: 20, maxBackoffMs: 400 },
    });
  }, 60_000);
  afterAll(async () => {
    await api?.stop().catch(() => undefined);
    await receiver?.close();
    await pg?.close();
  });

  it('fails its reads while the server is stopped without ending the process, counts them in /metrics, and delivers again once it is back', async () => {
    const created = await api.call('POST', '/webhooks', { url: receiver.url });
    expect(created.status).toBe(201);
    await api.startTracker(1, 'before');
    await waitUntil(() => receiver.accepted().size === 1, 'the first delivery');
    expect(api.dispatcher.health()).toMatchObject({ storeErrors: 0, failingSince: null });

    await pg.stop();
    const down = await waitUntil(() => {
      const health = api.dispatcher.health();
      return health.storeErrors >= 3 ? health : undefined;
    }, 'failed reads');
    expect(down.failingSince).not.toBeNull();
    expect(down.lastError).toMatch(/could not be read/);
    // Backing off: a look every 20 ms would have made far more failures in this time.
    const errorsBefore = down.storeErrors;
    await new Promise((resolve) => setTimeout(resolve, 1000));
    expect(api.dispatcher.health().storeErrors - errorsBefore).toBeLessThan(10);
    const metrics = await api.call('GET', '/metrics');
    expect(metrics.status).toBe(200);
    expect(metric(metrics.text, 'tx_tracker_webhook_store_errors_total')).toBeGreaterThanOrEqual(errorsBefore);
    expect(metric(metrics.text, 'tx_tracker_webhook_store_failing_seconds')).toBeGreaterThan(0);
    // The API says the store is unavailable, not a 500.
    const listing = await api.call('GET', '/webhooks');
    expect(listing.status).toBe(503);

    await pg.start();
    await waitUntil(
      async () =>
        (await api.call('POST', '/trackers', { txHash: `0x${'2'.repeat(64)}`, id: 'after' })).status === 201 ||
        undefined,
      'the store to take a tracker again',
    );
    await waitUntil(() => receiver.accepted().size === 2, 'the delivery of the change made after the outage');
    expect([...receiver.accepted().values()].map((p) => p.data.trackerId)).toEqual(['before', 'after']);
    await waitUntil(() => api.dispatcher.health().failingSince === null || undefined, 'the dispatcher to recover');
    const after = await api.call('GET', '/metrics');
    expect(metric(after.text, 'tx_tracker_webhook_store_failing_seconds')).toBe(0);
  }, 60_000);
});
