/**
 * npm run bench:scale — 1,000 / 10,000 / 100,000 live trackers in one process on the service path
 * (bench/service-path.ts: the configuration, store, system and HTTP server as `npm start` builds
 * them, the bench as the chain): start time (library call and POST /trackers), heap and RSS per live
 * tracker, one new head to all and to 1%, crash → restarted latency, and a leak check after every
 * tracker reached its final state. Beside them, the plain-library floor (bench/plain-floor.ts:
 * XState's createActor of the machine, its persisted snapshot as JSON, plain better-sqlite3 upserts
 * of the same rows) for the start and the 1% block, and the tracker system on a bare SqliteStore
 * (the library without the service around it). Every measurement runs in a fresh process
 * (bench/scale/measure.ts); the BEAM anchor runs beside ours when `elixir` is on the PATH.
 *
 * BENCH_SIZES (default 1000,10000,100000), BENCH_HTTP_CAP (POST /trackers measured per N, default
 * 10,000; above it the rest start through the library first), BENCH_CRASHES (default 1,000),
 * BENCH_START_BATCH (trackers per startMany call and per floor transaction, default 10,000),
 * BENCH_BLOCK_REPEATS (the 1% block measured this many times, median shown; default 5),
 * BENCH_IDS=hashes (trackers keyed by random-looking tx hashes).
 */
import { execFileSync } from 'node:child_process';
import { loadavg } from 'node:os';
import { fileURLToPath } from 'node:url';
import { type BeamResult, beamAvailable, runBeam } from './scale/beam.js';
import type { FloorResult, HttpResult, Kind, LibraryResult, ServiceResult } from './scale/measure.js';
import { assertFloorSchema } from './service-path.js';

const sizes = (process.env.BENCH_SIZES ?? '1000,10000,100000').split(',').map(Number);
const measureScript = fileURLToPath(new URL('./scale/measure.ts', import.meta.url));

function child<T>(kind: Kind, n: number): T {
  process.stderr.write(`bench:scale ${kind} ${n.toLocaleString('en-US')} …\n`);
  const out = execFileSync(
    process.execPath,
    ['--expose-gc', '--max-old-space-size=4096', '--import', 'tsx', measureScript, kind, String(n)],
    {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'inherit'],
      maxBuffer: 1 << 22,
    },
  );
  return JSON.parse(out.trim().split('\n').pop()!) as T;
}

await assertFloorSchema();
const t0 = performance.now();
const load0 = loadavg();
const beam = beamAvailable();
const runs = sizes.map((n) => {
  // The floor and ours back to back, so that a quieter or busier stretch of the box falls on both.
  const floor = child<FloorResult>('floor', n);
  const system = child<ServiceResult>('service', n);
  const library = child<LibraryResult>('library', n);
  const http = child<HttpResult>('http', n);
  if (beam.ok) process.stderr.write(`bench:scale BEAM ${n.toLocaleString('en-US')} …\n`);
  const anchor: BeamResult | undefined = beam.ok ? runBeam(n) : undefined;
  return { n, system, library, floor, http, anchor };
});
const totalS = (performance.now() - t0) / 1000;

const kb = (bytes: number) => `${(bytes / 1024).toFixed(2)} KB`;
const mib = (bytes: number) => `${(bytes / 2 ** 20).toFixed(0)} MiB`;
const ms = (v: number) => (v >= 1000 ? `${(v / 1000).toFixed(2)} s` : `${v.toFixed(v < 10 ? 2 : 0)} ms`);
const us = (v: number) => (v >= 1000 ? `${(v / 1000).toFixed(2)} ms` : `${v.toFixed(0)} µs`);
const opt = <T>(v: T | undefined, f: (x: T) => string) => (v === undefined ? '—' : f(v));
const load = (l: number[]) => l.map((x) => x.toFixed(2)).join(' ');

type Run = (typeof runs)[number];
interface Row {
  label: string;
  ours: (r: Run) => string;
  beam?: (b: BeamResult) => string;
  target: string;
}

