import { afterAll, beforeAll, expect, it } from 'vitest';
import { mine, rpc } from './support/chain.js';
import {
  type ClusterHarness,
  type ClusterView,
  TEST_HEARTBEAT_MS,
  TEST_LEASE_TTL_MS,
  call,
  signTransfers,
  startClusterHarness,
  waitForBalance,
} from './support/cluster.js';
import { describeWithPostgres } from './support/postgres.js';
import { waitUntil } from './support/wait.js';

const TRACKERS = 200;

describeWithPostgres('split-brain: an instance paused past its leases', () => {
  let cluster: ClusterHarness;

  beforeAll(async () => {
    cluster = await startClusterHarness({ instances: 2 });
  }, 180_000);
  afterAll(async () => {
    await cluster?.close();
  });

  it('SIGSTOP past the lease, another takes over, SIGCONT: it drops what it no longer holds and never overwrites the new owner', async () => {
    await waitForBalance(cluster);
    const [a, b] = cluster.instances as [(typeof cluster.instances)[0], (typeof cluster.instances)[0]];
    const txs = await signTransfers(cluster.anvil.url, TRACKERS);
    const { status } = await call(a.api, 'POST', '/trackers/batch', {
      trackers: txs.map(({ hash }) => ({ txHash: hash })),
    });
    expect(status).toBe(200);
    const paused = (await b.view())!;
    expect(paused.live).toBeGreaterThan(0);

    b.signal('SIGSTOP');
    // While it sleeps, the chain moves: its trackers have work, for whoever runs them.
    for (const { raw } of txs) await rpc(cluster.anvil.url, 'eth_sendRawTransaction', [raw]);
    await waitUntil(
      async () => {
        const view = await a.view();
        return view !== undefined && view.shards.length === 1024;
      },
      'the other instance to take every shard over',
      TEST_LEASE_TTL_MS + TEST_HEARTBEAT_MS + 15_000,
    );
    await mine(cluster.anvil.url, 5);
    const confirmedBeforeWake = await waitUntil(
      async () => {
        const { body } = await call(a.api, 'GET', '/trackers?state=confirmed&limit=500');
        return (body.items as unknown[]).length === TRACKERS ? body.items : undefined;
      },
      'every tracker to be confirmed by the new owner',
      60_000,
    );
    expect(confirmedBeforeWake).toHaveLength(TRACKERS);

    // It wakes up believing it still holds its shards, with heads to deliver and writes to make.
    b.signal('SIGCONT');
    await mine(cluster.anvil.url, 2);
    const view = await waitUntil(
      async () => {
        const v = await b.view();
        return v && v.connected && v.liveShards.every((shard) => v.shards.includes(shard)) ? v : undefined;
      },
      'the woken instance to run only shards it holds',
      20_000,
    );
    const owners = await cluster.owners();
    for (const shard of view.shards) expect(owners.get(shard)).toBe('i2');
    for (const shard of paused.shards) {
      if (!view.shards.includes(shard)) expect(owners.get(shard)).not.toBe('i2');
    }
    // Whatever it wrote late was fenced off: every tracker is still confirmed, as the new owner left it.
    const { body } = await call(b.api, 'GET', '/trackers?limit=500');
    const states = (body.items as Array<{ state: string; restarts: number }>).map((t) => t.state);
    expect(states.filter((state) => state !== 'confirmed')).toEqual([]);
    const log = b.process.stdout();
    expect(log).toMatch(/leases lost|could not be renewed in time|rejected \(fencing\)/);

    // Then the two share the shards again, each tracker on one of them.
    const views = (await waitForBalance(cluster)) as ClusterView[];
    const all = views.flatMap((v) => v.shards);
    expect(new Set(all).size).toBe(1024);
  }, 240_000);
});
