import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { TRACKER_STATE_NAMES } from '../machines/tracker.machine.js';
import { MemoryStore } from '../src/store/memory.js';
import { SqliteStore } from '../src/store/sqlite.js';
import type { SnapshotStore, TrackerRecord } from '../src/store/types.js';
import { hashOf, seededRandom, tempDir } from './helpers.js';

const record = (id: string, state: TrackerRecord['state'], n: number): TrackerRecord => ({
  id,
  txHash: hashOf(n),
  state,
  version: 1,
  snapshot: { status: 'active', value: state, context: { id, n } },
  restarts: 0,
  createdAt: n,
  updatedAt: n,
});

async function allPages(store: SnapshotStore, state: TrackerRecord['state'] | undefined, limit: number): Promise<string[]> {
  const ids: string[] = [];
  let cursor: string | null = null;
  do {
    const page = await store.list({ state, limit, cursor });
    expect(page.items.length).toBeLessThanOrEqual(limit);
    ids.push(...page.items.map((r) => r.id));
    cursor = page.nextCursor;
  } while (cursor);
  return ids;
}

describe('SqliteStore keeps the SnapshotStore contract', () => {
  const dir = tempDir();
  afterAll(() => dir.remove());

  it('reads its own writes before they are committed, and pages like MemoryStore with writes pending', async () => {
    const sqlite = new SqliteStore({ path: join(dir.path, 'contract.db') });
    const memory = new MemoryStore();
    const random = seededRandom(7);
    const states = TRACKER_STATE_NAMES;
    const write = (r: TrackerRecord): void => {
      sqlite.write(r);
      memory.write(r);
    };
    for (let i = 0; i < 400; i++) write(record(`id_${Math.floor(random() * 300)}`, states[i % states.length]!, i));
    await sqlite.flush();
    // Now some writes stay pending (same turn, no flush): moves between states, and new ids.
    for (let i = 0; i < 120; i++) write(record(`id_${Math.floor(random() * 400)}`, states[Math.floor(random() * 5)]!, 1000 + i));
    expect(sqlite.pendingCount).toBeGreaterThan(0);
    expect(await sqlite.get('id_1')).toEqual(await memory.get('id_1'));
    for (const state of [undefined, ...states]) {
      for (const limit of [1, 7, 50]) {
        expect(await allPages(sqlite, state, limit), `${state} by ${limit}`).toEqual(await allPages(memory, state, limit));
      }
    }
    await sqlite.close();
  });

  it('flush makes writes durable: a second store on the file sees them; close flushes the rest', async () => {
    const path = join(dir.path, 'durable.db');
    const a = new SqliteStore({ path });
    a.write(record('one', 'pending', 1));
    await a.flush();
    const b = new SqliteStore({ path });
    expect(await b.get('one')).toMatchObject({ id: 'one', state: 'pending', snapshot: { context: { n: 1 } } });
    a.write(record('two', 'confirming', 2));
    await a.close();
    expect(await b.get('two')).toMatchObject({ state: 'confirming' });
    await b.close();
  });

  it('groups the writes of one turn, and every flush waiting on them, into one commit', async () => {
    const store = new SqliteStore({ path: join(dir.path, 'group.db') });
    for (let i = 0; i < 5000; i++) store.write(record(`g_${i}`, 'pending', i));
    const flushes = Array.from({ length: 100 }, () => store.flush());
    expect(store.pendingCount).toBe(5000);
    await Promise.all(flushes);
    expect(store.pendingCount).toBe(0);
    expect(store.commitCount).toBe(1);
    expect(store.db.prepare('SELECT count(*) AS n FROM trackers').get()).toEqual({ n: 5000 });
    await store.close();
  });
});
