import Database from 'better-sqlite3';
import { join } from 'node:path';
import { describe } from 'vitest';
import { SqliteStore } from '../src/store/sqlite.js';
import { tempDir } from './helpers.js';
import { storeContract } from './support/store-contract.js';

describe('SqliteStore keeps the SnapshotStore contract', () => {
  storeContract(async () => {
    const dir = tempDir();
    const path = (name: string) => join(dir.path, `${name}.db`);
    return {
      open: async (name) => new SqliteStore({ path: path(name) }),
      storedSnapshot: async (name, id) => {
        const db = new Database(path(name), { readonly: true });
        try {
          return (db.prepare('SELECT snapshot FROM trackers WHERE id = ?').pluck().get(id) as string) ?? '';
        } finally {
          db.close();
        }
      },
      close: async () => dir.remove(),
    };
  });
});
