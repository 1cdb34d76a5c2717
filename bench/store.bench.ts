/**
 * npm run bench:store — persisted transitions per second with 1,000 / 10,000 / 100,000 trackers,
 * and the time and memory to rehydrate 100,000 at start; WAL, synchronous=FULL (the durability
 * docs/durability.md promises).
 *
 * - store API: SqliteStore.write + flush of real persisted tracker snapshots, 4 transitions per
 *   tracker (start, TX_SEEN, TX_MINED, NEW_HEAD); once in bursts of 1,000 writes with one flush()
 *   each (a startMany of 1,000, a block for 1,000 trackers), once a whole round per turn of the event
 *   loop (a block for every tracker), which group commit cuts at maxBatch (10,000).
 * - floor: plain better-sqlite3 upserts of the same rows (their column values made beforehand), one
 *   prepared single-row upsert per row, same schema and pragmas, same run, in transactions of the
 *   same sizes.
 * - 250-byte rows: the reference measurement, repeated in the same run: plain upserts of
 *   ~250-byte rows (TEXT id + value, WITHOUT ROWID) for the same ids, in transactions of 1,000.
 * - runtime: the same transitions end to end: startMany (bursts of 1,000) + deliver + flush, through
 *   the XState actors and supervisors.
 * - event loop under sustained writes: 1,000 rows spread over a table of the largest size (ids are
 *   tx-hash-like, so every commit touches pages all over it) written and flushed in a loop for
 *   BENCH_LOOP_SECONDS (8), with the group commits on the writer thread (the default) and, beside
 *   it in the same run, on the event loop (`writerThread: false`): how long the loop is held.
 * Each size runs in a fresh process on fresh files, every path warmed up first on scratch files.
 * BENCH_SIZES=1000,10000 picks sizes; BENCH_RUNTIME=off leaves out the runtime column (minutes).
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import type Database from 'better-sqlite3';
import { createActor } from 'xstate';
import { TRACKER_MACHINE_VERSION, type TrackerEvent, trackerMachine } from '../machines/tracker.machine.js';
import { createTrackerSystem } from '../src/runtime/system.js';
import { topState } from '../src/runtime/tracker-view.js';
import { COLUMNS, COLUMN_COUNT, rowValues } from '../src/store/row.js';
import { openDatabase } from '../src/store/schema.js';
import { SqliteStore } from '../src/store/sqlite.js';
import type { TrackerRecord } from '../src/store/types.js';

const hashOf = (i: number): string => `0x${i.toString(16).padStart(64, '0')}`;
const BURST = 1000;
/** SqliteStore's default maxBatch. */
const MAX_BATCH = 10_000;
const idOf = (i: number): string => `txn_${String(i).padStart(8, '0')}`;

// A tracker's life as the chain drives it; every step is one persisted transition. Epoch-ms times,
// so rows have their real size.
const T0 = 1_764_000_000_000;
const STEPS: TrackerEvent[] = [
  { type: 'TX_SEEN', at: T0 + 1_000 },
  { type: 'TX_MINED', blockNumber: 100, blockHash: hashOf(100), status: 'success', head: 100, at: T0 + 13_000 },
  { type: 'NEW_HEAD', blockNumber: 101, at: T0 + 25_000 },
];

/** Real persisted snapshots for start + each step, to be stamped with each tracker's id. */
function snapshotTemplates(): Array<{ snapshot: ReturnType<typeof trackerMachine.getPersistedSnapshot>; value: unknown; updatedAt: number }> {
  const actor = createActor(trackerMachine, {
    input: { id: 'template', txHash: hashOf(0), chainId: 31337, requiredConfirmations: 12, createdAt: T0 },
  }).start();
  const template = () => {
    const snapshot = actor.getSnapshot();
    return { snapshot: trackerMachine.getPersistedSnapshot(snapshot), value: snapshot.value as unknown, updatedAt: snapshot.context.updatedAt };
  };
  const out = [template()];
  for (const event of STEPS) {
    actor.send(event);
    out.push(template());
  }
  return out;
}

function recordsFor(n: number): TrackerRecord[][] {
  return snapshotTemplates().map(({ snapshot, value, updatedAt }) => {
    const base = snapshot as unknown as { context: Record<string, unknown> };
    return Array.from({ length: n }, (_, i) => ({
      id: idOf(i),
      txHash: hashOf(i),
      state: topState(value),
      version: TRACKER_MACHINE_VERSION,
      snapshot: { ...snapshot, context: { ...base.context, id: idOf(i), txHash: hashOf(i) } },
      restarts: 0,
      createdAt: T0,
      updatedAt,
    }));
  });
}

