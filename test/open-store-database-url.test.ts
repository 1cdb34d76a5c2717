import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InvalidInputError, StoreError } from '../src/errors.js';
import { DEFAULT_DATABASE_URL, PostgresStore, databaseLocation, openStore } from '../src/store/index.js';
import { SqliteStore } from '../src/store/sqlite.js';
import { tempDir } from './helpers.js';
import { type PostgresServer, describeWithPostgres, startPostgres } from './support/postgres.js';

describe('openStore reads DATABASE_URL', () => {
  const dir = tempDir();
  afterAll(() => dir.remove());

  it('defaults to sqlite:./data/trackers.db', () => {
    expect(DEFAULT_DATABASE_URL).toBe('sqlite:./data/trackers.db');
  });

  it('opens sqlite:<path>, creating the folder, and sqlite:///<absolute path>', async () => {
    const path = join(dir.path, 'nested', 'deeper', 'trackers.db');
    const store = await openStore(`sqlite:${path}`);
    expect(store).toBeInstanceOf(SqliteStore);
    expect(existsSync(path)).toBe(true);
    expect((store as SqliteStore).db.pragma('journal_mode', { simple: true })).toBe('wal');
    expect((store as SqliteStore).db.pragma('synchronous', { simple: true })).toBe(2); // FULL
    await store.close();
    const again = await openStore(`sqlite://${join(dir.path, 'abs.db')}`);
    expect(existsSync(join(dir.path, 'abs.db'))).toBe(true);
    await again.close();
  });

  it('opens sqlite::memory:', async () => {
    const store = await openStore('sqlite::memory:');
    expect(await store.get('nothing')).toBeUndefined();
    await store.close();
  });

  it('rejects other URLs in one line', async () => {
    await expect(openStore('mysql://localhost/db')).rejects.toThrow(InvalidInputError);
    await expect(openStore('mysql://localhost/db')).rejects.toThrow(
      /must be sqlite:<path>, sqlite::memory: or postgres:\/\/…/,
    );
    await expect(openStore('sqlite:')).rejects.toThrow(/needs a file path/);
  });

  it('hides a PostgreSQL password in the location it logs', () => {
    expect(databaseLocation('postgres://app:secret@db:5432/trackers')).toBe('postgres://app:***@db:5432/trackers');
    expect(databaseLocation('sqlite:./data/trackers.db')).toBe('sqlite:./data/trackers.db');
  });
});

describeWithPostgres('openStore reads a postgres:// DATABASE_URL', () => {
  let server: PostgresServer;
  beforeAll(async () => {
    server = await startPostgres();
  });
  afterAll(() => server?.close());

  it('opens postgres:// and postgresql:// as a PostgresStore, its schema created', async () => {
    for (const scheme of ['postgres', 'postgresql']) {
      const store = await openStore(server.url.replace(/^postgres/, scheme));
      expect(store).toBeInstanceOf(PostgresStore);
      expect(await store.get('nothing')).toBeUndefined();
      await store.close();
    }
  });

  it('fails with StoreError when the database cannot be reached', async () => {
    const url = await server.createDatabase();
    await expect(openStore(url.replace(/\/[^/]*$/, '/no_such_database'))).rejects.toThrow(StoreError);
  });
});
