import { afterAll, beforeAll, expect, it } from 'vitest';
import { type Anvil, startAnvil } from '../src/chain/anvil.js';
import type { Tracker } from '../src/runtime/tracker-view.js';
import { PostgresStore } from '../src/store/postgres.js';
import { mine, rpc } from './support/chain.js';
import { type PostgresServer, describeWithPostgres, startPostgres } from './support/postgres.js';
import { type ServiceUnderTest, signTransfer, startServiceUnderTest } from './support/service.js';
import { waitUntil } from './support/wait.js';

describeWithPostgres('PostgreSQL restarted mid-run', () => {
  let pg: PostgresServer;
  let anvil: Anvil;
  let s: ServiceUnderTest;
  let url: string;
  let nonce = 0;
  beforeAll(async () => {
    [pg, anvil] = await Promise.all([startPostgres(), startAnvil()]);
    url = await pg.createDatabase();
    s = await startServiceUnderTest({ DATABASE_URL: url, ETH_RPC_URL: anvil.url, POLL_INTERVAL_MS: '50' });
  });
  afterAll(async () => {
    await s?.stop().catch(() => undefined);
    await Promise.all([pg?.close(), anvil?.stop()]);
  });

  const store = () => s.service.system.store as PostgresStore;
  const states = async (ids: string[]) =>
    Promise.all(ids.map(async (id) => ((await s.call('GET', `/trackers/${id}`)).json as Tracker).state));
  /** `n` trackers started over HTTP (acknowledged), their transactions mined. */
  const minedTrackers = async (n: number): Promise<string[]> => {
    const ids: string[] = [];
    for (let i = 0; i < n; i++) {
      const tx = await signTransfer(31337, 0, { nonce: nonce++ });
      const created = await s.call('POST', '/trackers', { txHash: tx.hash, confirmations: 12 });
      expect(created.status, created.text).toBe(201);
      await rpc(anvil.url, 'eth_sendRawTransaction', [tx.raw]);
      ids.push(tx.hash);
    }
    await waitUntil(async () => (await states(ids)).every((state) => state === 'confirming'), 'every tx mined');
    return ids;
  };
  const ready = async () => (await s.call('GET', '/readyz')).status === 200;
  /** What a fresh connection finds in the database. */
  const durableStates = async (ids: string[]) => {
    const reader = await PostgresStore.open({ url });
    try {
      return await Promise.all(ids.map(async (id) => (await reader.get(id))?.state));
    } finally {
      await reader.close();
    }
  };

  for (const how of ['stopped', 'killed'] as const) {
    it(`${how}: not ready while down, changes made meanwhile durable once back, nothing acknowledged lost`, async () => {
      const ids = await minedTrackers(5);
      expect(await ready()).toBe(true);

      await (how === 'stopped' ? pg.stop() : pg.kill());
      await waitUntil(async () => !(await ready()), '/readyz not ready');
      const readyz = await s.call('GET', '/readyz');
      expect(readyz).toMatchObject({ status: 503, json: { checks: { store: false } } });
      // The chain moves on while the database is down: the trackers confirm in memory, their writes wait.
      await mine(anvil.url, 12);
      await waitUntil(async () => (await states(ids)).every((state) => state === 'confirmed'), 'confirmed meanwhile');
      expect(store().pendingCount).toBeGreaterThan(0);
      // A start cannot be made durable now: it is refused, not acknowledged.
      const refused = await s.call('POST', '/trackers', { txHash: (await signTransfer(31337, 1, { nonce })).hash });
      expect(refused).toMatchObject({ status: 503, json: { error: { code: 'store_unavailable' } } });

      await pg.start();
      await waitUntil(ready, '/readyz ready again', 20_000);
      await waitUntil(() => store().pendingCount === 0, 'the waiting writes committed', 20_000);
      expect(await durableStates(ids)).toEqual(ids.map(() => 'confirmed'));
      // The service carries on as before.
      const more = await minedTrackers(2);
      await mine(anvil.url, 12);
      await waitUntil(async () => (await states(more)).every((state) => state === 'confirmed'), 'new ones confirmed');
      await store().flush();
      expect(await durableStates(more)).toEqual(['confirmed', 'confirmed']);
    });
  }
});
