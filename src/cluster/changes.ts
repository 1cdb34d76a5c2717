import type { Notification, Pool, PoolClient } from 'pg';
import type { ChangeSource } from '../api/sse.js';
import type { Logger } from '../runtime/logger.js';
import type { Tracker } from '../runtime/tracker-view.js';
import { COLUMNS, type RowValues, fromRow } from '../store/row.js';
import type { TrackerChangeDetail, TrackerRecord } from '../store/types.js';
import type { Queryable } from './schema.js';

const CHANGES_CHANNEL = 'tx_tracker_changes';
const TRACKER_COLUMNS = COLUMNS.split(', ')
  .map((column) => `t.${column}`)
  .join(', ');
/**
 * How long a reader waits for a change whose number is taken but not visible, before it goes on
 * without it (its commit failed, or took longer than this: it is then missing from the feed).
 */
const HOLE_WAIT_MS = 5000;
/**
 * Changes read at most per query, as a span of numbers from the first unread one: a range bounded on
 * both sides is read through the primary key and the trackers joined by theirs even before the
 * tables have statistics (an open `seq > $1` is then planned as scans of both whole tables).
 */
const READ_SPAN = 5000;

export interface ChangeLogOptions {
  pool: Pool;
  /** How often the log is read besides notifications (default 250 ms). */
  pollMs?: number;
  /** Changes a new reader starts with, for `Last-Event-ID` replay (default 10,000). */
  replay?: number;
  logger: Logger;
}

/** A `tracker_history` row joined with its tracker's row, as the tail reads it. */
type Joined = [
  seq: string,
  toState: string,
  at: number,
  blockNumber: string | null,
  blockHash: string | null,
  restarts: number,
  reorgs: number,
  detail: string | null,
  ...row: RowValues,
];

/**
 * The cluster's change feed is the change log, `tracker_history`: every commit appends its changes
 * there in its own transaction, after the fencing check (a fenced write never shows). Each instance
 * tails the log and feeds its `GET /events` with ids that are the `seq`, the same on every instance.
 * Commits number their changes and then commit in any order, so the log is read as a gapless
 * sequence: a change is given only once every change numbered before it has been, and a number
 * missing for `HOLE_WAIT_MS` (a commit rolled back, an instance killed mid-commit, history pruned)
 * is passed over. Writers never wait for each other for it.
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
  /** Since when the next change after `last` has been missing while later ones are visible. */
  private holeSince: number | undefined;

  constructor(private readonly options: ChangeLogOptions) {}

  /** Inside a commit that appended changes: wake the readers when it commits. */
  static async notify(client: Queryable): Promise<void> {
    await client.query(`SELECT pg_notify('${CHANGES_CHANNEL}', '')`);
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
        'SELECT max(seq) AS max FROM tracker_history',
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
    const { rows } = await this.options.pool.query<Joined>({
      text: `SELECT h.seq, h.to_state, h.at, h.block_number, h.block_hash, h.restarts, h.reorgs, h.detail, ${TRACKER_COLUMNS}
             FROM tracker_history h JOIN trackers t ON t.id = h.tracker_id
             WHERE h.seq > $1 AND h.seq < (SELECT min(seq) FROM tracker_history WHERE seq > $1) + ${READ_SPAN}
             ORDER BY h.seq`,
      values: [this.last],
      rowMode: 'array',
    });
    for (const [seq, toState, at, blockNumber, blockHash, restarts, reorgs, detail, ...row] of rows) {
      const id = Number(seq);
      if (id !== this.last + 1) {
        // A change numbered before this one is not visible: its commit is still under way (commits
        // draw their numbers, then commit, in any order), or it will never be (rolled back, its
        // instance died, pruned). Wait for it a while, unless the change after the hole is itself old.
        // The first read waits too: seq 1 may still be committing while seq 2 is visible.
        const now = Date.now();
        this.holeSince ??= now;
        if (now - this.holeSince < HOLE_WAIT_MS && now - at < HOLE_WAIT_MS) break;
      }
      this.holeSince = undefined;
      this.last = id;
      let tracker: Tracker;
      try {
        // The tracker as that change left it: its row for what does not change, the change for the rest.
        const now = this.describe!(fromRow(row as RowValues));
        const facts = detail === null ? {} : (JSON.parse(detail) as TrackerChangeDetail);
        tracker = {
          ...now,
          state: toState.split('.')[0] as Tracker['state'],
          blockNumber: blockNumber === null ? null : Number(blockNumber),
          blockHash,
          restarts,
          reorgs,
          updatedAt: new Date(at).toISOString(),
          failure: (facts.failure ?? null) as Tracker['failure'],
          replacedBy: facts.replacedBy ?? null,
          ...(facts.confirmations !== undefined ? { confirmations: facts.confirmations } : {}),
        };
      } catch (error) {
        this.options.logger.warn({ err: error, seq: id }, 'a change could not be read; skipped');
        continue;
      }
      for (const listener of this.listeners) listener(id, tracker);
    }
    // The span was read to its end: more may follow it.
    if (rows.length > 0 && Number(rows.at(-1)![0]) - Number(rows[0]![0]) >= READ_SPAN - 1) this.again = true;
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
