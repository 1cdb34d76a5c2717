import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, describe, expect, it } from 'vitest';
import { SqliteStore } from '../src/store/sqlite.js';
import type { TrackerRecord } from '../src/store/types.js';
import { hashOf, tempDir, waitFor } from './helpers.js';

const PADDING = 'x'.repeat(400);
const record = (i: number, round: number): TrackerRecord => ({
  id: `txn_${i}`,
  txHash: hashOf(i),
  state: round % 2 === 0 ? 'pending' : 'confirming',
  version: 1,
  snapshot: { status: 'active', value: 'pending', context: { id: `txn_${i}`, round, padding: PADDING } },
  restarts: 0,
  createdAt: i,
  updatedAt: round,
});

const walSize = (path: string): number => (existsSync(`${path}-wal`) ? statSync(`${path}-wal`).size : 0);

/** Rounds of `ids` upserts in commits of 1,000: ~0.6 KiB of row per upsert, ~19 MiB of WAL per 30,000 without checkpoints. */
async function writeRounds(store: SqliteStore, ids: number, rounds: number): Promise<void> {
  for (let round = 0; round < rounds; round++) {
    for (let i = 0; i < ids; i++) {
      store.write(record(i, round));
      if (i % 1000 === 999) await store.flush();
    }
    await store.flush();
  }
}

describe('WAL checkpoints run on a worker thread, off the event loop', () => {
  const dir = tempDir();
  afterAll(() => dir.remove());

  it('checkpoints on the worker; once it has caught up, SQLite starts the WAL over; nothing is lost', async () => {
    const path = join(dir.path, 'background.db');
    const store = new SqliteStore({ path });
    expect(await store.writerPragma('wal_autocheckpoint', true)).toBe(0);
    await writeRounds(store, 10_000, 2);
    // The writes pause: the worker catches up, copying back every frame of the WAL.
    await waitFor(() => store.checkpointStats.caughtUp, 'the worker to catch up');
    expect(store.checkpointStats.background).toBeGreaterThan(0);
    // The file keeps the largest extent the WAL reached: at least one commit of 1,000 rows.
    const afterBurst = walSize(path);
    expect(afterBurst).toBeGreaterThan(256 * 1024);
    // 200 more rows (~0.15 MiB of WAL) are written from the start of the WAL again: the file does
    // not grow. (Appended after 20,000 upserts' worth of frames, it would.)
    for (let i = 0; i < 200; i++) store.write(record(i, 3));
    await store.flush();
    expect(walSize(path)).toBeLessThanOrEqual(afterBurst);
    expect(store.checkpointStats.foreground).toBe(0);

    const reader = new Database(path, { readonly: true });
    const rows = reader
      .prepare('SELECT count(*) AS n, min(updated_at) AS lo, max(updated_at) AS hi FROM trackers')
      .get();
    reader.close();
    expect(rows).toEqual({ n: 10_000, lo: 1, hi: 3 });

    await store.close();
    // The last connection to close checkpoints everything and removes the WAL.
    expect(walSize(path)).toBe(0);
    const reopened = new SqliteStore({ path });
    expect((await reopened.get('txn_9999'))?.updatedAt).toBe(1);
    expect((await reopened.get('txn_0'))?.updatedAt).toBe(3);
    await reopened.close();
  });

  it('under sustained writes the store checkpoints at maxWalBytes itself, between two commits; the WAL stays bounded', async () => {
    const path = join(dir.path, 'sustained.db');
    const cap = 2 * 1024 * 1024;
    const store = new SqliteStore({ path, maxWalBytes: cap });
    await writeRounds(store, 10_000, 4);
    expect(store.checkpointStats.foreground).toBeGreaterThan(0);
    // The cap is enforced when the worker is free, so the WAL can pass it by what is committed
    // during one worker checkpoint; without any checkpoint these 40,000 upserts make ~40 MiB.
    expect(walSize(path)).toBeLessThan(16 * 1024 * 1024);
    await store.close();
  });

  it('can be turned off: SQLite checkpoints on the committing connection, as by default', async () => {
    const path = join(dir.path, 'automatic.db');
    const store = new SqliteStore({ path, backgroundCheckpoints: false });
    expect(await store.writerPragma('wal_autocheckpoint', true)).toBe(1000);
    await writeRounds(store, 10_000, 2);
    expect(store.checkpointStats).toMatchObject({ background: 0, foreground: 0 });
    expect(walSize(path)).toBeLessThan(16 * 1024 * 1024);
    await store.close();
  });
});
