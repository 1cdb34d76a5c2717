import type Database from 'better-sqlite3';
import { FINAL_STATE_NAMES, TRACKER_STATE_NAMES } from '../../machines/tracker.machine.js';
import { StoreError } from '../errors.js';
import { Checkpointer } from './checkpointer.js';
import { FlushTiming } from './flush-timing.js';
import {
  COLUMNS,
  COLUMN_COUNT,
  HISTORY_COLUMNS,
  HISTORY_COLUMN_COUNT,
  type HistoryValues,
  LIVE_ROW,
  type RowValues,
  WRITE_COLUMNS,
  WRITE_COLUMN_COUNT,
  type WrittenValues,
  fromHistoryRow,
  fromRow,
  historyValues,
  rowValues,
} from './row.js';
import { storedShard } from '../runtime/shard.js';
import { liveOfShards } from './live-of-shards.js';
import { type DatabaseLock, lockDatabase } from './lock.js';
import { openDatabase } from './schema.js';
import {
  type FlushObserver,
  type HistoryPage,
  type HistoryQuery,
  type ListPage,
  type ListQuery,
  type LoadLiveOptions,
  type SnapshotStore,
  type StateCounts,
  type TrackerCount,
  type TrackerRecord,
  decodeCursor,
  decodeSeqCursor,
  encodeCursor,
  encodeSeqCursor,
  matchesQuery,
} from './types.js';
import { type Statement, Writer } from './writer.js';
import { SqliteWebhookStore } from '../webhooks/sqlite-webhooks.js';

export interface SqliteStoreOptions {
  /** A file path, or `:memory:` (durable for the life of the process only). */
  path: string;
  /**
   * A pending batch this big is committed at once instead of at the end of the current turn of the
   * event loop, so that a burst of writes does not grow one transaction without bound.
   */
  maxBatch?: number;
  /**
   * WAL checkpoints on a worker thread (default), or SQLite's automatic ones on this connection,
   * inside the commit that crosses 1,000 WAL pages (see `Checkpointer`).
   */
  backgroundCheckpoints?: boolean;
  /** With background checkpoints: the WAL size at which the store checkpoints it itself (64 MiB). */
  maxWalBytes?: number;
  /**
   * Group commits on a worker thread with its own connection (default), or on this connection, in
   * the event loop. Either way a write is durable when `flush()` resolves.
   */
  writerThread?: boolean;
  /**
   * Told when one of the store's threads stops (it could not start, or died): the store goes on,
   * doing that thread's work on its own connection. For logs and alerts.
   */
  onThreadFailure?: (thread: 'writer' | 'checkpointer', error: unknown) => void;
  /**
   * Be the file's only user while open: hold `<path>-lock` (see `lockDatabase`), so that a second
   * store opened with `lock` on the same file, in any process, fails with `DatabaseLockedError`
   * instead of serving different trackers from the same rows. The service opens its store so.
   */
  lock?: boolean;
}

/** Rows per upsert statement: one statement per row costs a call into SQLite and a VM start each. */
const ROWS_PER_UPSERT = 64;
/**
 * A count that finds more writes than this not yet durable waits for their commit first: looked up
 * one by one they would cost more than the scan that then counts them.
 */
const MAX_COUNTED_UNSETTLED = 1000;
const LIVE_STATES = TRACKER_STATE_NAMES.filter((s) => !FINAL_STATE_NAMES.includes(s));
const KNOWN_STATES: ReadonlySet<string> = new Set(TRACKER_STATE_NAMES);

// A quarantined original is never overwritten by a later write that does not carry one.
const UPSERT_SQL = `
  INSERT INTO trackers (${WRITE_COLUMNS})
  VALUES $ROWS
  ON CONFLICT (id) DO UPDATE SET
    tx_hash = excluded.tx_hash, state = excluded.state, version = excluded.version,
    snapshot = excluded.snapshot, restarts = excluded.restarts, created_at = excluded.created_at,
    updated_at = excluded.updated_at, quarantined = COALESCE(excluded.quarantined, trackers.quarantined),
    chain_id = excluded.chain_id, history_seq = COALESCE(excluded.history_seq, trackers.history_seq),
    shard = excluded.shard`;
