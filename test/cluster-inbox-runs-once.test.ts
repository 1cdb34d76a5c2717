import pg from 'pg';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { shardOf } from '../src/runtime/shard.js';
import { hashOf } from './helpers.js';
import { type Member as InProcess, joinInProcess, leaveAll as leaveEvery } from './support/cluster-in-process.js';
import { type PostgresServer, describeWithPostgres, startPostgres } from './support/postgres.js';
import { waitUntil } from './support/wait.js';

interface Member extends InProcess {
  /** RECHECK lookups this instance's trackers asked for, by tracker id. */
  rechecks: Map<string, number>;
}

/** A gate an owner stops at after running requests, before writing their answers. */
interface Gate {
  reached: Promise<void>;
  open(): void;
  hook(ids: readonly string[]): Promise<void>;
}

function gate(): Gate {
  let reached!: () => void;
  let open!: () => void;
  const reachedP = new Promise<void>((resolve) => (reached = resolve));
  const opened = new Promise<void>((resolve) => (open = resolve));
  let used = false;
  return {
    reached: reachedP,
    open,
    hook: async () => {
      // Only the first answers wait: the ones the test drives.
      if (used) return;
      used = true;
      reached();
      await opened;
    },
  };
}

describeWithPostgres('the inbox: a request runs once across an ownership change', () => {
  let server: PostgresServer;
  let admin: pg.Client;
  const members: Member[] = [];

  beforeAll(async () => {
    server = await startPostgres();
    admin = new pg.Client({ connectionString: server.url });
    await admin.connect();
  }, 60_000);
  afterAll(async () => {
    await leaveAll();
    await admin?.end();
    await server?.close();
  });

  /** Every member stops, handing its leases back. */
  const leaveAll = (): Promise<void> => leaveEvery(members);

  const join = async (instanceId: string, beforeAnswers?: Gate['hook'], requestTimeoutMs = 60_000): Promise<Member> => {
    const rechecks = new Map<string, number>();
    const member = {
      ...(await joinInProcess(server.url, instanceId, {
        cluster: { requestTimeoutMs, ...(beforeAnswers ? { beforeAnswers } : {}) },
        system: { hooks: { recheck: ({ id }) => rechecks.set(id, (rechecks.get(id) ?? 0) + 1) } },
      })),
      rechecks,
    };
    members.push(member);
    return member;
  };

  /** The shard's lease runs out in the database while its owner still believes it holds it (a pause). */
  const expire = async (shard: number): Promise<void> => {
    await admin.query("UPDATE shard_leases SET expires_at = now() - interval '1 second' WHERE shard = $1", [shard]);
  };

  it('an event forwarded to an owner that loses its lease before answering is not run again by the next owner, and the first owner’s answer still reaches the caller', async () => {
    const held = gate();
    const first = await join('first', held.hook);
    const id = 'once-recheck';
    const shard = shardOf(id, 1024);
    await first.system.start(id, { txHash: hashOf(1), confirmations: 3 });
    // Holds no shard (all are the first one's, unexpired): every request it makes is forwarded.
    const caller = await join('caller');
    expect(caller.cluster.leases.ownedShards()).toEqual([]);

    const answered = caller.system.send(id, { type: 'RECHECK' });
    // The owner ran it and stops before writing the answer; meanwhile its lease runs out and
    // another instance takes the shard over and brings the tracker back.
    await held.reached;
    expect(first.rechecks.get(id)).toBe(1);
    await expire(shard);
    const taker = await join('taker');
    expect(taker.cluster.leases.ownedShards()).toEqual([shard]);
    await waitUntil(() => taker.system.lookup(id), 'the new owner to run the tracker');

    // A second event for the same tracker is answered by the new owner, after it has looked at the
    // first request (requests are fetched in order): the first was not run again.
    const second = await caller.system.send(id, { type: 'RECHECK' });
    expect(second).toMatchObject({ status: 'accepted', tracker: { id, state: 'pending' } });
    expect(taker.rechecks.get(id)).toBe(1);
    expect(first.rechecks.get(id)).toBe(1);

    // The first owner comes back and answers what it ran: the caller gets the answer it would on one instance.
    held.open();
    expect(await answered).toMatchObject({ status: 'accepted', tracker: { id, state: 'pending' } });
    expect(first.rechecks.get(id)).toBe(1);
    expect(taker.rechecks.get(id)).toBe(1);
  }, 60_000);

  it('a request is not claimed by an instance whose lease was taken over in the database while it still believes it holds the shard', async () => {
    await leaveAll();
    const stale = await join('stale-owner');
    const id = 'once-stale-claim';
    const shard = shardOf(id, 1024);
    await stale.system.start(id, { txHash: hashOf(3), confirmations: 3 });
    const epoch = stale.cluster.leases.epochOf(shard)!;
    // Taken over at the next epoch by an instance that is not running (yet): the stale owner's
    // heartbeat is a minute away, so it goes on believing it holds the shard at `epoch`.
    await admin.query("UPDATE shard_leases SET owner = 'successor', epoch = epoch + 1 WHERE shard = $1", [shard]);
    expect(stale.cluster.leases.epochOf(shard)).toBe(epoch);
    const caller = await join('caller-3', undefined, 2500);
    expect(caller.cluster.leases.ownedShards()).toEqual([]);

    // Notified, and swept at least twice before the caller gives up: the stale owner never claims it.
    const answer = await caller.system.send(id, { type: 'RECHECK' }).then(
      () => undefined,
      (error: unknown) => error,
    );
    expect(answer).toMatchObject({ status: 503, code: 'owner_unavailable' });
    expect((answer as Error).message).toMatch(/did not answer within 2500 ms; retry$/);
    expect(stale.rechecks.get(id)).toBeUndefined();
    const { rows } = await admin.query('SELECT id FROM cluster_inbox WHERE tracker_id = $1', [id]);
    expect(rows).toEqual([]);
  }, 60_000);

  it('a DELETE whose owner lost the lease before answering is run again by the next owner (idempotent) and answered once, stopped', async () => {
    await leaveAll();
    const held = gate();
    const owner = await join('owner-2', held.hook);
    const id = 'once-stop';
    const shard = shardOf(id, 1024);
    await owner.system.start(id, { txHash: hashOf(2), confirmations: 3 });
    const caller = await join('caller-2');
    expect(caller.cluster.leases.ownedShards()).toEqual([]);

    const stopped = caller.system.stop(id);
    await held.reached;
    await expire(shard);
    const taker = await join('taker-2');
    expect(taker.cluster.leases.ownedShards()).toEqual([shard]);
    expect(await stopped).toMatchObject({ id, state: 'stopped' });
    held.open();
    // One STOP in the change log: the new owner found it stopped and stopped nothing twice.
    const { rows } = await admin.query<{ event: string }>(
      'SELECT event FROM tracker_history WHERE tracker_id = $1 ORDER BY seq',
      [id],
    );
    expect(rows.map((row) => row.event)).toEqual(['START', 'STOP']);
  }, 60_000);
});
