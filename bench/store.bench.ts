/**
 * npm run bench:store — persisted transitions per second with 1,000 / 10,000 / 100,000 trackers,
 * and the time and memory to rehydrate 100,000 at start; WAL, synchronous=FULL (the durability
 * docs/durability.md promises).
 *
 * - store API: SqliteStore.write + flush of real persisted tracker snapshots, 4 transitions per
 *   tracker (start, TX_SEEN, TX_MINED, NEW_HEAD); once in bursts of 1,000 writes with one flush()
 *   each (a startMany of 1,000, a block for 1,000 trackers), once a whole round per turn of the event
 *   loop (a block for every tracker), which group commit cuts at maxBatch (10,000).
 * - floor: plain better-sqlite3 upserts of the same rows (JSON made beforehand), same schema, same
 *   run, in transactions of the same sizes.
 * - runtime: the same transitions end to end: startMany (bursts of 1,000) + deliver + flush, through
 *   the XState actors and supervisors.
 * Each measurement runs in a fresh process on a fresh file.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { createActor } from 'xstate';
import { TRACKER_MACHINE_VERSION, type TrackerEvent, trackerMachine } from '../machines/tracker.machine.js';
import { createTrackerSystem } from '../src/runtime/system.js';
import { topState } from '../src/runtime/tracker-view.js';
import { SqliteStore } from '../src/store/sqlite.js';
import type { TrackerRecord } from '../src/store/types.js';

const hashOf = (i: number): string => `0x${i.toString(16).padStart(64, '0')}`;
const BURST = 1000;
/** SqliteStore's default maxBatch. */
const MAX_BATCH = 10_000;
const idOf = (i: number): string => `txn_${String(i).padStart(8, '0')}`;

// A tracker's life as the chain drives it; every step is one persisted transition.
const STEPS: TrackerEvent[] = [
  { type: 'TX_SEEN', at: 2 },
  { type: 'TX_MINED', blockNumber: 100, blockHash: hashOf(100), status: 'success', head: 100, at: 3 },
  { type: 'NEW_HEAD', blockNumber: 101, at: 4 },
];

/** Real persisted snapshots for start + each step, to be stamped with each tracker's id. */
function snapshotTemplates(): Array<{ snapshot: ReturnType<typeof trackerMachine.getPersistedSnapshot>; value: unknown }> {
  const actor = createActor(trackerMachine, {
    input: { id: 'template', txHash: hashOf(0), requiredConfirmations: 12, createdAt: 1 },
  }).start();
  const out = [{ snapshot: trackerMachine.getPersistedSnapshot(actor.getSnapshot()), value: actor.getSnapshot().value as unknown }];
  for (const event of STEPS) {
    actor.send(event);
    out.push({ snapshot: trackerMachine.getPersistedSnapshot(actor.getSnapshot()), value: actor.getSnapshot().value });
  }
  return out;
}

function recordsFor(n: number): TrackerRecord[][] {
  return snapshotTemplates().map(({ snapshot, value }) => {
    const base = snapshot as unknown as { context: Record<string, unknown> };
    return Array.from({ length: n }, (_, i) => ({
      id: idOf(i),
      txHash: hashOf(i),
      state: topState(value),
      version: TRACKER_MACHINE_VERSION,
      snapshot: { ...snapshot, context: { ...base.context, id: idOf(i), txHash: hashOf(i) } },
      restarts: 0,
      createdAt: 1,
      updatedAt: 1,
    }));
  });
}

interface StoreResult {
  ms: number;
  floorMs: number;
  commits: number;
  roundMs: number;
  roundFloorMs: number;
  roundCommits: number;
}

