import { Webhook } from 'standardwebhooks';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type WebhookApi, startWebhookApi } from './helpers/webhooks.js';
import { waitUntil } from './support/wait.js';
import { type Receiver, startReceiver } from './support/webhook-receiver.js';

interface EndpointJson {
  id: string;
  url: string;
  events: string[];
  trackers: string[] | null;
  secret?: string;
  previousSecretExpiresAt: string | null;
}
const error = (json: unknown) => (json as { error: { code: string; message: string } }).error;

describe('webhooks API: endpoints, filters, secret rotation', () => {
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

  it('answers bad input with the house error shape', async () => {
    const cases: Array<[string, string, unknown, number, string]> = [
      ['POST', '/webhooks', {}, 400, 'invalid_body'],
      ['POST', '/webhooks', { url: receiver.url, events: ['tracker.exploded'] }, 400, 'invalid_body'],
      ['POST', '/webhooks', { url: receiver.url, events: [] }, 400, 'invalid_body'],
      ['POST', '/webhooks', { url: receiver.url, trackers: ['bad id!'] }, 400, 'invalid_body'],
      ['POST', '/webhooks', { url: receiver.url, extra: 1 }, 400, 'invalid_body'],
      ['POST', '/webhooks', '{"url":', 400, 'invalid_json'],
      ['GET', '/webhooks/ep_nope', undefined, 404, 'not_found'],
      ['PATCH', '/webhooks/ep_nope', { enabled: true }, 404, 'not_found'],
      ['DELETE', '/webhooks/ep_nope', undefined, 404, 'not_found'],
      ['GET', '/webhooks/ep_nope/deliveries', undefined, 404, 'not_found'],
    ];
    for (const [method, path, body, status, code] of cases) {
      const res = await api.call(method, path, body);
      expect([res.status, error(res.json).code], `${method} ${path} ${JSON.stringify(body)}`).toEqual([status, code]);
    }
    const created = (await api.call('POST', '/webhooks', { url: receiver.url })).json as EndpointJson;
    for (const [body, code] of [
      [{}, 'invalid_body'],
      [{ previousSecretExpiresIn: 10 }, 'invalid_body'],
      [{ url: 'http://169.254.169.254/' }, 'forbidden_address'],
    ] as const) {
      const res = await api.call('PATCH', `/webhooks/${created.id}`, body);
      expect([res.status, error(res.json).code], JSON.stringify(body)).toEqual([400, code]);
    }
    const page = await api.call('GET', `/webhooks/${created.id}/deliveries?status=lost`);
    expect([page.status, error(page.json).code]).toEqual([400, 'invalid_query']);
    const retry = await api.call('POST', `/webhooks/${created.id}/deliveries/x1/retry`);
    expect([retry.status, error(retry.json).code]).toEqual([404, 'not_found']);
    expect((await api.call('DELETE', `/webhooks/${created.id}`)).status).toBe(204);
    expect((await api.call('GET', `/webhooks/${created.id}`)).status).toBe(404);
  });

  it('filters by tracker id and prefix, and by event type (head-only changes only when asked)', async () => {
    const byPrefix = (
      await api.call('POST', '/webhooks', { url: `${receiver.url}?p`, trackers: ['order-*', 'exact-1'] })
    ).json as EndpointJson;
    const updatesOnly = (await api.call('POST', '/webhooks', { url: `${receiver.url}?u`, events: ['tracker.updated'] }))
      .json as EndpointJson;
    await api.startTracker(101, 'order-1');
    await api.startTracker(102, 'exact-1');
    await api.startTracker(103, 'exact-10');
    await api.startTracker(104, 'other-1');
    await api.store.flush();
    const trackersOf = async (id: string) =>
      (
        (await api.call('GET', `/webhooks/${id}/deliveries`)).json as {
          items: Array<{ trackerId: string; type: string }>;
        }
      ).items.map((d) => `${d.trackerId} ${d.type}`);
    expect((await trackersOf(byPrefix.id)).sort()).toEqual([
      'exact-1 tracker.state_changed',
      'order-1 tracker.state_changed',
    ]);
    // A creation is a state change, not a head-only update.
    expect(await trackersOf(updatesOnly.id)).toEqual([]);
    await api.call('DELETE', `/webhooks/${byPrefix.id}`);
    await api.call('DELETE', `/webhooks/${updatesOnly.id}`);
  });

  it('rotates the secret: during the overlap each request carries a signature by each secret', async () => {
    const created = (await api.call('POST', '/webhooks', { url: `${receiver.url}?r` })).json as EndpointJson;
    const rotated = await api.call('PATCH', `/webhooks/${created.id}`, {
      rotateSecret: true,
      previousSecretExpiresIn: 3600,
    });
    expect(rotated.status).toBe(200);
    const body = rotated.json as EndpointJson;
    expect(body.secret).toMatch(/^whsec_/);
    expect(body.secret).not.toBe(created.secret);
    expect(Date.parse(body.previousSecretExpiresAt!) - Date.now()).toBeGreaterThan(3_500_000);
    await api.startTracker(201);
    const request = await waitUntil(
      () => receiver.received.find((r) => r.body.includes('"trackerId":"0x' + (201).toString(16).padStart(64, '0'))),
      'the delivery',
    );
    expect(request.signature.split(' ')).toHaveLength(2);
    const headers = {
      'webhook-id': request.id,
      'webhook-timestamp': request.timestamp,
      'webhook-signature': request.signature,
    };
    for (const secret of [created.secret!, body.secret!])
      expect(() => new Webhook(secret).verify(request.body, headers)).not.toThrow();
    expect(() =>
      new Webhook(`whsec_${Buffer.from('another secret, 24 bytes!').toString('base64')}`).verify(request.body, headers),
    ).toThrow();
    // With no overlap the secret just replaced stops at once; the older one keeps its own expiry.
    const again = (
      await api.call('PATCH', `/webhooks/${created.id}`, { rotateSecret: true, previousSecretExpiresIn: 0 })
    ).json as EndpointJson;
    expect(again.previousSecretExpiresAt).toBe(body.previousSecretExpiresAt);
    await api.call('DELETE', `/webhooks/${created.id}`);
  });

  it('lists endpoints without secrets; the OpenAPI document has the routes', async () => {
    const list = (await api.call('GET', '/webhooks')).json as { items: EndpointJson[] };
    for (const e of list.items) expect(e.secret).toBeUndefined();
    const doc = (await api.call('GET', '/openapi.json')).json as { paths: Record<string, Record<string, unknown>> };
    expect(Object.keys(doc.paths['/webhooks/{id}']!).sort()).toEqual(['delete', 'get', 'patch']);
    expect(doc.paths['/webhooks/{id}/deliveries/{deliveryId}/retry']!.post).toBeDefined();
  });
});

describe('webhooks on a memory: store', () => {
  it('delivers a change made on the in-memory store', async () => {
    const receiver = await startReceiver(() => 204);
    const api = await startWebhookApi({ databaseUrl: 'memory:' });
    try {
      await api.call('POST', '/webhooks', { url: receiver.url });
      await api.startTracker(301);
      await waitUntil(() => receiver.accepted().size === 1, 'the delivery');
      const [payload] = [...receiver.accepted().values()];
      expect(payload).toMatchObject({
        type: 'tracker.state_changed',
        data: { from: null, to: expect.stringMatching(/^pending/) as unknown },
      });
    } finally {
      await api.stop();
      await receiver.close();
    }
  });
});
