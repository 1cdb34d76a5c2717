/**
 * The measurements of `npm run bench:scale`, one kind per fresh process (see ../scale.bench.ts):
 * `node --expose-gc --import tsx bench/scale/measure.ts <service|library|floor|http> <N>` prints one
 * JSON line. `service` is the service path (../service-path.ts), `library` the tracker system on a
 * bare SqliteStore (start and 1% block only), `floor` the plain-library floor (../plain-floor.ts).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TrackerEvent } from '../../machines/tracker.machine.js';
import { type TrackerSystem, createTrackerSystem } from '../../src/runtime/system.js';
import { SqliteStore } from '../../src/store/sqlite.js';
import type { SnapshotStore } from '../../src/store/types.js';
import { type PlainActor, type PlainRow, openPlainFloor, plainActor, plainRow, plainSend } from '../plain-floor.js';
import { startServicePath } from '../service-path.js';

/** Trackers per `startMany` call when N are started (the warm-up and the HTTP seeding use 1,000). */
const START_BATCH = Number(process.env.BENCH_START_BATCH ?? 10_000);
const BATCH = 1000;
const MINED_AT = 100;
const REQUIRED = 12;
/** The block that mines the 1% left pending (every hundredth tracker). */
const TOUCHING_BLOCK = 102;
/** The block the 1% confirmed by a later head (index ≡ 1 mod 100) were mined in: due at 103. */
const CONFIRMED_EARLY_AT = 92;
/**
 * The 1% block is measured this many times (the 1% sent back to pending by a reorg in between, made
 * durable before the next): the median and the range are reported, one block being ~0.1 s.
 */
const BLOCK_REPEATS = Math.max(1, Number(process.env.BENCH_BLOCK_REPEATS ?? 5));
const reorged = {
  type: 'BLOCK_REORGED',
  blockHash: `0x${TOUCHING_BLOCK.toString(16).padStart(64, '0')}`,
} as const satisfies TrackerEvent;
const median = (values: number[]): number => [...values].sort((a, b) => a - b)[(values.length - 1) >> 1]!;
/** A head past every tracker's threshold. */
const FINAL_HEAD = TOUCHING_BLOCK + REQUIRED;
const CRASHES = Number(process.env.BENCH_CRASHES ?? 1000);
const HTTP_CAP = Number(process.env.BENCH_HTTP_CAP ?? 10_000);
const HTTP_CONCURRENCY = 64;
/** Started and finished before measuring, so that (nearly) all 1,024 shards exist and the code is warm. */
const WARM_UP = 5000;

// Ids and hashes are made from the index when needed, so that the bench holds no per-tracker data.
/**
 * `BENCH_IDS=hashes`: trackers keyed by their tx hash (the API's default id), hashes that look
 * random, as real ones are, so that the store's writes land all over its b-trees. The default keys
 * them `txn_<i>` with hashes that count up: neighbours in a batch share pages.
 */
const RANDOM_IDS = process.env.BENCH_IDS === 'hashes';
/** murmur3's 32-bit finalizer: a cheap, fixed scramble of i (the bench keeps no per-tracker data). */
const mix = (x: number): number => {
  x = Math.imul(x ^ (x >>> 16), 0x85ebca6b);
  x = Math.imul(x ^ (x >>> 13), 0xc2b2ae35);
  return (x ^ (x >>> 16)) >>> 0;
};
const scrambledHash = (i: number): string => {
  let hex = '0x';
  for (let k = 0; k < 8; k++)
    hex += mix(i * 8 + k + 1)
      .toString(16)
      .padStart(8, '0');
  return hex;
};
const hashOf = (i: number): string => (RANDOM_IDS ? scrambledHash(i) : `0x${i.toString(16).padStart(64, '0')}`);
const idOf = (i: number): string => (RANDOM_IDS ? hashOf(i) : `txn_${i}`);
const nextTurn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

interface Memory {
  heap: number;
  rss: number;
}

/** Heap and RSS after full collections (finalizers and weak refs get a turn between them). */
async function settledMemory(): Promise<Memory> {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (!gc) throw new Error('run with --expose-gc');
  for (let i = 0; i < 4; i++) {
    gc();
    await nextTurn();
  }
  const { heapUsed, rss } = process.memoryUsage();
  return { heap: heapUsed, rss };
}

