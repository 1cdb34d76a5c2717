import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { InvalidInputError } from '../errors.js';
import { SqliteStore, type SqliteStoreOptions } from './sqlite.js';
import type { SnapshotStore } from './types.js';

export const DEFAULT_DATABASE_URL = 'sqlite:./data/trackers.db';

/**
 * Open the store a `DATABASE_URL` names: `sqlite:<path>` (a file, its folder created when missing)
 * or `sqlite::memory:`. Without a URL, `sqlite:./data/trackers.db`.
 *
 * @example
 * const store = openStore(process.env.DATABASE_URL);
 * const system = await createTrackerSystem({ store });
 */
export function openStore(
  databaseUrl: string = DEFAULT_DATABASE_URL,
  options: Pick<SqliteStoreOptions, 'onThreadFailure' | 'lock'> = {},
): SnapshotStore {
  if (/^postgres(ql)?:\/\//.test(databaseUrl)) {
    throw new InvalidInputError(
      'unsupported_database',
      'DATABASE_URL: postgres is not supported yet; use sqlite:<path>',
    );
  }
  if (!databaseUrl.startsWith('sqlite:')) {
    throw new InvalidInputError(
      'invalid_database_url',
      `DATABASE_URL must be sqlite:<path> or sqlite::memory:, not ${JSON.stringify(databaseUrl)}`,
    );
  }
  // `sqlite:///abs/path` and `sqlite://./rel` are common spellings too: drop the `//` of a URL form.
  const rest = databaseUrl.slice('sqlite:'.length);
  const path = rest.startsWith('//') ? rest.slice(2) : rest;
  if (path === '') throw new InvalidInputError('invalid_database_url', 'DATABASE_URL: sqlite: needs a file path');
  if (path !== ':memory:') mkdirSync(dirname(path), { recursive: true });
  return new SqliteStore({ path, ...options });
}

export { SqliteStore, type SqliteStoreOptions } from './sqlite.js';
export { type DatabaseLock, lockDatabase } from './lock.js';
