import type { Notification, Pool, PoolClient } from 'pg';
import type { Logger } from '../runtime/logger.js';
import { LEASES_CHANNEL, type Queryable } from './schema.js';

/** What the lease manager drives: the tracker runtime of this instance. */
export interface LeaseHolder {
  /**
   * These shards are this instance's now: bring their live trackers back from the store (how many).
   * `current(shard)` turns false once that shard is dropped again (or dropped and taken anew): what
   * was read for it before must not be started then.
   */
  gained(shards: readonly number[], current: (shard: number) => boolean): Promise<number | void>;
  /** These shards are not this instance's any more: stop their trackers at once, writing nothing. */
  lost(shards: readonly number[]): void;
  /** Make every write made so far durable (before shards are handed back). */
  flush(): Promise<void>;
}

export interface LeaseOptions {
  pool: Pool;
  instanceId: string;
  shardCount: number;
  /** A lease not renewed for this long may be taken by another instance. */
  ttlMs: number;
  /** How often leases are renewed, and shares rebalanced. */
  heartbeatMs: number;
  holder: LeaseHolder;
  logger: Logger;
}

export interface LeaseStats {
  instanceId: string;
  owned: number;
  /** Live instances at the last heartbeat, this one included. */
  instances: number;
  /** This instance's fair share at the last heartbeat. */
  share: number;
  /** Whether the last heartbeat reached the database. */
  connected: boolean;
}

const interval = (ms: number): string => `${ms} milliseconds`;
/** First key of the advisory locks that fence an instance's commits (the second: its id, hashed). */
const FENCE_LOCK = 0x74786c;

/**
 * Ownership of the shards by lease, in PostgreSQL: each shard has a row with its owner, a fencing
 * epoch (raised on every claim) and an expiry. Every heartbeat renews this instance's leases, sees
 * which it lost, hands back shards above its fair share (`ceil(shards / live instances)`) and claims
 * free or expired ones up to it, with `FOR UPDATE SKIP LOCKED` so that instances never wait for each
 * other. A lease held by this process is valid locally only until `ttlMs` after the renewal was sent:
 * past that (paused, partitioned, database down) its trackers are stopped before anyone else may
 * take them. Writes are fenced in the store's commit transaction (`fence`), so a late write of a
 * lost shard is rejected whatever this process believes.
 *
 * @example
 * const leases = new LeaseManager({ pool, instanceId, shardCount: 1024, ttlMs: 10_000, heartbeatMs: 2_000, holder, logger });
 * await leases.start();
 * leases.owns(17); // true when shard 17 is this instance's
 */
export class LeaseManager {
  /** Shard → the lease held on it; a new object each time it is taken (see `LeaseHolder.gained`). */
  private readonly owned = new Map<number, { epoch: bigint }>();
  /** Dropped here but not yet handed back in the database (the hand-back failed): retried. */
  private readonly handingBack = new Set<number>();
  private timer: NodeJS.Timeout | undefined;
  private expiry: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private again = false;
  private stopped = false;
  private listener: PoolClient | undefined;
  private stats_: LeaseStats;

  constructor(private readonly options: LeaseOptions) {
    this.stats_ = { instanceId: options.instanceId, owned: 0, instances: 0, share: 0, connected: false };
  }

  get instanceId(): string {
    return this.options.instanceId;
  }

  /** Register this instance, take a first share, then keep heartbeating. */
  async start(): Promise<void> {
    await this.listen();
    await this.tick();
    this.schedule();
  }

  /** Whether this instance holds `shard`'s lease now (as far as it knows). */
  owns(shard: number): boolean {
    return this.owned.has(shard);
  }

  /** The epoch of this instance's lease on `shard`, or undefined when it does not hold it (as far as it knows). */
  epochOf(shard: number): bigint | undefined {
    return this.owned.get(shard)?.epoch;
  }

  /** Shards this instance holds, ascending. */
  ownedShards(): number[] {
    return [...this.owned.keys()].sort((a, b) => a - b);
  }

  stats(): LeaseStats {
    return { ...this.stats_, owned: this.owned.size };
  }

