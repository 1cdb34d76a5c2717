import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type WebhookApi, startWebhookApi } from './helpers/webhooks.js';
import { waitUntil } from './support/wait.js';
import { type Receiver, startReceiver } from './support/webhook-receiver.js';

describe('webhooks: SSRF, refused at creation', () => {
  let api: WebhookApi;
  beforeAll(async () => {
    api = await startWebhookApi({ allow: '' });
  });
  afterAll(() => api?.stop());

  it.each([
    ['loopback', 'http://127.0.0.1:8080/hook'],
    ['loopback by name', 'http://localhost:8080/hook'],
    ['IPv6 loopback', 'http://[::1]:8080/hook'],
    ['IPv4-mapped loopback', 'http://[::ffff:127.0.0.1]/hook'],
    ['private', 'http://10.1.2.3/hook'],
    ['private 192.168', 'https://192.168.0.10/hook'],
    ['link-local metadata', 'http://169.254.169.254/latest/meta-data/'],
    ['unspecified', 'http://0.0.0.0:3000/'],
  ])('%s (%s): 400 forbidden_address, nothing stored', async (_what, url) => {
    const res = await api.call('POST', '/webhooks', { url });
    expect(res.status, res.text).toBe(400);
    expect((res.json as { error: { code: string; message: string } }).error).toMatchObject({
      code: 'forbidden_address',
      message: expect.stringMatching(/WEBHOOK_ALLOW_HOSTS/) as unknown,
    });
    expect(((await api.call('GET', '/webhooks')).json as { items: unknown[] }).items).toEqual([]);
  });

  it('refuses other schemes and non-URLs with 400 invalid_url', async () => {
    for (const url of ['ftp://example.com/x', 'file:///etc/passwd', 'not a url']) {
      const res = await api.call('POST', '/webhooks', { url });
      expect(res.status, url).toBe(400);
      expect((res.json as { error: { code: string } }).error.code).toBe('invalid_url');
    }
  });
});

describe('webhooks: SSRF, refused at delivery (the address is checked when connecting)', () => {
  let api: WebhookApi;
  let receiver: Receiver;
  beforeAll(async () => {
    receiver = await startReceiver(() => 204);
    // The API allowed the address when the endpoint was made; the delivery's connection does not
    // (as when a name resolves elsewhere by the time of delivery).
    api = await startWebhookApi({ allow: '127.0.0.1', dispatcher: { allow: { addresses: [], hosts: new Set() } } });
  });
  afterAll(async () => {
    await api?.stop();
    await receiver?.close();
  });

  it('never reaches the receiver; the attempt says why', async () => {
    const created = await api.call('POST', '/webhooks', { url: receiver.url });
    expect(created.status).toBe(201);
    const id = (created.json as { id: string }).id;
    await api.startTracker(1);
    const attempt = await waitUntil(async () => {
      const page = (await api.call('GET', `/webhooks/${id}/deliveries`)).json as {
        items: Array<{ attempts: Array<{ statusCode: number | null; error: string | null }> }>;
      };
      return page.items[0]?.attempts[0];
    }, 'the first attempt recorded');
    expect(attempt.statusCode).toBeNull();
    expect(attempt.error).toMatch(/127\.0\.0\.1.*not allowed/);
    expect(receiver.received).toEqual([]);
  });
});
