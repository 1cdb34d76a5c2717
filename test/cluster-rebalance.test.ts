import { afterAll, beforeAll, expect, it } from 'vitest';
import { shardOf } from '../src/runtime/shard.js';
import {
  type ClusterHarness,
  type ClusterView,
  TEST_HEARTBEAT_MS,
  call,
  startClusterHarness,
  waitForBalance,
} from './support/cluster.js';
import { describeWithPostgres } from './support/postgres.js';
import { waitUntil } from './support/wait.js';

const hashOf = (i: number): string => `0x${(0xc0ffee00 + i).toString(16).padStart(64, '0')}`;

function expectDisjoint(views: ClusterView[]): void {
  const holder = new Map<number, string>();
  for (const view of views) {
    for (const shard of view.shards) {
      expect(holder.has(shard), `shard ${shard} held twice`).toBe(false);
      holder.set(shard, view.instanceId);
    }
    const held = new Set(view.shards);
    expect(view.liveShards.filter((shard) => !held.has(shard))).toEqual([]);
  }
}

describeWithPostgres('rebalance: instances joining and leaving', () => {
  let cluster: ClusterHarness;

  beforeAll(async () => {
    cluster = await startClusterHarness({ instances: 3 });
  }, 180_000);
  afterAll(async () => {
    await cluster?.close();
  });

  it('a 4th instance gets a fair share with no tracker live twice; a graceful shutdown hands its leases back at once', async () => {
    await waitForBalance(cluster);
    const ids = Array.from({ length: 300 }, (_, i) => `rebalance-${i}`);
    const { status } = await call(cluster.instances[0]!.api, 'POST', '/trackers/batch', {
      trackers: ids.map((id, i) => ({ id, txHash: hashOf(i) })),
    });
    expect(status).toBe(200);

    const fourth = await cluster.add('i4');
    const views = await waitForBalance(cluster);
    expect(views).toHaveLength(4);
    expect(views.find((v) => v.instanceId === 'i4')!.shards.length).toBe(256);
    expectDisjoint(views);
    // Every tracker runs somewhere, once.
    await waitUntil(
      async () => {
        const seen = (await Promise.all(cluster.running().map((i) => i.view()))) as ClusterView[];
        const running = seen.flatMap((v) => v.liveShards);
        return (
          new Set(running).size === running.length &&
          ids.every((id) => running.includes(shardOf(id, 1024))) &&
          seen.reduce((n, v) => n + v.live, 0) === ids.length
        );
      },
      'every tracker to run on exactly one instance',
      30_000,
    );

    // SIGTERM: the leases are free in the database when the process has exited, and taken within a
    // heartbeat or so (the others are woken by NOTIFY), long before they would have expired.
    const leaving = (await fourth.view())!;
    fourth.signal('SIGTERM');
    expect(await fourth.process.exited).toBe(0);
    const exitedAt = Date.now();
    const owners = await cluster.owners();
    expect([...owners.values()].filter((owner) => owner === 'i4')).toEqual([]);
    await waitUntil(
      async () => {
        const now = await cluster.owners();
        return leaving.shards.every((shard) => now.get(shard) !== null);
      },
      'the handed-back shards to be taken',
      10_000,
    );
    expect(Date.now() - exitedAt).toBeLessThan(TEST_HEARTBEAT_MS * 4);
    const after = await waitForBalance(cluster);
    expectDisjoint(after);
    const { body } = await call(cluster.instances[1]!.api, 'GET', `/trackers/${ids[0]}`);
    expect(body.state).toBe('pending');
  }, 240_000);
});
