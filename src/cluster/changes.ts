import type { Notification, Pool, PoolClient } from 'pg';
import type { ChangeSource } from '../api/sse.js';
import type { Logger } from '../runtime/logger.js';
import type { Tracker } from '../runtime/tracker-view.js';
import { type RowValues, fromRow } from '../store/row.js';
import type { TrackerRecord } from '../store/types.js';
import type { Queryable } from './schema.js';

const CHANGES_CHANNEL = 'tx_tracker_changes';
/** The advisory lock that orders the change log's appends: one commit appends at a time, so seq order is commit order. */
const CHANGES_LOCK = 0x7472616b;

export interface ChangeLogOptions {
  pool: Pool;
  /** How often the log is read besides notifications (default 250 ms). */
  pollMs?: number;
  /** Changes a new reader starts with, for `Last-Event-ID` replay (default 10,000). */
  replay?: number;
  /** Changes kept in the table; older ones are deleted (default 100,000). */
  keep?: number;
  logger: Logger;
}

/**
 * The cluster's change feed: every commit appends its rows to `cluster_changes` in its own
 * transaction (`append`, from the store's commit hook, after the fencing check: a fenced write
 * never shows), under an advisory lock so that the global `seq` grows in commit order and a reader
 * that has seen `seq` n has seen every change before it. Each instance tails the table and feeds its
 * `GET /events` with ids that are the `seq`, the same on every instance.
 *
 * @example
 * const log = new ChangeLog({ pool, logger });
 * const feed = new ChangeFeed(system, { changes: log.source((record) => system.describe(record)) });
 */
export class ChangeLog {
  private last = 0;
  private readonly listeners = new Set<(id: number, tracker: Tracker) => void>();
  private describe: ((record: TrackerRecord) => Tracker) | undefined;
  private listener: PoolClient | undefined;
  private timer: NodeJS.Timeout | undefined;
  private reading: Promise<void> | undefined;
  private again = false;
  private started = false;
  private stopped = false;
  private lastPrune = 0;

  constructor(private readonly options: ChangeLogOptions) {}

  /** Append the committed rows, inside the commit's transaction. */
  static async append(client: Queryable, rows: ReadonlyMap<string, RowValues>): Promise<void> {
    if (rows.size === 0) return;
    await client.query('SELECT pg_advisory_xact_lock($1)', [CHANGES_LOCK]);
    await client.query(
      `WITH appended AS (
         INSERT INTO cluster_changes (tracker_id, row) SELECT * FROM unnest($1::text[], $2::text[]) RETURNING 1
       ) SELECT pg_notify('${CHANGES_CHANNEL}', '') FROM (SELECT 1 FROM appended LIMIT 1) one`,
      [[...rows.keys()], [...rows.values()].map((row) => JSON.stringify(row))],
    );
  }

  /** The `ChangeSource` for `GET /events`: rows become trackers with `describe`. */
  source(describe: (record: TrackerRecord) => Tracker): ChangeSource {
    this.describe = describe;
    return {
      subscribe: (listener) => {
        this.listeners.add(listener);
        if (!this.started) void this.start();
        return () => this.listeners.delete(listener);
      },
    };
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.reading;
    const client = this.listener;
    this.listener = undefined;
    if (client) {
      await client.query(`UNLISTEN ${CHANGES_CHANNEL}`).catch(() => {});
      client.release();
    }
  }

  private async start(): Promise<void> {
    this.started = true;
    try {
      // Start from the last `replay` changes, so a client resuming from another instance finds them.
      const { rows } = await this.options.pool.query<{ max: string | null }>(
        'SELECT max(seq) AS max FROM cluster_changes',
      );
      this.last = Math.max(0, Number(rows[0]!.max ?? 0) - (this.options.replay ?? 10_000));
    } catch (error) {
      this.options.logger.warn({ err: error }, 'could not read the change log; retrying');
    }
    await this.listen();
    this.poll();
  }

  private poll(): void {
    if (this.stopped) return;
    void this.read().finally(() => {
      if (!this.stopped) this.timer = setTimeout(() => this.poll(), this.options.pollMs ?? 250);
    });
  }

  private read(): Promise<void> {
    if (this.reading) {
      this.again = true;
      return this.reading;
    }
    this.reading = (async () => {
      do {
        this.again = false;
        await this.readOnce().catch((error: unknown) =>
          this.options.logger.warn({ err: error }, 'could not read the change log; retrying'),
        );
      } while (this.again && !this.stopped);
    })().finally(() => (this.reading = undefined));
    return this.reading;
  }

  private async readOnce(): Promise<void> {
    const { rows } = await this.options.pool.query<{ seq: string; row: string }>(
      'SELECT seq, row FROM cluster_changes WHERE seq > $1 ORDER BY seq LIMIT 5000',
      [this.last],
    );
    for (const { seq, row } of rows) {
      const id = Number(seq);
      this.last = id;
      let tracker: Tracker;
      try {
        tracker = this.describe!(fromRow(JSON.parse(row) as RowValues));
      } catch (error) {
        this.options.logger.warn({ err: error, seq: id }, 'a change log row could not be read; skipped');
        continue;
      }
      for (const listener of this.listeners) listener(id, tracker);
    }
    if (rows.length === 5000) this.again = true;
    await this.prune();
  }

  /** Now and then, delete all but the newest `keep` changes. */
  private async prune(): Promise<void> {
    if (Date.now() - this.lastPrune < 30_000) return;
    this.lastPrune = Date.now();
    await this.options.pool.query('DELETE FROM cluster_changes WHERE seq <= $1', [
      this.last - (this.options.keep ?? 100_000),
    ]);
  }

  private async listen(): Promise<void> {
    if (this.stopped) return;
    try {
      const client = await this.options.pool.connect();
      this.listener = client;
      client.on('notification', (_message: Notification) => void this.read());
      client.on('error', () => {
        if (this.listener === client) this.listener = undefined;
        client.release(true);
        if (!this.stopped) setTimeout(() => void this.listen(), 500).unref();
      });
      await client.query(`LISTEN ${CHANGES_CHANNEL}`);
    } catch (error) {
      this.options.logger.warn({ err: error }, 'could not listen for changes; polling');
      if (!this.stopped) setTimeout(() => void this.listen(), 1000).unref();
    }
  }
}
