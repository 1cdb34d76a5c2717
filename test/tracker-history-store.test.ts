import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { type TrackerSystem, createTrackerSystem } from '../src/runtime/system.js';
import { MemoryStore } from '../src/store/memory.js';
import { SqliteStore } from '../src/store/sqlite.js';
import type { HistoryEntry, SnapshotStore, TrackerChange, TrackerRecord } from '../src/store/types.js';
import { hashOf, tempDir } from './helpers.js';

const change = (from: string | null, to: string, event: string, at: number): TrackerChange => ({
  from,
  to,
  event,
  at,
  blockNumber: null,
  blockHash: null,
  restarts: 0,
  reorgs: 0,
  detail: null,
});

const record = (id: string, state: TrackerRecord['state'], at: number, c?: TrackerChange): TrackerRecord => ({
  id,
  txHash: hashOf(at),
  chainId: 1,
  state,
  version: 2,
  snapshot: { status: 'active', value: state, context: { id, at } },
  restarts: 0,
  createdAt: 1,
  updatedAt: at,
  change: c,
});

async function allHistory(store: SnapshotStore, id: string, limit: number): Promise<HistoryEntry[]> {
  const items: HistoryEntry[] = [];
  let cursor: string | null = null;
  do {
    const page = await store.history(id, { limit, cursor });
    expect(page.items.length).toBeLessThanOrEqual(limit);
    items.push(...page.items);
    cursor = page.nextCursor;
  } while (cursor);
  return items;
}

/** The history rows as a second connection reads them from the file. */
function historyOnDisk(path: string): Array<{ seq: number; tracker_id: string; event: string; to_state: string }> {
  const db = new Database(path, { readonly: true });
  const rows = db.prepare('SELECT seq, tracker_id, event, to_state FROM tracker_history ORDER BY seq').all();
  db.close();
  return rows as Array<{ seq: number; tracker_id: string; event: string; to_state: string }>;
}

