import pg from 'pg';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { type LeaseHolder, LeaseManager } from '../src/cluster/leases.js';
import { migrateCluster } from '../src/cluster/schema.js';
import { silentLogger } from '../src/runtime/logger.js';
import { type PostgresServer, describeWithPostgres, startPostgres } from './support/postgres.js';
import { waitUntil } from './support/wait.js';

const SHARDS = 64;

/** A holder that records which shards it runs, and fails if it is given one it runs already. */
class RecordingHolder implements LeaseHolder {
  readonly running = new Set<number>();
  readonly errors: string[] = [];
  async gained(shards: readonly number[]): Promise<void> {
    for (const shard of shards) {
      if (this.running.has(shard)) this.errors.push(`gained ${shard} twice`);
      this.running.add(shard);
    }
  }
  lost(shards: readonly number[]): void {
    for (const shard of shards) this.running.delete(shard);
  }
  async flush(): Promise<void> {}
}

describeWithPostgres('shard leases in PostgreSQL', () => {
  let server: PostgresServer;
  let pool: pg.Pool;
  const managers: LeaseManager[] = [];

  beforeAll(async () => {
    server = await startPostgres();
    pool = new pg.Pool({ connectionString: server.url, max: 10 });
    // A client still ending when the server stops at the end gets the server's termination, which
    // the pool emits: without a listener that would be an uncaught error after the tests.
    pool.on('error', () => {});
    await migrateCluster(pool, SHARDS);
  }, 60_000);

  afterAll(async () => {
    for (const manager of managers) await manager.stop().catch(() => {});
    await pool?.end();
    await server?.close();
  });

  const manager = (instanceId: string, holder: LeaseHolder, ttlMs = 1500, heartbeatMs = 200): LeaseManager => {
    const made = new LeaseManager({
      pool,
      instanceId,
      shardCount: SHARDS,
      ttlMs,
      heartbeatMs,
      holder,
      logger: silentLogger,
    });
    managers.push(made);
    return made;
  };

  const owners = async (): Promise<Map<number, string | null>> => {
    const { rows } = await pool.query<{ shard: number; owner: string | null }>('SELECT shard, owner FROM shard_leases');
    return new Map(rows.map((row) => [row.shard, row.owner]));
  };

  it('one instance takes every shard; a second gets a fair share as the first sheds its excess; no shard is run twice', async () => {
    const a = new RecordingHolder();
    const b = new RecordingHolder();
    const first = manager('a', a);
    await first.start();
    expect(a.running.size).toBe(SHARDS);
    const second = manager('b', b);
    await second.start();
    await waitUntil(() => a.running.size === SHARDS / 2 && b.running.size === SHARDS / 2, 'an even split', 20_000);
    for (const shard of a.running) expect(b.running.has(shard)).toBe(false);
    const byOwner = await owners();
    for (const shard of a.running) expect(byOwner.get(shard)).toBe('a');
    for (const shard of b.running) expect(byOwner.get(shard)).toBe('b');
    expect([...a.errors, ...b.errors]).toEqual([]);

    // Graceful stop hands the leases back at once: the other takes them well within one lease.
    const stoppedAt = Date.now();
    await second.stop();
    expect([...(await owners()).values()].filter((owner) => owner === 'b')).toEqual([]);
    await waitUntil(() => a.running.size === SHARDS, 'the leases handed back to be taken', 20_000);
    expect(Date.now() - stoppedAt).toBeLessThan(1500);
    await first.stop();
  });

  it('fencing: a write of a shard taken over after the lease expired is rejected, and the stale owner stops it', async () => {
    const a = new RecordingHolder();
    const b = new RecordingHolder();
    const stale = manager('stale', a, 30_000, 100_000);
    await stale.start();
    const shard = 5;
    expect(stale.owns(shard)).toBe(true);
    const check = async (lease: LeaseManager) => {
      const client = await pool.connect();
      try {
        await client.query('BEGIN');
        const rejected = await lease.fence(client, [shard]);
        await client.query('COMMIT');
        return rejected;
      } finally {
        client.release();
      }
    };
    expect([...(await check(stale))]).toEqual([]);
    // Its leases run out in the database while it still believes it holds them (as after a pause
    // that its timers have not noticed yet): another instance takes them over.
    await pool.query("UPDATE shard_leases SET expires_at = now() - interval '1 second' WHERE owner = 'stale'");
    const fresh = manager('fresh', b, 30_000, 100_000);
    await fresh.start();
    expect(fresh.owns(shard)).toBe(true);
    expect(stale.owns(shard)).toBe(true);
    expect([...(await check(stale))]).toEqual([shard]);
    expect([...(await check(fresh))]).toEqual([]);
    stale.fenced([shard]);
    expect(a.running.has(shard)).toBe(false);
    await fresh.stop();
    await stale.stop();
  });

  it('a claim never takes a lease while its old owner is inside a commit that passed the fencing check', async () => {
    const a = new RecordingHolder();
    const b = new RecordingHolder();
    const slow = manager('slow', a, 30_000, 100_000);
    await slow.start();
    const shard = 9;
    // A commit is under way (paused after its fencing check, as a SIGSTOP could leave it).
    const committing = await pool.connect();
    await committing.query('BEGIN');
    expect([...(await slow.fence(committing, [shard]))]).toEqual([]);
    await pool.query("UPDATE shard_leases SET expires_at = now() - interval '1 second' WHERE owner = 'slow'");
    const taker = manager('taker', b, 30_000, 200);
    await taker.start();
    // Expired, but not taken while that commit can still land.
    expect(taker.owns(shard)).toBe(false);
    expect((await owners()).get(shard)).toBe('slow');
    await committing.query('COMMIT');
    committing.release();
    await waitUntil(() => taker.owns(shard), 'the lease to be taken once the commit ended', 10_000);
    await taker.stop();
    await slow.stop();
  });
});
