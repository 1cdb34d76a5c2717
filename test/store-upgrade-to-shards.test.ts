import { join } from 'node:path';
import Database from 'better-sqlite3';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FINAL_STATE_NAMES, TRACKER_STATE_NAMES } from '../machines/tracker.machine.js';
import { DEFAULT_SHARD_COUNT, shardOf, storedShard } from '../src/runtime/shard.js';
import { PostgresStore } from '../src/store/postgres.js';
import { FILL_SHARDS_BATCH, PG_MIGRATIONS, PG_SCHEMA_VERSION, migrate } from '../src/store/postgres-schema.js';
import { STORE_SCHEMA_VERSION, openDatabase } from '../src/store/schema.js';
import { SqliteStore } from '../src/store/sqlite.js';
import type { SnapshotStore, TrackerRecord } from '../src/store/types.js';
import { tempDir } from './helpers.js';
import { type PostgresServer, describeWithPostgres, startPostgres } from './support/postgres.js';
import { record } from './support/store-contract.js';

const STATES = ['zzz', ...TRACKER_STATE_NAMES] as TrackerRecord['state'][];
const stateOf = (i: number): TrackerRecord['state'] => STATES[i % STATES.length]!;
const isLive = (state: string): boolean => !FINAL_STATE_NAMES.includes(state as TrackerRecord['state']);

/** The ids `loadLive` of `shards` hands out, sorted. */
async function loadedIds(store: SnapshotStore, shards: number[]): Promise<string[]> {
  const ids: string[] = [];
  for await (const batch of store.loadLive(100, { shards })) ids.push(...batch.map((r) => r.id));
  return ids.sort();
}

/** The live ids among `rows` in `shards` (at the default count), sorted. */
const liveIn = (rows: Array<{ id: string; state: string }>, shards: number[]): string[] =>
  rows
    .filter((row) => isLive(row.state) && shards.includes(shardOf(row.id, DEFAULT_SHARD_COUNT)))
    .map((row) => row.id)
    .sort();

describe('a SQLite store file of schema 5 gets the trackers’ shard column, filled in every row', () => {
  const dir = tempDir();
  afterAll(() => dir.remove());

  it('fills every row in batches (schema 6 once done), resumes a fill cut short, and loadLive of some shards reads by it', async () => {
    const path = join(dir.path, 'v5.db');
    const n = 250;
    const first = new SqliteStore({ path });
    for (let i = 0; i < n; i++) first.write(record(`t_${i}`, stateOf(i), i));
    await first.close();
    // What schema 5 wrote: the same rows, without the column and its index.
    const old = new Database(path);
    old.exec('DROP INDEX trackers_live_shard; ALTER TABLE trackers DROP COLUMN shard');
    old.pragma('user_version = 5');
    old.close();

    // A small batch: the fill takes several transactions.
    openDatabase(path, 32).close();
    const raw = new Database(path, { readonly: true });
    const rows = () =>
      raw.prepare('SELECT id, state, shard FROM trackers ORDER BY id').all() as Array<{
        id: string;
        state: string;
        shard: number | null;
      }>;
    expect(raw.pragma('user_version', { simple: true })).toBe(STORE_SCHEMA_VERSION);
    expect(rows()).toHaveLength(n);
    for (const row of rows()) expect(row.shard, row.id).toBe(storedShard(row.id));
    expect(raw.prepare("SELECT sql FROM sqlite_master WHERE name = 'trackers_live_shard'").pluck().get()).toMatch(
      /ON trackers \(shard, id\) WHERE state NOT IN/,
    );

    // A crash in the middle of the fill: some rows still without, the file still at 5.
    const cut = new Database(path);
    cut.exec("UPDATE trackers SET shard = NULL WHERE id > 't_150'");
    cut.pragma('user_version = 5');
    cut.close();
    expect(rows().filter((row) => row.shard === null).length).toBeGreaterThan(0);
    const store = new SqliteStore({ path });
    expect(raw.pragma('user_version', { simple: true })).toBe(STORE_SCHEMA_VERSION);
    for (const row of rows()) expect(row.shard, row.id).toBe(storedShard(row.id));

    const shards = [shardOf('t_7', DEFAULT_SHARD_COUNT), shardOf('t_8', DEFAULT_SHARD_COUNT)];
    expect(liveIn(rows(), shards).length).toBeGreaterThan(0);
    expect(await loadedIds(store, shards)).toEqual(liveIn(rows(), shards));
    raw.close();
    await store.close();
  });
});