describe('the change log: one history row per change, in order, in the commit of its row', () => {
  const dir = tempDir();
  const stores: SnapshotStore[] = [];
  afterEach(async () => {
    for (const store of stores.splice(0)) await store.close().catch(() => undefined);
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
    it(`${kind}: several writes of one tracker in one commit keep every change (not coalesced), readable before and after the commit, paged`, async () => {
      const store = make('order');
      stores.push(store);
      store.write(record('a', 'pending', 10, change(null, 'pending.unseen', 'START', 10)));
      store.write(record('b', 'pending', 11, change(null, 'pending.unseen', 'START', 11)));
      store.write(record('a', 'pending', 12, change('pending.unseen', 'pending.seen', 'TX_SEEN', 12)));
      store.write(record('a', 'confirming', 13, change('pending.seen', 'confirming', 'TX_MINED', 13)));
      // A write that is not a change (no `change`) adds no row.
      store.write(record('a', 'confirming', 14));
      store.write(record('a', 'confirmed', 15, change('confirming', 'confirmed', 'NEW_HEAD', 15)));
      const expected = ['START', 'TX_SEEN', 'TX_MINED', 'NEW_HEAD'];
      // Before the commit: as `get` shows the row.
      expect((await allHistory(store, 'a', 100)).map((e) => e.event)).toEqual(expected);
      await store.flush();
      const after = await allHistory(store, 'a', 3);
      expect(after.map((e) => e.event)).toEqual(expected);
      expect(after.map((e) => e.to)).toEqual(['pending.unseen', 'pending.seen', 'confirming', 'confirmed']);
      expect(after.every((e) => e.trackerId === 'a')).toBe(true);
      const seqs = after.map((e) => e.seq);
      expect([...seqs].sort((x, y) => x - y)).toEqual(seqs);
      expect(new Set(seqs).size).toBe(4);
      expect((await allHistory(store, 'a', 1)).map((e) => e.seq)).toEqual(seqs);
      expect((await allHistory(store, 'b', 10)).map((e) => e.event)).toEqual(['START']);
      expect((await store.history('nobody', { limit: 10 })).items).toEqual([]);
      // The record read back carries no change: it is not part of the row.
      expect((await store.get('a'))!.change).toBeUndefined();
      // Pages written while a page was read go on after it.
      const first = await store.history('a', { limit: 4 });
      expect(first.nextCursor).toBeNull();
      store.write(record('a', 'confirmed', 16, change('confirmed', 'confirmed', 'STOP', 16)));
      const page = await store.history('a', { limit: 4, cursor: (await store.history('a', { limit: 3 })).nextCursor });
      expect(page.items.map((e) => e.event)).toEqual(['NEW_HEAD', 'STOP']);
    });
  }

  it('SQLite: the rows are in the file in seq order once flushed, with every column', async () => {
    const path = join(dir.path, 'columns.db');
    const store = new SqliteStore({ path });
    stores.push(store);
    store.write(
      record('x', 'failed', 20, {
        from: 'pending.seen',
        to: 'failed',
        event: 'TX_REPLACED',
        at: 20,
        blockNumber: 7,
        blockHash: hashOf(7),
        restarts: 2,
        reorgs: 1,
        detail: { failure: { reason: 'replaced', detail: 'replaced by 0x…' }, replacedBy: hashOf(8) },
      }),
    );
    await store.flush();
    const [entry] = (await store.history('x', { limit: 1 })).items;
    expect(entry).toEqual({
      seq: 1,
      trackerId: 'x',
      from: 'pending.seen',
      to: 'failed',
      event: 'TX_REPLACED',
      at: 20,
      blockNumber: 7,
      blockHash: hashOf(7),
      restarts: 2,
      reorgs: 1,
      detail: { failure: { reason: 'replaced', detail: 'replaced by 0x…' }, replacedBy: hashOf(8) },
    });
    expect(historyOnDisk(path)).toEqual([{ seq: 1, tracker_id: 'x', event: 'TX_REPLACED', to_state: 'failed' }]);
  });

  it('SQLite: a failed commit keeps its history rows pending with its rows, in order, and they land with the retry', async () => {
    const path = join(dir.path, 'failed-commit.db');
    const store = new SqliteStore({ path });
    stores.push(store);
    store.write(record('k', 'pending', 1, change(null, 'pending.unseen', 'START', 1)));
    await store.flush();
    await store.writerPragma('query_only = ON');
    store.write(record('k', 'pending', 2, change('pending.unseen', 'pending.seen', 'TX_SEEN', 2)));
    await expect(store.flush()).rejects.toThrow(/could not make the change durable/);
    // Written while the failed batch was pending again: after it.
    store.write(record('k', 'confirming', 3, change('pending.seen', 'confirming', 'TX_MINED', 3)));
    expect(historyOnDisk(path).map((r) => r.event)).toEqual(['START']);
    expect((await store.history('k', { limit: 10 })).items.map((e) => e.event)).toEqual([
      'START',
      'TX_SEEN',
      'TX_MINED',
    ]);
    await store.writerPragma('query_only = OFF');
    await store.flush();
    expect(historyOnDisk(path).map((r) => [r.seq, r.event])).toEqual([
      [1, 'START'],
      [2, 'TX_SEEN'],
      [3, 'TX_MINED'],
    ]);
  });

  it('SQLite: seqs go on from the file after a reopen, and are not handed out again after the newest rows were pruned', async () => {
    const path = join(dir.path, 'reopen.db');
    let store = new SqliteStore({ path });
    store.write(record('old', 'confirmed', 5, change(null, 'confirmed', 'START', 5)));
    await store.close();
    store = new SqliteStore({ path });
    stores.push(store);
    expect(await store.pruneHistory(100, 10)).toBe(1);
    await store.close();
    store = new SqliteStore({ path });
    stores.push(store);
    store.write(record('new', 'pending', 200, change(null, 'pending.unseen', 'START', 200)));
    await store.flush();
    expect(historyOnDisk(path).map((r) => r.seq)).toEqual([2]);
  });
});

describe('a running tracker writes its history through the runtime', () => {
  const dir = tempDir();
  let system: TrackerSystem | undefined;
  let store: SqliteStore | undefined;
  afterEach(async () => {
    await system?.shutdown();
    await store?.close();
  });
  afterAll(() => dir.remove());

  it('START, each event that changed it (a RECHECK that changes nothing adds none), RESTART after a crash, in order', async () => {
    store = new SqliteStore({ path: join(dir.path, 'runtime.db') });
    system = await createTrackerSystem({ store, faultInjection: true, now: () => 1_000 });
    await system.start('t1', { txHash: hashOf(1), confirmations: 3 });
    await system.send('t1', { type: 'TX_SEEN' });
    await system.send('t1', { type: 'RECHECK' });
    await system.send('t1', { type: 'TX_MINED', blockNumber: 10, blockHash: hashOf(10), status: 'success', head: 10 });
    await system.send('t1', { type: 'CRASH' }).catch(() => undefined);
    await system.send('t1', { type: 'NEW_HEAD', blockNumber: 12 });
    const items = (await store.history('t1', { limit: 100 })).items;
    expect(items.map((e) => [e.from, e.to, e.event, e.restarts])).toEqual([
      [null, 'pending.unseen', 'START', 0],
      ['pending.unseen', 'pending.seen', 'TX_SEEN', 0],
      ['pending.seen', 'confirming', 'TX_MINED', 0],
      ['confirming', 'confirming', 'RESTART', 1],
      ['confirming', 'confirmed', 'NEW_HEAD', 1],
    ]);
    expect(items[2]).toMatchObject({ blockNumber: 10, blockHash: hashOf(10), detail: { confirmations: 1 } });
    expect(items[4]).toMatchObject({ blockNumber: 10, detail: { confirmations: 3 }, at: 1_000 });
  });
});
