import pg from 'pg';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { PostgresStore } from '../src/store/postgres.js';
import { type PostgresServer, describeWithPostgres, startPostgres } from './support/postgres.js';
import { waitUntil } from './support/wait.js';
import { changed, endpointOf } from './support/webhook-store-contract.js';

describeWithPostgres('an endpoint deleted while an attempt of one of its deliveries is being recorded', () => {
  let server: PostgresServer;
  beforeAll(async () => {
    server = await startPostgres();
  }, 60_000);
  afterAll(async () => {
    await server?.close();
  });

  it('leaves no attempt row behind (the attempt committed while the delete waited on its delivery)', async () => {
    const url = await server.createDatabase();
    const store = await PostgresStore.open({ url });
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    client.on('error', () => {});
    try {
      await store.webhooks.createEndpoint(endpointOf('ep_gone', { url: 'http://127.0.0.1:9/', createdAt: Date.now() }));
      store.write(changed('mid-attempt', null, 'pending.unseen', Date.now(), { event: 'START' }));
      await store.flush();
      const [{ id: deliveryId }] = (await client.query<{ id: string }>('SELECT id FROM webhook_deliveries')).rows as [
        { id: string },
      ];

      // An attempt being recorded, as the store records one: the delivery's row moved, the attempt
      // row inserted, not yet committed.
      await client.query('BEGIN');
      await client.query('UPDATE webhook_deliveries SET attempts = 1, status = $2 WHERE id = $1', [
        deliveryId,
        'succeeded',
      ]);
      await client.query(
        'INSERT INTO webhook_attempts (delivery_id, attempt, at, status_code, latency_ms, error) VALUES ($1, 1, $2, 204, 1, NULL)',
        [deliveryId, Date.now()],
      );
      const deleting = store.webhooks.deleteEndpoint('ep_gone');
      // The delete is under way and waits for a lock held by the attempt's transaction.
      await waitUntil(async () => {
        const { rows } = await client.query<{ n: string }>(
          `SELECT count(*) AS n FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND pid <> pg_backend_pid()`,
        );
        return Number(rows[0]!.n) > 0 || undefined;
      }, 'the delete to wait for the attempt');
      await client.query('COMMIT');
      expect(await deleting).toBe(true);

      const { rows } = await client.query<{ n: string }>('SELECT count(*) AS n FROM webhook_attempts');
      expect(Number(rows[0]!.n)).toBe(0);
      expect((await client.query('SELECT 1 FROM webhook_deliveries')).rowCount).toBe(0);
    } finally {
      await client.end();
      await store.close();
    }
  });
});
