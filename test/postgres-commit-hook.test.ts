import pg from 'pg';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { StoreError } from '../src/errors.js';
import { type CommitHook, PostgresStore } from '../src/store/postgres.js';
import type { TrackerChange, TrackerRecord } from '../src/store/types.js';
import { type PostgresServer, describeWithPostgres, startPostgres } from './support/postgres.js';
import { record } from './support/store-contract.js';
import { waitUntil } from './support/wait.js';

const started = (id: string, at: number): TrackerRecord => {
  const change: TrackerChange = {
    from: null,
    to: 'pending.unseen',
    event: 'START',
    at,
    blockNumber: null,
    blockHash: null,
    restarts: 0,
    reorgs: 0,
    detail: null,
  };
  return { ...record(id, 'pending', at, 1), change };
};

// The hook a caller (ownership leases) uses to fence writes: it runs in the commit's transaction.
describeWithPostgres('PostgresStore commit hook: checks and rows of its own inside each group commit', () => {
  let server: PostgresServer;
  beforeAll(async () => {
    server = await startPostgres();
  });
  afterAll(() => server?.close());

  const open = async (hook: CommitHook) => {
    const url = await server.createDatabase();
    const store = await PostgresStore.open({ url, commitHook: hook, minRetryMs: 10, maxRetryMs: 50 });
    const sql = new pg.Client({ connectionString: url });
    await sql.connect();
    const ids = async (table: string, column: string) =>
      (await sql.query<{ id: string }>(`SELECT ${column} AS id FROM ${table} ORDER BY 1`)).rows.map((r) => r.id);
    return { store, sql, ids };
  };

  it('leaves out the ids it fences off (their rows and history), drops them, and commits the rest in the same transaction', async () => {
    const seen: string[][] = [];
    const { store, sql, ids } = await open({
      // A lease table read in the commit's own transaction: only what this instance owns is written.
      beforeUpsert: async (client, batch) => {
        seen.push([...batch]);
        const { rows } = await client.query<{ id: string }>(
          'SELECT id FROM unnest($1::text[]) AS b(id) WHERE id NOT IN (SELECT id FROM owned)',
          [batch],
        );
        return rows.map((r) => r.id);
      },
    });
    await sql.query('CREATE TABLE owned (id TEXT PRIMARY KEY)');
    await sql.query("INSERT INTO owned VALUES ('mine-1'), ('mine-2')");
    for (const id of ['mine-1', 'theirs', 'mine-2']) store.write(started(id, 1));
    await store.flush();
    expect(seen).toEqual([['mine-1', 'theirs', 'mine-2']]);
    expect(await ids('trackers', 'id')).toEqual(['mine-1', 'mine-2']);
    expect(await ids('tracker_history', 'tracker_id')).toEqual(['mine-1', 'mine-2']);
    // Dropped, not retried: nothing is pending, and a read no longer shows the fenced write.
    expect(store.pendingCount).toBe(0);
    expect(await store.get('theirs')).toBeUndefined();
    await store.close();
    await sql.end();
  });

  it('a hook that throws rolls the whole commit back: flush fails, the batch stays pending and lands on a later attempt', async () => {
    let refuse = true;
    const { store, sql, ids } = await open({
      beforeUpsert: async () => {
        if (refuse) throw new Error('lease not held yet');
      },
      afterUpsert: async (client, rows, history) => {
        await client.query('INSERT INTO outbox SELECT unnest($1::text[]), unnest($2::int8[])', [
          [...rows.keys()],
          history.map((h) => h[0]),
        ]);
      },
    });
    await sql.query('CREATE TABLE outbox (id TEXT, seq BIGINT)');
    store.write(started('a', 1));
    await expect(store.flush()).rejects.toThrow(StoreError);
    expect(store.pendingCount).toBe(1);
    expect(await ids('trackers', 'id')).toEqual([]);
    expect(await store.get('a')).toMatchObject({ id: 'a' });
    refuse = false;
    // Retried with backoff, without another write or flush.
    await waitUntil(() => store.pendingCount === 0, 'the retried commit');
    expect(store.pendingCount).toBe(0);
    expect(await ids('trackers', 'id')).toEqual(['a']);
    // afterUpsert's rows are in the same commit, with the seq each change got.
    const [entry] = (await store.history('a', { limit: 1 })).items;
    expect((await sql.query('SELECT id, seq FROM outbox')).rows).toEqual([{ id: 'a', seq: String(entry!.seq) }]);
    await store.close();
    await sql.end();
  });
});
