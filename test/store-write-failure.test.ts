import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { StoreError } from '../src/errors.js';
import { type TrackerSystem, createTrackerSystem } from '../src/runtime/system.js';
import { SqliteStore } from '../src/store/sqlite.js';
import { hashOf, tempDir } from './helpers.js';

/** The rows as a second connection reads them from the file: what survives this process. */
function rowsOnDisk(path: string): Map<string, string> {
  const db = new Database(path, { readonly: true });
  const rows = db.prepare('SELECT id, state FROM trackers').all() as Array<{ id: string; state: string }>;
  db.close();
  return new Map(rows.map((r) => [r.id, r.state]));
}

// Runs as root in CI, where chmod does not stop writes; SQLite's own limits make the same errors:
// `max_page_count` gives SQLITE_FULL as a full disk does, `query_only` SQLITE_READONLY as a read-only file.
describe('a store that cannot write gives a clear error at the API, no crash and no lost rows', () => {
  const dir = tempDir();
  let system: TrackerSystem | undefined;
  let store: SqliteStore | undefined;
  afterEach(async () => {
    await system?.shutdown();
    await store?.close().catch(() => {});
  });
  afterAll(() => dir.remove());

  async function withTrackers(name: string): Promise<string> {
    const path = join(dir.path, name);
    store = new SqliteStore({ path });
    system = await createTrackerSystem({ store });
    for (let i = 0; i < 5; i++) await system.start(`kept_${i}`, { txHash: hashOf(i), confirmations: 2 });
    await system.send('kept_0', { type: 'TX_MINED', blockNumber: 9, blockHash: hashOf(9), status: 'success', head: 9 });
    return path;
  }

  it('disk full: start and send reject with a StoreError; stored rows stay; writes land once there is room', async () => {
    const path = await withTrackers('full.db');
    const pages = store!.db.pragma('page_count', { simple: true }) as number;
    await store!.writerPragma(`max_page_count = ${pages}`);

    const many = Array.from({ length: 500 }, (_, i) => ({ id: `new_${i}`, txHash: hashOf(1000 + i) }));
    const error = await system!.startMany(many).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(StoreError);
    expect((error as StoreError).code).toBe('store_unavailable');
    expect((error as StoreError).message).toMatch(/could not make the change durable: database or disk is full/);
    await expect(system!.start('one_more', { txHash: hashOf(2000) })).rejects.toBeInstanceOf(StoreError);
    // Regression: a retried start found the tracker live and answered already_started, not durable.
    await expect(system!.start('one_more', { txHash: hashOf(2000) })).rejects.toBeInstanceOf(StoreError);
    await expect(system!.send('kept_0', { type: 'NEW_HEAD', blockNumber: 10 })).rejects.toThrow(
      /database or disk is full/,
    );

    const disk = rowsOnDisk(path);
    for (let i = 0; i < 5; i++) expect(disk.has(`kept_${i}`)).toBe(true);
    expect(disk.get('kept_0')).toBe('confirming');
    expect(disk.has('new_0')).toBe(false);

    // Room again: the writes that were held (not dropped) become durable with the next flush.
    await store!.writerPragma('max_page_count = 1073741823');
    expect(await system!.start('one_more', { txHash: hashOf(2000) })).toMatchObject({ status: 'already_started' });
    const after = rowsOnDisk(path);
    expect(after.size).toBe(5 + 500 + 1);
    expect(after.get('kept_0')).toBe('confirmed');
  });

  it('read-only database: start rejects with a StoreError naming it; reads keep working', async () => {
    const path = await withTrackers('readonly.db');
    await store!.writerPragma('query_only = ON');
    const error = await system!.start('refused', { txHash: hashOf(77) }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(StoreError);
    expect((error as StoreError).shortMessage).toBe('the store could not make the change durable');
    expect((error as StoreError).details).toMatch(/readonly/);
    expect(await system!.get('kept_3')).toMatchObject({ state: 'pending' });
    expect((await system!.list({ limit: 10 })).items.length).toBeGreaterThanOrEqual(5);
    expect([...rowsOnDisk(path).keys()].sort()).toEqual(['kept_0', 'kept_1', 'kept_2', 'kept_3', 'kept_4']);
    await store!.writerPragma('query_only = OFF');
  });
});