// Committed before the upserts of the same transaction: a change whose previous one is not known
// in the process (`prev` null) chains to the tracker row's history_seq as the file has it.
const HISTORY_SQL = `INSERT INTO tracker_history (${HISTORY_COLUMNS}) VALUES $ROWS`;
// Bound as `historyBound` lays a row out: the tracker id a second time, for the lookup.
const HISTORY_ROW = `(?, ?, COALESCE(?, (SELECT history_seq FROM trackers WHERE id = ?)), ${Array(
  HISTORY_COLUMN_COUNT - 3,
)
  .fill('?')
  .join(', ')})`;
const HISTORY_BOUND_COUNT = HISTORY_COLUMN_COUNT + 1;
/** A history row's bound values for `HISTORY_ROW`. */
function* historyBound(rows: readonly HistoryValues[]): Iterable<unknown[]> {
  for (const [seq, id, prev, ...rest] of rows) yield [seq, id, prev, id, ...rest];
}
/** A tracker's chain of changes from `start` back, no further than `after`. */
const chainFrom = (start: string): string => `WITH RECURSIVE chain(seq) AS (
  ${start}
  UNION ALL SELECT h.prev_seq FROM tracker_history h JOIN chain c ON h.seq = c.seq
  WHERE h.prev_seq IS NOT NULL AND h.prev_seq > ?)`;
const PRUNE_SQL = `${chainFrom('SELECT ?')} DELETE FROM tracker_history WHERE seq IN chain`;
const rowsSql = (sql: string, row: string, rows: number): string =>
  sql.replace('$ROWS', Array.from({ length: rows }, () => row).join(', '));
const valuesRow = (columns: number): string => `(${Array(columns).fill('?').join(', ')})`;
const FINAL_STATES: ReadonlySet<string> = new Set(FINAL_STATE_NAMES);

/**
 * A `SnapshotStore` in one SQLite file (better-sqlite3, WAL, `synchronous = FULL`).
 *
 * Writes go to a pending map (so reads see them at once) and are committed together, one
 * transaction per turn of the event loop (group commit): a single fsync covers every tracker that
 * changed meanwhile. The commit runs on a writer thread with its own connection (see `Writer`);
 * while it is in flight the event loop goes on, reads see its rows, and the next writes gather for
 * the commit after it. `flush()` resolves after the commit that holds every earlier write. When a
 * commit fails (disk full, read-only file) the transaction rolls back, the batch stays pending for
 * the next attempt and `flush()` rejects with a `StoreError`; rows already stored are untouched.
 *
 * @example
 * const store = new SqliteStore({ path: './data/trackers.db' });
 * const system = await createTrackerSystem({ store });
 */
export class SqliteStore implements SnapshotStore {
  /** The reading connection, for tools and tests (writes go through `writerPragma`'s connection). */
  readonly db: Database.Database;
  readonly webhooks: SqliteWebhookStore;
  private readonly maxBatch: number;
  // Writes waiting for their group commit, as the values of their rows: the record objects are not
  // kept (less for the garbage collector to copy), and a read of one gets a copy, as from the file.
  private pending = new Map<string, WrittenValues>();
  // The batch the writer thread is committing, readable until it is durable.
  private inflight: Map<string, WrittenValues> | undefined;
  // The change log's rows, in seq order: appended, never coalesced (every change is kept), and
  // committed in the same transaction as the rows of the same writes.
  private pendingHistory: HistoryValues[] = [];
  // Other writes for the next group commit (the webhook tables'), run after the rows, in order.
  private statements: Statement[] = [];
  private readonly prepared = new Map<string, Database.Statement>();
  private inflightHistory: HistoryValues[] | undefined;
  // Seqs are handed out at write, so that a tracker's history is readable (and pageable) before
  // its commit; the file's lock makes this store the only one appending.
  private nextSeq: number;
  /** Where the history pruning goes on from (a seq): it walks the log oldest first. */
  private pruneCursor = 0;
  private waiters: Array<{ resolve: () => void; reject: (error: unknown) => void }> = [];
  private scheduled = false;
  private closed = false;
  private commits = 0;
  private readonly selectOne: Database.Statement<[string], RowValues>;
  private readonly selectMany: Database.Statement<[string], RowValues>;
  private readonly pageAll: Database.Statement<[string, number], RowValues>;
  private readonly pageInState: Database.Statement<[string, string, number], RowValues>;
  // Live rows of one shard column value; those without one (written by an older build), for loadLive of some shards.
  private readonly pageOfShard: Database.Statement<[number, string, number], RowValues>;
  private readonly pageUnsharded: Database.Statement<[string, number], RowValues>;
  // One chain's trackers: chain_id, and 1 when rows without one (the default chain's) count too.
  private readonly pageOfChain: Database.Statement<[number, number, string, number], RowValues>;
  private readonly pageOfChainInState: Database.Statement<[string, number, number, string, number], RowValues>;
  private readonly countAll: Database.Statement<[], { chainId: number | null; state: string; count: number }>;
  private readonly countStates: () => { file: Array<[string, number]>; stored: Map<string, string> };
  private readonly flushes = new FlushTiming();
  private readonly commitBatch: (
    batch: Map<string, WrittenValues>,
    history: readonly HistoryValues[],
    statements: readonly Statement[],
  ) => void;
  private readonly historyPage: Database.Statement<[string, number, number, number], HistoryValues>;
  private readonly historyAfter: Database.Statement<[number, number], [number, string, number, string]>;
  private readonly endOf: Database.Statement<[string], [string, number]>;
  private readonly pruneHere: (seqs: readonly number[]) => number;
  private readonly checkpointer: Checkpointer | undefined;
  private writer: Writer | undefined;
  private readonly lock: DatabaseLock | undefined;

