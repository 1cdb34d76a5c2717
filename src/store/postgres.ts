import pg from 'pg';
import { FINAL_STATE_NAMES, TRACKER_STATE_NAMES } from '../../machines/tracker.machine.js';
import { StoreError } from '../errors.js';
import { storedShard } from '../runtime/shard.js';
import { PostgresWebhookStore } from '../webhooks/postgres-webhooks.js';
import { FlushTiming } from './flush-timing.js';
import { liveOfShards } from './live-of-shards.js';
import { fillShards, migrate } from './postgres-schema.js';
import {
  COLUMNS,
  COLUMN_COUNT,
  HISTORY_COLUMNS,
  type HistoryValues,
  LIVE_ROW,
  WRITE_COLUMNS,
  type RowValues,
  fromHistoryRow,
  fromRow,
  historyValues,
  rowValues,
} from './row.js';
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

/**
 * Runs inside each group commit's transaction, on its connection: where a caller adds its own checks
 * and rows to the commit (a fencing check against ownership leases, a change log, an outbox).
 */
export interface CommitHook {
  /**
   * Before the upsert, with the ids of the batch. Returns the ids that must not be written (fenced
   * off): they are left out of this commit and dropped, not retried; the rest commit. Throwing rolls
   * the whole commit back: the batch stays pending and is retried, and the flushes waiting on it fail.
   */
  beforeUpsert?(client: pg.PoolClient, ids: readonly string[]): Promise<Iterable<string> | undefined | void>;
  /**
   * After the upsert of these rows (the batch less the dropped ids) and the insert of their change
   * log rows (`history`, with the seqs they got), before COMMIT. Throwing rolls back.
   */
  afterUpsert?(
    client: pg.PoolClient,
    rows: ReadonlyMap<string, RowValues>,
    history: readonly HistoryValues[],
  ): Promise<void>;
}

export interface PostgresStoreOptions {
  /** `postgres://user:password@host:port/database` (libpq's URL form, as `pg` reads it). */
  url: string;
  /** A pending batch this big is committed at once instead of at the end of the current turn. */
  maxBatch?: number;
  /** Connections in the pool (reads run beside the commit in flight). */
  poolSize?: number;
  /** Retry a failed commit after this long, doubling up to `maxRetryMs` (the database is restarting). */
  minRetryMs?: number;
  maxRetryMs?: number;
  commitHook?: CommitHook;
  /** Told when a commit fails and when they succeed again, for logs. */
  onHealthChange?: (health: PostgresHealth) => void;
}

export interface PostgresHealth {
  /** The last commit or probe reached the database. */
  reachable: boolean;
  /** Why the last commit or probe failed, while it is unreachable. */
  lastError: string | null;
  /** Writes not durable yet. */
  pending: number;
}

/** Rows per upsert statement: one statement of arrays per chunk, its parameters unnest into rows. */
const ROWS_PER_UPSERT = 5000;
/** More writes not durable than this and a count waits for their commit first (see SqliteStore). */
const MAX_COUNTED_UNSETTLED = 1000;
const LIVE_STATES = TRACKER_STATE_NAMES.filter((s) => !FINAL_STATE_NAMES.includes(s));
const KNOWN_STATES: ReadonlySet<string> = new Set(TRACKER_STATE_NAMES);
const INT8_OID = 20;

// The rows go as one array per column: one prepared statement whatever the number of rows. A
// quarantined original is never overwritten by a later write that does not carry one; a write
// that is not a change keeps the row's newest history seq.
const UPSERT_SQL = `
  INSERT INTO trackers (${WRITE_COLUMNS})
  SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::int[], $5::text[], $6::int[],
                       $7::float8[], $8::float8[], $9::text[], $10::int8[], $11::int8[], $12::int[])
  ON CONFLICT (id) DO UPDATE SET
    tx_hash = excluded.tx_hash, state = excluded.state, version = excluded.version,
    snapshot = excluded.snapshot, restarts = excluded.restarts, created_at = excluded.created_at,
    updated_at = excluded.updated_at, quarantined = COALESCE(excluded.quarantined, trackers.quarantined),
    chain_id = excluded.chain_id, history_seq = COALESCE(excluded.history_seq, trackers.history_seq),
    shard = excluded.shard`;

