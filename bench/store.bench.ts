/**
 * npm run bench:store — sustained persisted transitions with N live trackers (default 100,000; ids are
 * tx hashes, so every commit touches pages all over the table), and rehydrating them at start.
 *
 * Each round of the loop moves 1,000 trackers picked at random (the same sequence for every kind):
 * a pending one is mined (TX_MINED), a confirming one loses its block (BLOCK_REORGED), so that every
 * event is a real transition and a changed row; then the round is made durable. Kinds, each in a
 * fresh process on a fresh file, N started and written before the clock starts:
 * - service: the service path (bench/service-path.ts): `deliver` to each tracker, then `flush()`;
 * - store only: plain actors of the machine make the snapshots, the service's store
 *   (`createStoreFromConfig`) writes them: `write` each, then `flush()`;
 * - floor: plain actors, `getPersistedSnapshot()` + `JSON.stringify`, one better-sqlite3 transaction
 *   of plain upserts on the calling thread (bench/plain-floor.ts).
 * The kinds take turns (BENCH_ROUNDS times, a different one first each round); the table shows each
 * kind's median. Rehydration: the service started on the service kind's last file against a plain
 * restore of the floor's (rows read, JSON.parse, `createActor(trackerMachine, { snapshot })`).
 *
 * BENCH_SIZES (default 100000), BENCH_SECONDS (per run, default 10), BENCH_ROUNDS (default 3).
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { type Snapshot, createActor } from 'xstate';
import {
  TRACKER_MACHINE_VERSION,
  type TrackerContext,
  type TrackerEvent,
  type TrackerStateName,
  trackerMachine,
} from '../machines/tracker.machine.js';
import { createStoreFromConfig } from '../src/service.js';
import { parseConfig } from '../src/config.js';
import { type PlainActor, type PlainRow, openPlainFloor, plainActor, plainRow, plainSend } from './plain-floor.js';
import { assertFloorSchema, startServicePath } from './service-path.js';

const ROUND = 1000;
const START_BATCH = 10_000;
const REQUIRED = 12;

const hashOf = (i: number): string => `0x${createHash('sha256').update(String(i)).digest('hex')}`;

/**
 * The same pseudo-random rounds for every kind: 1,000 distinct trackers each, and the event each
 * gets, from the state the bench keeps for it (pending or confirming, and the block it is in).
 */
function rounds(n: number) {
  let seed = 12345;
  const random = (): number => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32;
  const blockOf = new Int32Array(n);
  let round = 0;
  return (): Array<{ index: number; event: TrackerEvent }> => {
    round++;
    const block = 1000 + round;
    const picked = new Set<number>();
    while (picked.size < Math.min(ROUND, n)) picked.add(Math.floor(random() * n));
    return [...picked].map((index) => {
      const mined = blockOf[index]!;
      if (mined === 0) {
        blockOf[index] = block;
        return {
          index,
          event: { type: 'TX_MINED', blockNumber: block, blockHash: hashOf(-block), status: 'success', head: block },
        };
      }
      blockOf[index] = 0;
      return { index, event: { type: 'BLOCK_REORGED', blockHash: hashOf(-mined) } };
    });
  };
}

interface LoopResult {
  kind: Kind;
  n: number;
  transitionsPerSecond: number;
  rounds: number;
  roundP50: number;
  roundP99: number;
  delayP99: number;
  delayMax: number;
  setupMs: number;
  load: number[];
}

/** Run `round` for BENCH_SECONDS; its rate, round latencies and how long the event loop was held. */
async function loop(kind: Kind, n: number, setupMs: number, round: () => Promise<number>): Promise<LoopResult> {
  const seconds = Number(process.env.BENCH_SECONDS ?? 10);
  const delay = monitorEventLoopDelay({ resolution: 1 });
  const times: number[] = [];
  let transitions = 0;
  delay.enable();
  const t0 = performance.now();
  while (performance.now() - t0 < seconds * 1000) {
    const r0 = performance.now();
    transitions += await round();
    times.push(performance.now() - r0);
  }
  const ms = performance.now() - t0;
  delay.disable();
  times.sort((a, b) => a - b);
  const at = (p: number): number => times[Math.min(times.length - 1, Math.floor(p * times.length))]!;
  return {
    kind,
    n,
    transitionsPerSecond: transitions / (ms / 1000),
    rounds: times.length,
    roundP50: at(0.5),
    roundP99: at(0.99),
    delayP99: delay.percentile(99) / 1e6,
    delayMax: delay.max / 1e6,
    setupMs,
    load: loadavg(),
  };
}

