import { afterAll, beforeAll, expect, it } from 'vitest';
import { type TrackerSystem, createTrackerSystem } from '../src/runtime/system.js';
import { PostgresStore } from '../src/store/postgres.js';
import { hashOf, waitFor } from './helpers.js';
import { type PostgresServer, describeWithPostgres, startPostgres } from './support/postgres.js';

// PostgresStore has no getNow/getManyNow: the runtime reads it asynchronously when it starts
// trackers and when it restarts a crashed one.
describeWithPostgres('the runtime on PostgreSQL takes its asynchronous read paths', () => {
  let server: PostgresServer;
  let store: PostgresStore;
  let system: TrackerSystem;
  beforeAll(async () => {
    server = await startPostgres();
    store = await PostgresStore.open({ url: await server.createDatabase() });
    system = await createTrackerSystem({ store, faultInjection: true });
  });
  afterAll(async () => {
    await system?.shutdown();
    await store?.close();
    await server?.close();
  });

  it('starts many (new, repeated, conflicting ids), and restarts a crashed tracker from its stored state', async () => {
    const results = await system.startMany([
      { id: 'a', txHash: hashOf(1), confirmations: 5 },
      { id: 'b', txHash: hashOf(2), confirmations: 5 },
    ]);
    expect(results.map((r) => r.status)).toEqual(['started', 'started']);
    const again = await system.startMany([
      { id: 'a', txHash: hashOf(1), confirmations: 5 },
      { id: 'b', txHash: hashOf(3), confirmations: 5 },
      { id: 'c', txHash: hashOf(4), confirmations: 5 },
    ]);
    expect(again.map((r) => r.status)).toEqual(['already_started', 'error', 'started']);
    expect(again[1]).toMatchObject({ error: { code: 'id_conflict' } });
    expect(await store.get('c')).toMatchObject({ state: 'pending' });

    await system.send('a', { type: 'TX_SEEN' });
    const sent = system.send('a', { type: 'CRASH' });
    expect(system.lookup('a')).toBeUndefined();
    await waitFor(() => system.lookup('a') !== undefined, 'the crashed tracker restarted');
    expect(system.lookup('a')!.getSnapshot().value).toEqual({ pending: 'seen' });
    expect(system.lookup('a')!.getSnapshot().context.restarts).toBe(1);
    await sent;
    await store.flush();
    expect((await store.history('a', { limit: 10 })).items.map((e) => e.event)).toEqual([
      'START',
      'TX_SEEN',
      'RESTART',
    ]);
  });
});
