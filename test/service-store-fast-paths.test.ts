import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { createStoreFromConfig } from '../src/service.js';
import { MemoryStore } from '../src/store/memory.js';
import { SqliteStore } from '../src/store/sqlite.js';
import type { SnapshotStore } from '../src/store/types.js';
import { type TestApi, hashOf, startTestApi } from './helpers/api.js';

/** Calls to the store's reads, counted on the very instance the service made. */
function countReads(store: SnapshotStore) {
  const sqlite = store as SqliteStore;
  return {
    get: vi.spyOn(sqlite, 'get'),
    getNow: vi.spyOn(sqlite, 'getNow'),
    getManyNow: vi.spyOn(sqlite, 'getManyNow'),
    reset(): void {
      this.get.mockClear();
      this.getNow.mockClear();
      this.getManyNow.mockClear();
    },
  };
}

describe('the started service runs on its store as it is (regression: a timing wrapper hid getNow and getManyNow)', () => {
  let api: TestApi;
  let reads: ReturnType<typeof countReads>;
  beforeAll(async () => {
    api = await startTestApi({
      system: { faultInjection: true },
      onStore: (store) => (reads = countReads(store)),
    });
  });
  afterAll(() => api.stop());

  it('createStoreFromConfig hands out the store itself, with all it can do', async () => {
    expect(api.store).toBeInstanceOf(SqliteStore);
    expect(api.system.store).toBe(api.store);
    const { store } = await createStoreFromConfig({ DATABASE_URL: 'memory:' });
    expect(store).toBeInstanceOf(MemoryStore);
    expect(typeof store.getNow).toBe('function');
    await store.close();
  });

  it('a crashed tracker is found restarted, its state kept, as soon as the CRASH call returns: one synchronous read', async () => {
    const id = 'fast-crash';
    expect((await api.call('POST', '/trackers', { txHash: hashOf(1), id, confirmations: 3 })).status).toBe(201);
    // To confirming through the library, as the chain watcher would; then durable.
    api.system.deliver(id, {
      type: 'TX_MINED',
      blockNumber: 100,
      blockHash: hashOf(100),
      status: 'success',
      head: 100,
    });
    await api.store.flush();
    reads.reset();

    const crash = await api.call('POST', `/trackers/${id}/events`, { type: 'CRASH' });
    expect(crash.status).toBe(202);
    expect(crash.json).toMatchObject({ state: 'confirming', blockNumber: 100, restarts: 1 });
    // No waiting: the very next request sees the new incarnation.
    const after = await api.call('GET', `/trackers/${id}`);
    expect(after.json).toMatchObject({
      state: 'confirming',
      confirmations: 1,
      blockNumber: 100,
      blockHash: hashOf(100),
      restarts: 1,
    });
    expect(api.system.stats()).toMatchObject({ crashes: 1, restarts: 1, restarting: 0 });
    // The restart read the durable snapshot synchronously, in the step that saw the crash.
    expect(reads.getNow.mock.calls).toEqual([[id]]);
    expect(reads.get).not.toHaveBeenCalled();
  });

  it('a batch create reads the store once for all its new ids', async () => {
    reads.reset();
    const trackers = Array.from({ length: 50 }, (_, i) => ({ txHash: hashOf(1_000 + i), id: `batch-${i}` }));
    const res = await api.call('POST', '/trackers/batch', { trackers });
    expect(res.status).toBe(200);
    expect((res.json as { results: Array<{ status: number }> }).results.map((r) => r.status)).toEqual(
      trackers.map(() => 201),
    );
    expect(reads.getManyNow.mock.calls).toEqual([[trackers.map((t) => t.id)]]);
    expect(reads.getNow).not.toHaveBeenCalled();
    expect(reads.get).not.toHaveBeenCalled();
  });
});
