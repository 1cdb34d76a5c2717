import type pg from 'pg';
import { StoreError } from '../errors.js';

/**
 * The PostgreSQL store's migrations, numbered as the SQLite store's schema versions (`user_version`)
 * so that one number names one shape of the data in both: it starts at 2, the first SQLite schema
 * with every column it has. Each runs once, in order, recorded in `tracker_store_schema`.
 */
export const PG_MIGRATIONS: ReadonlyArray<{ version: number; sql: string }> = [
  {
    version: 2,
    // COLLATE "C": ids and states compare byte by byte, as SQLite's BINARY does, whatever the
    // database's locale, so that keyset paging agrees with the order the store merges pending writes in.
    // Times are double precision: exact for every epoch millisecond, and a non-integer time a record
    // may carry comes back as written. (state, id) serves listing by state and the rehydration scan.
    sql: `
      CREATE TABLE trackers (
        id          TEXT COLLATE "C" PRIMARY KEY,
        tx_hash     TEXT NOT NULL,
        state       TEXT COLLATE "C" NOT NULL,
        version     INTEGER NOT NULL,
        snapshot    TEXT NOT NULL,
        restarts    INTEGER NOT NULL,
        created_at  DOUBLE PRECISION NOT NULL,
        updated_at  DOUBLE PRECISION NOT NULL,
        quarantined TEXT,
        chain_id    BIGINT
      );
      CREATE INDEX trackers_state_id ON trackers (state, id);`,
  },
];

export const PG_SCHEMA_VERSION = PG_MIGRATIONS[PG_MIGRATIONS.length - 1]!.version;

/** Key of the advisory lock that serialises migrations across instances (any constant of our own). */
const MIGRATION_LOCK = 0x7478_7472; // "txtr"

/**
 * Bring the database's store schema up to `PG_SCHEMA_VERSION`, in one transaction under an advisory
 * lock, so that several instances starting at once migrate it once. A database written by a newer
 * build is refused.
 *
 * @example
 * await migrate(pool);
 */
export async function migrate(pool: pg.Pool, migrations = PG_MIGRATIONS): Promise<void> {
  const latest = migrations[migrations.length - 1]!.version;
  let client: pg.PoolClient | undefined;
  try {
    client = await pool.connect();
    await client.query('BEGIN');
    await client.query('SELECT pg_advisory_xact_lock($1)', [MIGRATION_LOCK]);
    await client.query(`CREATE TABLE IF NOT EXISTS tracker_store_schema (
      version    INTEGER PRIMARY KEY,
      applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
    )`);
    const { rows } = await client.query<{ version: number | null }>(
      'SELECT max(version) AS version FROM tracker_store_schema',
    );
    const current = rows[0]?.version ?? 0;
    if (current > latest) throw new Error(`its store schema is ${current}, newer than this build's (${latest})`);
    for (const migration of migrations) {
      if (migration.version <= current) continue;
      await client.query(migration.sql);
      await client.query('INSERT INTO tracker_store_schema (version) VALUES ($1)', [migration.version]);
    }
    await client.query('COMMIT');
  } catch (error) {
    await client?.query('ROLLBACK').catch(() => undefined);
    throw new StoreError('cannot open the PostgreSQL database', error);
  } finally {
    client?.release();
  }
}