// Seqs for the commit's history rows, taken from the column's own sequence before the insert, so
// that they are handed out in the order of the changes.
const NEXT_SEQS = "SELECT nextval(pg_get_serial_sequence('tracker_history', 'seq')) FROM generate_series(1, $1)";
// Before the upsert: a tracker's first change in the commit links to the row's history_seq as
// it was before this commit (every instance's changes of it included); the next ones to the one before.
const HISTORY_SQL = `
  INSERT INTO tracker_history (${HISTORY_COLUMNS})
  SELECT h.seq, h.tracker_id, COALESCE(h.prev_seq, t.history_seq), h.at, h.from_state, h.to_state, h.event,
         h.block_number, h.block_hash, h.restarts, h.reorgs, h.detail
  FROM unnest($1::int8[], $2::text[], $3::int8[], $4::float8[], $5::text[], $6::text[], $7::text[], $8::int8[],
              $9::text[], $10::int[], $11::int[], $12::text[])
       AS h(seq, tracker_id, prev_seq, at, from_state, to_state, event, block_number, block_hash, restarts, reorgs, detail)
  LEFT JOIN trackers t ON t.id = h.tracker_id`;
const FINAL_STATES: ReadonlySet<string> = new Set(FINAL_STATE_NAMES);

const OF_CHAIN = '(chain_id = $1 OR (chain_id IS NULL AND $2::boolean))';
const SELECT = `SELECT ${COLUMNS} FROM trackers`;
const QUERIES = {
  one: `${SELECT} WHERE id = $1`,
  pageAll: `${SELECT} WHERE id > $1 ORDER BY id LIMIT $2`,
  pageInState: `${SELECT} WHERE state = $1 AND id > $2 ORDER BY id LIMIT $3`,
  // Live rows of these shard column values after ($2, $3), along the partial index (the query names
  // its predicate). Only the values from $2 on are passed: the index scan then returns rows in
  // (shard, id) order, one value after the other, and stops at the limit.
  pageOfShards: `SELECT ${COLUMNS}, shard FROM trackers WHERE shard = ANY($1::int[]) AND ${LIVE_ROW} AND (shard, id) > ($2, $3)
    ORDER BY shard, id LIMIT $4`,
  pageUnsharded: `${SELECT} WHERE shard IS NULL AND ${LIVE_ROW} AND id > $1 ORDER BY id LIMIT $2`,
  pageOfChain: `${SELECT} WHERE ${OF_CHAIN} AND id > $3 ORDER BY id LIMIT $4`,
  pageOfChainInState: `${SELECT} WHERE ${OF_CHAIN} AND state = $3 AND id > $4 ORDER BY id LIMIT $5`,
  // One statement, so one snapshot: the counts and the stored states of the rows written since agree.
  countStates: `SELECT
      (SELECT coalesce(json_object_agg(state, n), '{}') FROM (SELECT state, count(*) AS n FROM trackers GROUP BY state) c),
      (SELECT coalesce(json_object_agg(id, state), '{}') FROM trackers WHERE id = ANY($1::text[]))`,
  countByChain: 'SELECT chain_id, state, count(*)::int FROM trackers GROUP BY chain_id, state',
  historyPage: `SELECT ${HISTORY_COLUMNS} FROM tracker_history WHERE tracker_id = $1 AND seq > $2 ORDER BY seq LIMIT $3`,
  historyAfter: 'SELECT seq, tracker_id, at, to_state FROM tracker_history WHERE seq > $1 ORDER BY seq LIMIT $2',
  endOf: 'SELECT id, state, updated_at FROM trackers WHERE id = ANY($1::text[])',
  prune: `DELETE FROM tracker_history h USING unnest($1::text[], $2::int8[]) AS p(id, seq)
    WHERE h.tracker_id = p.id AND h.seq <= p.seq`,
  // The distinct states, hopping along the (state, id) index: one seek per state.
  states: `WITH RECURSIVE s(state) AS (
      SELECT min(state) FROM trackers
      UNION ALL SELECT (SELECT min(state) FROM trackers WHERE state > s.state) FROM s WHERE s.state IS NOT NULL)
    SELECT state FROM s WHERE state IS NOT NULL`,
} as const;