  /**
   * The fencing check, run by the store inside the transaction that writes rows of `shards`: which
   * of them this instance does not hold at the epoch it believes, in the database. The transaction
   * holds this instance's fencing lock (shared: its commits do not wait for each other) until it
   * ends; a claim of this instance's expired leases takes that lock exclusively, so it waits for the
   * commit (or skips those shards) and the new owner's rehydration reads every write this check let
   * through. No lease row is locked: a commit writes nothing but its own rows. An idle transaction
   * past the lease ends itself (a process paused mid-commit must not hold the lock for ever).
   */
  async fence(client: Queryable, shards: readonly number[]): Promise<Set<number>> {
    const rejected = new Set<number>();
    if (shards.length === 0) return rejected;
    await client.query(
      "SELECT set_config('idle_in_transaction_session_timeout', $1, true), pg_advisory_xact_lock_shared($2, hashtext($3))",
      [String(Math.max(1000, this.options.ttlMs)), FENCE_LOCK, this.instanceId],
    );
    const { rows } = await client.query<{ shard: number; owner: string | null; epoch: string }>(
      'SELECT shard, owner, epoch FROM shard_leases WHERE shard = ANY($1::int[])',
      [shards],
    );
    const current = new Map(rows.map((row) => [row.shard, row]));
    for (const shard of shards) {
      const row = current.get(shard);
      const epoch = this.owned.get(shard)?.epoch;
      if (!row || epoch === undefined || row.owner !== this.instanceId || BigInt(row.epoch) !== epoch) {
        rejected.add(shard);
      }
    }
    return rejected;
  }

  /** The store's commit found these shards fenced: they are someone else's; stop them here. */
  fenced(shards: Iterable<number>): void {
    const dropped = [...shards].filter((shard) => this.owned.delete(shard));
    if (dropped.length === 0) return;
    this.options.logger.warn(
      { instanceId: this.instanceId, shards: dropped.length },
      'writes of shards this instance no longer holds were rejected (fencing); their trackers are stopped here',
    );
    this.options.holder.lost(dropped);
  }

  /** Hand every lease back (graceful shutdown): stop, make writes durable, release, deregister. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    clearTimeout(this.expiry);
    await this.running;
    const shards = this.ownedShards();
    this.owned.clear();
    this.options.holder.lost(shards);
    try {
      await this.options.holder.flush();
      await this.query(
        `WITH released AS (
           UPDATE shard_leases SET owner = NULL, expires_at = '-infinity' WHERE owner = $1 RETURNING shard
         ), gone AS (DELETE FROM cluster_instances WHERE id = $1)
         SELECT pg_notify('${LEASES_CHANNEL}', $1), (SELECT count(*) FROM released) AS n`,
        [this.instanceId],
      );
    } catch (error) {
      this.options.logger.warn({ err: error }, 'could not hand the leases back; they expire instead');
    } finally {
      await this.unlisten();
    }
  }

  // ---- the heartbeat ----------------------------------------------------------------------

  private schedule(): void {
    if (this.stopped) return;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => void this.run().finally(() => this.schedule()), this.options.heartbeatMs);
  }

  /** One tick now, or once more after the one running (a wake-up never waits for the next heartbeat). */
  private run(): Promise<void> {
    if (this.running) {
      this.again = true;
      return this.running;
    }
    this.running = (async () => {
      do {
        this.again = false;
        await this.tick().catch((error: unknown) => {
          this.stats_.connected = false;
          this.options.logger.warn({ err: error }, 'lease heartbeat failed; retrying at the next one');
        });
      } while (this.again && !this.stopped);
    })().finally(() => (this.running = undefined));
    return this.running;
  }