const tempDir = (): string => mkdtempSync(join(tmpdir(), 'bench-scale-'));
const mined = (block: number, head = block) =>
  ({
    type: 'TX_MINED',
    blockNumber: block,
    blockHash: hashOf(block),
    status: 'success',
    head,
  }) as const satisfies TrackerEvent;

async function startRange(
  system: TrackerSystem,
  from: number,
  to: number,
  prefix = 'txn_',
  batch = BATCH,
): Promise<void> {
  for (let i = from; i < to; i += batch) {
    const requests = [];
    for (let j = i; j < Math.min(to, i + batch); j++)
      requests.push(
        prefix === 'txn_' ? { id: idOf(j), txHash: hashOf(j) } : { id: `${prefix}${j}`, txHash: hashOf(2 ** 40 + j) },
      );
    const results = await system.startMany(requests);
    const bad = results.find((r) => r.status !== 'started');
    if (bad) throw new Error(`startMany: ${bad.status}`);
  }
}

/** Polls `condition` every turn of the event loop; it must be cheap (not `stats()`, which walks every shard). */
async function until(condition: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!condition()) {
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await nextTurn();
  }
}

/** Once every tracker is gone, the shards' registries and children must drain too. */
async function drained(system: TrackerSystem): Promise<void> {
  for (let i = 0; i < 1000; i++) {
    const s = system.stats();
    if (s.live === 0 && s.shardChildren === 0) return;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  throw new Error(`not drained: ${JSON.stringify(system.stats())}`);
}

const percentile = (sorted: number[], p: number): number =>
  sorted[Math.min(sorted.length - 1, Math.ceil(p * sorted.length) - 1)]!;

/** Crash `id` and poll (every turn) until `lookup` finds its new actor; the latency in µs. */
async function crashAndFind(system: TrackerSystem, store: SnapshotStore, id: string): Promise<number> {
  const old = system.lookup(id);
  const c0 = performance.now();
  const sent = system.send(id, { type: 'CRASH' });
  while (true) {
    const ref = system.lookup(id);
    if (ref !== undefined && ref !== old) break;
    await nextTurn();
    if (performance.now() - c0 > 10_000) throw new Error(`${id} not restarted within 10 s`);
  }
  const latency = (performance.now() - c0) * 1000;
  await sent;
  // The restarted tracker's snapshot commit lands outside the next measurement.
  await store.flush();
  return latency;
}

/**
 * N trackers on the service path (`service`: everything but `library`'s early return) or the
 * tracker system on a bare SqliteStore (`library`): start, memory, new heads, the 1% block; then,
 * on the service path only, crashes, final states and the leak check.
 */
async function measureSystem(n: number, path: 'service' | 'library') {
  const dir = tempDir();
  const before = await settledMemory();
  // Counting trackerGone (a hook the chain watcher uses) is O(1) per turn, unlike stats().
  let gone = 0;
  let store: SnapshotStore;
  let system: TrackerSystem;
  let stop: () => Promise<void>;
  if (path === 'service') {
    const service = await startServicePath({
      databasePath: join(dir, 'trackers.db'),
      env: { FAULT_INJECTION: '1' },
      onGone: () => void gone++,
    });
    ({ store, system } = service);
    stop = () => service.stop();
  } else {
    const sqlite = new SqliteStore({ path: join(dir, 'trackers.db') });
    store = sqlite;
    system = await createTrackerSystem({ store, faultInjection: true, hooks: { trackerGone: () => void gone++ } });
    stop = async () => {
      await system.shutdown();
      await sqlite.close();
    };
  }
  // Warm-up: trackers started, crashed (the restart path's code is compiled too) and finished at
  // once; what they leave behind is the system's fixed cost.
  await startRange(system, 0, WARM_UP, 'warm_');
  for (let k = 0; k < Math.min(CRASHES, 200); k++) await crashAndFind(system, store, `warm_${k}`);
  for (let i = 0; i < WARM_UP; i++) system.deliver(`warm_${i}`, mined(MINED_AT, MINED_AT + REQUIRED));
  await until(() => gone === WARM_UP, 60_000, 'the warm-up trackers to finish');
  await drained(system);
  await store.flush();
  const warm = await settledMemory();

  const t0 = performance.now();
  await startRange(system, 0, n, 'txn_', START_BATCH);
  const startMs = performance.now() - t0;
  if (system.stats().live !== n) throw new Error(`expected ${n} live, have ${system.stats().live}`);
  const live = await settledMemory();

  // Seen at head 100: 98% mined in block 100 (confirming, due at head 111); every hundredth still
  // pending (block 102 will mine them); those with index ≡ 1 mod 100 mined in block 92 (due at 103).
  const touched = Math.max(1, Math.floor(n / 100));
  for (let i = 0; i < n; i++) {
    if (onePct(i, 0, n)) continue;
    system.deliver(idOf(i), mined(onePct(i, 1, n) ? CONFIRMED_EARLY_AT : MINED_AT, MINED_AT));
  }
  await store.flush();

  // One new head, as the chain watcher hands it over: every tracker's confirmation count moves
  // (derived from the head), none is due.
  const h0 = performance.now();
  const wokenByHead = system.newHead(MINED_AT + 1);
  const headDeliverMs = performance.now() - h0;
  await store.flush();
  const headDurableMs = performance.now() - h0;
  // The old way, for comparison: an event to each tracker (recordHead; nothing else changes).
  const e0 = performance.now();
  for (let i = 0; i < n; i++) system.deliver(idOf(i), { type: 'NEW_HEAD', blockNumber: MINED_AT + 1 });
  await store.flush();
  const headEachMs = performance.now() - e0;

  // A block that mines the 1% still pending, as the watcher delivers it: TX_MINED to each, then
  // the head. Until durable. Repeated after a reorg that sends them back to pending.
  const delivered: number[] = [];
  const durable: number[] = [];
  let wokenByBlock = 0;
  for (let k = 0; k < BLOCK_REPEATS; k++) {
    if (k > 0) {
      for (let i = 0; i < n; i += 100) system.deliver(idOf(i), reorged);
      await store.flush();
    }
    const p0 = performance.now();
    for (let i = 0; i < n; i += 100) system.deliver(idOf(i), mined(TOUCHING_BLOCK));
    wokenByBlock += system.newHead(TOUCHING_BLOCK);
    delivered.push(performance.now() - p0);
    await store.flush();
    durable.push(performance.now() - p0);
  }
  const onePctDeliverMs = median(delivered);
  const onePctDurableMs = median(durable);
  const onePctDurableRange = [Math.min(...durable), Math.max(...durable)];
  const common = {
    n,
    startMs,
    startBatch: Math.min(n, START_BATCH),
    touched,
    onePctDeliverMs,
    onePctDurableMs,
    onePctDurableRange,
  };
  if (path === 'library') {
    await stop();
    rmSync(dir, { recursive: true, force: true });
    return { ...common, load: loadavg() };
  }

  // A head that brings another 1% to their required confirmations: confirmed, deregistered, durable.
  const goneBefore = gone;
  const q0 = performance.now();
  const wokenByOnePct = system.newHead(CONFIRMED_EARLY_AT + REQUIRED - 1);
  await until(() => gone === goneBefore + touched, 60_000, 'the confirmed 1% to finish');
  await store.flush();
  const onePctConfirmMs = performance.now() - q0;
  if (wokenByHead !== 0 || wokenByBlock !== 0 || wokenByOnePct !== touched) {
    throw new Error(`woken ${wokenByHead} / ${wokenByBlock} / ${wokenByOnePct}, expected 0 / 0 / ${touched}`);
  }

  // Crash → restarted from the durable snapshot and found by id, one tracker at a time.
  const latencies: number[] = [];
  // Distinct live trackers (the 1% with index ≡ 1 mod 100 are confirmed and gone by now): a second
  // crash of one tracker within the restart window would be a delayed restart, not this measurement.
  const stride = Math.max(1, Math.floor(n / CRASHES));
  for (let i = 2; i < n && latencies.length < CRASHES; i += stride) {
    if (i % 100 !== 1) latencies.push(await crashAndFind(system, store, idOf(i)));
  }
  latencies.sort((a, b) => a - b);
  const crashCheck = system.stats();
  await store.flush();

  // Drive every tracker past its required confirmations: all final, all deregistered.
  const f0 = performance.now();
  system.newHead(FINAL_HEAD);
  await until(() => gone === WARM_UP + n, 300_000, 'every tracker to finish');
  await drained(system);
  await store.flush();
  const finalMs = performance.now() - f0;
  const after = await settledMemory();
  const stats = system.stats();
  const confirmed = (await store.list({ state: 'confirmed', limit: 1 })).items.length;

  await stop();
  rmSync(dir, { recursive: true, force: true });
  return {
    ...common,
    liveHeapPer: (live.heap - warm.heap) / n,
    liveRssPer: (live.rss - warm.rss) / n,
    liveRss: live.rss,
    headDeliverMs,
    headDurableMs,
    headEachMs,
    onePctConfirmMs,
    crashes: latencies.length,
    crashP50Us: percentile(latencies, 0.5),
    crashP99Us: percentile(latencies, 0.99),
    crashMaxUs: latencies[latencies.length - 1]!,
    restartsCounted: crashCheck.restarts,
    finalMs,
    finalHeapGrowth: after.heap - before.heap,
    finalRssGrowth: after.rss - before.rss,
    finalHeapGrowthWarm: after.heap - warm.heap,
    finalRssGrowthWarm: after.rss - warm.rss,
    stats,
    anyConfirmed: confirmed > 0,
    load: loadavg(),
  };
}

/** `i` is in the 1% with index ≡ rest mod 100 (whole hundreds only). */
const onePct = (i: number, rest: number, n: number): boolean => i % 100 === rest && i + 100 - rest <= n;

/** POST /trackers against the service path in this process, `HTTP_CONCURRENCY` requests in flight. */
async function measureHttp(n: number) {
  const dir = tempDir();
  const service = await startServicePath({ databasePath: join(dir, 'trackers.db') });
  const { system, server } = service;
  const measured = Math.min(n, HTTP_CAP);
  // Above the cap, the first ones start through the library so the measured ones meet n - measured live.
  await startRange(system, 0, n - measured);
  let next = n - measured;
  let failures = 0;
  const worker = async () => {
    while (next < n) {
      const i = next++;
      const res = await fetch(`${server.url}/trackers`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ id: idOf(i), txHash: hashOf(i) }),
      });
      await res.arrayBuffer();
      if (res.status !== 201) failures++;
    }
  };
  const t0 = performance.now();
  await Promise.all(Array.from({ length: HTTP_CONCURRENCY }, worker));
  const ms = performance.now() - t0;
  const live = system.stats().live;
  await service.stop();
  rmSync(dir, { recursive: true, force: true });
  if (failures > 0 || live !== n) throw new Error(`POST /trackers: ${failures} failures, ${live} live of ${n}`);
  return { n, measured, ms, load: loadavg() };
}

