import Database from 'better-sqlite3';
import { StoreError } from '../errors.js';

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

/**
 * Open (or create) the store's SQLite file with the durability docs/durability.md promises.
 *
 * @example
 * const db = openDatabase('./data/trackers.db');
 */
export function openDatabase(path: string): Database.Database {
  let db: Database.Database | undefined;
  try {
    db = new Database(path);
    db.pragma('journal_mode = WAL');
    // FULL: a commit is on disk (WAL fsynced) when it returns. NORMAL in WAL mode can lose the
    // last commits on a power cut, which would break the promise that an acknowledged start stays.
    db.pragma('synchronous = FULL');
    db.pragma('busy_timeout = 5000');
    db.exec(SCHEMA);
    return db;
  } catch (error) {
    db?.close();
    throw new StoreError(`cannot open the SQLite database at ${path}`, error);
  }
}
