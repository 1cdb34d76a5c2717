import pg from 'pg';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { ChangeLog } from '../src/cluster/changes.js';
import { silentLogger } from '../src/runtime/logger.js';
import type { Tracker } from '../src/runtime/tracker-view.js';
import { PostgresStore } from '../src/store/postgres.js';
import { hashOf } from './helpers.js';
import { type PostgresServer, describeWithPostgres, startPostgres } from './support/postgres.js';
import { waitUntil } from './support/wait.js';

describeWithPostgres('the change feed reads the change log in number order, whatever the commit order', () => {
  let server: PostgresServer;
  let pool: pg.Pool;
  let log: ChangeLog;
  const seen: Array<[number, string]> = [];

  beforeAll(async () => {
    server = await startPostgres();
    const store = await PostgresStore.open({ url: server.url });
    store.write({
      id: 'feed-1',
      txHash: hashOf(1),
      chainId: 31337,
      state: 'pending',
      version: 2,
      snapshot: { status: 'active', value: { pending: 'unseen' }, context: {}, historyValue: {}, children: {} },
      restarts: 0,
      createdAt: 1,
      updatedAt: 1,
    });
    await store.flush();
    await store.close();
    pool = new pg.Pool({ connectionString: server.url });
    log = new ChangeLog({ pool, pollMs: 20, logger: silentLogger });
    log
      .source((record) => ({ id: record.id, state: record.state }) as unknown as Tracker)
      .subscribe((id, tracker) => seen.push([id, tracker.state]));
  }, 60_000);
  afterAll(async () => {
    await log?.stop();
    await pool?.end();
    await server?.close();
  });

  const append = (client: pg.PoolClient | pg.Pool, seq: number, to: string, at = Date.now()) =>
    client.query(
      `INSERT INTO tracker_history (seq, tracker_id, at, from_state, to_state, event, restarts, reorgs)
       VALUES ($1, 'feed-1', $2, NULL, $3, 'TEST', 0, 0)`,
      [seq, at, to],
    );

  it('a change committed after a later-numbered one is given first, from the first read on; a number never committed is passed over', async () => {
    // The feed’s first read: number 1 still committing while number 2 is visible (a first read that
    // gave 2 would skip 1 for good).
    const first = await pool.connect();
    await first.query('BEGIN');
    await append(first, 1, 'pending.unseen');
    await append(pool, 2, 'pending.unseen');
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(seen).toEqual([]);
    await first.query('COMMIT');
    first.release();
    await waitUntil(() => seen.length === 2, 'the first changes');
    expect(seen.map(([id]) => id)).toEqual([1, 2]);

    // Number 3 is taken by a commit still under way while number 4 commits.
    const slow = await pool.connect();
    await slow.query('BEGIN');
    await append(slow, 3, 'pending.seen');
    await append(pool, 4, 'confirming.counting');
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(seen.map(([id]) => id)).toEqual([1, 2]);
    await slow.query('COMMIT');
    slow.release();
    await waitUntil(() => seen.length === 4, 'the held-back changes');
    expect(seen.map(([id]) => id)).toEqual([1, 2, 3, 4]);

    // Number 5 never commits (rolled back): after a wait, the feed goes on with 6.
    const startedAt = Date.now();
    await append(pool, 6, 'confirmed');
    await waitUntil(() => seen.length === 5, 'the feed to pass over the hole', 15_000);
    expect(seen.map(([id]) => id)).toEqual([1, 2, 3, 4, 6]);
    expect(Date.now() - startedAt).toBeGreaterThan(3000);

    // A hole behind an old change (pruned history, a reader started late) is passed over at once.
    await append(pool, 8, 'confirmed', Date.now() - 60_000);
    await waitUntil(() => seen.length === 6, 'the old hole to be passed over', 2000);
  });

  it('a backlog longer than one read is given in full and in order; a hole wider than one read is passed over', async () => {
    const before = seen.length;
    const last = seen.at(-1)![0];
    await pool.query(
      `INSERT INTO tracker_history (seq, tracker_id, at, from_state, to_state, event, restarts, reorgs)
       SELECT s, 'feed-1', $2, NULL, 'confirming.counting', 'TEST', 0, 0 FROM generate_series($1::int8 + 1, $1::int8 + 12000) s`,
      [last, Date.now()],
    );
    await waitUntil(() => seen.length === before + 12_000, 'the backlog', 15_000);
    const ids = seen.slice(before).map(([id]) => id);
    expect(ids).toEqual(Array.from({ length: 12_000 }, (_, i) => last + 1 + i));

    // The next number is 20,000 further on, its change old: passed over at once.
    await append(pool, last + 32_000, 'confirmed', Date.now() - 60_000);
    await waitUntil(() => seen.length === before + 12_001, 'the wide hole to be passed over', 2000);
    expect(seen.at(-1)![0]).toBe(last + 32_000);
  });
});
