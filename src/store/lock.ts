import Database from 'better-sqlite3';
import { DatabaseLockedError, StoreError } from '../errors.js';

export interface DatabaseLock {
  /** The lock file, `<database>-lock`. */
  readonly path: string;
  /** Let the next process have the database (also done by the OS when this process dies). */
  release(): void;
}

/**
 * Take the lock that makes one process the only user of the store's SQLite file: an exclusive SQLite
 * lock on a small file beside it, `<path>-lock`, held until `release()` or until this process dies,
 * however it dies (the OS drops its file locks with it, so no stale lock survives a SIGKILL). Not
 * a lock on the database itself: the store's own threads open it on their own connections. The
 * lock file is left in place: deleting it on release would let two processes lock two different files.
 *
 * @example
 * const lock = lockDatabase('./data/trackers.db'); // throws DatabaseLockedError while another holds it
 * // … on close:
 * lock.release();
 */
export function lockDatabase(path: string): DatabaseLock {
  const lockPath = `${path}-lock`;
  let db: Database.Database;
  try {
    // timeout 0: a held lock is answered at once, not after a wait.
    db = new Database(lockPath, { timeout: 0 });
  } catch (error) {
    throw new StoreError(`cannot open the lock file ${lockPath}`, error);
  }
  try {
    // EXCLUSIVE locking mode keeps the write lock after the first commit, until the connection closes.
    db.pragma('locking_mode = EXCLUSIVE');
    // No rollback journal file beside it: the lock file holds one row that nobody needs back.
    db.pragma('journal_mode = MEMORY');
    db.exec('BEGIN EXCLUSIVE');
    db.exec('CREATE TABLE IF NOT EXISTS holder (pid INTEGER NOT NULL, since TEXT NOT NULL)');
    db.exec('DELETE FROM holder');
    db.prepare('INSERT INTO holder VALUES (?, ?)').run(process.pid, new Date().toISOString());
    db.exec('COMMIT');
  } catch (error) {
    db.close();
    if ((error as { code?: unknown }).code === 'SQLITE_BUSY') throw new DatabaseLockedError(path, lockPath);
    throw new StoreError(`cannot take the lock ${lockPath}`, error);
  }
  return {
    path: lockPath,
    release: () => {
      if (db.open) db.close();
    },
  };
}
