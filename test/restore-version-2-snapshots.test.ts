import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TRACKER_MACHINE_VERSION } from '../machines/tracker.machine.js';
import { type TrackerSystem, createTrackerSystem } from '../src/runtime/system.js';
import { SqliteStore } from '../src/store/sqlite.js';
import { hashOf, tempDir } from './helpers.js';

interface Row {
  id: string;
  version: number;
  snapshot: string;
}

// Machine version 2 had no `stuck` state and no `stuck` context field. Rows it wrote (as the store
// packs them) are made here from version 3 rows by taking the field out and writing version 2.
describe('trackers stored by machine version 2 (before stuck) run on version 3', () => {
  const dir = tempDir();
  const path = join(dir.path, 'trackers.db');
  let system: TrackerSystem;
  let store: SqliteStore;

  beforeAll(async () => {
    const first = new SqliteStore({ path });
    const writer = await createTrackerSystem({ store: first });
    await writer.start('unseen', { txHash: hashOf(1), confirmations: 2 });
    await writer.start('seen', { txHash: hashOf(2), confirmations: 2 });
    await writer.start('confirming', { txHash: hashOf(3), confirmations: 3 });
    writer.deliver('seen', { type: 'TX_SEEN' });
    writer.deliver('confirming', {
      type: 'TX_MINED',
      blockNumber: 7,
      blockHash: hashOf(7),
      status: 'success',
      head: 7,
    });
    await writer.shutdown();
    await first.close();

    const raw = new Database(path);
    const rows = raw.prepare('SELECT id, version, snapshot FROM trackers').all() as Row[];
    const update = raw.prepare('UPDATE trackers SET version = 2, snapshot = ? WHERE id = ?');
    for (const row of rows) {
      const snapshot = JSON.parse(row.snapshot) as { packed?: number; context: Record<string, unknown> };
      expect(snapshot.packed, row.id).toBe(2);
      expect(snapshot.context.stuck, row.id).toBeNull();
      delete snapshot.context.stuck;
      update.run(JSON.stringify(snapshot), row.id);
    }
    raw.close();

    store = new SqliteStore({ path });
    system = await createTrackerSystem({ store });
  });
  afterAll(async () => {
    await system?.shutdown();
    await store?.close();
    dir.remove();
  });

  it('every version 2 tracker comes back live in its state, not stuck, none quarantined', async () => {
    expect(system.stats().live).toBe(3);
    expect(system.lookup('unseen')!.getSnapshot().value).toEqual({ pending: 'unseen' });
    expect(system.lookup('seen')!.getSnapshot().value).toEqual({ pending: 'seen' });
    expect(system.lookup('confirming')!.getSnapshot().value).toBe('confirming');
    for (const id of ['unseen', 'seen', 'confirming']) {
      const tracker = (await system.get(id))!;
      expect(tracker.failure, id).toBeNull();
      expect(tracker, id).not.toHaveProperty('stuck');
      expect(system.lookup(id)!.getSnapshot().context.stuck, id).toBeNull();
    }
    expect(await system.get('confirming')).toMatchObject({ blockNumber: 7, confirmations: 1 });
  });

  it('a restored version 2 tracker can become stuck and leave it, and is then written as version 3', async () => {
    system.deliver('seen', { type: 'TX_STUCK', reason: 'nonce_gap', detail: 'nonce 3 waits for 2', blockNumber: 40 });
    expect(await system.get('seen')).toMatchObject({
      state: 'pending',
      stuck: { reason: 'nonce_gap', since: 40, detail: 'nonce 3 waits for 2' },
    });
    await store.flush();
    const raw = new Database(path, { readonly: true });
    const row = raw.prepare("SELECT version, snapshot FROM trackers WHERE id = 'seen'").get() as Row;
    raw.close();
    expect(row.version).toBe(TRACKER_MACHINE_VERSION);
    expect(TRACKER_MACHINE_VERSION).toBe(3);
    expect(JSON.parse(row.snapshot)).toMatchObject({
      value: { pending: 'stuck' },
      context: { stuck: { reason: 'nonce_gap', since: 40 } },
    });

    system.deliver('seen', { type: 'TX_MINED', blockNumber: 41, blockHash: hashOf(41), status: 'success', head: 41 });
    const mined = (await system.get('seen'))!;
    expect(mined).toMatchObject({ state: 'confirming', blockNumber: 41 });
    expect(mined).not.toHaveProperty('stuck');
  });
});