describeWithPostgres('a PostgreSQL database of schema 5 gets the trackers’ shard column, filled in every row', () => {
  let server: PostgresServer;
  beforeAll(async () => {
    server = await startPostgres();
  }, 60_000);
  afterAll(() => server?.close());

  /** A database at schema 5 with `n` tracker rows, as that schema's upsert left them. */
  const schema5 = async (n: number): Promise<{ url: string; client: pg.Client }> => {
    const url = await server.createDatabase();
    const pool = new pg.Pool({ connectionString: url });
    await migrate(
      pool,
      PG_MIGRATIONS.filter((migration) => migration.version <= 5),
    );
    await pool.end();
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    await client.query(
      `INSERT INTO trackers (id, tx_hash, state, version, snapshot, restarts, created_at, updated_at, chain_id)
       SELECT 't_' || g, '0x' || lpad(to_hex(g), 64, '0'), ($2::text[])[1 + g % $3], 1, '{"status":"active"}', 0, g, g, 1
       FROM generate_series(0, $1 - 1) AS g`,
      [n, STATES, STATES.length],
    );
    return { url, client };
  };
  const rowsOf = async (client: pg.Client) =>
    (await client.query<{ id: string; state: string; shard: number | null }>('SELECT id, state, shard FROM trackers'))
      .rows;

  it('fills every row in batches after the migration, once; rows an older instance writes later are still loaded, then filled by a write', async () => {
    // More rows than a batch: the fill takes several.
    const n = 2 * FILL_SHARDS_BATCH + 321;
    const { url, client } = await schema5(n);
    // Two instances of this build start at once: both open, the rows are filled once.
    const [a, b] = await Promise.all([PostgresStore.open({ url }), PostgresStore.open({ url })]);
    const rows = await rowsOf(client);
    expect(rows).toHaveLength(n);
    for (const row of rows) if (row.shard !== storedShard(row.id)) expect(row.shard, row.id).toBe(storedShard(row.id));
    expect((await client.query('SELECT max(version) AS v FROM tracker_store_schema')).rows[0].v).toBe(
      PG_SCHEMA_VERSION,
    );
    expect((await client.query('SELECT name FROM tracker_store_fills')).rows).toEqual([{ name: 'trackers.shard' }]);
    expect(
      (await client.query("SELECT indexdef FROM pg_indexes WHERE indexname = 'trackers_live_shard'")).rows[0].indexdef,
    ).toMatch(/\(shard, id\) WHERE \(state <> ALL/);

    const shards = [shardOf('t_1', DEFAULT_SHARD_COUNT), shardOf('t_2', DEFAULT_SHARD_COUNT), 1023];
    expect(liveIn(rows, shards).length).toBeGreaterThan(0);
    expect(await loadedIds(a, shards)).toEqual(liveIn(rows, shards));

    // An instance of the older build, still running, inserts a row without a shard: it is read all
    // the same, and a store opened later does not fill again (the fill is recorded).
    const late = 'late-live';
    await client.query(
      `INSERT INTO trackers (id, tx_hash, state, version, snapshot, restarts, created_at, updated_at)
       VALUES ($1, '0xabc', 'pending', 1, '{"status":"active"}', 0, 1, 1)`,
      [late],
    );
    const lateShard = shardOf(late, DEFAULT_SHARD_COUNT);
    expect(await loadedIds(b, [lateShard])).toEqual(liveIn(await rowsOf(client), [lateShard]));
    expect(await loadedIds(b, [lateShard])).toContain(late);
    const c = await PostgresStore.open({ url });
    const stillNull = async () =>
      (await client.query<{ shard: number | null }>('SELECT shard FROM trackers WHERE id = $1', [late])).rows[0]!.shard;
    expect(await stillNull()).toBeNull();
    // A write of this build gives it its shard.
    c.write(record(late, 'pending', 2));
    await c.flush();
    expect(await stillNull()).toBe(storedShard(late));
    expect(await loadedIds(c, [lateShard])).toContain(late);

    await Promise.all([a.close(), b.close(), c.close()]);
    await client.end();
  });
});