/** The service path: N started through `startMany`, then each round delivered and flushed. */
async function service(n: number, file: string): Promise<LoopResult> {
  const s0 = performance.now();
  const svc = await startServicePath({ databasePath: file });
  const { system, store } = svc;
  for (let i = 0; i < n; i += START_BATCH) {
    const requests = [];
    for (let j = i; j < Math.min(n, i + START_BATCH); j++)
      requests.push({ txHash: hashOf(j), confirmations: REQUIRED });
    const results = await system.startMany(requests);
    if (results.some((r) => r.status !== 'started')) throw new Error('startMany did not start them all');
  }
  const setupMs = performance.now() - s0;
  const next = rounds(n);
  const result = await loop('service', n, setupMs, async () => {
    const events = next();
    for (const { index, event } of events)
      if (!system.deliver(hashOf(index), event)) throw new Error(`${index} is not live`);
    await store.flush();
    return events.length;
  });
  const live = system.stats().live;
  await svc.stop();
  if (live !== n) throw new Error(`expected ${n} live trackers, have ${live}`);
  return result;
}

/** Plain actors' persisted snapshots written through the service's store (`createStoreFromConfig`). */
async function storeOnly(n: number, file: string): Promise<LoopResult> {
  const s0 = performance.now();
  const { store } = await createStoreFromConfig(parseConfig({ DATABASE_URL: `sqlite:${file}` }));
  const write = (actor: PlainActor): void => {
    const snapshot = actor.getSnapshot();
    const { context, value } = snapshot;
    store.write({
      id: context.id,
      txHash: context.txHash,
      state: (typeof value === 'string' ? value : Object.keys(value)[0]) as TrackerStateName,
      version: TRACKER_MACHINE_VERSION,
      snapshot: actor.getPersistedSnapshot(),
      restarts: context.restarts,
      createdAt: context.createdAt,
      updatedAt: context.updatedAt,
    });
  };
  const actors: PlainActor[] = [];
  for (let i = 0; i < n; i += START_BATCH) {
    for (let j = i; j < Math.min(n, i + START_BATCH); j++)
      write((actors[j] = plainActor(hashOf(j), hashOf(j), REQUIRED)));
    await store.flush();
  }
  const setupMs = performance.now() - s0;
  const next = rounds(n);
  const result = await loop('store', n, setupMs, async () => {
    const events = next();
    for (const { index, event } of events) {
      const actor = actors[index]!;
      plainSend(actor, event);
      write(actor);
    }
    await store.flush();
    return events.length;
  });
  await store.close();
  return result;
}

/** The floor: plain actors, their rows as JSON, one plain transaction per round, on this thread. */
async function floor(n: number, file: string): Promise<LoopResult> {
  const s0 = performance.now();
  const db = openPlainFloor(file);
  const actors: PlainActor[] = [];
  for (let i = 0; i < n; i += START_BATCH) {
    const rows: PlainRow[] = [];
    for (let j = i; j < Math.min(n, i + START_BATCH); j++)
      rows.push(plainRow((actors[j] = plainActor(hashOf(j), hashOf(j), REQUIRED))));
    db.commit(rows);
  }
  const setupMs = performance.now() - s0;
  const next = rounds(n);
  const result = await loop('floor', n, setupMs, async () => {
    const events = next();
    const rows: PlainRow[] = [];
    for (const { index, event } of events) {
      const actor = actors[index]!;
      plainSend(actor, event);
      rows.push(plainRow(actor));
    }
    db.commit(rows);
    // The service's flush resolves in a later turn; so does each round here, so timers and the
    // loop-delay monitor get their turns alike.
    await new Promise((resolve) => setImmediate(resolve));
    return events.length;
  });
  db.close();
  return result;
}

