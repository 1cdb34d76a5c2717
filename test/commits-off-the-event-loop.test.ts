import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, describe, expect, it } from 'vitest';
import { SqliteStore } from '../src/store/sqlite.js';
import type { TrackerRecord } from '../src/store/types.js';
import { hashOf, tempDir } from './helpers.js';

const record = (id: string, state: TrackerRecord['state'], n: number): TrackerRecord => ({
  id,
  txHash: hashOf(n),
  state,
  version: 1,
  snapshot: { status: 'active', value: state, context: { n } },
  restarts: 0,
  createdAt: n,
  updatedAt: n,
});

const nextTurn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

describe('group commits run on a writer thread: the event loop never waits for the disk', () => {
  const dir = tempDir();
  afterAll(() => dir.remove());

  it('while a commit waits for the file, the loop runs, reads see its rows, and later writes gather for the next commit', async () => {
    const path = join(dir.path, 'held.db');
    const store = new SqliteStore({ path });
    store.write(record('before', 'pending', 0));
    await store.flush();
    // Another connection holds the write lock: the writer's commit waits for it (busy_timeout).
    const other = new Database(path);
    other.exec('BEGIN IMMEDIATE');
    try {
      store.write(record('held', 'confirming', 1));
      let durable = false;
      const flushed = store.flush().then(() => {
        durable = true;
      });
      // Committing on the event loop would block here for busy_timeout (5 s) and then fail.
      for (let turn = 0; turn < 20; turn++) await nextTurn();
      expect(durable).toBe(false);
      expect(store.pendingCount).toBe(1);
      expect(await store.get('held')).toMatchObject({ state: 'confirming', snapshot: { context: { n: 1 } } });
      expect((await store.list({ state: 'confirming', limit: 10 })).items.map((r) => r.id)).toEqual(['held']);
      // A newer write of the same id, made while the commit is in flight, wins for readers and on disk.
      store.write(record('held', 'confirmed', 2));
      store.write(record('later', 'pending', 3));
      const second = store.flush();
      expect(await store.get('held')).toMatchObject({ state: 'confirmed' });
      expect(store.pendingCount).toBe(3);
      expect(store.commitCount).toBe(1);

      other.exec('ROLLBACK');
      await flushed;
      await second;
      expect(store.pendingCount).toBe(0);
      expect(store.commitCount).toBe(3);
      const rows = other.prepare<[], { id: string; state: string }>('SELECT id, state FROM trackers ORDER BY id').all();
      expect(rows).toEqual([
        { id: 'before', state: 'pending' },
        { id: 'held', state: 'confirmed' },
        { id: 'later', state: 'pending' },
      ]);
    } finally {
      if (other.inTransaction) other.exec('ROLLBACK');
      other.close();
      await store.close();
    }
  });

  it('a failed commit on the writer keeps its rows pending, and the next flush commits them', async () => {
    const path = join(dir.path, 'failed.db');
    const store = new SqliteStore({ path });
    await store.writerPragma('query_only = ON');
    store.write(record('kept', 'pending', 1));
    await expect(store.flush()).rejects.toThrow(/readonly/);
    expect(store.pendingCount).toBe(1);
    expect(await store.get('kept')).toMatchObject({ state: 'pending' });
    await store.writerPragma('query_only = OFF');
    await store.flush();
    expect(store.pendingCount).toBe(0);
    await store.close();
    const reopened = new SqliteStore({ path });
    expect(await reopened.get('kept')).toMatchObject({ state: 'pending', snapshot: { context: { n: 1 } } });
    await reopened.close();
  });

  it('a commit larger than one message to the writer is still one transaction: a failure in a later slice keeps none of it', async () => {
    const path = join(dir.path, 'slices.db');
    const store = new SqliteStore({ path });
    store.write(record('before', 'pending', 0));
    await store.flush();
    // Room for the first slice of 1,024 rows (~60 pages here), not for all 5,000.
    const pages = store.db.pragma('page_count', { simple: true }) as number;
    await store.writerPragma(`max_page_count = ${pages + 100}`);
    for (let i = 0; i < 5000; i++) store.write(record(`big_${i}`, 'pending', i));
    await expect(store.flush()).rejects.toThrow(/database or disk is full/);
    const count = store.db.prepare<[], number>("SELECT count(*) FROM trackers WHERE id LIKE 'big_%'").pluck();
    expect(count.get()).toBe(0);
    expect(store.pendingCount).toBe(5000);
    await store.writerPragma('max_page_count = 1073741823');
    await store.flush();
    expect(count.get()).toBe(5000);
    expect(store.commitCount).toBe(2);
    await store.close();
  });

  it('if the writer thread dies, the store says so and commits on its own connection: no flush fails, nothing is lost', async () => {
    const path = join(dir.path, 'died.db');
    const stopped: string[] = [];
    const store = new SqliteStore({ path, onThreadFailure: (thread) => stopped.push(thread) });
    expect(store.threads).toEqual({ writer: true, checkpointer: true });
    store.write(record('first', 'pending', 1));
    await store.flush();
    // Fault injection: the thread is stopped from outside, as a crash of the worker would.
    const worker = (store as unknown as { writer: { worker: { terminate(): Promise<number> } } }).writer.worker;
    store.write(record('second', 'confirming', 2));
    const flushed = store.flush();
    await worker.terminate();
    await flushed;
    store.write(record('third', 'pending', 3));
    await store.flush();
    expect(store.pendingCount).toBe(0);
    // Told, and visible: for logs and the tx_tracker_store_thread_up metric.
    expect(stopped).toEqual(['writer']);
    expect(store.threads).toEqual({ writer: false, checkpointer: true });
    await store.close();
    const reader = new Database(path, { readonly: true });
    expect(reader.prepare('SELECT id FROM trackers ORDER BY id').pluck().all()).toEqual(['first', 'second', 'third']);
    reader.close();
  });

  it('can commit on the event loop instead (writerThread: false), with the same results', async () => {
    const path = join(dir.path, 'inline.db');
    const store = new SqliteStore({ path, writerThread: false });
    for (let i = 0; i < 2000; i++) store.write(record(`i_${i}`, 'pending', i));
    await store.flush();
    expect(store.pendingCount).toBe(0);
    expect(store.db.prepare('SELECT count(*) AS n FROM trackers').get()).toEqual({ n: 2000 });
    await store.close();
  });
});
