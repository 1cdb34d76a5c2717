/**
 * The change log's cost on disk: trackers with tx-hash ids go through a real path (START, TX_SEEN,
 * TX_MINED, NEW_HEAD to confirmed) on a SQLite file; SQLite's own page accounting (dbstat) then
 * gives the bytes of `tracker_history` and its index per row, beside the trackers table's per tracker.
 *
 * Run: npx tsx bench/history-disk.ts [trackers]
 */
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { createTrackerSystem } from '../src/runtime/system.js';
import { SqliteStore } from '../src/store/sqlite.js';

const trackers = Number(process.argv[2] ?? 20_000);
const dir = mkdtempSync(join(tmpdir(), 'history-disk-'));
const path = join(dir, 'trackers.db');
const hash = (i: number): string => `0x${createHash('sha256').update(String(i)).digest('hex')}`;

const store = new SqliteStore({ path });
const system = await createTrackerSystem({ store });
const requests = Array.from({ length: trackers }, (_, i) => ({ txHash: hash(i), confirmations: 2 }));
for (let i = 0; i < trackers; i += 1000) await system.startMany(requests.slice(i, i + 1000));
for (const { txHash } of requests) system.deliver(txHash, { type: 'TX_SEEN' });
await store.flush();
const block = { blockNumber: 100, blockHash: hash(-1), status: 'success' as const, head: 100 };
for (const { txHash } of requests) system.deliver(txHash, { type: 'TX_MINED', ...block });
await store.flush();
system.newHead(101);
while ((await system.list({ state: 'confirming', limit: 1 })).items.length > 0) {
  await new Promise((resolve) => setTimeout(resolve, 50));
}
await system.shutdown();
await store.close();

const db = new Database(path, { readonly: true });
const rows = (db.prepare('SELECT count(*) AS n FROM tracker_history').get() as { n: number }).n;
const sizes = new Map(
  (
    db
      .prepare(
        `SELECT name, sum(pgsize) AS bytes FROM dbstat
         WHERE name IN ('tracker_history', 'tracker_history_tracker', 'trackers', 'trackers_state_id') GROUP BY name`,
      )
      .all() as Array<{ name: string; bytes: number }>
  ).map((r) => [r.name, r.bytes]),
);
db.close();
rmSync(dir, { recursive: true, force: true });
const per = (bytes: number | undefined, n: number): string => ((bytes ?? 0) / n).toFixed(0);
console.table([
  { what: 'tracker_history (table)', bytes: per(sizes.get('tracker_history'), rows), each: 'history row' },
  {
    what: 'tracker_history_tracker (index)',
    bytes: per(sizes.get('tracker_history_tracker'), rows),
    each: 'history row',
  },
  {
    what: 'history, all',
    'bytes per history row': per(
      (sizes.get('tracker_history') ?? 0) + (sizes.get('tracker_history_tracker') ?? 0),
      rows,
    ),
  },
  {
    what: 'trackers + index, per tracker',
    bytes: per((sizes.get('trackers') ?? 0) + (sizes.get('trackers_state_id') ?? 0), trackers),
    each: 'tracker',
  },
]);
console.log(`${trackers} trackers, ${rows} history rows (${(rows / trackers).toFixed(1)} per tracker)`);
