import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createTrackerSystem } from '../src/runtime/system.js';
import { SqliteStore } from '../src/store/sqlite.js';
import { hashOf, tempDir } from './helpers.js';

describe('process start rehydrates every non-final tracker from the store, in batches', () => {
  const dir = tempDir();
  afterAll(() => dir.remove());

  it('brings back pending and confirming trackers where they were; final ones stay in the store only', async () => {
    const path = join(dir.path, 'trackers.db');
    const first = new SqliteStore({ path });
    const before = await createTrackerSystem({ store: first });
    const n = 300;
    await before.startMany(
      Array.from({ length: n }, (_, i) => ({
        id: `t_${String(i).padStart(3, '0')}`,
        txHash: hashOf(i),
        confirmations: 4,
      })),
    );
    for (let i = 0; i < n; i++) {
      const id = `t_${String(i).padStart(3, '0')}`;
      if (i % 3 === 0) continue; // pending
      before.deliver(id, {
        type: 'TX_MINED',
        blockNumber: 50,
        blockHash: hashOf(50),
        status: 'success',
        head: 50 + (i % 3),
      });
      if (i % 5 === 0) before.deliver(id, { type: 'NEW_HEAD', blockNumber: 60 }); // confirmed
    }
    await before.stop('t_003'); // final: stopped
    await before.shutdown();
    await first.close();

    const store = new SqliteStore({ path });
    const batches: number[] = [];
    for await (const batch of store.loadLive(64)) batches.push(batch.length);
    const finals = Array.from({ length: n }, (_, i) => i).filter((i) => (i % 3 !== 0 && i % 5 === 0) || i === 3);
    expect(batches.reduce((a, b) => a + b, 0)).toBe(n - finals.length);
    expect(Math.max(...batches)).toBeLessThanOrEqual(64);

    const system = await createTrackerSystem({ store });
    expect(system.stats().live).toBe(n - finals.length);
    expect(system.lookup('t_003')).toBeUndefined();
    expect(await system.get('t_003')).toMatchObject({ state: 'stopped' });
    expect(system.lookup('t_005')).toBeUndefined();
    expect(await system.get('t_005')).toMatchObject({ state: 'confirmed' });
    expect(system.lookup('t_001')!.getSnapshot().context).toMatchObject({ confirmations: 2, blockNumber: 50 });
    expect(system.lookup('t_000')!.getSnapshot().value).toEqual({ pending: 'unseen' });
    // Rehydration writes nothing back (the rows are what was loaded), yet the first change after it is stored.
    expect(store.pendingCount + store.commitCount).toBe(0);
    system.deliver('t_000', { type: 'TX_SEEN' });
    await store.flush();
    expect(((await store.get('t_000'))!.snapshot as { value: unknown }).value).toEqual({ pending: 'seen' });
    // Rehydrated trackers carry on.
    const result = await system.send('t_001', { type: 'NEW_HEAD', blockNumber: 53 });
    expect(result).toMatchObject({ status: 'accepted', tracker: { state: 'confirmed' } });
    await system.shutdown();
    await store.close();
  });
});