interface RehydrateResult {
  ms: number;
  live: number;
  heapMB: number;
  rssMB: number;
}

/** The service started on a file of N live trackers: config, store, rehydration, HTTP server. */
async function rehydrateService(file: string): Promise<RehydrateResult> {
  const gc = (globalThis as { gc?: () => void }).gc;
  gc?.();
  const heap0 = process.memoryUsage().heapUsed;
  const rss0 = process.memoryUsage().rss;
  const t0 = performance.now();
  const svc = await startServicePath({ databasePath: file });
  const ms = performance.now() - t0;
  const live = svc.system.stats().live;
  gc?.();
  const heapMB = (process.memoryUsage().heapUsed - heap0) / 2 ** 20;
  const rssMB = (process.memoryUsage().rss - rss0) / 2 ** 20;
  await svc.stop();
  return { ms, live, heapMB, rssMB };
}

/** The floor: the live rows read with a plain statement, each snapshot parsed and an actor restored from it. */
async function rehydrateFloor(file: string): Promise<RehydrateResult> {
  const gc = (globalThis as { gc?: () => void }).gc;
  gc?.();
  const heap0 = process.memoryUsage().heapUsed;
  const rss0 = process.memoryUsage().rss;
  const t0 = performance.now();
  const db = new Database(file);
  db.pragma('cache_size = -65536');
  const rows = db
    .prepare("SELECT snapshot FROM trackers WHERE state IN ('pending', 'confirming')")
    .pluck()
    .iterate() as IterableIterator<string>;
  const actors: PlainActor[] = [];
  for (const text of rows) {
    const snapshot = JSON.parse(text) as Snapshot<unknown> & { context: TrackerContext };
    // The input is not read when a snapshot is given; the machine's types ask for it anyway.
    actors.push(createActor(trackerMachine, { snapshot, input: snapshot.context }).start());
  }
  db.close();
  const ms = performance.now() - t0;
  gc?.();
  const heapMB = (process.memoryUsage().heapUsed - heap0) / 2 ** 20;
  const rssMB = (process.memoryUsage().rss - rss0) / 2 ** 20;
  return { ms, live: actors.length, heapMB, rssMB };
}

const kinds = { service, store: storeOnly, floor };
type Kind = keyof typeof kinds;
const LABELS: Record<Kind, string> = {
  floor: 'floor: plain actors + JSON + better-sqlite3 upserts, one transaction per round',
  store: 'store only: plain actors, the service’s store (`createStoreFromConfig`)',
  service: 'ours: the service path (`deliver` + `flush`)',
};

