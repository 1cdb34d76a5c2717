import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { InvalidInputError } from '../errors.js';
import { PostgresStore, type PostgresStoreOptions } from './postgres.js';
import { SqliteStore, type SqliteStoreOptions } from './sqlite.js';
import type { SnapshotStore } from './types.js';

export const DEFAULT_DATABASE_URL = 'sqlite:./data/trackers.db';

export type OpenStoreOptions = Pick<SqliteStoreOptions, 'onThreadFailure' | 'lock'> &
  Pick<PostgresStoreOptions, 'onHealthChange' | 'commitHook'>;

/**
 * Open the store a `DATABASE_URL` names: `sqlite:<path>` (a file, its folder created when missing),
 * `sqlite::memory:`, or `postgres://…` / `postgresql://…` (a PostgreSQL database, its schema created
 * or migrated). Without a URL, `sqlite:./data/trackers.db`. A URL of another kind is refused with
 * `InvalidInputError`; a database that cannot be opened with `StoreError`.
 *
 * @example
 * const store = await openStore(process.env.DATABASE_URL);
 * const system = await createTrackerSystem({ store });
 */
export async function openStore(
  databaseUrl: string = DEFAULT_DATABASE_URL,
  options: OpenStoreOptions = {},
): Promise<SnapshotStore> {
  if (/^postgres(ql)?:\/\//.test(databaseUrl)) {
    // `lock` is SQLite's: PostgreSQL is shared by design, and several instances coordinate in it.
    return PostgresStore.open({
      url: databaseUrl,
      onHealthChange: options.onHealthChange,
      commitHook: options.commitHook,
    });
  }
  if (!databaseUrl.startsWith('sqlite:')) {
    throw new InvalidInputError(
      'invalid_database_url',
      `DATABASE_URL must be sqlite:<path>, sqlite::memory: or postgres://…, not ${JSON.stringify(databaseUrl)}`,
    );
  }
  // `sqlite:///abs/path` and `sqlite://./rel` are common spellings too: drop the `//` of a URL form.
  const rest = databaseUrl.slice('sqlite:'.length);
  const path = rest.startsWith('//') ? rest.slice(2) : rest;
  if (path === '') throw new InvalidInputError('invalid_database_url', 'DATABASE_URL: sqlite: needs a file path');
  if (path !== ':memory:') mkdirSync(dirname(path), { recursive: true });
  return new SqliteStore({ path, onThreadFailure: options.onThreadFailure, lock: options.lock });
}

/**
 * A `DATABASE_URL` fit for logs: a PostgreSQL URL without its password.
 *
 * @example
 * databaseLocation('postgres://app:secret@db/trackers'); // 'postgres://app:***@db/trackers'
 */
export function databaseLocation(databaseUrl: string): string {
  if (!/^postgres(ql)?:\/\//.test(databaseUrl)) return databaseUrl;
  try {
    const url = new URL(databaseUrl);
    if (url.password) url.password = '***';
    return url.toString();
  } catch {
    return 'a PostgreSQL database';
  }
}

export { SqliteStore, type SqliteStoreOptions } from './sqlite.js';
export { type CommitHook, type PostgresHealth, PostgresStore, type PostgresStoreOptions } from './postgres.js';
export { type DatabaseLock, lockDatabase } from './lock.js';