const rows: Row[] = [
  {
    label: 'start N, `startMany` on the service path (calls of 10,000; `BENCH_START_BATCH`), each durable',
    ours: (r) => `${ms(r.system.startMs)} (calls of ${r.system.startBatch.toLocaleString('en-US')})`,
    beam: (b) => opt(b.startMs, ms) + ' (not durable)',
    target: '≤ 1.2× floor',
  },
  { label: 'the same on a bare SqliteStore (library only)', ours: (r) => ms(r.library.startMs), target: '—' },
  {
    label: 'floor: N plain actors, their rows in transactions of 10,000 (actors + JSON + commits)',
    ours: (r) =>
      `${ms(r.floor.startMs)} (${ms(r.floor.startActorsMs)} + ${ms(r.floor.startJsonMs)} + ${ms(r.floor.startCommitMs)})`,
    target: '—',
  },
  {
    label: 'start via `POST /trackers` (64 in flight, same process)',
    ours: (r) =>
      r.http.measured === r.n
        ? `${ms(r.http.ms)} (${Math.round((r.n * 1000) / r.http.ms)}/s)`
        : `${ms(r.http.ms)} for the last ${r.http.measured.toLocaleString('en-US')} (${Math.round((r.http.measured * 1000) / r.http.ms)}/s; ≈ ${ms((r.http.ms * r.n) / r.http.measured)} for N)`,
    target: '—',
  },
  {
    label: 'RSS of the process, N live (after GC)',
    ours: (r) => mib(r.system.liveRss),
    beam: (b) => opt(b.totalMiB, (v) => `${v} MiB (erlang:memory total)`),
    target: '100k < 1 GiB',
  },
  {
    label: 'heap per live tracker (after GC, vs warmed-up system)',
    ours: (r) => kb(r.system.liveHeapPer),
    beam: (b) => opt(b.bytesPerTracker, kb),
    target: '≤ 2× floor; aim 3.8 KB',
  },
  { label: 'RSS per live tracker (after GC, vs warmed-up system)', ours: (r) => kb(r.system.liveRssPer), target: '—' },
  { label: 'floor: heap per plain `createActor` tracker', ours: (r) => kb(r.floor.heapPer), target: '—' },
  {
    label: 'floor: RSS per plain `createActor` tracker (with its row written)',
    ours: (r) => kb(r.floor.rssPer),
    target: '—',
  },
  {
    label: 'heap per tracker ÷ floor',
    ours: (r) => `${(r.system.liveHeapPer / r.floor.heapPer).toFixed(2)}×`,
    target: '≤ 2×',
  },
  {
    label: 'new head, all N confirming (`newHead`: counts derived, none due)',
    ours: (r) => ms(r.system.headDurableMs),
    beam: (b) => opt(b.headAllMs, ms) + ' (a call to each)',
    target: '< 1 s, aim 100 ms',
  },
  {
    label: 'the same head as an event to each tracker (before), until durable',
    ours: (r) => ms(r.system.headEachMs),
    target: '—',
  },
  {
    label: 'a block mining 1% (TX_MINED to each, then the head), until durable (delivered)',
    ours: (r) =>
      `${ms(r.system.onePctDurableMs)} (${ms(r.system.onePctDeliverMs)}; ${r.system.touched.toLocaleString('en-US')})`,
    target: '≤ 1.5× floor',
  },
  {
    label: 'the same on a bare SqliteStore (library only)',
    ours: (r) => `${ms(r.library.onePctDurableMs)} (${ms(r.library.onePctDeliverMs)})`,
    target: '—',
  },
  {
    label: 'floor: the same 1% TX_MINED to plain actors + their rows as JSON + one commit',
    ours: (r) =>
      `${ms(r.floor.onePctMs)} (${ms(r.floor.onePctSendMs)} + ${ms(r.floor.onePctJsonMs)} + ${ms(r.floor.onePctCommitMs)})`,
    target: '—',
  },
  {
    label: 'a head confirming 1%: confirmed, deregistered, durable',
    ours: (r) => `${ms(r.system.onePctConfirmMs)} (${r.system.touched.toLocaleString('en-US')})`,
    target: '—',
  },
  {
    label: 'crash → restarted and found by id, p50 / p99',
    ours: (r) => `${us(r.system.crashP50Us)} / ${us(r.system.crashP99Us)} (${r.system.crashes})`,
    beam: (b) =>
      b.crashP50Us === undefined
        ? `— (${b.error ?? 'no output'})`
        : `${us(b.crashP50Us)} / ${us(b.crashP99Us!)} (1000, state lost)`,
    target: 'p99 < 1 ms',
  },
  { label: 'all N to final and deregistered (one head)', ours: (r) => ms(r.system.finalMs), target: '—' },
  {
    label: 'after all final: heap / RSS growth vs before start',
    ours: (r) =>
      `${(r.system.finalHeapGrowth / 2 ** 20).toFixed(1)} / ${(r.system.finalRssGrowth / 2 ** 20).toFixed(0)} MiB`,
    target: '0',
  },
  {
    label: 'after all final: heap / RSS growth vs warmed-up system (the leak check)',
    ours: (r) =>
      `${(r.system.finalHeapGrowthWarm / 2 ** 20).toFixed(2)} / ${(r.system.finalRssGrowthWarm / 2 ** 20).toFixed(0)} MiB`,
    target: '0',
  },
  {
    label: 'after all final: `stats()` live / shardChildren / subscriptions',
    ours: (r) => `${r.system.stats.live} / ${r.system.stats.shardChildren} / ${r.system.stats.subscriptions}`,
    target: '0 / 0 / 0',
  },
  {
    label: 'load average (1/5/15 min) when measured',
    ours: (r) => load(r.system.load),
    beam: (b) => load(b.load),
    target: '—',
  },
];

