import { afterEach, describe, expect, it } from 'vitest';
import { type WebhookApi, startWebhookApi } from './helpers/webhooks.js';
import { waitUntil } from './support/wait.js';
import { type Receiver, startReceiver } from './support/webhook-receiver.js';

interface EndpointJson {
  id: string;
  enabled: boolean;
  disabledReason: string | null;
  failingSince: string | null;
}
interface DeliveryJson {
  id: string;
  status: string;
  attempts: Array<{ statusCode: number | null; error: string | null }>;
}

describe('webhooks: endpoints that are gone or failing for long are disabled, and say why', () => {
  let api: WebhookApi | undefined;
  let receiver: Receiver | undefined;
  afterEach(async () => {
    await api?.stop();
    await receiver?.close();
  });

  const endpoint = async (id: string) => (await api!.call('GET', `/webhooks/${id}`)).json as EndpointJson;
  const deliveries = async (id: string, query = '') =>
    ((await api!.call('GET', `/webhooks/${id}/deliveries${query}`)).json as { items: DeliveryJson[] }).items;

  it('410 Gone disables the endpoint at once; the delivery is failed; PATCH enabled:true starts it again', async () => {
    let gone = true;
    receiver = await startReceiver(() => (gone ? 410 : 204));
    api = await startWebhookApi();
    const id = ((await api.call('POST', '/webhooks', { url: receiver.url })).json as EndpointJson).id;
    await api.startTracker(1);
    const disabled = await waitUntil(async () => {
      const e = await endpoint(id);
      return e.enabled ? undefined : e;
    }, 'the endpoint disabled');
    expect(disabled.disabledReason).toMatch(/410 Gone/);
    expect(receiver.received).toHaveLength(1);
    const [failed] = await deliveries(id);
    expect(failed).toMatchObject({ status: 'failed', attempts: [{ statusCode: 410 }] });

    // Disabled: a new change makes no delivery for it.
    await api.startTracker(2);
    await api.store.flush();
    expect(await deliveries(id)).toHaveLength(1);
    // A retry of a disabled endpoint's delivery is refused until it is enabled.
    const refused = await api.call('POST', `/webhooks/${id}/deliveries/${failed!.id}/retry`);
    expect(refused.status).toBe(409);
    expect((refused.json as { error: { code: string } }).error.code).toBe('endpoint_disabled');

    gone = false;
    const enabled = await api.call('PATCH', `/webhooks/${id}`, { enabled: true });
    expect(enabled.json).toMatchObject({ enabled: true, disabledReason: null, failingSince: null });
    const retried = await api.call('POST', `/webhooks/${id}/deliveries/${failed!.id}/retry`);
    expect(retried.status).toBe(202);
    await waitUntil(async () => (await deliveries(id))[0]?.status === 'succeeded', 'the retried delivery to succeed');
    expect(receiver.received.at(-1)!.id).toBe(receiver.received[0]!.id);
  });

  it('after the last attempt a delivery is failed and visible; the endpoint says since when it fails', async () => {
    receiver = await startReceiver(() => 503);
    api = await startWebhookApi({ dispatcher: { retryScheduleMs: [0, 20, 20], disableAfterMs: 60_000 } });
    const id = ((await api.call('POST', '/webhooks', { url: receiver.url })).json as EndpointJson).id;
    await api.startTracker(1);
    const [failed] = await waitUntil(async () => {
      const items = await deliveries(id, '?status=failed');
      return items.length > 0 ? items : undefined;
    }, 'the delivery failed after its schedule');
    expect(failed!.attempts.map((a) => a.statusCode)).toEqual([503, 503, 503]);
    expect(failed!.attempts[0]!.error).toMatch(/^HTTP 503/);
    const failing = await endpoint(id);
    expect(failing.enabled).toBe(true);
    expect(failing.failingSince).not.toBeNull();
  });

  it('an endpoint failing for longer than WEBHOOK_DISABLE_AFTER_MS is disabled with the reason', async () => {
    receiver = await startReceiver(() => 500);
    api = await startWebhookApi({ dispatcher: { retryScheduleMs: [0, 30, 30, 30, 30, 30], disableAfterMs: 50 } });
    const id = ((await api.call('POST', '/webhooks', { url: receiver.url })).json as EndpointJson).id;
    await api.startTracker(1);
    const disabled = await waitUntil(async () => {
      const e = await endpoint(id);
      return e.enabled ? undefined : e;
    }, 'the failing endpoint disabled');
    expect(disabled.disabledReason).toMatch(/^every attempt failed since .*; the last: HTTP 500/);
    const attempts = receiver.received.length;
    expect(attempts).toBeGreaterThan(1);
    await api.startTracker(2);
    await api.store.flush();
    // Disabled: no new attempts, and the new change made no delivery for it.
    expect(await deliveries(id)).toHaveLength(1);
    expect(receiver.received).toHaveLength(attempts);
  });
});
