import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import pg from 'pg';
import type { Logger } from '../runtime/logger.js';
import { DEFAULT_SHARD_COUNT, shardOf } from '../runtime/shard.js';
import type { TrackerSystem } from '../runtime/system.js';
import type { Placement } from '../runtime/types.js';
import type { ChangeSource } from '../api/sse.js';
import type { RowValues } from '../store/row.js';
import { ChangeLog } from './changes.js';
import { ClusterInbox } from './inbox.js';
import { LeaseManager, type LeaseStats } from './leases.js';
import { type Queryable, migrateCluster } from './schema.js';

export interface ClusterOptions {
  /** The PostgreSQL database the instances share (the store's `DATABASE_URL`). */
  url: string;
  /** Unique among the instances (default: host, pid and a random suffix). */
  instanceId?: string | undefined;
  shardCount?: number;
  /** A lease not renewed for this long may be taken by another instance (default 10 s). */
  leaseTtlMs?: number;
  /** How often leases are renewed and shares rebalanced (default 2 s). */
  heartbeatMs?: number;
  /** A request for a tracker another instance runs fails after this long without an answer (default 15 s). */
  requestTimeoutMs?: number;
  /** For tests: runs after requests from other instances ran here, before their answers are written. */
  beforeAnswers?: (ids: readonly string[]) => Promise<void>;
  logger: Logger;
}

/** The PostgreSQL store's commit hook, as the cluster fills it: the fencing check, and a wake-up for the change log's readers. */
export interface ClusterCommitHook {
  beforeUpsert(client: Queryable, ids: readonly string[]): Promise<string[]>;
  afterUpsert(client: Queryable, rows: ReadonlyMap<string, RowValues>, history: readonly unknown[]): Promise<void>;
}

export const DEFAULT_LEASE_TTL_MS = 10_000;
export const DEFAULT_HEARTBEAT_MS = 2_000;

/**
 * This instance's part in a cluster of instances sharing one PostgreSQL database: shard leases
 * (`LeaseManager`), the fencing check for the store's commits, and the inbox that carries requests
 * to the instances that own their trackers (`ClusterInbox`).
 *
 * @example
 * const cluster = await Cluster.open({ url, logger });
 * store.setCommitHook(cluster.commitHook);
 * const system = await createTrackerSystem({ store, placement: cluster.placement, rehydrate: false });
 * await cluster.start(system);
 * // ...
 * await cluster.stop(); // hands every lease back
 */
export class Cluster {
  readonly leases: LeaseManager;
  readonly inbox: ClusterInbox;
  readonly changes: ChangeLog;
  readonly shardCount: number;
  private system: TrackerSystem | undefined;
  /** Shards taken whose trackers are being rehydrated (how many times): requests for them wait. */
  private readonly warming = new Map<number, number>();

  private constructor(
    private readonly pool: pg.Pool,
    options: ClusterOptions,
  ) {
    this.shardCount = options.shardCount ?? DEFAULT_SHARD_COUNT;
    const instanceId = options.instanceId ?? `${hostname()}-${process.pid}-${randomBytes(3).toString('hex')}`;
    this.leases = new LeaseManager({
      pool,
      instanceId,
      shardCount: this.shardCount,
      ttlMs: options.leaseTtlMs ?? DEFAULT_LEASE_TTL_MS,
      heartbeatMs: options.heartbeatMs ?? DEFAULT_HEARTBEAT_MS,
      logger: options.logger,
      holder: {
        gained: async (shards, current) => {
          for (const shard of shards) this.warming.set(shard, (this.warming.get(shard) ?? 0) + 1);
          try {
            return await this.system?.rehydrate(shards, current);
          } finally {
            for (const shard of shards) {
              const left = this.warming.get(shard)! - 1;
              if (left === 0) this.warming.delete(shard);
              else this.warming.set(shard, left);
            }
            this.inbox.shardsGained();
          }
        },
        lost: (shards) => this.system?.releaseShards(shards),
        flush: async () => this.system?.flushWrites(),
      },
    });
    this.inbox = new ClusterInbox({
      pool,
      owns: (shard) => this.leases.owns(shard),
      ownedShards: () => this.leases.ownedShards(),
      ready: (shard) => !this.warming.has(shard),
      epochOf: (shard) => this.leases.epochOf(shard),
      instanceId,
      ...(options.requestTimeoutMs !== undefined ? { timeoutMs: options.requestTimeoutMs } : {}),
      ...(options.beforeAnswers ? { beforeAnswers: options.beforeAnswers } : {}),
      logger: options.logger,
    });
    this.changes = new ChangeLog({ pool, logger: options.logger });
  }

  /** Connect and create the cluster's tables (nothing is claimed before `start`). */
  static async open(options: ClusterOptions): Promise<Cluster> {
    // Three connections listen (leases, inbox, changes); the rest answer queries.
    const pool = new pg.Pool({ connectionString: options.url, max: 8 });
    // An idle connection that dies (the database restarted) is dropped from the pool, not thrown.
    pool.on('error', (error) => options.logger.debug({ err: error }, 'a cluster connection closed'));
    // A connection may emit twice as the server dies; `pool.query`'s one-shot listener takes one.
    pool.on('connect', (client) => client.on('error', () => undefined));
    try {
      await migrateCluster(pool, options.shardCount ?? DEFAULT_SHARD_COUNT);
    } catch (error) {
      await pool.end();
      throw error;
    }
    return new Cluster(pool, options);
  }

  get instanceId(): string {
    return this.leases.instanceId;
  }

  /** What the tracker system routes requests through. */
  get placement(): Placement {
    return this.inbox.placement;
  }

  /** Every instance's tracker changes, numbered by the shared change log, for `GET /events`. */
  changeSource(system: TrackerSystem): ChangeSource {
    return this.changes.source((record) => system.describe(record));
  }

  /**
   * The store's commit hook: rows of shards this instance does not hold at its epoch are left out
   * of the commit (and their shards stopped here); a commit that writes changes wakes the readers of
   * the change log.
   */
  readonly commitHook: ClusterCommitHook = {
    beforeUpsert: async (client, ids) => {
      const shardsOf = new Map<string, number>();
      for (const id of ids) shardsOf.set(id, shardOf(id, this.shardCount));
      const rejected = await this.leases.fence(client, [...new Set(shardsOf.values())]);
      const dropped = rejected.size === 0 ? [] : ids.filter((id) => rejected.has(shardsOf.get(id)!));
      // After this commit's transaction: the runtime is not re-entered from inside the store.
      if (rejected.size > 0) queueMicrotask(() => this.leases.fenced(rejected));
      return dropped;
    },
    afterUpsert: async (client, _rows, history) => {
      if (history.length > 0) await ChangeLog.notify(client);
    },
  };

  /** Take a fair share of the shards and serve requests for them with `system`. */
  async start(system: TrackerSystem): Promise<void> {
    this.system = system;
    await this.inbox.start(system);
    await this.leases.start();
  }

  stats(): LeaseStats {
    return this.leases.stats();
  }

  /** Hand every lease back (their trackers stopped, their writes durable first), then disconnect. */
  async stop(): Promise<void> {
    await this.inbox.stop();
    await this.leases.stop();
    await this.changes.stop();
    await this.pool.end();
  }
}
