import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { InvalidInputError } from '../src/errors.js';
import { DEFAULT_DATABASE_URL, openStore } from '../src/store/index.js';
import { SqliteStore } from '../src/store/sqlite.js';
import { tempDir } from './helpers.js';

describe('openStore reads DATABASE_URL', () => {
  const dir = tempDir();
  afterAll(() => dir.remove());

  it('defaults to sqlite:./data/trackers.db', () => {
    expect(DEFAULT_DATABASE_URL).toBe('sqlite:./data/trackers.db');
  });

  it('opens sqlite:<path>, creating the folder, and sqlite:///<absolute path>', async () => {
    const path = join(dir.path, 'nested', 'deeper', 'trackers.db');
    const store = openStore(`sqlite:${path}`);
    expect(store).toBeInstanceOf(SqliteStore);
    expect(existsSync(path)).toBe(true);
    expect((store as SqliteStore).db.pragma('journal_mode', { simple: true })).toBe('wal');
    expect((store as SqliteStore).db.pragma('synchronous', { simple: true })).toBe(2); // FULL
    await store.close();
    const again = openStore(`sqlite://${join(dir.path, 'abs.db')}`);
    expect(existsSync(join(dir.path, 'abs.db'))).toBe(true);
    await again.close();
  });

  it('opens sqlite::memory:', async () => {
    const store = openStore('sqlite::memory:');
    expect(await store.get('nothing')).toBeUndefined();
    await store.close();
  });

  it('says postgres is not supported yet, and rejects other URLs in one line', () => {
    expect(() => openStore('postgres://u:p@localhost/db')).toThrow(/postgres is not supported yet/);
    expect(() => openStore('postgres://u:p@localhost/db')).toThrow(InvalidInputError);
    expect(() => openStore('mysql://localhost/db')).toThrow(/must be sqlite:<path> or sqlite::memory:/);
    expect(() => openStore('sqlite:')).toThrow(/needs a file path/);
  });
});
