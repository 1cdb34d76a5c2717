import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type WebhookApi, startWebhookApi } from './helpers/webhooks.js';
import { waitUntil } from './support/wait.js';
import { type Receiver, startReceiver } from './support/webhook-receiver.js';

interface EndpointJson {
  id: string;
  concurrency: number | null;
  timeoutMs: number | null;
}
interface DeliveriesJson {
  items: Array<{ attempts: Array<{ error: string | null; latencyMs: number }> }>;
}
const error = (json: unknown) => (json as { error: { code: string } }).error;

// Two receivers that never answer: what each holds open is what its endpoint allows.
describe('webhooks: an endpoint carries its own concurrency and timeout', () => {
  let api: WebhookApi;
  let narrow: Receiver;
  let wide: Receiver;
  beforeAll(async () => {
    narrow = await startReceiver(() => 'hang');
    wide = await startReceiver(() => 'hang');
    // The service's defaults: 3 in flight, a 60 s timeout.
    api = await startWebhookApi({ dispatcher: { concurrency: 3, timeoutMs: 60_000, retryScheduleMs: [0, 60_000] } });
  });
  afterAll(async () => {
    await api?.stop();
    await narrow?.close();
    await wide?.close();
  });

  it('takes concurrency and timeoutMs on POST and PATCH (null: the default), refuses bad ones', async () => {
    const created = await api.call('POST', '/webhooks', { url: narrow.url, concurrency: 2, timeoutMs: 5000 });
    expect(created.status, created.text).toBe(201);
    const endpoint = created.json as EndpointJson;
    expect([endpoint.concurrency, endpoint.timeoutMs]).toEqual([2, 5000]);
    const patched = await api.call('PATCH', `/webhooks/${endpoint.id}`, { concurrency: null, timeoutMs: 300 });
    expect((patched.json as EndpointJson).concurrency).toBeNull();
    expect(((await api.call('GET', `/webhooks/${endpoint.id}`)).json as EndpointJson).timeoutMs).toBe(300);
    for (const body of [{ concurrency: 0 }, { concurrency: 1.5 }, { timeoutMs: 50 }, { timeoutMs: 600_001 }]) {
      const res = await api.call('PATCH', `/webhooks/${endpoint.id}`, body);
      expect([res.status, error(res.json).code], JSON.stringify(body)).toEqual([400, 'invalid_body']);
    }
    expect((await api.call('DELETE', `/webhooks/${endpoint.id}`)).status).toBe(204);
  });

  it('holds at most its own concurrency open, and gives up an attempt after its own timeout', async () => {
    const one = (await api.call('POST', '/webhooks', { url: narrow.url, concurrency: 1, timeoutMs: 300 }))
      .json as EndpointJson;
    await api.call('POST', '/webhooks', { url: wide.url });
    for (let i = 0; i < 6; i++) await api.startTracker(100 + i);
    // The default endpoint fills the service's 3 slots; the narrow one never more than its 1.
    await waitUntil(() => wide.received.length === 3, 'the wide endpoint to hold 3 requests');
    await waitUntil(async () => {
      const page = (await api.call('GET', `/webhooks/${one.id}/deliveries`)).json as DeliveriesJson;
      return page.items.flatMap((d) => d.attempts).length >= 2 ? page : undefined;
    }, 'two attempts of the narrow endpoint to time out');
    const page = (await api.call('GET', `/webhooks/${one.id}/deliveries`)).json as DeliveriesJson;
    const attempts = page.items.flatMap((d) => d.attempts);
    for (const attempt of attempts) {
      expect(attempt.error).toBe('no answer within 300 ms');
      expect(attempt.latencyMs).toBeGreaterThanOrEqual(290);
    }
    // One at a time: each request arrived after the one before it had timed out.
    const at = narrow.received.map((r) => r.at);
    for (let i = 1; i < at.length; i++) expect(at[i]! - at[i - 1]!).toBeGreaterThanOrEqual(250);
    expect(wide.received.length).toBe(3);
  });
});
