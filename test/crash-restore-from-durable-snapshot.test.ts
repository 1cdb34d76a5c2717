import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import { SqliteStore } from '../src/store/sqlite.js';
import { type TrackerSystem, createTrackerSystem } from '../src/runtime/system.js';
import { hashOf, tempDir, waitFor } from './helpers.js';

describe('a crashed tracker comes back from its durable snapshot, not from memory', () => {
  const dir = tempDir();
  let system: TrackerSystem | undefined;
  let store: SqliteStore | undefined;
  afterEach(async () => {
    await system?.shutdown();
    await store?.close();
    dir.remove();
  });

  it('restores the stored state after the in-memory copy was corrupted and the tracker crashed', async () => {
    const path = join(dir.path, 'trackers.db');
    store = new SqliteStore({ path });
    system = await createTrackerSystem({ store, faultInjection: true });
    await system.start('txn_crash', { txHash: hashOf(1), confirmations: 5 });
    await system.send('txn_crash', {
      type: 'TX_MINED',
      blockNumber: 100,
      blockHash: hashOf(100),
      status: 'success',
      head: 101,
    });
    const before = system.lookup('txn_crash')!;
    expect(before.getSnapshot().context.confirmations).toBe(2);

    // Corrupt the live actor's own copy: if a restart took memory, these values would come back.
    const live = before.getSnapshot().context;
    live.confirmations = 999;
    live.blockHash = hashOf(666);
    live.blockNumber = 666;

    await system.send('txn_crash', { type: 'CRASH' });
    await waitFor(() => {
      const ref = system!.lookup('txn_crash');
      return ref !== undefined && ref !== before;
    }, 'the tracker to be re-spawned');

    const restored = system.lookup('txn_crash')!.getSnapshot();
    expect(restored.value).toBe('confirming');
    expect(restored.context).toMatchObject({ confirmations: 2, blockNumber: 100, blockHash: hashOf(100), restarts: 1 });

    // The file agrees (read on a second connection), and the tracker goes on from there.
    await store.flush();
    const reader = new Database(path, { readonly: true });
    const row = reader.prepare('SELECT snapshot FROM trackers WHERE id = ?').get('txn_crash') as { snapshot: string };
    reader.close();
    expect(JSON.parse(row.snapshot).context).toMatchObject({ confirmations: 2, blockNumber: 100, restarts: 1 });
    const result = await system.send('txn_crash', { type: 'NEW_HEAD', blockNumber: 104 });
    expect(result).toMatchObject({ status: 'accepted', tracker: { state: 'confirmed', confirmations: 5 } });
  });
});
