import pg from 'pg';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { StoreError } from '../src/errors.js';
import { PostgresStore } from '../src/store/postgres.js';
import { PG_SCHEMA_VERSION } from '../src/store/postgres-schema.js';
import { type PostgresServer, describeWithPostgres, startPostgres } from './support/postgres.js';
import { storeContract } from './support/store-contract.js';

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
