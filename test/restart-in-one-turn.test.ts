import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { TrackerRef } from '../machines/supervisor.machine.js';
import { TrackerRegistry } from '../machines/xstate-adaptations.js';
import { type TrackerSystem, createTrackerSystem } from '../src/runtime/system.js';
import { MemoryStore } from '../src/store/memory.js';
import { SqliteStore } from '../src/store/sqlite.js';
import type { SnapshotStore } from '../src/store/types.js';
import { hashOf, tempDir, waitFor } from './helpers.js';

/** The same store without `getNow`: what a networked store looks like to the runtime. */
function asyncOnly(store: SnapshotStore): SnapshotStore {
  return {
    write: (record) => store.write(record),
    flush: () => store.flush(),
    get: (id) => store.get(id),
    list: (query) => store.list(query),
    loadLive: (batchSize, options) => store.loadLive(batchSize, options),
    history: (id, query) => store.history(id, query),
    pruneHistory: (endedBefore, maxRows) => store.pruneHistory(endedBefore, maxRows),
    countByChain: () => store.countByChain(),
    countByState: () => store.countByState(),
    observeFlush: (observer) => store.observeFlush(observer),
    close: () => store.close(),
  };
}

describe('a crash is restarted in the turn it happens when the store reads synchronously', () => {
  const dir = tempDir();
  let system: TrackerSystem | undefined;
  let store: SnapshotStore | undefined;
  afterEach(async () => {
    await system?.shutdown();
    await store?.close();
    dir.remove();
  });

  it('SQLite: the restarted tracker is found by id as soon as send() returns, from its stored state', async () => {
    store = new SqliteStore({ path: join(dir.path, 'trackers.db') });
    system = await createTrackerSystem({ store, faultInjection: true });
    await system.start('txn_now', { txHash: hashOf(1), confirmations: 5 });
    await system.send('txn_now', {
      type: 'TX_MINED',
      blockNumber: 100,
      blockHash: hashOf(100),
      status: 'success',
      head: 101,
    });
    const before = system.lookup('txn_now')!;

    const sent = system.send('txn_now', { type: 'CRASH' });
    // No await between the crash and the lookup: no microtask, no timer, no I/O callback ran.
    const after = system.lookup('txn_now');
    expect(after).toBeDefined();
    expect(after).not.toBe(before);
    expect(after!.getSnapshot().value).toBe('confirming');
    expect(after!.getSnapshot().context).toMatchObject({ confirmations: 2, blockNumber: 100, restarts: 1 });
    expect(system.stats()).toMatchObject({ live: 1, restarting: 0, crashes: 1 });
    await expect(sent).resolves.toMatchObject({ status: 'accepted' });
  });

  it('a store that can only answer later: the tracker is restarting, then back with the same state', async () => {
    store = asyncOnly(new MemoryStore());
    system = await createTrackerSystem({ store, faultInjection: true });
    await system.start('txn_later', { txHash: hashOf(2), confirmations: 5 });
    await system.send('txn_later', { type: 'TX_SEEN' });

    const sent = system.send('txn_later', { type: 'CRASH' });
    expect(system.lookup('txn_later')).toBeUndefined();
    expect(system.stats().restarting).toBe(1);
    await waitFor(() => system!.lookup('txn_later') !== undefined, 'the tracker to be restarted');
    expect(system.lookup('txn_later')!.getSnapshot().value).toEqual({ pending: 'seen' });
    expect(system.lookup('txn_later')!.getSnapshot().context.restarts).toBe(1);
    await sent;
  });

  it('a restart that backs off (second crash in the window) waits even with a synchronous store', async () => {
    store = new MemoryStore();
    system = await createTrackerSystem({ store, faultInjection: true, restartPolicy: { backoffBaseMs: 50 } });
    await system.start('txn_backoff', { txHash: hashOf(3) });
    await system.send('txn_backoff', { type: 'CRASH' });
    const first = system.lookup('txn_backoff');
    expect(first!.getSnapshot().context.restarts).toBe(1);

    void system.send('txn_backoff', { type: 'CRASH' });
    expect(system.lookup('txn_backoff')).toBeUndefined();
    await waitFor(() => system!.lookup('txn_backoff') !== undefined, 'the backed-off restart');
    expect(system.lookup('txn_backoff')!.getSnapshot().context.restarts).toBe(2);
  });
});

describe('TrackerRegistry', () => {
  const ref = (n: number) => ({ id: `r${n}` }) as unknown as TrackerRef;

  it('is immutable: with/without return new registries and leave the old ones as they were', () => {
    const ids = Array.from({ length: 300 }, (_, i) => `txn_${i * 7919}`);
    const refs = ids.map((_, i) => ref(i));
    const full = TrackerRegistry.EMPTY.with(ids.map((id, i) => [id, refs[i]!] as const));
    expect(TrackerRegistry.EMPTY.size).toBe(0);
    expect(full.size).toBe(300);
    ids.forEach((id, i) => expect(full.get(id)).toBe(refs[i]));
    expect(new Set(full.keys())).toEqual(new Set(ids));
    expect([...full.values()]).toHaveLength(300);

    const less = full.without(ids[0]!);
    expect(less.size).toBe(299);
    expect(less.has(ids[0]!)).toBe(false);
    expect(full.has(ids[0]!)).toBe(true);
    expect(full.without('not-there')).toBe(full);

    const replaced = full.with([[ids[1]!, ref(-1)]]);
    expect(replaced.size).toBe(300);
    expect(full.get(ids[1]!)).toBe(refs[1]);
    expect(replaced.get(ids[1]!)).not.toBe(refs[1]);
    expect(Object.keys(replaced.toJSON())).toHaveLength(300);
  });
});

describe('a shard supervisor that fails', () => {
  it('stops its trackers and its replacement brings them back from the store: one live actor per id', async () => {
    const store = new MemoryStore();
    let failOnce = true;
    const system = await createTrackerSystem({
      store,
      shardCount: 1,
      hooks: {
        // A hook that throws inside the shard's own transition makes the shard fail.
        trackerGone: () => {
          if (!failOnce) return;
          failOnce = false;
          throw new Error('hook bug');
        },
      },
    });
    try {
      await system.startMany([
        { id: 'a', txHash: hashOf(1) },
        { id: 'b', txHash: hashOf(2) },
        { id: 'c', txHash: hashOf(3) },
      ]);
      await system.send('b', { type: 'TX_SEEN' });
      const oldB = system.lookup('b')!;
      await system.stop('a');
      await waitFor(
        () => system.lookup('b') !== undefined && system.lookup('b') !== oldB,
        'the shard and its trackers to be back',
      );
      await waitFor(() => system.lookup('c') !== undefined, 'c to be back');
      expect(oldB.getSnapshot().status).toBe('stopped');
      expect(system.lookup('b')!.getSnapshot().value).toEqual({ pending: 'seen' });
      // Only the new actors persist: the old ones were stopped (their subscriptions ended).
      expect(system.stats()).toMatchObject({ live: 2, subscriptions: 2 });
      await expect(system.send('c', { type: 'TX_SEEN' })).resolves.toMatchObject({ status: 'accepted' });
      expect((await system.get('a'))!.state).toBe('stopped');
    } finally {
      await system.shutdown();
    }
  });
});
