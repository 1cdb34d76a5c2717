import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, describe, expect, it } from 'vitest';
import { storedShard } from '../src/runtime/shard.js';
import { createTrackerSystem } from '../src/runtime/system.js';
import { STORE_SCHEMA_VERSION } from '../src/store/schema.js';
import { SqliteStore } from '../src/store/sqlite.js';
import { hashOf, tempDir } from './helpers.js';

/**
 * A store schema 2 file: schema 3 only added `tracker_history` and `trackers.history_seq` (and 6
 * `trackers.shard`), so a file written by this build without them (and at user_version 2) is what
 * schema 2 wrote for the trackers.
 */
async function schema2File(path: string): Promise<void> {
  const store = new SqliteStore({ path });
  const system = await createTrackerSystem({ store });
  await system.start('live', { txHash: hashOf(1), confirmations: 2 });
  await system.send('live', { type: 'TX_MINED', blockNumber: 5, blockHash: hashOf(5), status: 'success', head: 5 });
  await system.start('ended', { txHash: hashOf(2) });
  await system.stop('ended');
  await system.shutdown();
  await store.close();
  const db = new Database(path);
  db.exec(
    'DROP TABLE tracker_history; ALTER TABLE trackers DROP COLUMN history_seq; ' +
      'DROP INDEX trackers_live_shard; ALTER TABLE trackers DROP COLUMN shard',
  );
  db.pragma('user_version = 2');
  db.close();
}

describe('a store schema 2 file upgrades to schema 3 in place: the trackers as they were, an empty change log', () => {
  const dir = tempDir();
  afterAll(() => dir.remove());

  it('opens at schema 3 with the history table; trackers brought back add no row; their next changes do', async () => {
    const path = join(dir.path, 'v2.db');
    await schema2File(path);
    const before = new Database(path, { readonly: true });
    const rows = before.prepare('SELECT * FROM trackers ORDER BY id').all();
    before.close();

    const store = new SqliteStore({ path });
    const system = await createTrackerSystem({ store });
    const raw = new Database(path, { readonly: true });
    expect(raw.pragma('user_version', { simple: true })).toBe(STORE_SCHEMA_VERSION);
    const upgraded = raw.prepare('SELECT * FROM trackers ORDER BY id').all() as Array<Record<string, unknown>>;
    expect(upgraded).toEqual(
      (rows as Array<Record<string, unknown>>).map((row) => ({
        ...row,
        history_seq: null,
        shard: storedShard(row.id as string),
      })),
    );
    const columns = (table: string) =>
      (raw.pragma(`table_info(${table})`) as Array<{ name: string }>).map((c) => c.name);
    expect(columns('trackers').slice(-2)).toEqual(['history_seq', 'shard']);
    expect(columns('tracker_history')).toEqual([
      'seq',
      'tracker_id',
      'prev_seq',
      'at',
      'from_state',
      'to_state',
      'event',
      'block_number',
      'block_hash',
      'restarts',
      'reorgs',
      'detail',
    ]);
    expect(raw.prepare('SELECT count(*) AS n FROM tracker_history').get()).toEqual({ n: 0 });

    expect(await system.get('live')).toMatchObject({ state: 'confirming', blockNumber: 5 });
    expect((await store.history('live', { limit: 10 })).items).toEqual([]);
    expect((await store.history('ended', { limit: 10 })).items).toEqual([]);
    system.newHead(6);
    await expect.poll(async () => (await system.get('live'))?.state).toBe('confirmed');
    await store.flush();
    const logged = raw.prepare('SELECT seq, tracker_id, prev_seq, to_state, event FROM tracker_history').all();
    expect(logged).toEqual([{ seq: 1, tracker_id: 'live', prev_seq: null, to_state: 'confirmed', event: 'NEW_HEAD' }]);
    expect(raw.prepare("SELECT history_seq FROM trackers WHERE id = 'live'").get()).toEqual({ history_seq: 1 });
    raw.close();
    await system.shutdown();
    await store.close();
  });
});
