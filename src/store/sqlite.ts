import Database from 'better-sqlite3';
import { FINAL_STATE_NAMES, TRACKER_STATE_NAMES, type TrackerStateName } from '../../machines/tracker.machine.js';
import { StoreError } from '../errors.js';
import { type ListPage, type ListQuery, type SnapshotStore, type TrackerRecord, decodeCursor, encodeCursor } from './types.js';

export interface SqliteStoreOptions {
  /** A file path, or `:memory:` (durable for the life of the process only). */
  path: string;
  /**
   * A pending batch this big is committed at once instead of at the end of the current turn of the
   * event loop, so that a burst of writes does not grow one transaction without bound.
   */
  maxBatch?: number;
}

interface Row {
  id: string;
  tx_hash: string;
  state: string;
  version: number;
  snapshot: string;
  restarts: number;
  created_at: number;
  updated_at: number;
  quarantined: string | null;
}

// WITHOUT ROWID: the table is the primary-key b-tree, so id-ordered paging reads it in order.
// (state, id) serves listing by state and the rehydration scan with the same keyset paging.
const SCHEMA = `
CREATE TABLE IF NOT EXISTS trackers (
  id          TEXT PRIMARY KEY,
  tx_hash     TEXT NOT NULL,
  state       TEXT NOT NULL,
  version     INTEGER NOT NULL,
  snapshot    TEXT NOT NULL,
  restarts    INTEGER NOT NULL,
  created_at  INTEGER NOT NULL,
  updated_at  INTEGER NOT NULL,
  quarantined TEXT
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS trackers_state_id ON trackers (state, id);
`;

const COLUMNS = 'id, tx_hash, state, version, snapshot, restarts, created_at, updated_at, quarantined';
const LIVE_STATES = TRACKER_STATE_NAMES.filter((s) => !FINAL_STATE_NAMES.includes(s));

/**
 * A `SnapshotStore` in one SQLite file (better-sqlite3, WAL, `synchronous = FULL`).
 *
 * Writes go to a pending map (so reads see them at once) and are committed together, one
 * transaction per turn of the event loop (group commit): a single fsync covers every tracker that
 * changed meanwhile. `flush()` resolves after the commit that holds every earlier write. When a commit
 * fails (disk full, read-only file) the transaction rolls back, the batch stays pending for the next
 * attempt and `flush()` rejects with a `StoreError`; rows already stored are untouched.
 *
 * @example
 * const store = new SqliteStore({ path: './data/trackers.db' });
 * const system = await createTrackerSystem({ store });
 */
export class SqliteStore implements SnapshotStore {
  /** The connection, for tools and tests (e.g. `PRAGMA max_page_count` to simulate a full disk). */
  readonly db: Database.Database;
  private readonly maxBatch: number;
  private pending = new Map<string, TrackerRecord>();
  private waiters: Array<{ resolve: () => void; reject: (error: unknown) => void }> = [];
  private scheduled = false;
  private closed = false;
  private commits = 0;
  private readonly upsert: Database.Statement;
  private readonly selectOne: Database.Statement<[string], Row>;
  private readonly pageAll: Database.Statement<[string, number], Row>;
  private readonly pageInState: Database.Statement<[string, string, number], Row>;
  private readonly commitBatch: (records: Iterable<TrackerRecord>) => void;

  constructor(options: SqliteStoreOptions) {
    this.maxBatch = options.maxBatch ?? 10_000;
    try {
      this.db = new Database(options.path);
      this.db.pragma('journal_mode = WAL');
      // FULL: a commit is on disk (WAL fsynced) when it returns. NORMAL in WAL mode can lose the
      // last commits on a power cut, which would break the promise that an acknowledged start stays.
      this.db.pragma('synchronous = FULL');
      this.db.pragma('busy_timeout = 5000');
      this.db.exec(SCHEMA);
    } catch (error) {
      throw new StoreError(`cannot open the SQLite database at ${options.path}`, error);
    }
    // A quarantined original is never overwritten by a later write that does not carry one.
    this.upsert = this.db.prepare(`
      INSERT INTO trackers (${COLUMNS})
      VALUES (@id, @txHash, @state, @version, @snapshot, @restarts, @createdAt, @updatedAt, @quarantined)
      ON CONFLICT (id) DO UPDATE SET
        tx_hash = excluded.tx_hash, state = excluded.state, version = excluded.version,
        snapshot = excluded.snapshot, restarts = excluded.restarts, created_at = excluded.created_at,
        updated_at = excluded.updated_at, quarantined = COALESCE(excluded.quarantined, trackers.quarantined)`);
    this.selectOne = this.db.prepare(`SELECT ${COLUMNS} FROM trackers WHERE id = ?`);
    this.pageAll = this.db.prepare(`SELECT ${COLUMNS} FROM trackers WHERE id > ? ORDER BY id LIMIT ?`);
    this.pageInState = this.db.prepare(`SELECT ${COLUMNS} FROM trackers WHERE state = ? AND id > ? ORDER BY id LIMIT ?`);
    this.commitBatch = this.db.transaction((records: Iterable<TrackerRecord>) => {
      for (const r of records) {
        this.upsert.run({
          id: r.id,
          txHash: r.txHash,
          state: r.state,
          version: r.version,
          snapshot: JSON.stringify(r.snapshot),
          restarts: r.restarts,
          createdAt: r.createdAt,
          updatedAt: r.updatedAt,
          quarantined: r.quarantined === undefined ? null : JSON.stringify(r.quarantined),
        });
      }
    });
  }