const [mode, arg, file] = process.argv.slice(2);
if (mode && mode in kinds) {
  process.stdout.write(JSON.stringify(await kinds[mode as Kind](Number(arg), file!)));
  process.exit(0);
} else if (mode === 'rehydrate-service' || mode === 'rehydrate-floor') {
  process.stdout.write(JSON.stringify(await (mode === 'rehydrate-service' ? rehydrateService : rehydrateFloor)(file!)));
  process.exit(0);
} else {
  await assertFloorSchema();
  const self = fileURLToPath(import.meta.url);
  const dir = mkdtempSync(join(tmpdir(), 'bench-store-'));
  const child = <T>(...args: string[]): T => {
    process.stderr.write(`bench:store ${args.slice(0, 2).join(' ')} …\n`);
    return JSON.parse(
      execFileSync(process.execPath, ['--expose-gc', '--max-old-space-size=4096', '--import', 'tsx', self, ...args], {
        encoding: 'utf8',
        maxBuffer: 1 << 20,
        stdio: ['ignore', 'pipe', 'inherit'],
      }),
    ) as T;
  };
  const fmt = (v: number): string => Math.round(v).toLocaleString('en-US');
  const ms = (v: number): string => `${v.toFixed(1)} ms`;
  const median = (values: number[]): number => {
    const sorted = [...values].sort((a, b) => a - b);
    const mid = sorted.length >> 1;
    return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
  };
  const sizes = (process.env.BENCH_SIZES ?? '100000').split(',').map(Number);
  const roundsOfRuns = Math.max(1, Number(process.env.BENCH_ROUNDS ?? 3));
  const order: Kind[] = ['floor', 'store', 'service'];
  try {
    const t0 = performance.now();
    const tables: string[] = [];
    for (const n of sizes) {
      const runs: Record<Kind, LoopResult[]> = { floor: [], store: [], service: [] };
      const files: Record<Kind, string> = { floor: '', store: '', service: '' };
      for (let r = 0; r < roundsOfRuns; r++) {
        for (let k = 0; k < order.length; k++) {
          const kind = order[(k + r) % order.length]!;
          rmSync(files[kind], { force: true });
          files[kind] = join(dir, `${kind}-${n}-${r}.db`);
          runs[kind].push(child<LoopResult>(kind, String(n), files[kind]));
        }
      }
      const floorRate = median(runs.floor.map((x) => x.transitionsPerSecond));
      const lines = [
        `sustained persisted transitions, ${fmt(n)} live trackers (tx-hash ids), rounds of ${fmt(Math.min(ROUND, n))} random trackers each made durable; ` +
          `median of ${roundsOfRuns} runs of ${process.env.BENCH_SECONDS ?? 10} s per kind, taking turns`,
        '',
        '| kind | transitions/s, median (runs) | ÷ floor | round p50 / p99 | event loop delay p99 / max | target |',
        '|---|---:|---:|---:|---:|---|',
      ];
      for (const kind of ['service', 'store', 'floor'] as const) {
        const mine = runs[kind];
        const rate = median(mine.map((x) => x.transitionsPerSecond));
        const target = kind === 'service' ? `≥ 0.8× ${rate >= 0.8 * floorRate ? 'met' : 'not met'}` : '—';
        lines.push(
          `| ${LABELS[kind]} | ${fmt(rate)}/s (${mine.map((x) => fmt(x.transitionsPerSecond)).join(', ')}) | ` +
            `${kind === 'floor' ? '—' : `${(rate / floorRate).toFixed(2)}×`} | ${ms(median(mine.map((x) => x.roundP50)))} / ${ms(median(mine.map((x) => x.roundP99)))} | ` +
            `${ms(median(mine.map((x) => x.delayP99)))} / ${ms(median(mine.map((x) => x.delayMax)))} | ${target} |`,
        );
      }
      const h = child<RehydrateResult>('rehydrate-service', '', files.service);
      const f = child<RehydrateResult>('rehydrate-floor', '', files.floor);
      lines.push(
        '',
        `rehydrate ${fmt(h.live)} live trackers at start (fresh process, the service kind's file; the floor's: ${fmt(f.live)})`,
        '',
        '| kind | time | heap / RSS growth | ÷ floor |',
        '|---|---:|---:|---:|',
        `| ours: the service path started on the file (config, store, rehydration, HTTP server) | ${(h.ms / 1000).toFixed(2)} s | +${fmt(h.heapMB)} / +${fmt(h.rssMB)} MB | ${(h.ms / f.ms).toFixed(2)}× |`,
        `| floor: live rows read (plain statement), JSON.parse, \`createActor(trackerMachine, { snapshot })\` | ${(f.ms / 1000).toFixed(2)} s | +${fmt(f.heapMB)} / +${fmt(f.rssMB)} MB | — |`,
      );
      tables.push(lines.join('\n'));
    }
    console.log(
      `bench:store — SQLite WAL, synchronous=FULL, Node ${process.version}, ${((performance.now() - t0) / 1000).toFixed(0)} s, load average now ${loadavg()
        .map((x) => x.toFixed(2))
        .join(' ')}\n`,
    );
    console.log(tables.join('\n\n'));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