  constructor(options: SqliteStoreOptions) {
    this.maxBatch = options.maxBatch ?? 10_000;
    const onDisk = options.path !== ':memory:';
    // Before the file is opened: a second server must not even migrate it.
    this.lock = onDisk && options.lock ? lockDatabase(options.path) : undefined;
    try {
      this.db = openDatabase(options.path);
    } catch (error) {
      this.lock?.release();
      throw error;
    }
    if (onDisk && (options.backgroundCheckpoints ?? true)) {
      this.db.pragma('wal_autocheckpoint = 0');
      this.checkpointer = new Checkpointer({
        path: options.path,
        ...(options.maxWalBytes ? { maxWalBytes: options.maxWalBytes } : {}),
        // On the committing connection, between two of its commits.
        checkpointHere: () => this.onWriter('wal_checkpoint(PASSIVE)'),
        // No worker: back to SQLite's automatic checkpoints, so the WAL stays bounded.
        onFailure: (error) => {
          if (this.closed) return;
          // This connection too: it commits again if the writer thread stops.
          this.db.pragma('wal_autocheckpoint = 1000');
          if (this.writer) this.onWriter('wal_autocheckpoint = 1000');
          options.onThreadFailure?.('checkpointer', error);
        },
      });
      // When SQLite starts the WAL over it cuts the file back to this (it reuses it otherwise).
      this.db.pragma(`journal_size_limit = ${Math.min(4 * 1024 * 1024, this.checkpointer.maxWalBytes)}`);
    }
    if (onDisk && (options.writerThread ?? true)) {
      this.writer = new Writer({
        path: options.path,
        // The settings of this connection that matter to a writer, with the same values.
        pragmas: ['busy_timeout', 'synchronous', 'cache_size', 'wal_autocheckpoint', 'journal_size_limit'].map(
          (name) => `${name} = ${String(this.db.pragma(name, { simple: true }))}`,
        ),
        upsertSql: UPSERT_SQL,
        rowsPerUpsert: ROWS_PER_UPSERT,
        columns: WRITE_COLUMN_COUNT,
        historySql: HISTORY_SQL,
        historyRow: HISTORY_ROW,
        historyColumns: HISTORY_BOUND_COUNT,
        pruneSql: PRUNE_SQL,
        // Back to committing on this connection; the batch that was in flight is pending again.
        onFailure: (error) => {
          this.writer = undefined;
          options.onThreadFailure?.('writer', error);
        },
      });
    }
    this.webhooks = new SqliteWebhookStore(this.db, (statements) => this.writeInCommit(statements));
    // Rows come out as arrays in COLUMNS order: no object per row and column on the way out.
    this.selectOne = this.db.prepare<[string], RowValues>(`SELECT ${COLUMNS} FROM trackers WHERE id = ?`).raw();
    // The ids as one JSON array: one statement, one primary-key lookup per id inside SQLite, several
    // times cheaper than a statement per id (docs/performance.md).
    this.selectMany = this.db
      .prepare<[string], RowValues>(`SELECT ${COLUMNS} FROM trackers WHERE id IN (SELECT value FROM json_each(?))`)
      .raw();
    this.pageAll = this.db
      .prepare<[string, number], RowValues>(`SELECT ${COLUMNS} FROM trackers WHERE id > ? ORDER BY id LIMIT ?`)
      .raw();
    this.pageInState = this.db
      .prepare<[string, string, number], RowValues>(
        `SELECT ${COLUMNS} FROM trackers WHERE state = ? AND id > ? ORDER BY id LIMIT ?`,
      )
      .raw();
    // Along the partial index of live rows on (shard, id): the query names its predicate.
    this.pageOfShard = this.db
      .prepare<[number, string, number], RowValues>(
        `SELECT ${COLUMNS} FROM trackers WHERE shard = ? AND ${LIVE_ROW} AND id > ? ORDER BY id LIMIT ?`,
      )
      .raw();
    this.pageUnsharded = this.db
      .prepare<[string, number], RowValues>(
        `SELECT ${COLUMNS} FROM trackers WHERE shard IS NULL AND ${LIVE_ROW} AND id > ? ORDER BY id LIMIT ?`,
      )
      .raw();
    const ofChain = '(chain_id = ? OR (chain_id IS NULL AND ?))';
    this.pageOfChain = this.db
      .prepare<[number, number, string, number], RowValues>(
        `SELECT ${COLUMNS} FROM trackers WHERE ${ofChain} AND id > ? ORDER BY id LIMIT ?`,
      )
      .raw();
    this.pageOfChainInState = this.db
      .prepare<[string, number, number, string, number], RowValues>(
        `SELECT ${COLUMNS} FROM trackers WHERE state = ? AND ${ofChain} AND id > ? ORDER BY id LIMIT ?`,
      )
      .raw();
    this.countAll = this.db.prepare(
      'SELECT chain_id AS chainId, state, count(*) AS count FROM trackers GROUP BY chain_id, state',
    );
    // Along the (state, id) index; and the stored states of the rows written since, from the same
    // read transaction, so that a commit landing in between cannot count a row twice or not at all.
    const countInFile = this.db
      .prepare<[], [string, number]>('SELECT state, count(*) FROM trackers GROUP BY state')
      .raw();
    const statesOfMany = this.db
      .prepare<[string], [string, string]>(
        'SELECT id, state FROM trackers WHERE id IN (SELECT value FROM json_each(?))',
      )
      .raw();
    const stateOfOne = this.db.prepare<[string], string>('SELECT state FROM trackers WHERE id = ?').pluck();
    this.countStates = this.db.transaction(() => {
      const written = [...this.unsettledIds()];
      const inJson = written.filter(wellFormed);
      const stored = new Map(inJson.length > 0 ? statesOfMany.all(JSON.stringify(inJson)) : []);
      for (const id of written) {
        if (wellFormed(id)) continue;
        const state = stateOfOne.get(id);
        if (state !== undefined) stored.set(id, state);
      }
      return { file: countInFile.all(), stored };
    });
    // One statement per count of rows, prepared when first needed: a commit of n rows runs
    // n / ROWS_PER_UPSERT statements of the full width and one for the rest.
    const upserts: Database.Statement[] = [];
    const upsert = (rows: number): Database.Statement =>
      (upserts[rows] ??= this.db.prepare(rowsSql(UPSERT_SQL, valuesRow(WRITE_COLUMN_COUNT), rows)));
    const inserts: Database.Statement[] = [];
    const insert = (rows: number): Database.Statement =>
      (inserts[rows] ??= this.db.prepare(rowsSql(HISTORY_SQL, HISTORY_ROW, rows)));
    const chunk: unknown[] = [];
    const runAll = (
      rows: Iterable<readonly unknown[]>,
      columns: number,
      statement: (rows: number) => Database.Statement,
    ): void => {
      chunk.length = 0;
      for (const values of rows) {
        for (const value of values) chunk.push(value);
        if (chunk.length === ROWS_PER_UPSERT * columns) {
          statement(ROWS_PER_UPSERT).run(chunk);
          chunk.length = 0;
        }
      }
      if (chunk.length > 0) statement(chunk.length / columns).run(chunk);
    };
    this.commitBatch = this.db.transaction(
      (batch: Map<string, WrittenValues>, history: readonly HistoryValues[], statements: readonly Statement[]) => {
        runAll(historyBound(history), HISTORY_BOUND_COUNT, insert);
        runAll(batch.values(), WRITE_COLUMN_COUNT, upsert);
        for (const [sql, params] of statements) this.statement(sql).run(params);
      },
    );
    this.historyPage = this.db
      .prepare<[string, number, number, number], HistoryValues>(
        `${chainFrom('SELECT history_seq FROM trackers WHERE id = ?')}
        SELECT ${HISTORY_COLUMNS} FROM tracker_history WHERE seq IN chain AND seq > ? ORDER BY seq LIMIT ?`,
      )
      .raw();
    this.historyAfter = this.db
      .prepare<[number, number], [number, string, number, string]>(
        'SELECT seq, tracker_id, at, to_state FROM tracker_history WHERE seq > ? ORDER BY seq LIMIT ?',
      )
      .raw();
    this.endOf = this.db
      .prepare<[string], [string, number]>('SELECT state, updated_at FROM trackers WHERE id = ?')
      .raw();
    const prune = this.db.prepare<[number, number]>(PRUNE_SQL);
    this.pruneHere = this.db.transaction((seqs: readonly number[]) => {
      let dropped = 0;
      for (const seq of seqs) dropped += prune.run(seq, 0).changes;
      return dropped;
    });
    const last = this.db
      .prepare<[], [number | null, number | null]>(
        "SELECT (SELECT max(seq) FROM tracker_history), (SELECT seq FROM sqlite_sequence WHERE name = 'tracker_history')",
      )
      .raw()
      .get()!;
    this.nextSeq = Math.max(last[0] ?? 0, last[1] ?? 0) + 1;
  }