/** Write every round through the store in bursts of `burst` writes, one flush() per burst. */
async function throughStore(rounds: TrackerRecord[][], path: string, burst: number): Promise<{ ms: number; commits: number }> {
  const store = new SqliteStore({ path });
  const t0 = performance.now();
  for (const round of rounds) {
    for (let i = 0; i < round.length; i += burst) {
      for (let j = i; j < Math.min(round.length, i + burst); j++) store.write(round[j]!);
      await store.flush();
    }
  }
  const ms = performance.now() - t0;
  const commits = store.commitCount;
  await store.close();
  return { ms, commits };
}

/** The floor: the same rows, JSON made beforehand, straight into SQLite with the store's schema. */
function floor(rounds: TrackerRecord[][], path: string, txnSize: number): number {
  const db = new Database(path);
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = FULL');
  db.exec(`CREATE TABLE trackers (id TEXT PRIMARY KEY, tx_hash TEXT NOT NULL, state TEXT NOT NULL,
    version INTEGER NOT NULL, snapshot TEXT NOT NULL, restarts INTEGER NOT NULL, created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL, quarantined TEXT) WITHOUT ROWID;
    CREATE INDEX trackers_state_id ON trackers (state, id);`);
  const upsert = db.prepare(`INSERT INTO trackers VALUES (?, ?, ?, ?, ?, ?, ?, ?, NULL)
    ON CONFLICT (id) DO UPDATE SET state = excluded.state, snapshot = excluded.snapshot, updated_at = excluded.updated_at`);
  const rows = rounds.map((round) =>
    round.map((r) => [r.id, r.txHash, r.state, r.version, JSON.stringify(r.snapshot), r.restarts, r.createdAt, r.updatedAt] as const),
  );
  const batch = db.transaction((slice: ReadonlyArray<readonly unknown[]>) => {
    for (const row of slice) upsert.run(...row);
  });
  const t0 = performance.now();
  for (const round of rows) for (let i = 0; i < round.length; i += txnSize) batch(round.slice(i, i + txnSize));
  const ms = performance.now() - t0;
  db.close();
  return ms;
}

async function storeApi(n: number, path: string): Promise<StoreResult> {
  const rounds = recordsFor(n);
  // Bursts of 1,000 (a startMany, a block for 1,000 trackers); then a whole round in one turn of the
  // event loop (a block for every tracker), which group commit cuts at maxBatch (10,000).
  const bursts = await throughStore(rounds, path, BURST);
  const whole = await throughStore(rounds, `${path}.round`, n);
  return {
    ms: bursts.ms,
    commits: bursts.commits,
    floorMs: floor(rounds, `${path}.floor`, BURST),
    roundMs: whole.ms,
    roundCommits: whole.commits,
    roundFloorMs: floor(rounds, `${path}.roundfloor`, Math.min(n, MAX_BATCH)),
  };
}

async function runtime(n: number, path: string): Promise<{ ms: number }> {
  const store = new SqliteStore({ path });
  const system = await createTrackerSystem({ store, rehydrate: false });
  const t0 = performance.now();
  for (let i = 0; i < n; i += BURST) {
    const requests = [];
    for (let j = i; j < Math.min(n, i + BURST); j++) requests.push({ id: idOf(j), txHash: hashOf(j), confirmations: 12 });
    await system.startMany(requests);
  }
  for (const event of STEPS) {
    for (let i = 0; i < n; i += BURST) {
      for (let j = i; j < Math.min(n, i + BURST); j++) system.deliver(idOf(j), event);
      await store.flush();
    }
  }
  const ms = performance.now() - t0;
  const live = system.stats().live;
  if (live !== n) throw new Error(`expected ${n} live trackers, have ${live}`);
  await system.shutdown();
  await store.close();
  return { ms };
}

