import Database from 'better-sqlite3';
import { StoreError } from '../errors.js';
import { storedShard } from '../runtime/shard.js';
import { LIVE_ROW } from './row.js';
import { ADD_DELIVERY_SHARD, ENDPOINT_COLUMNS_ADDED, OUTBOX_TRIGGER, WEBHOOK_TABLES } from '../webhooks/schema.js';

/**
 * The store's file format, kept in `PRAGMA user_version`: 0 is a file from before it was counted
 * (every snapshot as given), 1 allows packed snapshots (see `rowValues`), 2 has a `chain_id` column
 * (NULL in rows written before it: the default chain's), 3 has the change log (`tracker_history`,
 * and `history_seq` in `trackers`), 4 the webhook tables and the outbox trigger on the change log,
 * 5 a `shard` column in `webhook_deliveries` (NULL here: one process sends every delivery; the
 * PostgreSQL store's cluster uses it), 6 a `shard` column in `trackers` (the id's `storedShard`,
 * filled in every row) with an index of the live rows by it. The PostgreSQL store's migrations use
 * the same numbers.
 */
export const STORE_SCHEMA_VERSION = 6;

// WITHOUT ROWID: the table is the primary-key b-tree, so id-ordered paging reads it in order.
// (state, id) serves listing by state and the rehydration scan with the same keyset paging.
// The change log is appended in seq order (the rowid: each insert lands at the end of its b-tree)
// and has no index: a tracker's rows are a chain, its row's history_seq the newest and each row's
// prev_seq the one before, so a change writes no page besides the ones its upsert writes anyway
// and the log's last page (an index on tracker_id would be a random insert per change).
// AUTOINCREMENT: a seq is never handed out twice, even after the newest rows were pruned.
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
  quarantined TEXT,
  chain_id    INTEGER,
  history_seq INTEGER,
  shard       INTEGER
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS trackers_state_id ON trackers (state, id);
CREATE TABLE IF NOT EXISTS tracker_history (
  seq          INTEGER PRIMARY KEY AUTOINCREMENT,
  tracker_id   TEXT NOT NULL,
  prev_seq     INTEGER,
  at           INTEGER NOT NULL,
  from_state   TEXT,
  to_state     TEXT NOT NULL,
  event        TEXT NOT NULL,
  block_number INTEGER,
  block_hash   TEXT,
  restarts     INTEGER NOT NULL,
  reorgs       INTEGER NOT NULL,
  detail       TEXT
);
`;

/**
 * 0 → 1: a stored snapshot that has a `packed` key of its own would read as a packed one; wrap it
 * the way schema 1 writes such a snapshot. No tracker snapshot has one, so this normally changes
 * nothing, and every other row is read as it is.
 */
const WRAP_OWN_PACKED_KEY = `
UPDATE trackers SET snapshot = json_object('packed', 0, 'snapshot', json(snapshot))
WHERE json_valid(snapshot) AND json_type(snapshot, '$.packed') IS NOT NULL`;

/**
 * 1 → 2: trackers get a chain. Rows keep NULL (read as the default chain's) until the runtime
 * writes them again: no rewrite of the whole table at start.
 */
const ADD_CHAIN_ID = 'ALTER TABLE trackers ADD COLUMN chain_id INTEGER';

/** 2 → 3: the change log (SCHEMA creates its table); trackers point at their newest change. */
const ADD_HISTORY_SEQ = 'ALTER TABLE trackers ADD COLUMN history_seq INTEGER';

/** 5 → 6: trackers get their shard (`storedShard`); the rows there are get it by `fillShards`. */
const ADD_SHARD = 'ALTER TABLE trackers ADD COLUMN shard INTEGER';
/** Live rows by shard, for `loadLive` of some shards (its queries name `LIVE_ROW`). */
const SHARD_INDEX = `CREATE INDEX IF NOT EXISTS trackers_live_shard ON trackers (shard, id) WHERE ${LIVE_ROW}`;
/** Rows per transaction of `fillShards`. */
export const FILL_SHARDS_BATCH = 10_000;

/**
 * Give every row without a shard its `storedShard`, in id order, `batchSize` rows a transaction, so
 * that a large file's WAL and lock hold one batch at a time. Resumes where a crash left it (the rows
 * still NULL). Returns the rows filled.
 */
function fillShards(db: Database.Database, batchSize: number): number {
  db.function('tracker_stored_shard', { deterministic: true }, (id: unknown) => storedShard(String(id)));
  const upTo = db
    .prepare<[string, number], string>('SELECT id FROM trackers WHERE id > ? ORDER BY id LIMIT 1 OFFSET ?')
    .pluck();
  const fill = db.prepare<[string, string | null, string | null]>(
    'UPDATE trackers SET shard = tracker_stored_shard(id) WHERE id > ? AND (? IS NULL OR id <= ?) AND shard IS NULL',
  );
  let filled = 0;
  for (let after = ''; ;) {
    const last = upTo.get(after, batchSize - 1);
    filled += db.transaction(() => fill.run(after, last ?? null, last ?? null).changes).immediate();
    if (last === undefined) return filled;
    after = last;
  }
}

/**
 * A schema-4 file made by an earlier build has an outbox trigger that typed a stuck reason change
 * `tracker.updated`, and endpoints without their own concurrency and timeout: the trigger is
 * replaced by this build's (which names `TX_STUCK`), the columns added. Files that have both are
 * not written to.
 */
function replaceOutboxTrigger(db: Database.Database): void {
  const stale = (): boolean =>
    db
      .prepare<[], number>(
        "SELECT 1 FROM sqlite_master WHERE type = 'trigger' AND name = 'webhook_outbox' AND instr(sql, 'TX_STUCK') = 0",
      )
      .get() !== undefined;
  const missing = () => {
    const have = new Set(
      db.prepare<[], string>("SELECT name FROM pragma_table_info('webhook_endpoints')").pluck().all(),
    );
    return ENDPOINT_COLUMNS_ADDED.filter(([name]) => !have.has(name));
  };
  if (!stale() && missing().length === 0) return;
  db.transaction(() => {
    if (stale()) db.exec(`DROP TRIGGER webhook_outbox; ${OUTBOX_TRIGGER}`);
    for (const [, sql] of missing()) db.exec(sql);
  }).immediate();
}

const hasColumn = (db: Database.Database, table: string, column: string): boolean =>
  db.prepare<[string, string], number>('SELECT 1 FROM pragma_table_info(?) WHERE name = ?').get(table, column) !==
  undefined;

/**
 * Open (or create) the store's SQLite file with the durability docs/durability.md promises, and
 * bring its format up to `STORE_SCHEMA_VERSION`. A file written by a newer format is refused.
 *
 * @example
 * const db = openDatabase('./data/trackers.db');
 */
export function openDatabase(path: string, fillBatch = FILL_SHARDS_BATCH): Database.Database {
  let db: Database.Database | undefined;
  try {
    db = new Database(path);
    db.pragma('journal_mode = WAL');
    // FULL: a commit is on disk (WAL fsynced) when it returns. NORMAL in WAL mode can lose the
    // last commits on a power cut, which would break the promise that an acknowledged start stays.
    db.pragma('synchronous = FULL');
    db.pragma('busy_timeout = 5000');
    // 64 MiB of page cache (SQLite's default is 2 MiB): tracker ids are tx hashes, so a commit
    // touches pages all over the table and its index, and with the default cache most of them are
    // read back from the OS first (docs/performance.md has the effect on upserts). It only grows
    // as pages are used.
    db.pragma('cache_size = -65536');
    const open = db;
    const version = (): number => open.pragma('user_version', { simple: true }) as number;
    if (version() > STORE_SCHEMA_VERSION) {
      throw new Error(`its store schema is ${version()}, newer than this build's (${STORE_SCHEMA_VERSION})`);
    }
    // IMMEDIATE, and the version read again inside: two processes opening an old file at once
    // migrate it once. A file already at this version is not written to (it may be read-only).
    if (version() < STORE_SCHEMA_VERSION) {
      open
        .transaction(() => {
          const from = version();
          if (from >= STORE_SCHEMA_VERSION) return;
          // A file from before schema 3 has the table already, without the newer columns; a new one has all.
          const hadTable =
            open.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'trackers'").get() !== undefined;
          open.exec(SCHEMA);
          if (from < 1) open.exec(WRAP_OWN_PACKED_KEY);
          if (hadTable && from < 2) open.exec(ADD_CHAIN_ID);
          // 2 → 3: the change log starts empty (SCHEMA created it); trackers keep their rows.
          if (hadTable && from < 3) open.exec(ADD_HISTORY_SEQ);
          // 3 → 4: webhook endpoints and the outbox, which the change log's trigger fills.
          if (from < 4) open.exec(WEBHOOK_TABLES + OUTBOX_TRIGGER);
          // 4 → 5: the deliveries' shard, as the PostgreSQL store has it.
          // (A file whose user_version was set back may have it already.)
          if (from < 5 && !hasColumn(open, 'webhook_deliveries', 'shard')) open.exec(ADD_DELIVERY_SHARD);
          // 5 → 6: the trackers' shard. The rows there are filled after this transaction, in
          // batches; the file stays at 5 until they are, so that a crash meanwhile resumes the fill.
          if (hadTable && !hasColumn(open, 'trackers', 'shard')) open.exec(ADD_SHARD);
          open.exec(SHARD_INDEX);
          open.pragma(`user_version = ${hadTable ? 5 : STORE_SCHEMA_VERSION}`);
        })
        .immediate();
    }
    if (version() === 5) {
      fillShards(open, fillBatch);
      open
        .transaction(() => {
          if (version() === 5) open.pragma(`user_version = ${STORE_SCHEMA_VERSION}`);
        })
        .immediate();
    }
    replaceOutboxTrigger(open);
    return db;
  } catch (error) {
    db?.close();
    throw new StoreError(`cannot open the SQLite database at ${path}`, error);
  }
}
