import { afterAll, beforeAll, expect, it } from 'vitest';
import { type WebhookApi, startWebhookApi } from './helpers/webhooks.js';
import { waitUntil } from './support/wait.js';

let api: WebhookApi;
let reads = 0;
beforeAll(async () => {
  // No timer read during the test: only commits and the routes could make the dispatcher read.
  api = await startWebhookApi({ dispatcher: { pollMs: 3_600_000 } });
  const webhooks = api.store.webhooks!;
  const listEndpoints = webhooks.listEndpoints.bind(webhooks);
  webhooks.listEndpoints = () => {
    reads++;
    return listEndpoints();
  };
});
afterAll(() => api.stop());

/** Every setImmediate the server scheduled before this (a wake after a commit) has run. */
const turns = async () => {
  for (let i = 0; i < 3; i++) await new Promise((resolve) => setImmediate(resolve));
};

it('regression: commits do not make the dispatcher read the endpoints again; a route change does', async () => {
  await turns();
  const before = reads;
  for (let n = 1; n <= 30; n++) await api.startTracker(0xe0000 + n);
  await turns();
  expect(reads).toBe(before);

  const created = await api.call('POST', '/webhooks', { url: 'http://127.0.0.1:1/hook' });
  expect(created.status).toBe(201);
  await waitUntil(() => reads > before, 'the endpoints read after POST /webhooks');
  const afterCreate = reads;
  expect((await api.call('DELETE', `/webhooks/${(created.json as { id: string }).id}`)).status).toBe(204);
  await waitUntil(() => reads > afterCreate, 'the endpoints read after DELETE /webhooks/:id');
});