const ratio = (ours: number, floor: number): string => `${(ours / floor).toFixed(2)}×`;
const headline = [
  ...runs.map((r) => ({
    label: 'start N trackers, each durable',
    r,
    ours: r.system.startMs,
    library: r.library.startMs,
    floor: r.floor.startMs,
    floorParts: `actors ${ms(r.floor.startActorsMs)} + JSON ${ms(r.floor.startJsonMs)} + commits ${ms(r.floor.startCommitMs)}`,
    range: '',
    target: '≤ 1.2×',
    ok: r.system.startMs <= 1.2 * r.floor.startMs,
  })),
  ...runs.map((r) => ({
    label: `a block mining 1% of N, until durable (median of ${process.env.BENCH_BLOCK_REPEATS ?? 5})`,
    r,
    ours: r.system.onePctDurableMs,
    library: r.library.onePctDurableMs,
    floor: r.floor.onePctMs,
    floorParts: `transitions ${ms(r.floor.onePctSendMs)} + JSON ${ms(r.floor.onePctJsonMs)} + commit ${ms(r.floor.onePctCommitMs)}; range ${r.floor.onePctRange.map(ms).join('–')}`,
    range: ` (${r.system.onePctDurableRange.map(ms).join('–')})`,
    target: '≤ 1.5×',
    ok: r.system.onePctDurableMs <= 1.5 * r.floor.onePctMs,
  })),
];
console.log(
  `bench:scale — N live trackers in one process, SQLite on a temp file, each N and kind in a fresh process, Node ${process.version} (${totalS.toFixed(0)} s)`,
);
console.log('');
console.log(
  '| measurement | N | ours (service path) | library only | floor (plain createActor + JSON + better-sqlite3) | ours ÷ floor | target |',
);
console.log('|---|---:|---:|---:|---:|---:|---|');
for (const h of headline) {
  console.log(
    `| ${h.label} | ${h.r.n.toLocaleString('en-US')} | ${ms(h.ours)}${h.range} | ${ms(h.library)} | ${ms(h.floor)} (${h.floorParts}) | ` +
      `${ratio(h.ours, h.floor)} | ${h.target} ${h.ok ? 'met' : 'not met'} |`,
  );
}
console.log('');
const header = [
  'measurement',
  ...runs.map((r) => `ours ${r.n.toLocaleString('en-US')}`),
  ...(beam.ok ? runs.map((r) => `BEAM ${r.n.toLocaleString('en-US')}`) : []),
  'target',
];
if (!beam.ok) console.log(beam.why);
console.log(`| ${header.join(' | ')} |`);
console.log(`|${header.map((_, i) => (i === 0 ? '---' : '---:')).join('|')}|`);
for (const row of rows) {
  const cells = [row.label, ...runs.map(row.ours)];
  if (beam.ok) cells.push(...runs.map((r) => (row.beam && r.anchor ? row.beam(r.anchor) : '')));
  cells.push(row.target);
  console.log(`| ${cells.join(' | ')} |`);
}
console.log(`\nload average at start: ${load(load0)}; at end: ${load(loadavg())}`);
