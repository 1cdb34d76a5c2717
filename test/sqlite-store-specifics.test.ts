import { join } from 'node:path';
import Database from 'better-sqlite3';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import type { TrackerEvent } from '../machines/tracker.machine.js';
import { StoreError } from '../src/errors.js';
import { SqliteStore } from '../src/store/sqlite.js';
import { hashOf, tempDir } from './helpers.js';
import { record, trackerRecords } from './support/store-contract.js';

// What only the SQLite store does: synchronous reads, and the files of its earlier schemas.
// The contract both stores keep is test/support/store-contract.ts.
describe('SqliteStore: synchronous reads and its file format', () => {
  const dir = tempDir();
  afterAll(() => dir.remove());
  const at = 1_764_000_000_000;
  const lifetime: TrackerEvent[] = [
    { type: 'TX_SEEN', at: at + 1 },
    { type: 'TX_MINED', blockNumber: 100, blockHash: hashOf(100), status: 'success', head: 100, at: at + 2 },
    { type: 'NEW_HEAD', blockNumber: 102, at: at + 3 },
  ];

  it('getManyNow answers for each id what getNow does, in order: stored, pending, missing, repeated (property: odd ids)', async () => {
    const store = new SqliteStore({ path: join(dir.path, 'many.db') });
    const id = fc.oneof(
      fc.stringMatching(/^[\w.:-]{1,12}$/),
      fc.string({ minLength: 1, maxLength: 6 }),
      fc.constantFrom('a"b', 'a\\b', 'tab\there', 'é✓', '😀', '\ud800', 'x\udc00y', '[1]', 'null'),
    );
    await fc.assert(
      fc.asyncProperty(
        fc.uniqueArray(id, { minLength: 1, maxLength: 12 }),
        fc.array(fc.nat(), { maxLength: 20 }),
        async (ids, picks) => {
          const [stored, pending, missing] = [
            ids.filter((_, i) => i % 3 === 0),
            ids.filter((_, i) => i % 3 === 1),
            ids.filter((_, i) => i % 3 === 2),
          ];
          stored.forEach((x, i) => store.write(record(x, 'confirming', i)));
          await store.flush();
          pending.forEach((x, i) => store.write(record(x, 'pending', 100 + i)));
          const asked = [...picks.map((k) => ids[k % ids.length]!), ...missing.map((x) => `${x}-none`)];
          expect(JSON.stringify(store.getManyNow(asked))).toBe(JSON.stringify(asked.map((x) => store.getNow(x))));
          await store.flush();
        },
      ),
      { numRuns: 200 },
    );
    expect(store.getManyNow([])).toEqual([]);
    await store.close();
  });

  it('reads a file written before store schema 1 as it is, and wraps its rows that have a packed key', async () => {
    const path = join(dir.path, 'schema0.db');
    const legacy = new Database(path);
    legacy.exec(`CREATE TABLE trackers (id TEXT PRIMARY KEY, tx_hash TEXT NOT NULL, state TEXT NOT NULL,
      version INTEGER NOT NULL, snapshot TEXT NOT NULL, restarts INTEGER NOT NULL, created_at INTEGER NOT NULL,
      updated_at INTEGER NOT NULL, quarantined TEXT) WITHOUT ROWID;
      CREATE INDEX trackers_state_id ON trackers (state, id);`);
    const [real] = trackerRecords('old', lifetime);
    const insert = legacy.prepare('INSERT INTO trackers VALUES (?, ?, ?, ?, ?, ?, ?, ?, NULL)');
    insert.run(
      'old',
      real!.txHash,
      real!.state,
      real!.version,
      JSON.stringify(real!.snapshot),
      0,
      real!.createdAt,
      real!.updatedAt,
    );
    const ownPacked = { packed: 1, value: 'pending', context: { n: 1 } };
    insert.run('own_packed', hashOf(2), 'pending', 1, JSON.stringify(ownPacked), 0, 5, 5);
    legacy.close();

    const store = new SqliteStore({ path });
    expect(store.db.pragma('user_version', { simple: true })).toBe(3);
    // A row from before chains has none (the runtime counts it as the default chain's).
    const { chainId: _chain, ...unchained } = real!;
    expect(JSON.stringify(await store.get('old'))).toBe(JSON.stringify(unchained));
    expect((await store.get('own_packed'))!.snapshot).toEqual(ownPacked);
    await store.close();
  });

  it('refuses a file written by a newer store schema instead of misreading it', async () => {
    const path = join(dir.path, 'future.db');
    const current = new SqliteStore({ path });
    current.db.pragma('user_version = 4');
    await current.close();
    expect(() => new SqliteStore({ path })).toThrow(StoreError);
    expect(() => new SqliteStore({ path })).toThrow(/store schema is 4, newer than this build's \(3\)/);
  });
});