type Waiter = { resolve: () => void; reject: (error: unknown) => void };

/**
 * A `SnapshotStore` on PostgreSQL (`pg`), with the SQLite store's contract: writes go to a pending
 * map (reads see them at once) and every write of one turn of the event loop is committed in one
 * transaction (group commit), one commit in flight at a time; `flush()` resolves after the commit
 * holding every earlier write, or rejects with a `StoreError` and keeps the batch pending.
 *
 * While the database is unreachable (restarting, failing over) a failed batch is retried with
 * backoff, so that writes made meanwhile become durable once it is back; reads fail with
 * `StoreError` (503) except for the writes still pending; `reachable()` answers `/readyz`. It has no
 * `getNow`: a networked store cannot answer synchronously, and the runtime takes its async paths.
 *
 * @example
 * const store = await PostgresStore.open({ url: 'postgres://tracker@127.0.0.1/trackers' });
 * const system = await createTrackerSystem({ store });
 */
export class PostgresStore implements SnapshotStore {
  /** The pool, for callers that keep their own tables in the same database (leases, an inbox). */
  readonly pool: pg.Pool;
  /** The webhook tables; each commit's outbox step fills the outbox (see `PostgresWebhookStore`). */
  readonly webhooks: PostgresWebhookStore;
  private readonly maxBatch: number;
  private readonly minRetryMs: number;
  private readonly maxRetryMs: number;
  private readonly onHealthChange: ((health: PostgresHealth) => void) | undefined;
  private hook: CommitHook | undefined;
  private pending = new Map<string, RowValues>();
  private inflight: Map<string, RowValues> | undefined;
  // The change log's rows (seq 0 until their commit numbers them), in the order of the changes:
  // appended, never coalesced, committed in the same transaction as the rows of the same writes.
  private pendingHistory: HistoryValues[] = [];
  private inflightHistory: HistoryValues[] | undefined;
  /** Where the history pruning goes on from (a seq): it walks the log oldest first. */
  private pruneCursor = 0;
  private waiters: Waiter[] = [];
  private scheduled = false;
  private closed = false;
  // Commits finished, successful or not: a read that saw more than one finish meanwhile is retried.
  private settled = 0;
  private commits = 0;
  private retryMs = 0;
  private retryTimer: NodeJS.Timeout | undefined;
  private healthState: { reachable: boolean; lastError: string | null } = { reachable: true, lastError: null };
  private readonly flushes = new FlushTiming();

  private constructor(options: PostgresStoreOptions) {
    this.maxBatch = options.maxBatch ?? 10_000;
    this.minRetryMs = options.minRetryMs ?? 50;
    this.maxRetryMs = options.maxRetryMs ?? 2000;
    this.hook = options.commitHook;
    this.onHealthChange = options.onHealthChange;
    this.pool = new pg.Pool({
      connectionString: options.url,
      max: options.poolSize ?? 10,
      connectionTimeoutMillis: 5000,
      keepAlive: true,
      // Idle connections go, so that a restarted database is not first met through a dead one.
      idleTimeoutMillis: 10_000,
      // Chain ids are int8: numbers, as the SQLite store gives them (every chain id is a safe integer).
      types: {
        getTypeParser: ((oid: number, format?: 'text' | 'binary') =>
          oid === INT8_OID ? Number : pg.types.getTypeParser(oid, format)) as typeof pg.types.getTypeParser,
      },
    });
    // A pooled connection that the server closes while idle (a restart) reports here; the next
    // checkout opens a new one. Without a listener it would crash the process.
    this.pool.on('error', (error) => this.unreachable(error));
    // Every connection keeps a listener of its own for its whole life: a dying server can make one
    // connection emit twice (its FATAL message, then the socket's end), and the pool's one-shot
    // listener of `pool.query` takes only the first; the second would crash the process.
    this.pool.on('connect', (client) => client.on('error', (error) => this.unreachable(error)));
    this.webhooks = new PostgresWebhookStore(this.pool);
  }

