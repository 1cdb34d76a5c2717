import { afterAll, afterEach, beforeAll, expect, it } from 'vitest';
import { shardOf } from '../src/runtime/shard.js';
import { PostgresStore } from '../src/store/postgres.js';
import type { TrackerRecord } from '../src/store/types.js';
import { WebhookDispatcher } from '../src/webhooks/dispatcher.js';
import { parseAllowList } from '../src/webhooks/ssrf.js';
import { type PostgresServer, describeWithPostgres, startPostgres } from './support/postgres.js';
import { waitUntil } from './support/wait.js';
import { changed, endpointOf } from './support/webhook-store-contract.js';
import { type Answer, type Receiver, startReceiver } from './support/webhook-receiver.js';

const SHARDS = 1024;

/** One instance: its store on the shared database and its dispatcher, sending the shards `owns` says. */
interface Instance {
  store: PostgresStore;
  dispatcher: WebhookDispatcher;
  attempts: number;
}

const created = (id: string, at: number): TrackerRecord => changed(id, null, 'pending.unseen', at, { event: 'START' });

describeWithPostgres('instances sharing one database: endpoints and shards as the others change them', () => {
  let pg: PostgresServer;
  let receiver: Receiver;
  let answer: (n: number) => Answer = () => 204;
  const instances: Instance[] = [];
  beforeAll(async () => {
    pg = await startPostgres();
    receiver = await startReceiver((n) => answer(n));
  }, 60_000);
  afterEach(async () => {
    for (const { dispatcher, store } of instances.splice(0)) {
      await dispatcher.stop();
      await store.close();
    }
    receiver.received.length = 0;
  });
  afterAll(async () => {
    await receiver?.close();
    await pg?.close();
  });

  async function start(url: string, owns: (shard: number) => boolean): Promise<Instance> {
    const store = await PostgresStore.open({ url });
    store.webhooks.dispatchFor({
      shardCount: SHARDS,
      owns,
      ownedShards: () => Array.from({ length: SHARDS }, (_, s) => s).filter(owns),
    });
    const dispatcher = new WebhookDispatcher({
      store: store.webhooks,
      allow: parseAllowList('127.0.0.1'),
      retryScheduleMs: [0, ...Array<number>(40).fill(100)],
    });
    const instance: Instance = { store, dispatcher, attempts: 0 };
    dispatcher.observeAttempts(() => instance.attempts++);
    dispatcher.start();
    instances.push(instance);
    return instance;
  }

  /** Tracker ids whose shards are even and odd, `n` of each. */
  const idsBy = (n: number, prefix: string) => {
    const even: string[] = [];
    const odd: string[] = [];
    for (let i = 0; even.length < n || odd.length < n; i++) {
      const id = `${prefix}-${i}`;
      const list = shardOf(id, SHARDS) % 2 === 0 ? even : odd;
      if (list.length < n) list.push(id);
    }
    return { even, odd };
  };

  it('each sends its own shards once; a PATCH, a re-enable and a DELETE made on one are followed by the other within a poll', async () => {
    const url = await pg.createDatabase();
    const [a, b] = [await start(url, (s) => s % 2 === 0), await start(url, (s) => s % 2 === 1)];
    const endpoint = endpointOf('ep_shared', { url: receiver.url, createdAt: Date.now() });
    await a.store.webhooks.createEndpoint(endpoint);
    const first = idsBy(5, 'first');
    for (const id of first.even) a.store.write(created(id, Date.now()));
    for (const id of first.odd) b.store.write(created(id, Date.now()));
    await Promise.all([a.store.flush(), b.store.flush()]);
    await waitUntil(() => receiver.accepted().size === 10 || undefined, 'the first deliveries');
    await waitUntil(() => a.attempts + b.attempts === 10 || undefined, 'the answers to be taken');
    expect(receiver.received).toHaveLength(10);
    expect([a.attempts, b.attempts]).toEqual([5, 5]);

    // The receiver refuses: both retry theirs. Disabled through b, a stops sending too.
    answer = () => 503;
    const second = idsBy(3, 'second');
    for (const id of second.even) a.store.write(created(id, Date.now()));
    for (const id of second.odd) b.store.write(created(id, Date.now()));
    await Promise.all([a.store.flush(), b.store.flush()]);
    await waitUntil(() => a.attempts > 10 && b.attempts > 10, 'both to retry');
    await b.store.webhooks.updateEndpoint({ ...endpoint, enabled: false, disabledReason: 'disabled by PATCH' });
    // A request in flight when it was read may still end; none starts a poll (250 ms) after.
    await new Promise((resolve) => setTimeout(resolve, 600));
    const quiet = receiver.received.length;
    await new Promise((resolve) => setTimeout(resolve, 600));
    expect(receiver.received.length).toBe(quiet);

    // Enabled again through a: b sends its trackers' pending deliveries as well.
    answer = () => 204;
    await a.store.webhooks.updateEndpoint({ ...endpoint, enabled: true, updatedAt: Date.now() });
    await waitUntil(() => receiver.accepted().size === 16 || undefined, 'the pending deliveries of both');
    await waitUntil(async () => (await b.store.webhooks.outboxStats()).pending === 0 || undefined, 'none pending');

    // Deleted through a: b's next change makes no delivery, and nobody sends one.
    expect(await a.store.webhooks.deleteEndpoint(endpoint.id)).toBe(true);
    expect(await b.store.webhooks.getEndpoint(endpoint.id)).toBeUndefined();
    b.store.write(created(second.odd[0]! + '-late', Date.now()));
    await b.store.flush();
    await new Promise((resolve) => setTimeout(resolve, 600));
    expect(receiver.accepted().size).toBe(16);
  }, 30_000);

  it('a shard handed over: the old owner cuts its request and records nothing; the new owner sends it', async () => {
    const url = await pg.createDatabase();
    let aOwnsAll = true;
    const a = await start(url, () => aOwnsAll);
    const b = await start(url, () => !aOwnsAll);
    await a.store.webhooks.createEndpoint(endpointOf('ep_moved', { url: receiver.url, createdAt: Date.now() }));
    // The first request hangs (its answer would never come); the next ones are answered.
    answer = (n) => (n === 0 ? 'hang' : 204);
    a.store.write(created('moving', Date.now()));
    await a.store.flush();
    await waitUntil(() => receiver.received.length === 1 || undefined, 'the first request, from a');
    aOwnsAll = false;
    await waitUntil(() => receiver.accepted().size === 1 || undefined, 'the same delivery, from b');
    expect(receiver.received.map((r) => r.id)).toEqual([receiver.received[0]!.id, receiver.received[0]!.id]);
    await waitUntil(() => a.dispatcher.inflight === 0 || undefined, 'a to cut its request');
    expect(a.attempts).toBe(0);
    expect(b.attempts).toBe(1);
    // b's record of its attempt is written by its next commit: read it once it is there.
    const delivery = await waitUntil(async () => {
      const [row] = (await a.store.webhooks.listDeliveries('ep_moved', { limit: 10 })).items;
      return row?.status === 'pending' ? undefined : row;
    }, 'b to record its attempt');
    expect(delivery).toMatchObject({ status: 'succeeded', attempts: 1 });
    expect(delivery!.attemptLog).toEqual([expect.objectContaining({ attempt: 1, statusCode: 204 })]);
  }, 30_000);
});