  write(record: TrackerRecord): void {
    if (this.closed) throw new StoreError('the store is closed');
    this.pending.set(record.id, record);
    if (this.pending.size >= this.maxBatch) this.commit();
    else this.schedule();
  }

  flush(): Promise<void> {
    if (this.pending.size === 0) return Promise.resolve();
    return new Promise((resolve, reject) => {
      this.waiters.push({ resolve, reject });
      this.schedule();
    });
  }

  async get(id: string): Promise<TrackerRecord | undefined> {
    const pending = this.pending.get(id);
    if (pending) return pending;
    const row = this.read(() => this.selectOne.get(id));
    return row ? fromRow(row) : undefined;
  }

  async list(query: ListQuery): Promise<ListPage> {
    const after = query.cursor ? decodeCursor(query.cursor) : '';
    const limit = query.limit + 1;
    const rows = this.read(() =>
      query.state ? this.pageInState.all(query.state, after, limit) : this.pageAll.all(after, limit),
    );
    // Merge the writes not yet committed, so a page is never older than `get`. When the file gave a
    // full page, only pending ids up to its last row can belong to this page.
    const full = rows.length === limit;
    const bound = full ? rows[rows.length - 1]!.id : undefined;
    const byId = new Map<string, TrackerRecord>();
    for (const row of rows) byId.set(row.id, fromRow(row));
    for (const record of this.pending.values()) {
      if (record.id > after && (bound === undefined || record.id <= bound)) byId.set(record.id, record);
    }
    const items = [...byId.values()]
      .filter((r) => !query.state || r.state === query.state)
      .sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    if (items.length > query.limit) {
      const page = items.slice(0, query.limit);
      return { items: page, nextCursor: encodeCursor(page[page.length - 1]!.id) };
    }
    // A pending write moved a row out of the requested state: the page is short, not the last one.
    return { items, nextCursor: full ? encodeCursor(bound!) : null };
  }

  async *loadLive(batchSize: number): AsyncIterable<TrackerRecord[]> {
    // Everything written so far is read from the file: keyset paging over (state, id) keeps each
    // batch one index range scan and holds no read transaction open between batches.
    await this.flush();
    // Rows whose state column is not a state this machine knows are live for all we know: they are
    // handed out too, so that the runtime quarantines them instead of leaving them unseen.
    const unknown = this.db.prepare<unknown[], Row>(
      `SELECT ${COLUMNS} FROM trackers WHERE state NOT IN (${TRACKER_STATE_NAMES.map(() => '?').join(', ')}) AND id > ? ORDER BY id LIMIT ?`,
    );
    for (const state of [...LIVE_STATES, null]) {
      let after = '';
      for (;;) {
        const rows = this.read(() =>
          state === null ? unknown.all(...TRACKER_STATE_NAMES, after, batchSize) : this.pageInState.all(state, after, batchSize),
        );
        if (rows.length === 0) break;
        after = rows[rows.length - 1]!.id;
        yield rows.map(fromRow);
        if (rows.length < batchSize) break;
      }
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    try {
      await this.flush();
    } finally {
      this.closed = true;
      this.db.close();
    }
  }

  /** Transactions committed so far (each one a group of writes and one fsync). */
  get commitCount(): number {
    return this.commits;
  }

  /** How many writes wait for the next group commit. */
  get pendingCount(): number {
    return this.pending.size;
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
    const batch = this.pending;
    this.pending = new Map();
    try {
      this.commitBatch(batch.values());
    } catch (error) {
      // Rolled back: keep the batch (newer writes made since win) so that nothing is lost and a later
      // flush retries it.
      for (const [id, record] of batch) if (!this.pending.has(id)) this.pending.set(id, record);
      const failure = new StoreError('the store could not make the change durable', error);
      for (const w of waiters) w.reject(failure);
      return;
    }
    this.commits++;
    for (const w of waiters) w.resolve();
  }

  private read<T>(query: () => T): T {
    try {
      return query();
    } catch (error) {
      throw new StoreError('the store could not be read', error);
    }
  }
}

function fromRow(row: Row): TrackerRecord {
  let snapshot: unknown;
  try {
    snapshot = JSON.parse(row.snapshot);
  } catch {
    // Not JSON: hand the text out as it is, so the runtime quarantines it instead of losing it.
    snapshot = row.snapshot;
  }
  const record: TrackerRecord = {
    id: row.id,
    txHash: row.tx_hash,
    state: row.state as TrackerStateName,
    version: row.version,
    snapshot,
    restarts: row.restarts,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
  };
  if (row.quarantined !== null) record.quarantined = JSON.parse(row.quarantined) as TrackerRecord['quarantined'];
  return record;
}