  write(record: TrackerRecord): void {
    if (this.closed) throw new StoreError('the store is closed');
    // Encoded now, once: the commit binds these values, and a later change to the record's objects
    // cannot change what is stored.
    // The newest change of this tracker known in the process: the one the next change chains to,
    // and the one a write that is not a change keeps pointing at.
    const last = (this.pending.get(record.id) ?? this.inflight?.get(record.id))?.[COLUMN_COUNT] ?? null;
    const values = rowValues(record) as unknown as WrittenValues;
    if (record.change) {
      const seq = this.nextSeq++;
      this.pendingHistory.push(historyValues(seq, record.id, last, record.change));
      values.push(seq);
    } else values.push(last);
    values.push(storedShard(record.id));
    this.pending.set(record.id, values);
    if (this.pending.size >= this.maxBatch || this.pendingHistory.length >= this.maxBatch) this.commit();
    else this.schedule();
  }

  /**
   * Run these writes in the next group commit, after its tracker and history rows; resolves once
   * durable.
   *
   * @example
   * await store.writeInCommit([['DELETE FROM webhook_endpoints WHERE id = ?', [id]]]);
   */
  writeInCommit(statements: readonly Statement[]): Promise<void> {
    if (this.closed) return Promise.reject(new StoreError('the store is closed'));
    this.statements.push(...statements);
    return this.flush();
  }

