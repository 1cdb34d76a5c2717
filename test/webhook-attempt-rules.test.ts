import { afterEach, describe, expect, it } from 'vitest';
import { type WebhookApi, startWebhookApi } from './helpers/webhooks.js';
import { waitUntil } from './support/wait.js';
import { type Receiver, startReceiver } from './support/webhook-receiver.js';

interface DeliveryJson {
  status: string;
  attempts: Array<{ statusCode: number | null; error: string | null }>;
}

describe('webhooks: what one attempt does', () => {
  let api: WebhookApi | undefined;
  const receivers: Receiver[] = [];
  afterEach(async () => {
    await api?.stop();
    await Promise.all(receivers.splice(0).map((r) => r.close()));
  });
  const firstDelivery = async (endpointId: string, done: (d: DeliveryJson) => boolean) =>
    waitUntil(async () => {
      const page = (await api!.call('GET', `/webhooks/${endpointId}/deliveries`)).json as { items: DeliveryJson[] };
      return page.items[0] && done(page.items[0]) ? page.items[0] : undefined;
    }, 'the delivery');

  it('honours Retry-After over the schedule', async () => {
    const receiver = await startReceiver((n) => (n === 0 ? { status: 429, headers: { 'retry-after': '1' } } : 204));
    receivers.push(receiver);
    api = await startWebhookApi({ dispatcher: { retryScheduleMs: [0, 20, 20] } });
    const { id } = (await api.call('POST', '/webhooks', { url: receiver.url })).json as { id: string };
    await api.startTracker(1);
    await firstDelivery(id, (d) => d.status === 'succeeded');
    const [first, second] = receiver.received;
    expect(second!.id).toBe(first!.id);
    // The schedule said 20 ms; the receiver asked for a second.
    expect(second!.at - first!.at).toBeGreaterThanOrEqual(990);
  });

  it('does not follow a redirect: a 3xx is a failed attempt and its Location gets nothing', async () => {
    const target = await startReceiver(() => 204);
    const redirecting = await startReceiver(() => ({ status: 307, headers: { location: target.url } }));
    receivers.push(target, redirecting);
    api = await startWebhookApi({ dispatcher: { retryScheduleMs: [0] } });
    const { id } = (await api.call('POST', '/webhooks', { url: redirecting.url })).json as { id: string };
    await api.startTracker(1);
    const delivery = await firstDelivery(id, (d) => d.status === 'failed');
    expect(delivery.attempts).toEqual([
      expect.objectContaining({
        statusCode: 307,
        error: expect.stringMatching(/redirects are not followed/) as unknown,
      }),
    ]);
    expect(target.received).toEqual([]);
  });

  it('reads at most the response cap: an answer that never ends does not hold the attempt until its timeout', async () => {
    const receiver = await startReceiver(() => ({ status: 500, body: 'endless' }));
    receivers.push(receiver);
    api = await startWebhookApi({ dispatcher: { retryScheduleMs: [0], timeoutMs: 600_000, maxResponseBytes: 4096 } });
    const { id } = (await api.call('POST', '/webhooks', { url: receiver.url })).json as { id: string };
    await api.startTracker(1);
    const delivery = await firstDelivery(id, (d) => d.status === 'failed');
    expect(delivery.attempts[0]).toMatchObject({
      statusCode: 500,
      error: expect.stringMatching(/^HTTP 500: x+$/) as unknown,
    });
  });

  it('times out an endpoint that does not answer within the timeout', async () => {
    const receiver = await startReceiver(() => 'hang');
    receivers.push(receiver);
    api = await startWebhookApi({ dispatcher: { retryScheduleMs: [0], timeoutMs: 200 } });
    const { id } = (await api.call('POST', '/webhooks', { url: receiver.url })).json as { id: string };
    await api.startTracker(1);
    const delivery = await firstDelivery(id, (d) => d.status === 'failed');
    expect(delivery.attempts[0]).toMatchObject({ statusCode: null, error: 'no answer within 200 ms' });
  });
});