async function rehydrate(path: string): Promise<{ loadMs: number; rows: number; systemMs: number; live: number; heapMB: number; rssMB: number }> {
  const gc = (globalThis as { gc?: () => void }).gc;
  gc?.();
  const heap0 = process.memoryUsage().heapUsed;
  const rss0 = process.memoryUsage().rss;
  const probe = new SqliteStore({ path });
  const t0 = performance.now();
  let rows = 0;
  for await (const batch of probe.loadLive(1000)) rows += batch.length;
  const loadMs = performance.now() - t0;
  await probe.close();

  const store = new SqliteStore({ path });
  const t1 = performance.now();
  const system = await createTrackerSystem({ store });
  const systemMs = performance.now() - t1;
  const live = system.stats().live;
  gc?.();
  const heapMB = (process.memoryUsage().heapUsed - heap0) / 2 ** 20;
  const rssMB = (process.memoryUsage().rss - rss0) / 2 ** 20;
  await system.shutdown();
  await store.close();
  return { loadMs, rows, systemMs, live, heapMB, rssMB };
}

const [mode, arg, file] = process.argv.slice(2);
if (mode === 'store') process.stdout.write(JSON.stringify(await storeApi(Number(arg), file!)));
else if (mode === 'runtime') process.stdout.write(JSON.stringify(await runtime(Number(arg), file!)));
else if (mode === 'rehydrate') process.stdout.write(JSON.stringify(await rehydrate(file!)));
else {
  const self = fileURLToPath(import.meta.url);
  const dir = mkdtempSync(join(tmpdir(), 'bench-store-'));
  const child = <T>(...args: string[]): T =>
    JSON.parse(
      execFileSync(process.execPath, ['--expose-gc', '--import', 'tsx', self, ...args], { encoding: 'utf8', maxBuffer: 1 << 20 }),
    ) as T;
  const fmt = (n: number): string => Math.round(n).toLocaleString('en-US');
  const rate = (writes: number, ms: number): string => `${fmt(writes / (ms / 1000))}/s`;
  const sizes = (process.env.BENCH_SIZES ?? '1000,10000,100000').split(',').map(Number);
  try {
    console.log(`bench:store — persisted transitions/s; SQLite WAL, synchronous=FULL; ${STEPS.length + 1} transitions per tracker`);
    console.log(
      '| trackers | store API, bursts of 1,000 | floor, txns of 1,000 | store / floor | store API, one turn per round | floor, txns of ≤10,000 | store / floor | runtime end to end |',
    );
    console.log('|---:|---:|---:|---:|---:|---:|---:|---:|');
    for (const n of sizes) {
      const writes = n * (STEPS.length + 1);
      const s = child<StoreResult>('store', String(n), join(dir, `store-${n}.db`));
      const r = child<{ ms: number }>('runtime', String(n), join(dir, `runtime-${n}.db`));
      console.log(
        `| ${fmt(n)} | ${rate(writes, s.ms)} (${fmt(s.commits)} commits) | ${rate(writes, s.floorMs)} | ${(s.floorMs / s.ms).toFixed(2)} | ` +
          `${rate(writes, s.roundMs)} (${fmt(s.roundCommits)} commits) | ${rate(writes, s.roundFloorMs)} | ${(s.roundFloorMs / s.roundMs).toFixed(2)} | ${rate(writes, r.ms)} |`,
      );
    }
    const largest = Math.max(...sizes);
    const h = child<{ loadMs: number; rows: number; systemMs: number; live: number; heapMB: number; rssMB: number }>(
      'rehydrate',
      '',
      join(dir, `store-${largest}.db`),
    );
    console.log('');
    console.log(`rehydrate ${fmt(h.rows)} live trackers at start (fresh process)`);
    console.log('| step | time | memory |');
    console.log('|---|---:|---:|');
    console.log(`| store: loadLive(1000), rows read and parsed | ${(h.loadMs / 1000).toFixed(2)} s | |`);
    console.log(`| runtime: createTrackerSystem (loadLive + validate + spawn ${fmt(h.live)} actors) | ${(h.systemMs / 1000).toFixed(2)} s | heap +${h.heapMB.toFixed(0)} MB, rss +${h.rssMB.toFixed(0)} MB |`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