  flush(): Promise<void> {
    return this.flushes.time(() => {
      if (this.pending.size === 0 && this.statements.length === 0 && !this.inflight) return Promise.resolve();
      return new Promise((resolve, reject) => {
        this.waiters.push({ resolve, reject });
        this.schedule();
      });
    });
  }

  observeFlush(observer: FlushObserver): () => void {
    return this.flushes.observe(observer);
  }

  async get(id: string): Promise<TrackerRecord | undefined> {
    return this.getNow(id);
  }

  getNow(id: string): TrackerRecord | undefined {
    const pending = this.pending.get(id) ?? this.inflight?.get(id);
    if (pending) return fromRow(pending);
    const row = this.read(() => this.selectOne.get(id));
    return row ? fromRow(row) : undefined;
  }

  getManyNow(ids: readonly string[]): Array<TrackerRecord | undefined> {
    // A lone surrogate would not survive the trip through JSON text as it does through a bound
    // string: such ids (no valid tracker id is one) are read one by one.
    const inJson = ids.filter(wellFormed);
    const rows = inJson.length > 0 ? this.read(() => this.selectMany.all(JSON.stringify(inJson))) : [];
    const found = new Map<string, RowValues>();
    for (const row of rows) found.set(row[0], row);
    return ids.map((id) => {
      if (!wellFormed(id)) return this.getNow(id);
      const values = this.pending.get(id) ?? this.inflight?.get(id) ?? found.get(id);
      return values ? fromRow(values) : undefined;
    });
  }