interface StoreResult {
  ms: number;
  floorMs: number;
  rows250Ms: number;
  commits: number;
  roundMs: number;
  roundFloorMs: number;
  roundCommits: number;
}

/** Write every round through the store in bursts of `burst` writes, one flush() per burst. */
async function throughStore(rounds: TrackerRecord[][], path: string, burst: number): Promise<{ ms: number; commits: number }> {
  const store = new SqliteStore({ path });
  // Opened before the clock starts, as the floor's connection is: the writer thread's start (its
  // driver loaded, its connection opened, ~60 ms once per store) is not a cost per write.
  await store.writerPragma('user_version', true);
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

/** The floor: the same rows, column values made beforehand, straight into the store's schema. */
function floor(rounds: TrackerRecord[][], path: string, txnSize: number): number {
  const db = openDatabase(path);
  const upsert = db.prepare(`INSERT INTO trackers (${COLUMNS}) VALUES (${Array(COLUMN_COUNT).fill('?').join(', ')})
    ON CONFLICT (id) DO UPDATE SET state = excluded.state, snapshot = excluded.snapshot, updated_at = excluded.updated_at`);
  return timedUpserts(db, upsert, rounds.map((round) => round.map(rowValues)), txnSize);
}

/** The reference: plain upserts of ~250-byte rows for the same ids, same pragmas. */
function rows250(rounds: TrackerRecord[][], path: string, txnSize: number): number {
  const db = openDatabase(path);
  db.exec('CREATE TABLE kv (id TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID');
  const upsert = db.prepare('INSERT INTO kv VALUES (?, ?) ON CONFLICT (id) DO UPDATE SET value = excluded.value');
  const rows = rounds.map((round, r) => round.map((t) => [t.id, `${r}:${t.txHash}`.padEnd(238, '.')] as const));
  return timedUpserts(db, upsert, rows, txnSize);
}

function timedUpserts(db: Database.Database, upsert: Database.Statement, rounds: ReadonlyArray<ReadonlyArray<readonly unknown[]>>, txnSize: number): number {
  const batch = db.transaction((round: ReadonlyArray<readonly unknown[]>, from: number, to: number) => {
    for (let i = from; i < to; i++) upsert.run(...round[i]!);
  });
  const t0 = performance.now();
  for (const round of rounds) for (let i = 0; i < round.length; i += txnSize) batch(round, i, Math.min(round.length, i + txnSize));
  const ms = performance.now() - t0;
  db.close();
  return ms;
}

async function storeApi(n: number, path: string): Promise<StoreResult> {
  // Warm up every path (JIT, statements) on scratch files first, so that the smallest size does not
  // time the compiler.
  const warm = recordsFor(Math.min(n, 2000));
  await throughStore(warm, `${path}.warm`, BURST);
  floor(warm, `${path}.warmfloor`, BURST);
  rows250(warm, `${path}.warm250`, BURST);
  const rounds = recordsFor(n);
  // Bursts of 1,000 (a startMany, a block for 1,000 trackers); then a whole round in one turn of the
  // event loop (a block for every tracker), which group commit cuts at maxBatch (10,000).
  const bursts = await throughStore(rounds, path, BURST);
  const whole = await throughStore(rounds, `${path}.round`, n);
  return {
    ms: bursts.ms,
    commits: bursts.commits,
    floorMs: floor(rounds, `${path}.floor`, BURST),
    rows250Ms: rows250(rounds, `${path}.rows250`, BURST),
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

interface LoopResult {
  rowsPerSecond: number;
  flushP50: number;
  flushP99: number;
  delayP50: number;
  delayP99: number;
  delayMax: number;
}

/** Sustained commits of 1,000 rows spread over n tx-hash-keyed rows: the rate, and how long the event loop was held. */
async function loopUnderWrites(n: number, path: string, writerThread: boolean): Promise<LoopResult> {
  const store = new SqliteStore({ path, writerThread });
  const ids = Array.from({ length: n }, (_, i) => `0x${createHash('sha256').update(String(i)).digest('hex')}`);
  const padding = 'x'.repeat(200);
  const write = (i: number, round: number): void =>
    store.write({
      id: ids[i]!,
      txHash: ids[i]!,
      state: round % 2 === 0 ? 'pending' : 'confirming',
      version: TRACKER_MACHINE_VERSION,
      snapshot: { status: 'active', value: 'pending', context: { round, padding } },
      restarts: 0,
      createdAt: T0,
      updatedAt: T0 + round,
    });
  for (let i = 0; i < n; i++) {
    write(i, 0);
    if (i % MAX_BATCH === MAX_BATCH - 1) await store.flush();
  }
  await store.flush();
  let seed = 12345;
  const random = (): number => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32);
  const seconds = Number(process.env.BENCH_LOOP_SECONDS ?? 8);
  const delay = monitorEventLoopDelay({ resolution: 1 });
  const flushes: number[] = [];
  delay.enable();
  const t0 = performance.now();
  let rows = 0;
  for (let round = 1; performance.now() - t0 < seconds * 1000; round++) {
    for (let k = 0; k < BURST; k++) write(Math.floor(random() * n), round);
    const f0 = performance.now();
    await store.flush();
    flushes.push(performance.now() - f0);
    rows += BURST;
  }
  const ms = performance.now() - t0;
  delay.disable();
  await store.close();
  flushes.sort((a, b) => a - b);
  const at = (p: number): number => flushes[Math.min(flushes.length - 1, Math.floor(p * flushes.length))]!;
  return {
    rowsPerSecond: rows / (ms / 1000),
    flushP50: at(0.5),
    flushP99: at(0.99),
    delayP50: delay.percentile(50) / 1e6,
    delayP99: delay.percentile(99) / 1e6,
    delayMax: delay.max / 1e6,
  };
}

const [mode, arg, file] = process.argv.slice(2);
if (mode === 'store') process.stdout.write(JSON.stringify(await storeApi(Number(arg), file!)));
else if (mode === 'runtime') process.stdout.write(JSON.stringify(await runtime(Number(arg), file!)));
else if (mode === 'rehydrate') process.stdout.write(JSON.stringify(await rehydrate(file!)));
else if (mode === 'loop-writer' || mode === 'loop-inline') {
  process.stdout.write(JSON.stringify(await loopUnderWrites(Number(arg), file!, mode === 'loop-writer')));
}
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
  // BENCH_RUNTIME=off: the store columns only, for repeated runs (the runtime column takes minutes).
  const withRuntime = process.env.BENCH_RUNTIME !== 'off';
  try {
    console.log(`bench:store — persisted transitions/s; SQLite WAL, synchronous=FULL; ${STEPS.length + 1} transitions per tracker`);
    console.log(
      '| trackers | store API, bursts of 1,000 | floor, txns of 1,000 | store / floor | 250-byte rows, txns of 1,000 | ' +
        'store API, one turn per round | floor, txns of ≤10,000 | store / floor | runtime end to end |',
    );
    console.log('|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
    for (const n of sizes) {
      const writes = n * (STEPS.length + 1);
      const s = child<StoreResult>('store', String(n), join(dir, `store-${n}.db`));
      const r = withRuntime ? child<{ ms: number }>('runtime', String(n), join(dir, `runtime-${n}.db`)) : undefined;
      console.log(
        `| ${fmt(n)} | ${rate(writes, s.ms)} (${fmt(s.commits)} commits) | ${rate(writes, s.floorMs)} | ${(s.floorMs / s.ms).toFixed(2)} | ` +
          `${rate(writes, s.rows250Ms)} | ${rate(writes, s.roundMs)} (${fmt(s.roundCommits)} commits) | ${rate(writes, s.roundFloorMs)} | ` +
          `${(s.roundFloorMs / s.roundMs).toFixed(2)} | ${r ? rate(writes, r.ms) : 'not run'} |`,
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
    console.log('');
    console.log(`event loop under sustained writes: commits of ${fmt(BURST)} rows spread over ${fmt(largest)} tx-hash-keyed rows`);
    console.log('| group commits | rows/s | flush p50 / p99 | event loop delay p50 / p99 / max |');
    console.log('|---|---:|---:|---:|');
    const ms = (v: number): string => `${v.toFixed(1)} ms`;
    for (const [label, kind] of [['on the writer thread (default)', 'loop-writer'], ['on the event loop (writerThread: false)', 'loop-inline']] as const) {
      const l = child<LoopResult>(kind, String(largest), join(dir, `${kind}.db`));
      console.log(`| ${label} | ${fmt(l.rowsPerSecond)}/s | ${ms(l.flushP50)} / ${ms(l.flushP99)} | ${ms(l.delayP50)} / ${ms(l.delayP99)} / ${ms(l.delayMax)} |`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
