/**
 * The plain-library floor the benchmarks compare the service with: XState's own `createActor` of
 * the tracker machine, `getPersistedSnapshot()` + `JSON.stringify`, and plain better-sqlite3
 * prepared statements writing the rows the service writes (same table, columns and index, WAL,
 * synchronous=FULL, the same page cache), committed on the calling thread. Nothing here comes from
 * src/: only the machine definition, which both sides run.
 */
import Database from 'better-sqlite3';
import { createActor } from 'xstate';
import { TRACKER_MACHINE_VERSION, type TrackerEvent, trackerMachine } from '../machines/tracker.machine.js';

/**
 * The service's table and index, the text of src/store/schema.ts. Copied, not imported, so that the
 * floor holds none of our code; `sameSchema` checks in each run that the service made the same.
 */
export const FLOOR_DDL = `
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
CREATE INDEX IF NOT EXISTS trackers_live_shard ON trackers (shard, id) WHERE state NOT IN ('confirmed', 'failed', 'stopped');
`;

export type PlainActor = ReturnType<typeof createActor<typeof trackerMachine>>;
/** One row of `trackers`, in column order. */
export type PlainRow = [string, string, string, number, string, number, number, number, null, number, number];

/**
 * Open a file with the pragmas the service's connections use and the service's schema.
 *
 * @example
 * const floor = openPlainFloor('/tmp/floor.db');
 * floor.commit(actors.map(plainRow));
 */
export function openPlainFloor(path: string) {
  const db = new Database(path);
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = FULL');
  db.pragma('busy_timeout = 5000');
  db.pragma('cache_size = -65536');
  db.exec(FLOOR_DDL);
  const upsert = db.prepare(
    `INSERT INTO trackers (id, tx_hash, state, version, snapshot, restarts, created_at, updated_at, quarantined, chain_id, shard)
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
     ON CONFLICT (id) DO UPDATE SET tx_hash = excluded.tx_hash, state = excluded.state, version = excluded.version,
       snapshot = excluded.snapshot, restarts = excluded.restarts, created_at = excluded.created_at,
       updated_at = excluded.updated_at, quarantined = excluded.quarantined, chain_id = excluded.chain_id,
       shard = excluded.shard`,
  );
  const commit = db.transaction((rows: readonly PlainRow[]) => {
    for (const row of rows) upsert.run(row);
  });
  return { db, commit: (rows: readonly PlainRow[]): void => void commit(rows), close: () => db.close() };
}

export type PlainFloor = ReturnType<typeof openPlainFloor>;

/**
 * A started plain actor of the tracker machine.
 *
 * @example
 * const actor = plainActor('txn_1', '0x…', 12);
 */
export function plainActor(id: string, txHash: string, requiredConfirmations = 12): PlainActor {
  return createActor(trackerMachine, {
    input: { id, txHash, chainId: 31337, requiredConfirmations, createdAt: Date.now() },
  }).start();
}

/** `actor.send` of a chain fact, stamped with the time as the service stamps it. */
export function plainSend(actor: PlainActor, event: TrackerEvent): void {
  actor.send({ ...event, at: Date.now() });
}

/**
 * The row of an actor as it stands: its persisted snapshot as JSON, and the columns beside it.
 *
 * @example
 * floor.commit(changed.map(plainRow));
 */
export function plainRow(actor: PlainActor): PlainRow {
  const snapshot = actor.getSnapshot();
  const { context, value } = snapshot;
  const state = typeof value === 'string' ? value : Object.keys(value)[0]!;
  const json = JSON.stringify(actor.getPersistedSnapshot());
  return [
    context.id,
    context.txHash,
    state,
    TRACKER_MACHINE_VERSION,
    json,
    context.restarts,
    context.createdAt,
    context.updatedAt,
    null,
    context.chainId,
    shardColumn(context.id),
  ];
}

/** A shard number for the row's `shard` column: FNV-1a of the id, mod 1,024 (written inline, not imported). */
function shardColumn(id: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < id.length; i++) hash = Math.imul(hash ^ id.charCodeAt(i), 0x01000193);
  return (hash >>> 0) % 1024;
}

/**
 * The schema objects (table and index) of two SQLite files, compared: the floor must write the
 * table the service writes. Throws with both texts when they differ.
 *
 * @example
 * sameSchema(serviceFile, floorFile);
 */
export function sameSchema(servicePath: string, floorPath: string): void {
  const read = (path: string): string => {
    const db = new Database(path, { readonly: true, fileMustExist: true });
    try {
      const rows = db
        .prepare("SELECT type, name, sql FROM sqlite_master WHERE name LIKE 'trackers%' ORDER BY name")
        .all();
      return JSON.stringify(rows);
    } finally {
      db.close();
    }
  };
  const ours = read(servicePath);
  const floor = read(floorPath);
  if (ours !== floor)
    throw new Error(`the floor's schema is not the service's:\n service: ${ours}\n floor:   ${floor}`);
}
