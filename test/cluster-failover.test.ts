import { afterAll, beforeAll, expect, it } from 'vitest';
import { shardOf } from '../src/runtime/shard.js';
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

const TRACKERS = 1000;
/** Time to rehydrate and answer on a loaded 2-core box, on top of the bound (lease TTL + one heartbeat). */
const SLACK_MS = 6000;

interface Listed {
  id: string;
  state: string;
  restarts: number;
  reorgs: number;
}

/** Every tracker, listed page by page through `base`. */
async function listAll(base: string): Promise<Listed[]> {
  const all: Listed[] = [];
  let cursor: string | null = null;
  do {
    const query: string = cursor ? `&cursor=${encodeURIComponent(cursor)}` : '';
    const { status, body } = await call(base, 'GET', `/trackers?limit=500${query}`);
    expect(status).toBe(200);
    all.push(...(body.items as Listed[]));
    cursor = body.nextCursor as string | null;
  } while (cursor);
  return all;
}

/** No shard held by two instances, and no instance runs trackers of a shard it does not hold. */
function expectNothingLiveTwice(views: ClusterView[]): void {
  const holder = new Map<number, string>();
  for (const view of views) {
    for (const shard of view.shards) {
      expect(holder.get(shard), `shard ${shard} held by ${holder.get(shard)} and ${view.instanceId}`).toBeUndefined();
      holder.set(shard, view.instanceId);
    }
    const held = new Set(view.shards);
    expect(view.liveShards.filter((shard) => !held.has(shard))).toEqual([]);
  }
}

describeWithPostgres('failover: an instance killed with SIGKILL', () => {
  let cluster: ClusterHarness;

  beforeAll(async () => {
    cluster = await startClusterHarness({ instances: 3 });
  }, 180_000);
  afterAll(async () => {
    await cluster?.close();
  });

  it('every tracker it ran is live again on another instance within lease TTL + one heartbeat, with its persisted state; all reach their final states; nothing runs twice, nothing is applied twice', async () => {
    await waitForBalance(cluster);
    const [a, b, c] = cluster.instances as [
      (typeof cluster.instances)[0],
      (typeof cluster.instances)[0],
      (typeof cluster.instances)[0],
    ];
    const txs = await signTransfers(cluster.anvil.url, TRACKERS);
    // A fifth of the transactions are on chain before the kill: those trackers are mined or confirming.
    for (const { raw } of txs.slice(0, TRACKERS / 5)) await rpc(cluster.anvil.url, 'eth_sendRawTransaction', [raw]);
    // Started through every instance in turn: most go to another owner through the inbox.
    const bases = [a.api, b.api, c.api];
    for (let at = 0, turn = 0; at < TRACKERS; at += 100, turn++) {
      const { status, body } = await call(bases[turn % 3]!, 'POST', '/trackers/batch', {
        trackers: txs.slice(at, at + 100).map(({ hash }) => ({ txHash: hash })),
      });
      expect(status).toBe(200);
      for (const result of body.results as Array<{ status: number }>) expect(result.status).toBe(201);
    }
    await waitUntil(
      async () => (await Promise.all([a, b, c].map((i) => i.view()))).reduce((n, v) => n + (v?.live ?? 0), 0) > 0,
      'trackers to be live',
    );

    const victim = (await b.view())!;
    b.signal('SIGKILL');
    const killedAt = Date.now();
    await b.process.exited;
    // Its trackers not final at the kill: those must run again elsewhere.
    const atKill = await listAll(a.api);
    const victimIds = atKill
      .filter(
        (t) => victim.shards.includes(shardOf(t.id, 1024)) && !['confirmed', 'failed', 'stopped'].includes(t.state),
      )
      .map((t) => t.id);
    expect(victimIds.length).toBeGreaterThan(0);

    // Every shard is held by a survivor, and every non-final tracker of the victim runs on one.
    const victimShards = new Set(victim.shards);
    const survivors = [a, c];
    const views = await waitUntil(
      async () => {
        const owners = await cluster.owners();
        if ([...victimShards].some((shard) => owners.get(shard) === 'i2' || owners.get(shard) === null))
          return undefined;
        const seen = await Promise.all(survivors.map((i) => i.view()));
        if (seen.some((v) => v === undefined)) return undefined;
        const running = new Set(seen.flatMap((v) => v!.liveShards));
        const held = new Set(seen.flatMap((v) => v!.shards));
        return [...victimShards].every((shard) => held.has(shard)) &&
          victimIds.every((id) => running.has(shardOf(id, 1024)))
          ? (seen as ClusterView[])
          : undefined;
      },
      'the victim’s trackers to be live elsewhere',
      TEST_LEASE_TTL_MS + TEST_HEARTBEAT_MS + SLACK_MS,
    );
    const failoverMs = Date.now() - killedAt;
    console.log(`failover: ${victimIds.length} trackers live elsewhere ${failoverMs} ms after SIGKILL`);
    expectNothingLiveTwice(views);

    // Their persisted state came with them: any instance answers for any of them.
    for (const [i, id] of victimIds.slice(0, 20).entries()) {
      const { status, body } = await call(survivors[i % 2]!.api, 'GET', `/trackers/${id}`);
      expect(status).toBe(200);
      expect(body.id).toBe(id);
    }

    // The chain moves on: the rest of the transactions, then blocks.
    for (const { raw } of txs.slice(TRACKERS / 5)) await rpc(cluster.anvil.url, 'eth_sendRawTransaction', [raw]);
    await mine(cluster.anvil.url, 5);
    const final = await waitUntil(
      async () => {
        await mine(cluster.anvil.url, 1);
        const all = await listAll(a.api);
        return all.length === TRACKERS && all.every((t) => t.state === 'confirmed') ? all : undefined;
      },
      'every tracker to be confirmed',
      120_000,
    );
    // A takeover is a rehydration, not a restart; nothing was applied twice.
    expect(final.filter((t) => t.restarts !== 0 || t.reorgs !== 0)).toEqual([]);
    // The change log (every committed change, in commit order): each tracker's states only move
    // forward, and it is confirmed exactly once.
    // (A listing shows an owner's writes a moment before they commit: wait for the last commits.)
    const changes = await waitUntil(
      async () => {
        const rows = await cluster.query<{ tracker_id: string; to_state: string }>(
          'SELECT tracker_id, to_state FROM tracker_history ORDER BY seq',
        );
        const confirmed = rows.filter((row) => row.to_state.startsWith('confirmed'));
        return confirmed.length >= TRACKERS ? rows : undefined;
      },
      'every confirmation to be in the change log',
      20_000,
    );
    const rank: Record<string, number> = { pending: 0, confirming: 1, confirmed: 2 };
    const byTracker = new Map<string, number[]>();
    for (const { tracker_id: id, to_state: to } of changes) {
      byTracker.set(id, [...(byTracker.get(id) ?? []), rank[to.split('.')[0]!] ?? -1]);
    }
    expect(byTracker.size).toBe(TRACKERS);
    for (const [id, ranks] of byTracker) {
      expect(ranks, id).toEqual([...ranks].sort((x, y) => x - y));
      expect(
        ranks.filter((r) => r === 2),
        id,
      ).toHaveLength(1);
    }
    expectNothingLiveTwice((await Promise.all(survivors.map((i) => i.view()))) as ClusterView[]);
  }, 300_000);
});
