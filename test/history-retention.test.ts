import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { startHistoryRetention } from '../src/store/history-retention.js';
import { MemoryStore } from '../src/store/memory.js';
import { SqliteStore } from '../src/store/sqlite.js';
import type { SnapshotStore, TrackerChange, TrackerRecord } from '../src/store/types.js';
import { hashOf, tempDir, waitFor } from './helpers.js';

const write = (store: SnapshotStore, id: string, state: TrackerRecord['state'], at: number, from: string | null) => {
  const change: TrackerChange = {
    from,
    to: state === 'pending' ? 'pending.unseen' : state,
    event: from === null ? 'START' : 'TX_MINED',
    at,
    blockNumber: null,
    blockHash: null,
    restarts: 0,
    reorgs: 0,
    detail: null,
  };
  store.write({
    id,
    txHash: hashOf(at),
    chainId: 1,
    state,
    version: 2,
    snapshot: { status: 'active', value: state, context: { id } },
    restarts: 0,
    createdAt: 1,
    updatedAt: at,
    change,
  });
};

const events = async (store: SnapshotStore, id: string) =>
  (await store.history(id, { limit: 100 })).items.map((e) => e.event);

describe('history retention drops the history of trackers that ended before the cutoff, and only theirs', () => {
  const dir = tempDir();
  const stores: SnapshotStore[] = [];
  afterEach(async () => {
    for (const store of stores.splice(0)) await store.close();
  });
  afterAll(() => dir.remove());

  const makers: Array<[string, (name: string) => SnapshotStore]> = [
    ['SQLite (writer thread)', (name) => new SqliteStore({ path: join(dir.path, `${name}-t.db`) })],
    [
      'SQLite (in the event loop)',
      (name) => new SqliteStore({ path: join(dir.path, `${name}-l.db`), writerThread: false }),
    ],
    ['memory', () => new MemoryStore()],
  ];

  for (const [kind, make] of makers) {
    it(`${kind}: ended long ago: pruned; ended recently, or live with old changes: kept; tracker rows all kept`, async () => {
      const store = make('keep');
      stores.push(store);
      write(store, 'live', 'pending', 10, null);
      write(store, 'old-end', 'pending', 20, null);
      write(store, 'old-end', 'confirmed', 30, 'pending.unseen');
      write(store, 'live', 'confirming', 40, 'pending.unseen');
      write(store, 'new-end', 'pending', 50, null);
      write(store, 'new-end', 'failed', 900, 'pending.unseen');
      await store.flush();
      expect(await store.pruneHistory(500, 1000)).toBe(2);
      expect(await events(store, 'old-end')).toEqual([]);
      expect(await events(store, 'live')).toEqual(['START', 'TX_MINED']);
      expect(await events(store, 'new-end')).toEqual(['START', 'TX_MINED']);
      for (const id of ['live', 'old-end', 'new-end']) expect(await store.get(id)).toBeDefined();
      // Nothing more to drop until time moves on; then the recent one goes too, never the live one.
      expect(await store.pruneHistory(500, 1000)).toBe(0);
      expect(await store.pruneHistory(1000, 1000)).toBe(2);
      expect(await events(store, 'new-end')).toEqual([]);
      expect(await events(store, 'live')).toEqual(['START', 'TX_MINED']);
    });

    it(`${kind}: each run looks at a bounded number of rows; runs in the background prune them all`, async () => {
      const store = make('bounded');
      stores.push(store);
      for (let i = 0; i < 50; i++) {
        write(store, `t${i}`, 'pending', 100 + 2 * i, null);
        write(store, `t${i}`, 'stopped', 101 + 2 * i, 'pending.unseen');
      }
      write(store, 'still-live', 'pending', 300, null);
      await store.flush();
      const first = await store.pruneHistory(1000, 10);
      expect(first).toBeGreaterThan(0);
      expect(first).toBeLessThanOrEqual(10);
      const stop = startHistoryRetention(store, { retentionMs: 0, intervalMs: 5, maxRows: 10, now: () => 1000 });
      try {
        await waitFor(async () => (await events(store, 't49')).length === 0, 'every ended tracker pruned');
      } finally {
        await stop();
      }
      for (let i = 0; i < 50; i++) expect(await events(store, `t${i}`)).toEqual([]);
      expect(await events(store, 'still-live')).toEqual(['START']);
    });
  }
});
