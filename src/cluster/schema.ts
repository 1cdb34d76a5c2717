import type { Pool, PoolClient } from 'pg';

/** The channel an instance is woken on when shards are handed back (payload: the instance id). */
export const LEASES_CHANNEL = 'tx_tracker_leases';

/**
 * The cluster's tables: live instances with their heartbeat, one lease row per shard (owner, fencing
 * epoch, expiry), and the inbox of requests for trackers owned by another instance (`claimed_epoch`:
 * the lease epoch under which an owner took a request to run). (The change feed
 * every instance reads is the store's change log, `tracker_history`.) Idempotent; a
 * transaction-level advisory lock keeps instances starting together from racing on it.
 *
 * @example
 * await migrateCluster(pool, 1024);
 */
export async function migrateCluster(pool: Pool, shardCount: number): Promise<void> {
  const client = await pool.connect();
  // Checked out, its errors are ours; the failing query reports them.
  client.on('error', () => undefined);
  try {
    await client.query('BEGIN');
    await client.query("SELECT pg_advisory_xact_lock(hashtext('tx_tracker_cluster_schema'))");
    await client.query(`
      CREATE TABLE IF NOT EXISTS cluster_instances (
        id text PRIMARY KEY,
        started_at timestamptz NOT NULL DEFAULT now(),
        heartbeat_at timestamptz NOT NULL
      );
      CREATE TABLE IF NOT EXISTS shard_leases (
        shard integer PRIMARY KEY,
        owner text,
        epoch bigint NOT NULL DEFAULT 0,
        expires_at timestamptz NOT NULL DEFAULT '-infinity'
      );
      CREATE INDEX IF NOT EXISTS shard_leases_owner ON shard_leases (owner);
      CREATE TABLE IF NOT EXISTS cluster_inbox (
        id bigserial PRIMARY KEY,
        shard integer NOT NULL,
        tracker_id text NOT NULL,
        kind text NOT NULL,
        request jsonb NOT NULL,
        answer jsonb,
        created_at timestamptz NOT NULL DEFAULT now(),
        answered_at timestamptz
      );
      ALTER TABLE cluster_inbox ADD COLUMN IF NOT EXISTS claimed_epoch bigint;
      CREATE INDEX IF NOT EXISTS cluster_inbox_open ON cluster_inbox (shard, id) WHERE answer IS NULL;
    `);
    await client.query(
      'INSERT INTO shard_leases (shard) SELECT generate_series(0, $1::int - 1) ON CONFLICT (shard) DO NOTHING',
      [shardCount],
    );
    const { rows } = await client.query<{ n: string }>('SELECT count(*) AS n FROM shard_leases');
    if (Number(rows[0]!.n) !== shardCount) {
      throw new Error(`the database has ${rows[0]!.n} shard leases, this instance expects ${shardCount}`);
    }
    await client.query('COMMIT');
  } catch (error) {
    await client.query('ROLLBACK').catch(() => {});
    throw error;
  } finally {
    client.release();
  }
}

export type Queryable = Pick<PoolClient, 'query'>;
