import { afterAll, beforeAll, expect, it } from 'vitest';
import { mine, rpc } from './support/chain.js';
import { type ClusterHarness, call, signTransfers, startClusterHarness, waitForBalance } from './support/cluster.js';
import { describeWithPostgres } from './support/postgres.js';
import { waitUntil } from './support/wait.js';

const TRACKERS = 60;

const ready = async (api: string): Promise<number> => {
  try {
    return (await fetch(`${api}/readyz`, { signal: AbortSignal.timeout(3000) })).status;
  } catch {
    return 0;
  }
};

describeWithPostgres('PostgreSQL restarted under a cluster', () => {
  let cluster: ClusterHarness;

  beforeAll(async () => {
    cluster = await startClusterHarness({ instances: 2 });
  }, 180_000);
  afterAll(async () => {
    await cluster?.close();
  });

  it('/readyz is not ready while the database is down; the instances reconnect and carry on; nothing acknowledged is lost', async () => {
    await waitForBalance(cluster);
    const [a, b] = cluster.instances as [(typeof cluster.instances)[0], (typeof cluster.instances)[0]];
    const txs = await signTransfers(cluster.anvil.url, TRACKERS);
    const { status } = await call(a.api, 'POST', '/trackers/batch', {
      trackers: txs.map(({ hash }) => ({ txHash: hash })),
    });
    expect(status).toBe(200);
    for (const instance of [a, b]) expect(await ready(instance.api)).toBe(200);

    await cluster.pg.stop();
    for (const instance of [a, b]) {
      await waitUntil(async () => (await ready(instance.api)) === 503, `${instance.id} not to be ready`, 20_000);
    }
    // The chain moves while the database is away.
    for (const { raw } of txs) await rpc(cluster.anvil.url, 'eth_sendRawTransaction', [raw]);
    // Down past the lease: no instance can know it still holds its shards, so none runs them.
    for (const instance of [a, b]) {
      await waitUntil(
        async () => {
          const view = await instance.view();
          return view !== undefined && view.owned === 0 && view.live === 0;
        },
        `${instance.id} to stop the shards it cannot renew`,
        20_000,
      );
    }
    await cluster.pg.start();

    for (const instance of [a, b]) {
      await waitUntil(async () => (await ready(instance.api)) === 200, `${instance.id} to be ready again`, 30_000);
    }
    await waitForBalance(cluster);
    await waitUntil(
      async () => {
        await mine(cluster.anvil.url, 1);
        const { body } = await call(b.api, 'GET', '/trackers?state=confirmed&limit=500');
        return (body.items as unknown[]).length === TRACKERS;
      },
      'every acknowledged tracker to be confirmed',
      90_000,
    );
  }, 240_000);
});