  async list(query: ListQuery): Promise<ListPage> {
    const after = query.cursor ? decodeCursor(query.cursor) : '';
    const limit = query.limit + 1;
    const rows = this.read(() => this.page(query, after, limit));
    // Merge the writes not yet committed, so a page is never older than `get`. When the file gave a
    // full page, only pending ids up to its last row can belong to this page.
    const full = rows.length === limit;
    const bound = full ? rows[rows.length - 1]![0] : undefined;
    const byId = new Map<string, TrackerRecord>();
    for (const row of rows) byId.set(row[0], fromRow(row));
    for (const writes of [this.inflight, this.pending]) {
      for (const [id, values] of writes ?? []) {
        if (id > after && (bound === undefined || id <= bound)) byId.set(id, fromRow(values));
      }
    }
    const items = [...byId.values()]
      .filter((r) => matchesQuery(r, query))
      .sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    if (items.length > query.limit) {
      const page = items.slice(0, query.limit);
      return { items: page, nextCursor: encodeCursor(page[page.length - 1]!.id) };
    }
    // A pending write moved a row out of the requested state: the page is short, not the last one.
    return { items, nextCursor: full ? encodeCursor(bound!) : null };
  }

  async history(id: string, query: HistoryQuery): Promise<HistoryPage> {
    const after = query.cursor ? (decodeSeqCursor(query.cursor) ?? Number.MAX_SAFE_INTEGER) : 0;
    const limit = query.limit + 1;
    const rows = this.read(() => this.historyPage.all(id, after, after, limit));
    // Rows not durable yet have the highest seqs: they follow the file's, past the last one it gave.
    if (rows.length < limit) {
      const from = rows.length > 0 ? rows[rows.length - 1]![0] : after;
      for (const writes of [this.inflightHistory, this.pendingHistory]) {
        for (const values of writes ?? []) {
          if (values[1] === id && values[0] > from && rows.length < limit) rows.push(values);
        }
      }
    }
    const more = rows.length > query.limit;
    if (more) rows.pop();
    return {
      items: rows.map(fromHistoryRow),
      nextCursor: more ? encodeSeqCursor(rows[rows.length - 1]![0]) : null,
    };
  }

  async pruneHistory(endedBefore: number, maxRows: number): Promise<number> {
    const rows = this.read(() => this.historyAfter.all(this.pruneCursor, maxRows));
    // A tracker's last row is the one that ended it: reaching it, its whole history goes.
    const ended: number[] = [];
    let cursor = this.pruneCursor;
    for (const [seq, id, at, to] of rows) {
      // The log is in time order: the rest is too new, for this run and for the next ones.
      if (at >= endedBefore) break;
      cursor = seq;
      if (!FINAL_STATES.has(to)) continue;
      const end = this.read(() => this.endOf.get(id));
      if (end === undefined || (FINAL_STATES.has(end[0]) && end[1] < endedBefore)) ended.push(seq);
    }
    if (cursor === this.pruneCursor && ended.length === 0) return 0;
    const dropped =
      ended.length === 0 ? 0 : this.writer ? await this.writer.prune(ended) : this.read(() => this.pruneHere(ended));
    this.pruneCursor = cursor;
    return dropped;
  }

  async countByState(): Promise<StateCounts> {
    // A failed commit leaves them pending: they are then counted one by one all the same.
    if (this.pendingCount > MAX_COUNTED_UNSETTLED) await this.flush().catch(() => undefined);
    const { file, stored } = this.read(this.countStates);
    const counts: StateCounts = Object.fromEntries(file);
    // Each row written but not durable yet counts in the state `get` shows for it, not the file's.
    for (const id of this.unsettledIds()) {
      const state = (this.pending.get(id) ?? this.inflight!.get(id)!)[2];
      const before = stored.get(id);
      if (before !== undefined) counts[before]! -= 1;
      counts[state] = (counts[state] ?? 0) + 1;
    }
    return counts;
  }

  async *loadLive(batchSize: number, options?: LoadLiveOptions): AsyncIterable<TrackerRecord[]> {
    // Everything written so far is read from the file: keyset paging over (state, id) keeps each
    // batch one index range scan and holds no read transaction open between batches.
    await this.flush();
    if (options) {
      yield* liveOfShards(
        batchSize,
        options,
        (n) => this.loadLive(n),
        (stored, ours) => this.loadLiveByColumn(batchSize, stored, ours),
      );
      return;
    }
    // Rows whose state column is not a state this machine knows are live for all we know: they are
    // handed out too, so that the runtime quarantines them instead of leaving them unseen.
    const unknown = this.statesInFile().filter((state) => !KNOWN_STATES.has(state));
    for (const state of [...LIVE_STATES, ...unknown]) {
      let after = '';
      for (;;) {
        const rows = this.read(() => this.pageInState.all(state, after, batchSize));
        if (rows.length === 0) break;
        after = rows[rows.length - 1]![0];
        yield rows.map(fromRow);
        if (rows.length < batchSize) break;
      }
    }
  }

