import pg from 'pg';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { StoreError } from '../src/errors.js';
import { PostgresStore } from '../src/store/postgres.js';
import { PG_SCHEMA_VERSION } from '../src/store/postgres-schema.js';
import { type PostgresServer, describeWithPostgres, startPostgres } from './support/postgres.js';
import type { TrackerRecord } from '../src/store/types.js';
import { record, storeContract } from './support/store-contract.js';

describeWithPostgres('PostgresStore keeps the SnapshotStore contract', () => {
  let server: PostgresServer;
  beforeAll(async () => {
    server = await startPostgres();
  });
  afterAll(() => server?.close());

  storeContract(async () => {
    // One database per name: a name opened again is the same data.
    const databases = new Map<string, string>();
    const urlOf = async (name: string): Promise<string> => {
      let url = databases.get(name);
      if (!url) databases.set(name, (url = await server.createDatabase()));
      return url;
    };
    return {
      open: async (name) => PostgresStore.open({ url: await urlOf(name) }),
      storedSnapshot: async (name, id) => {
        const client = new pg.Client({ connectionString: await urlOf(name) });
        await client.connect();
        try {
          const { rows } = await client.query<{ snapshot: string }>('SELECT snapshot FROM trackers WHERE id = $1', [
            id,
          ]);
          return rows[0]?.snapshot ?? '';
        } finally {
          await client.end();
        }
      },
      close: async () => undefined,
    };
  });

  it("chains each tracker's history rows (prev_seq, and history_seq in its row), across commits and across stores", async () => {
    const url = await server.createDatabase();
    const [a, b] = [await PostgresStore.open({ url }), await PostgresStore.open({ url })];
    const changed = (id: string, n: number, event: string): TrackerRecord => ({
      ...record(id, 'pending', n, 1),
      change: {
        from: null,
        to: 'pending.unseen',
        event,
        at: n,
        blockNumber: null,
        blockHash: null,
        restarts: 0,
        reorgs: 0,
        detail: null,
      },
    });
    a.write(changed('t', 1, 'START'));
    a.write(changed('t', 2, 'TX_SEEN'));
    a.write(changed('u', 3, 'START'));
    await a.flush();
    // The next change of the same tracker from another store (another instance, after a takeover).
    b.write(changed('t', 4, 'TX_MINED'));
    // A write that is not a change keeps the row's newest seq.
    b.write(record('u', 'confirming', 5, 1));
    await b.flush();
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    const chain = async (id: string) =>
      (
        await client.query<{ seq: string; prev_seq: string | null; event: string }>(
          'SELECT seq, prev_seq, event FROM tracker_history WHERE tracker_id = $1 ORDER BY seq',
          [id],
        )
      ).rows;
    const newest = async (id: string) =>
      (await client.query<{ s: string }>('SELECT history_seq AS s FROM trackers WHERE id = $1', [id])).rows[0]!.s;
    const t = await chain('t');
    expect(t.map((r) => r.event)).toEqual(['START', 'TX_SEEN', 'TX_MINED']);
    expect(t.map((r) => r.prev_seq)).toEqual([null, t[0]!.seq, t[1]!.seq]);
    expect(await newest('t')).toBe(t[2]!.seq);
    const u = await chain('u');
    expect(await newest('u')).toBe(u[0]!.seq);
    await client.end();
    await Promise.all([a.close(), b.close()]);
  });

  it('refuses a database written by a newer store schema instead of misreading it', async () => {
    const url = await server.createDatabase();
    await (await PostgresStore.open({ url })).close();
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    await client.query('INSERT INTO tracker_store_schema (version) VALUES ($1)', [PG_SCHEMA_VERSION + 1]);
    await client.end();
    await expect(PostgresStore.open({ url })).rejects.toThrow(StoreError);
    await expect(PostgresStore.open({ url })).rejects.toThrow(
      new RegExp(`store schema is ${PG_SCHEMA_VERSION + 1}, newer than this build's \\(${PG_SCHEMA_VERSION}\\)`),
    );
  });
});