  private async tick(): Promise<void> {
    if (this.stopped) return;
    const { ttlMs, instanceId, shardCount } = this.options;
    const sentAt = performance.now();
    // Renew, and see what is still ours, in one transaction: a lease renewed is a heartbeat.
    const renewed = await this.transaction(async (client) => {
      await client.query(
        `INSERT INTO cluster_instances (id, heartbeat_at) VALUES ($1, now())
         ON CONFLICT (id) DO UPDATE SET heartbeat_at = now()`,
        [instanceId],
      );
      const leases = await client.query<{ shard: number; epoch: string }>(
        `UPDATE shard_leases SET expires_at = now() + $2::interval WHERE owner = $1 RETURNING shard, epoch`,
        [instanceId, interval(ttlMs)],
      );
      const live = await client.query<{ n: string }>(
        'SELECT count(*) AS n FROM cluster_instances WHERE heartbeat_at > now() - $1::interval',
        [interval(ttlMs)],
      );
      // Instances gone for long are forgotten (their leases expired long ago).
      await client.query('DELETE FROM cluster_instances WHERE heartbeat_at < now() - $1::interval', [
        interval(ttlMs * 10),
      ]);
      return { leases: leases.rows, live: Math.max(1, Number(live.rows[0]!.n)) };
    });
    if (this.stopped) return;
    this.stats_.connected = true;
    this.holdUntil(sentAt + ttlMs);

    const inDb = new Map(renewed.leases.map((row) => [row.shard, BigInt(row.epoch)]));
    const lost = [...this.owned.keys()].filter((shard) => inDb.get(shard) !== this.owned.get(shard)?.epoch);
    if (lost.length > 0) {
      for (const shard of lost) this.owned.delete(shard);
      this.options.logger.warn(
        { instanceId, shards: lost.length },
        'shard leases lost; their trackers are stopped here',
      );
      this.options.holder.lost(lost);
    }
    // Ours in the database but not run here: dropped when the lease could not be confirmed (the
    // database was unreachable) and nobody took them meanwhile; or a hand-back to retry.
    const retryHandBack = [...this.handingBack].filter((shard) => inDb.has(shard));
    this.handingBack.clear();
    const regained: Array<[number, bigint]> = [];
    for (const [shard, epoch] of inDb) {
      if (!this.owned.has(shard) && !retryHandBack.includes(shard)) regained.push([shard, epoch]);
    }

    const share = Math.ceil(shardCount / renewed.live);
    this.stats_.instances = renewed.live;
    this.stats_.share = share;
    const held = this.owned.size + regained.length;
    if (held > share) {
      // Above the fair share: hand the excess back; instances below theirs claim it.
      const excess = [...this.owned.keys()].sort((a, b) => b - a).slice(0, held - share);
      await this.handBack([...retryHandBack, ...excess]);
    } else if (retryHandBack.length > 0) {
      await this.handBack(retryHandBack);
    }
    if (regained.length > 0) this.take(regained);
    if (held < share) {
      const claimed = await this.claim(share - held);
      if (claimed.length > 0) this.take(claimed.map((row) => [row.shard, BigInt(row.epoch)]));
    }
  }

  /**
   * Claim up to `count` free or expired leases, raising their epochs. An expired lease's owner may
   * still be committing (paused mid-commit): its fencing lock is taken, and its shards are skipped
   * while it holds it.
   */
  private claim(count: number): Promise<Array<{ shard: number; epoch: string }>> {
    const { instanceId, ttlMs } = this.options;
    return this.transaction(async (client) => {
      const { rows } = await client.query<{ shard: number; owner: string | null }>(
        `SELECT shard, owner FROM shard_leases WHERE owner IS NULL OR expires_at < now()
         ORDER BY shard LIMIT $1 FOR UPDATE SKIP LOCKED`,
        [count],
      );
      const busy = new Set<string>();
      for (const owner of new Set(rows.map((row) => row.owner))) {
        if (owner === null || owner === instanceId) continue;
        const { rows: locked } = await client.query<{ ok: boolean }>(
          'SELECT pg_try_advisory_xact_lock($1, hashtext($2)) AS ok',
          [FENCE_LOCK, owner],
        );
        if (!locked[0]!.ok) busy.add(owner);
      }
      const shards = rows.filter((row) => row.owner === null || !busy.has(row.owner)).map((row) => row.shard);
      if (shards.length === 0) return [];
      const { rows: claimed } = await client.query<{ shard: number; epoch: string }>(
        `UPDATE shard_leases SET owner = $1, epoch = epoch + 1, expires_at = now() + $2::interval
         WHERE shard = ANY($3::int[]) RETURNING shard, epoch`,
        [instanceId, interval(ttlMs), shards],
      );
      return claimed;
    });
  }