  /** The live rows of the shard column values `stored`, and the rows without a value, those `ours` keeps. */
  private async *loadLiveByColumn(
    batchSize: number,
    stored: number[],
    ours: (id: string) => boolean,
  ): AsyncIterable<TrackerRecord[]> {
    // One shard column value after the other, each paged by id, then the rows without one, if any
    // (an older build wrote to the file): read too, and told apart here. Gathered into batches.
    const batch: TrackerRecord[] = [];
    const pages: Array<(after: string) => RowValues[]> = [
      ...stored.map((shard) => (after: string) => this.pageOfShard.all(shard, after, batchSize)),
      (after: string) => this.pageUnsharded.all(after, batchSize),
    ];
    for (const page of pages) {
      let after = '';
      for (;;) {
        const rows = this.read(() => page(after));
        for (const row of rows) if (ours(row[0])) batch.push(fromRow(row));
        while (batch.length >= batchSize) yield batch.splice(0, batchSize);
        if (rows.length < batchSize) break;
        after = rows[rows.length - 1]![0];
      }
    }
    if (batch.length > 0) yield batch;
  }

  async countByChain(): Promise<TrackerCount[]> {
    // Counted in the file: every write made so far is committed first.
    await this.flush();
    return this.read(() => this.countAll.all());
  }

  async close(): Promise<void> {
    if (this.closed) return;
    try {
      await this.flush();
    } finally {
      this.closed = true;
      // The workers' connections first: the last one to close checkpoints the WAL and removes it.
      await this.writer?.close();
      await this.checkpointer?.close();
      this.db.close();
      this.lock?.release();
    }
  }

  /** WAL checkpoints the background worker has completed, and those this connection made at the bound. */
  get checkpointStats(): { background: number; foreground: number; caughtUp: boolean } {
    return {
      background: this.checkpointer?.count ?? 0,
      foreground: this.checkpointer?.foregroundCount ?? 0,
      caughtUp: this.checkpointer?.caughtUp ?? true,
    };
  }

  /**
   * Whether commits run on the writer thread and checkpoints on the checkpoint thread; false when
   * that thread is off, or stopped and the store does its work on its own connection.
   */
  get threads(): { writer: boolean; checkpointer: boolean } {
    return { writer: this.writer !== undefined, checkpointer: this.checkpointer?.running ?? false };
  }

  /** Transactions committed so far (each one a group of writes and one fsync). */
  get commitCount(): number {
    return this.commits;
  }

  /** How many writes are not durable yet (waiting for their group commit, or in it). */
  get pendingCount(): number {
    return this.pending.size + (this.inflight?.size ?? 0);
  }

  /** How many history rows are not durable yet. */
  get pendingHistoryCount(): number {
    return this.pendingHistory.length + (this.inflightHistory?.length ?? 0);
  }