  /**
   * Connect, and create or migrate the schema (see `PG_MIGRATIONS`). Fails with `StoreError` when
   * the database cannot be reached or was written by a newer build.
   *
   * @example
   * const store = await PostgresStore.open({ url: process.env.DATABASE_URL! });
   */
  static async open(options: PostgresStoreOptions): Promise<PostgresStore> {
    const store = new PostgresStore(options);
    try {
      await migrate(store.pool);
      await fillShards(store.pool);
    } catch (error) {
      await store.pool.end().catch(() => undefined);
      throw error;
    }
    return store;
  }

  /** Run `hook` inside every commit from now on (replacing the one set before). */
  setCommitHook(hook: CommitHook | undefined): void {
    this.hook = hook;
  }

  write(record: TrackerRecord): void {
    if (this.closed) throw new StoreError('the store is closed');
    this.pending.set(record.id, rowValues(record));
    if (record.change) this.pendingHistory.push(historyValues(0, record.id, null, record.change));
    if (this.pending.size >= this.maxBatch || this.pendingHistory.length >= this.maxBatch) this.commit();
    else this.schedule();
  }

  flush(): Promise<void> {
    return this.flushes.time(() => {
      if (this.pending.size === 0 && !this.inflight) return Promise.resolve();
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
    const unsettled = this.unsettled(id);
    if (unsettled) return fromRow(unsettled);
    return this.readBeside(
      () => this.query(QUERIES.one, [id]),
      (rows, recent) => {
        const values = this.unsettled(id) ?? recent?.get(id) ?? rows[0];
        return values ? fromRow(values) : undefined;
      },
    );
  }

  async list(query: ListQuery): Promise<ListPage> {
    const after = query.cursor ? decodeCursor(query.cursor) : '';
    const limit = query.limit + 1;
    return this.readBeside(
      () => this.page(query, after, limit),
      (rows, recent) => {
        // Merge the writes not yet durable, so a page is never older than `get`. When the database
        // gave a full page, only pending ids up to its last row can belong to this page.
        const full = rows.length === limit;
        const bound = full ? rows[rows.length - 1]![0] : undefined;
        const byId = new Map<string, TrackerRecord>();
        for (const row of rows) byId.set(row[0], fromRow(row));
        for (const writes of [recent, this.inflight, this.pending]) {
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
      },
    );
  }

  async history(id: string, query: HistoryQuery): Promise<HistoryPage> {
    // Seqs are the database's: a tracker's changes not durable yet are committed first, so that
    // every entry has its seq and a page's cursor stays valid.
    if (this.hasUnsettledHistory(id)) await this.flush();
    const after = query.cursor ? (decodeSeqCursor(query.cursor) ?? Number.MAX_SAFE_INTEGER) : 0;
    const rows = (await this.query(QUERIES.historyPage, [id, after, query.limit + 1])) as unknown as HistoryValues[];
    const more = rows.length > query.limit;
    if (more) rows.pop();
    return {
      items: rows.map(fromHistoryRow),
      nextCursor: more ? encodeSeqCursor(rows[rows.length - 1]![0]) : null,
    };
  }

  async pruneHistory(endedBefore: number, maxRows: number): Promise<number> {
    const rows = (await this.query(QUERIES.historyAfter, [this.pruneCursor, maxRows])) as unknown as Array<
      [number, string, number, string]
    >;
    // A tracker's last row is the one that ended it: reaching it, its whole history goes.
    const candidates: Array<readonly [string, number]> = [];
    let cursor = this.pruneCursor;
    for (const [seq, id, at, to] of rows) {
      // The log is in time order: the rest is too new, for this run and for the next ones.
      if (at >= endedBefore) break;
      cursor = seq;
      if (FINAL_STATES.has(to)) candidates.push([id, seq]);
    }
    if (cursor === this.pruneCursor && candidates.length === 0) return 0;
    let dropped = 0;
    if (candidates.length > 0) {
      const ends = (await this.query(QUERIES.endOf, [candidates.map(([id]) => id)])) as unknown as Array<
        [string, string, number]
      >;
      const endOf = new Map(ends.map(([id, state, updatedAt]) => [id, { state, updatedAt }]));
      const ended = candidates.filter(([id]) => {
        const end = endOf.get(id);
        return end === undefined || (FINAL_STATES.has(end.state) && end.updatedAt < endedBefore);
      });
      if (ended.length > 0) {
        try {
          const result = await this.pool.query(QUERIES.prune, [ended.map(([id]) => id), ended.map(([, seq]) => seq)]);
          dropped = result.rowCount ?? 0;
        } catch (error) {
          throw new StoreError('the store could not prune the history', error);
        }
      }
    }
    this.pruneCursor = cursor;
    return dropped;
  }

  async countByState(): Promise<StateCounts> {
    if (this.pendingCount > MAX_COUNTED_UNSETTLED) await this.flush().catch(() => undefined);
    const ids = [...this.unsettledIds()];
    return this.readBeside(
      () => this.query(QUERIES.countStates, [ids]),
      (rows, recent) => {
        const [counts, stored] = rows[0] as unknown as [StateCounts, Record<string, string>];
        // Each row written but not durable when asked counts in the state `get` shows for it.
        for (const id of ids) {
          const state = (this.unsettled(id) ?? recent?.get(id))?.[2];
          if (state === undefined) continue;
          const before = stored[id];
          if (before !== undefined) counts[before]! -= 1;
          counts[state] = (counts[state] ?? 0) + 1;
        }
        for (const [state, n] of Object.entries(counts)) if (n === 0) delete counts[state];
        return counts;
      },
    );
  }

  async *loadLive(batchSize: number, options?: LoadLiveOptions): AsyncIterable<TrackerRecord[]> {
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
    // Rows in a state this machine does not know are handed out too, to be quarantined, not left unseen.
    const unknown = (await this.query(QUERIES.states, [])).map((row) => row[0]).filter((s) => !KNOWN_STATES.has(s));
    for (const state of [...LIVE_STATES, ...unknown]) {
      let after = '';
      for (;;) {
        const rows = await this.query(QUERIES.pageInState, [state, after, batchSize]);
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
    for (let shard = -1, after = ''; stored.length > 0;) {
      const from = shard;
      const rows = await this.query(QUERIES.pageOfShards, [stored.filter((s) => s >= from), shard, after, batchSize]);
      const records = rows.filter((row) => ours(row[0])).map(fromRow);
      if (records.length > 0) yield records;
      if (rows.length < batchSize) break;
      // The last row's own shard column (its 11th value) and id: where the next page starts.
      const last = rows[rows.length - 1] as unknown as [...RowValues, number];
      [after, shard] = [last[0], last[COLUMN_COUNT]];
    }
    // Rows without the column (an instance of an older build wrote them): read too, told apart here.
    for (let after = ''; ;) {
      const rows = await this.query(QUERIES.pageUnsharded, [after, batchSize]);
      const records = rows.filter((row) => ours(row[0])).map(fromRow);
      if (records.length > 0) yield records;
      if (rows.length < batchSize) break;
      after = rows[rows.length - 1]![0];
    }
  }

  async countByChain(): Promise<TrackerCount[]> {
    await this.flush();
    const rows = (await this.query(QUERIES.countByChain, [])) as unknown as Array<[number | null, string, number]>;
    return rows.map(([chainId, state, count]) => ({ chainId, state, count }));
  }

  /**
   * Whether the database answers now (for `/readyz`). When it does and writes are waiting for a
   * retry, the retry runs now.
   */
  async reachable(): Promise<boolean> {
    try {
      await this.pool.query('SELECT 1');
    } catch (error) {
      this.unreachable(error);
      return false;
    }
    if (this.retryTimer && !this.inflight) {
      clearTimeout(this.retryTimer);
      this.retryTimer = undefined;
      this.commit();
    }
    // A batch that keeps failing on a reachable database (a fencing veto of all of it does not fail)
    // is still a store that cannot make writes durable.
    return this.retryTimer === undefined && this.healthState.reachable;
  }

  get health(): PostgresHealth {
    return { ...this.healthState, pending: this.pendingCount };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    try {
      await this.flush();
    } finally {
      this.closed = true;
      clearTimeout(this.retryTimer);
      this.retryTimer = undefined;
      await this.pool.end();
    }
  }

  /** Transactions committed so far. */
  get commitCount(): number {
    return this.commits;
  }

  /** How many history rows are not durable yet. */
  get pendingHistoryCount(): number {
    return this.pendingHistory.length + (this.inflightHistory?.length ?? 0);
  }

  /** How many writes are not durable yet (waiting for their group commit, or in it). */
  get pendingCount(): number {
    return this.pending.size + (this.inflight?.size ?? 0);
  }

  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    // After the I/O callbacks of this turn: every write of the events handled in one turn shares a commit.
    setImmediate(() => {
      this.scheduled = false;
      this.commit();
    });
  }

  /** Commit every pending write in one transaction; settle the flush waiters either way. */
  private commit(): void {
    if (this.inflight) return;
    const waiters = this.waiters;
    this.waiters = [];
    if (this.pending.size === 0) {
      for (const w of waiters) w.resolve();
      return;
    }
    if (this.closed) {
      const failure = new StoreError('the store is closed; the last writes were not made durable');
      for (const w of waiters) w.reject(failure);
      return;
    }
    clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    const batch = this.pending;
    const history = this.pendingHistory;
    this.pending = new Map();
    this.pendingHistory = [];
    this.inflight = batch;
    this.inflightHistory = history;
    this.transaction(batch, history).then(
      (outbox) => {
        this.inflight = undefined;
        this.inflightHistory = undefined;
        this.settled++;
        this.commits++;
        this.retryMs = 0;
        this.setHealth(true, null);
        this.webhooks.committed(outbox);
        for (const w of waiters) w.resolve();
        if (this.pending.size > 0 || this.waiters.length > 0) this.commit();
      },
      (error: unknown) => {
        this.inflight = undefined;
        this.inflightHistory = undefined;
        this.settled++;
        // The batch is pending again; newer writes made since win, and their history rows follow its own.
        for (const [id, write] of batch) if (!this.pending.has(id)) this.pending.set(id, write);
        if (history.length > 0) this.pendingHistory = history.map(unnumbered).concat(this.pendingHistory);
        this.unreachable(error);
        const failure = new StoreError('the store could not make the change durable', error);
        for (const w of waiters) w.reject(failure);
        this.retryLater();
      },
    );
  }

  /**
   * One transaction: the hook's check, the change log and its webhook outbox, the upsert in chunks,
   * the hook's rows, COMMIT. Resolves with the deliveries the outbox step made.
   */
  private async transaction(batch: Map<string, RowValues>, pendingHistory: HistoryValues[]): Promise<number> {
    const client = await this.pool.connect();
    // The server going away between two statements must fail this commit; the connection's own
    // listener (set on 'connect') reports the store unreachable.
    let lost: Error | undefined;
    const onError = (error: Error) => {
      lost = error;
    };
    client.on('error', onError);
    let broken = false;
    try {
      await client.query('BEGIN');
      const hook = this.hook;
      const dropped = hook?.beforeUpsert
        ? new Set((await hook.beforeUpsert(client, [...batch.keys()])) ?? [])
        : undefined;
      if (dropped && dropped.size > 0) for (const id of dropped) batch.delete(id);
      const history =
        dropped && dropped.size > 0 ? pendingHistory.filter((values) => !dropped.has(values[1])) : pendingHistory;
      // Each tracker's newest seq in this commit, for its row's history_seq.
      const newest = new Map<string, number>();
      let outbox = 0;
      if (history.length > 0) {
        const seqs = await client.query<[number]>({ text: NEXT_SEQS, values: [history.length], rowMode: 'array' });
        const numbered = seqs.rows.map(([seq]) => seq).sort((a, b) => a - b);
        history.forEach((values, i) => {
          values[0] = numbered[i]!;
          values[2] = newest.get(values[1]) ?? null;
          newest.set(values[1], values[0]);
        });
        for (let at = 0; at < history.length; at += ROWS_PER_UPSERT) {
          await client.query({ name: 'tx_tracker_history', text: HISTORY_SQL, values: columnsOf(history, at) });
        }
        // In this transaction: a crash can neither lose a notification nor make one for a lost change.
        outbox = await this.webhooks.insertOutbox(client, history);
      }
      const rows = [...batch].map(([id, values]) => [...values, newest.get(id) ?? null, storedShard(id)]);
      for (let at = 0; at < rows.length; at += ROWS_PER_UPSERT) {
        await client.query({ name: 'tx_tracker_upsert', text: UPSERT_SQL, values: columnsOf(rows, at) });
      }
      if (hook?.afterUpsert) await hook.afterUpsert(client, batch, history);
      await client.query('COMMIT');
      return outbox;
    } catch (error) {
      try {
        await client.query('ROLLBACK');
      } catch {
        broken = true;
      }
      throw error;
    } finally {
      client.off('error', onError);
      // A connection whose rollback failed (or that the server dropped) is not handed out again.
      client.release(broken || lost !== undefined);
    }
  }

  /** Retry the pending writes after a backoff, until a commit succeeds. */
  private retryLater(): void {
    if (this.closed || this.retryTimer || this.pending.size === 0) return;
    this.retryMs = Math.min(this.maxRetryMs, Math.max(this.minRetryMs, this.retryMs * 2));
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      this.commit();
    }, this.retryMs);
  }

  private unreachable(error: unknown): void {
    this.setHealth(false, error instanceof Error ? error.message : String(error));
  }

  private setHealth(reachable: boolean, lastError: string | null): void {
    const changed = this.healthState.reachable !== reachable;
    this.healthState = { reachable, lastError };
    if (changed) this.onHealthChange?.(this.health);
  }

  /**
   * Run a read, then merge the writes not durable yet into its answer with `merge`. `recent` is the
   * commit that was in flight when the read was sent: it may have landed before or after the read's
   * snapshot, so it is merged too. When more than one commit finished meanwhile, a later one may be
   * in the snapshot and `recent` older than it: the read is made again.
   */
  private async readBeside<T>(
    read: () => Promise<RowValues[]>,
    merge: (rows: RowValues[], recent: Map<string, RowValues> | undefined) => T,
  ): Promise<T> {
    for (;;) {
      const recent = this.inflight;
      const settled = this.settled;
      const rows = await read();
      if (this.settled - settled <= 1) return merge(rows, recent);
    }
  }

  private hasUnsettledHistory(id: string): boolean {
    return (
      this.pendingHistory.some((values) => values[1] === id) ||
      (this.inflightHistory?.some((values) => values[1] === id) ?? false)
    );
  }

  private unsettled(id: string): RowValues | undefined {
    return this.pending.get(id) ?? this.inflight?.get(id);
  }

  private *unsettledIds(): Iterable<string> {
    yield* this.pending.keys();
    for (const id of this.inflight?.keys() ?? []) if (!this.pending.has(id)) yield id;
  }

  private page(query: ListQuery, after: string, limit: number): Promise<RowValues[]> {
    if (query.chainId === undefined) {
      return query.state
        ? this.query(QUERIES.pageInState, [query.state, after, limit])
        : this.query(QUERIES.pageAll, [after, limit]);
    }
    const unset = query.unsetChainId === query.chainId;
    return query.state
      ? this.query(QUERIES.pageOfChainInState, [query.chainId, unset, query.state, after, limit])
      : this.query(QUERIES.pageOfChain, [query.chainId, unset, after, limit]);
  }

  private async query(text: string, values: unknown[]): Promise<RowValues[]> {
    if (this.closed) throw new StoreError('the store is closed');
    try {
      const result = await this.pool.query<RowValues>({ text, values, rowMode: 'array' });
      if (!this.healthState.reachable) this.setHealth(true, null);
      return result.rows;
    } catch (error) {
      this.unreachable(error);
      throw new StoreError('the store could not be read', error);
    }
  }
}

/** Rows `at` to `at + ROWS_PER_UPSERT` as one array per column, an unnest insert's parameters. */
function columnsOf(rows: ReadonlyArray<readonly unknown[]>, at: number): unknown[][] {
  const end = Math.min(rows.length, at + ROWS_PER_UPSERT);
  const width = rows[0]?.length ?? COLUMN_COUNT;
  const columns: unknown[][] = Array.from({ length: width }, () => new Array<unknown>(end - at));
  for (let i = at; i < end; i++) {
    const row = rows[i]!;
    for (let c = 0; c < width; c++) columns[c]![i - at] = row[c];
  }
  return columns;
}

/** A history row back to pending: its seq is handed out again by the commit that stores it. */
const unnumbered = (values: HistoryValues): HistoryValues => {
  values[0] = 0;
  values[2] = null;
  return values;
};