/** Rows of `actors[from, to)` as they stand, committed in one transaction each of START_BATCH. */
function commitAll(floor: ReturnType<typeof openPlainFloor>, actors: readonly PlainActor[]): void {
  for (let i = 0; i < actors.length; i += START_BATCH) {
    const rows: PlainRow[] = [];
    for (let j = i; j < Math.min(actors.length, i + START_BATCH); j++) rows.push(plainRow(actors[j]!));
    floor.commit(rows);
  }
}

/**
 * The plain-library floor (../plain-floor.ts), in this one process: N plain actors of the machine
 * started, their rows written in transactions of START_BATCH; the same chain facts as the service's
 * run; then the 1% block: TX_MINED to each, their rows, one commit. Each part timed.
 */
async function measureFloor(n: number) {
  const dir = tempDir();
  const floor = openPlainFloor(join(dir, 'floor.db'));
  // Warm-up, as the service's: trackers started, written, finished and written; then dropped.
  let warmActors: PlainActor[] = [];
  for (let i = 0; i < WARM_UP; i++) warmActors.push(plainActor(`warm_${i}`, hashOf(2 ** 40 + i), REQUIRED));
  commitAll(floor, warmActors);
  for (const actor of warmActors) plainSend(actor, mined(MINED_AT, MINED_AT + REQUIRED));
  commitAll(floor, warmActors);
  warmActors = [];
  const before = await settledMemory();

  const actors: PlainActor[] = [];
  let actorsMs = 0;
  let jsonMs = 0;
  let commitMs = 0;
  const t0 = performance.now();
  for (let i = 0; i < n; i += START_BATCH) {
    const to = Math.min(n, i + START_BATCH);
    const a0 = performance.now();
    for (let j = i; j < to; j++) actors.push(plainActor(idOf(j), hashOf(j), REQUIRED));
    const j0 = performance.now();
    const rows: PlainRow[] = [];
    for (let j = i; j < to; j++) rows.push(plainRow(actors[j]!));
    const c0 = performance.now();
    floor.commit(rows);
    const c1 = performance.now();
    actorsMs += j0 - a0;
    jsonMs += c0 - j0;
    commitMs += c1 - c0;
  }
  const startMs = performance.now() - t0;
  const live = await settledMemory();
  if (actors.length !== n) throw new Error('lost actors');

  // The same chain facts as the service's run before its 1% block: 99% mined, a head to each.
  for (let i = 0; i < n; i++) {
    if (!onePct(i, 0, n)) plainSend(actors[i]!, mined(onePct(i, 1, n) ? CONFIRMED_EARLY_AT : MINED_AT, MINED_AT));
  }
  commitAll(floor, actors);
  for (const actor of actors) plainSend(actor, { type: 'NEW_HEAD', blockNumber: MINED_AT + 1 });
  commitAll(floor, actors);

  const touched: PlainActor[] = [];
  for (let i = 0; i < n; i += 100) touched.push(actors[i]!);
  const parts: Array<{ send: number; json: number; commit: number; total: number }> = [];
  for (let k = 0; k < BLOCK_REPEATS; k++) {
    if (k > 0) {
      for (const actor of touched) plainSend(actor, reorged);
      floor.commit(touched.map(plainRow));
      await nextTurn();
    }
    const p0 = performance.now();
    for (const actor of touched) plainSend(actor, mined(TOUCHING_BLOCK));
    const p1 = performance.now();
    const rows = touched.map(plainRow);
    const p2 = performance.now();
    floor.commit(rows);
    const p3 = performance.now();
    parts.push({ send: p1 - p0, json: p2 - p1, commit: p3 - p2, total: p3 - p0 });
    await nextTurn();
  }
  // The block whose total is the median, with its parts.
  const block = [...parts].sort((a, b) => a.total - b.total)[(parts.length - 1) >> 1]!;
  if (touched.some((actor) => actor.getSnapshot().value !== 'confirming'))
    throw new Error('the 1% block did not mine them');
  floor.close();
  rmSync(dir, { recursive: true, force: true });
  return {
    n,
    startMs,
    startActorsMs: actorsMs,
    startJsonMs: jsonMs,
    startCommitMs: commitMs,
    heapPer: (live.heap - before.heap) / n,
    rssPer: (live.rss - before.rss) / n,
    rss: live.rss,
    onePctMs: block.total,
    onePctSendMs: block.send,
    onePctJsonMs: block.json,
    onePctCommitMs: block.commit,
    onePctRange: [Math.min(...parts.map((p) => p.total)), Math.max(...parts.map((p) => p.total))],
    load: loadavg(),
  };
}

const kinds = {
  service: (n: number) => measureSystem(n, 'service'),
  library: (n: number) => measureSystem(n, 'library'),
  http: measureHttp,
  floor: measureFloor,
};
export type Kind = keyof typeof kinds;
type SystemResult = Awaited<ReturnType<typeof measureSystem>>;
export type ServiceResult = Extract<SystemResult, { crashes: number }>;
export type LibraryResult = Exclude<SystemResult, { crashes: number }>;
export type HttpResult = Awaited<ReturnType<typeof measureHttp>>;
export type FloorResult = Awaited<ReturnType<typeof measureFloor>>;

const [kind, size] = process.argv.slice(2);
if (kind && size) {
  if (!(kind in kinds)) throw new Error(`unknown measurement ${kind}`);
  const result = await kinds[kind as Kind](Number(size));
  process.stdout.write(`${JSON.stringify(result)}\n`);
  process.exit(0);
}