  /**
   * Run a PRAGMA on the connection that commits, for tools and tests (e.g. `max_page_count` to
   * simulate a full disk, `query_only` a read-only file); `simple`: its first value only.
   */
  async writerPragma(pragma: string, simple = false): Promise<unknown> {
    return this.writer ? this.writer.pragma(pragma, simple) : this.db.pragma(pragma, { simple });
  }

  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    // setImmediate runs after the I/O callbacks of this turn: every write made by the events handled
    // in one turn (a burst of starts, a new block for many trackers) shares one commit.
    setImmediate(() => {
      this.scheduled = false;
      this.commit();
    });
  }

  /** Commit every pending write in one transaction; settle the flush waiters either way. */
  private commit(): void {
    // One commit in flight at a time: its end starts the next, with every write made meanwhile.
    if (this.inflight) return;
    const waiters = this.waiters;
    this.waiters = [];
    if (this.pending.size === 0 && this.statements.length === 0) {
      for (const w of waiters) w.resolve();
      return;
    }
    if (this.closed) {
      const failure = new StoreError('the store is closed; the last writes were not made durable');
      for (const w of waiters) w.reject(failure);
      return;
    }
    const batch = this.pending;
    const history = this.pendingHistory;
    const statements = this.statements;
    this.pending = new Map();
    this.pendingHistory = [];
    this.statements = [];
    if (this.writer) return this.commitOnWriter(this.writer, batch, history, statements, waiters);
    try {
      this.commitBatch(batch, history, statements);
    } catch (error) {
      return this.rolledBack(batch, history, statements, waiters, error);
    }
    this.committed(batch, waiters);
  }

  private commitOnWriter(
    writer: Writer,
    batch: Map<string, WrittenValues>,
    history: HistoryValues[],
    statements: Statement[],
    waiters: typeof this.waiters,
  ): void {
    this.inflight = batch;
    this.inflightHistory = history;
    writer.commit(batch.values(), historyBound(history), statements).then(
      () => {
        this.inflight = undefined;
        this.inflightHistory = undefined;
        this.committed(batch, waiters);
        if (this.pending.size > 0 || this.statements.length > 0 || this.waiters.length > 0) this.commit();
      },
      (error: unknown) => {
        this.inflight = undefined;
        this.inflightHistory = undefined;
        if (this.writer !== writer) {
          // The thread itself failed, not the commit: commit on this connection, for the same waiters.
          this.requeue(batch, history, statements);
          this.waiters.unshift(...waiters);
          this.commit();
          return;
        }
        this.rolledBack(batch, history, statements, waiters, error);
        // Flushes made meanwhile get their own attempt; writes nobody waits for wait for the next one.
        if (this.waiters.length > 0) this.commit();
      },
    );
  }

  private committed(batch: Map<string, WrittenValues>, waiters: typeof this.waiters): void {
    this.commits++;
    this.webhooks.committed();
    this.checkpointer?.afterCommit(batch.size);
    for (const w of waiters) w.resolve();
  }

  /** The commit rolled back: its waiters fail, and nothing is lost (a later flush retries the batch). */
  private rolledBack(
    batch: Map<string, WrittenValues>,
    history: HistoryValues[],
    statements: Statement[],
    waiters: typeof this.waiters,
    error: unknown,
  ): void {
    this.requeue(batch, history, statements);
    const failure = new StoreError('the store could not make the change durable', error);
    for (const w of waiters) w.reject(failure);
  }

  /** The batch is pending again; newer writes made since win, and their history rows follow its own. */
  private requeue(batch: Map<string, WrittenValues>, history: HistoryValues[], statements: Statement[]): void {
    for (const [id, write] of batch) if (!this.pending.has(id)) this.pending.set(id, write);
    if (history.length > 0) this.pendingHistory = history.concat(this.pendingHistory);
    if (statements.length > 0) this.statements = statements.concat(this.statements);
  }

  /** A prepared statement for a write of `writeInCommit`, on this connection. */
  private statement(sql: string): Database.Statement {
    let prepared = this.prepared.get(sql);
    if (!prepared) this.prepared.set(sql, (prepared = this.db.prepare(sql)));
    return prepared;
  }

  /** A PRAGMA on the committing connection, without waiting (the writer runs it between commits). */
  private onWriter(pragma: string): void {
    if (this.writer) void this.writer.pragma(pragma).catch(() => undefined);
    else this.db.pragma(pragma);
  }

  private page(query: ListQuery, after: string, limit: number): RowValues[] {
    if (query.chainId === undefined) {
      return query.state ? this.pageInState.all(query.state, after, limit) : this.pageAll.all(after, limit);
    }
    const unset = query.unsetChainId === query.chainId ? 1 : 0;
    return query.state
      ? this.pageOfChainInState.all(query.state, query.chainId, unset, after, limit)
      : this.pageOfChain.all(query.chainId, unset, after, limit);
  }

  /** The distinct states in the file, hopping along the (state, id) index: one seek per state, no row read. */
  private statesInFile(): string[] {
    const first = this.db.prepare<[], string | null>('SELECT min(state) FROM trackers').pluck();
    const next = this.db
      .prepare<[string], string>('SELECT state FROM trackers WHERE state > ? ORDER BY state LIMIT 1')
      .pluck();
    const states: string[] = [];
    for (let state = this.read(() => first.get()); state !== null && state !== undefined;) {
      states.push(state);
      const after = state;
      state = this.read(() => next.get(after));
    }
    return states;
  }

  /** The ids written but not durable yet (pending or in the commit in flight). */
  private *unsettledIds(): Iterable<string> {
    yield* this.pending.keys();
    for (const id of this.inflight?.keys() ?? []) if (!this.pending.has(id)) yield id;
  }

  private read<T>(query: () => T): T {
    try {
      return query();
    } catch (error) {
      throw new StoreError('the store could not be read', error);
    }
  }
}

/** No lone surrogate (`String.prototype.isWellFormed`, which this TypeScript target lacks). */
const LONE_SURROGATE = /\p{Cs}/u;
const wellFormed = (text: string): boolean => !LONE_SURROGATE.test(text);
