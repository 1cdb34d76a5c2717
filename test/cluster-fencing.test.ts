import pg from 'pg';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { shardOf } from '../src/runtime/shard.js';
import { hashOf } from './helpers.js';
import { type Member, joinInProcess, leaveAll } from './support/cluster-in-process.js';
import { type PostgresServer, describeWithPostgres, startPostgres } from './support/postgres.js';
import { waitUntil } from './support/wait.js';

describeWithPostgres('fencing: the store commit checks the shard lease in its transaction', () => {
  let server: PostgresServer;
  const members: Member[] = [];

  beforeAll(async () => {
    server = await startPostgres();
  }, 60_000);
  afterAll(async () => {
    await leaveAll(members);
    await server?.close();
  });

  const join = async (instanceId: string): Promise<Member> => {
    const member = await joinInProcess(server.url, instanceId);
    members.push(member);
    return member;
  };

  it('a late write of a paused owner is rejected, the new owner’s row stands, and the paused one stops the shard', async () => {
    const a = await join('paused');
    const id = 'fenced-1';
    await a.system.start(id, { txHash: hashOf(1), confirmations: 3 });
    const before = (await a.store.get(id))!;
    expect(before.state).toBe('pending');

    // The lease runs out in the database while `paused` still believes it holds it (a SIGSTOP its
    // timers have not noticed yet); another instance takes that shard over and brings the tracker back.
    const shard = shardOf(id, 1024);
    const admin = new pg.Client({ connectionString: server.url });
    await admin.connect();
    await admin.query("UPDATE shard_leases SET expires_at = now() - interval '1 second' WHERE shard = $1", [shard]);
    const b = await join('taker');
    expect(b.cluster.leases.ownedShards()).toEqual([shard]);
    await waitUntil(() => b.system.lookup(id), 'the new owner to run the tracker');
    expect(a.cluster.leases.owns(shard)).toBe(true);
    expect(a.system.lookup(id)).toBeDefined();

    // The paused owner's tracker moves on and writes: the commit leaves that row out.
    expect(a.system.deliver(id, { type: 'TX_SEEN', at: before.updatedAt + 1000 })).toBe(true);
    await a.system.flushWrites();
    const { rows } = await admin.query<{ snapshot: string }>('SELECT snapshot FROM trackers WHERE id = $1', [id]);
    await admin.end();
    expect((JSON.parse(rows[0]!.snapshot) as { value: unknown }).value).toEqual({ pending: 'unseen' });
    expect((await b.store.get(id))!.updatedAt).toBe(before.updatedAt);
    // And it learns from the rejection: that shard is no longer run there.
    await waitUntil(
      () => !a.cluster.leases.owns(shard) && a.system.lookup(id) === undefined,
      'the shard to be dropped',
    );
    expect(b.system.lookup(id)).toBeDefined();
    // The new owner's own writes go through.
    b.system.deliver(id, { type: 'TX_SEEN', at: before.updatedAt + 2000 });
    await b.system.flushWrites();
    expect((await b.store.get(id))!.updatedAt).toBe(before.updatedAt + 2000);
  });
});