  /**
   * Shards are ours in the database: run them here. Rehydration runs beside the heartbeat, which
   * must go on renewing the leases however long it takes.
   */
  private take(shards: Array<[number, bigint]>): void {
    const leases = new Map(shards.map(([shard, epoch]) => [shard, { epoch }]));
    for (const [shard, lease] of leases) this.owned.set(shard, lease);
    const taken = [...leases.keys()];
    const startedAt = performance.now();
    const current = (shard: number): boolean => this.owned.get(shard) === leases.get(shard);
    this.options.holder.gained(taken, current).then(
      (trackers) =>
        this.options.logger.info(
          {
            instanceId: this.instanceId,
            shards: taken.length,
            owned: this.owned.size,
            trackers,
            ms: Math.round(performance.now() - startedAt),
          },
          'shard leases taken; their trackers rehydrated',
        ),
      (error: unknown) => {
        // Not brought back (the store failed): not run here, so a heartbeat takes them up again.
        const failed = taken.filter(current);
        for (const shard of failed) this.owned.delete(shard);
        this.options.holder.lost(failed);
        this.options.logger.warn({ err: error, shards: failed.length }, 'shards could not be rehydrated; retrying');
      },
    );
  }

  /** Stop the shards here, make their writes durable under the lease, then free the leases. */
  private async handBack(shards: number[]): Promise<void> {
    if (shards.length === 0) return;
    for (const shard of shards) this.owned.delete(shard);
    this.options.holder.lost(shards);
    try {
      await this.options.holder.flush();
      await this.query(
        `WITH released AS (
           UPDATE shard_leases SET owner = NULL, expires_at = '-infinity' WHERE owner = $1 AND shard = ANY($2::int[])
           RETURNING shard
         ) SELECT pg_notify('${LEASES_CHANNEL}', $1), (SELECT count(*) FROM released) AS n`,
        [this.instanceId, shards],
      );
      this.options.logger.info({ instanceId: this.instanceId, shards: shards.length }, 'shard leases handed back');
    } catch (error) {
      for (const shard of shards) this.handingBack.add(shard);
      throw error;
    }
  }

  /** Past the last renewal's lease, nothing here is ours for sure: stop every shard before others may take them. */
  private holdUntil(deadline: number): void {
    clearTimeout(this.expiry);
    this.expiry = setTimeout(
      () => {
        const shards = this.ownedShards();
        if (shards.length === 0 || this.stopped) return;
        this.owned.clear();
        this.options.logger.warn(
          { instanceId: this.instanceId, shards: shards.length },
          'leases could not be renewed in time; their trackers are stopped here',
        );
        this.options.holder.lost(shards);
      },
      Math.max(0, deadline - performance.now()),
    );
  }

  // ---- database ---------------------------------------------------------------------------

  /** Be woken when another instance hands shards back, to claim them without waiting a heartbeat. */
  private async listen(): Promise<void> {
    if (this.stopped) return;
    try {
      const client = await this.options.pool.connect();
      this.listener = client;
      client.on('notification', (message: Notification) => {
        if (message.payload !== this.instanceId) void this.run();
      });
      client.on('error', () => {
        // The connection died (database restarted): listen again on a new one.
        if (this.listener === client) this.listener = undefined;
        client.release(true);
        setTimeout(() => void this.listen(), this.options.heartbeatMs).unref();
      });
      await client.query(`LISTEN ${LEASES_CHANNEL}`);
    } catch (error) {
      this.options.logger.warn({ err: error }, 'could not listen for handed-back leases; retrying');
      setTimeout(() => void this.listen(), this.options.heartbeatMs).unref();
    }
  }

  private async unlisten(): Promise<void> {
    const client = this.listener;
    this.listener = undefined;
    if (!client) return;
    try {
      await client.query(`UNLISTEN ${LEASES_CHANNEL}`);
      client.release();
    } catch {
      client.release(true);
    }
  }

  private async query<R extends object>(text: string, values: unknown[]): Promise<R[]> {
    const result = await this.options.pool.query<R>(text, values);
    return result.rows;
  }

  private async transaction<T>(work: (client: PoolClient) => Promise<T>): Promise<T> {
    const client = await this.options.pool.connect();
    // Checked out, its errors are ours (the pool listens only to idle clients): the failing query
    // reports them, and a client the server dropped is not handed out again.
    const onError = () => (broken = true);
    client.on('error', onError);
    let broken = false;
    try {
      await client.query('BEGIN');
      const result = await work(client);
      await client.query('COMMIT');
      return result;
    } catch (error) {
      await client.query('ROLLBACK').catch(() => (broken = true));
      throw error;
    } finally {
      client.off('error', onError);
      client.release(broken);
    }
  }
}
