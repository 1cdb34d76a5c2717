/**
 * npm run bench:api — the service as `npm start` builds it (bench/api-server.ts, with the embedded
 * anvil and its chain watcher), under autocannon load from this process, against floors in their own
 * processes in the same run:
 * - POST /trackers (a new hash per request; answered once durable) and GET /trackers/:id (10,000
 *   seeded trackers) against a bare Express 5 app with the same routes on a Map (bench/floor-server.ts);
 * - GET /trackers/:id while the chain watcher is busy: a block of BENCH_BUSY_TXS (1,000) real
 *   transactions, every one of them tracked, mined on the service's anvil every BENCH_BUSY_BLOCK_MS
 *   (1,000 ms) during the run, so that the watcher fetches receipts and delivers TX_MINED to 1,000
 *   trackers a block, all persisted; against the same bare Express app while an anvil of its own
 *   mines the same blocks (tracked by nobody), so that both share the box with the same chain and
 *   the ratio is the watcher's cost;
 * - POST /trackers/batch of 1,000 items (4 connections) against a floor that parses the same body with
 *   Express, starts 1,000 plain actors of the machine and commits their rows in one plain better-sqlite3
 *   transaction (bench/batch-floor-server.ts); the bare Express app beside it.
 *
 * BENCH_DURATION (s, default 10), BENCH_CONNECTIONS (default 64), BENCH_ROUNDS (default 3). Each
 * scenario runs BENCH_ROUNDS times on each server, the servers taking turns (a different one first in
 * each round), so that a quieter or busier stretch of the shared box falls on all; the table shows each
 * server's median run and the median of the per-round ratios to the floor, with ranges. Server env
 * (DATABASE_URL, …) passes through; without DATABASE_URL the service gets a fresh SQLite file.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import autocannon from 'autocannon';
import { startAnvil } from '../src/chain/anvil.js';
import { type Server, busyChain, chainOf, postBatch } from './busy-chain.js';
import { assertFloorSchema } from './service-path.js';

const DURATION = Number(process.env.BENCH_DURATION ?? 10);
const ROUNDS = Math.max(1, Number(process.env.BENCH_ROUNDS ?? 3));
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 64);
const BATCH = 1000;
const BUSY_TXS = Number(process.env.BENCH_BUSY_TXS ?? 1000);
const BUSY_BLOCK_MS = Number(process.env.BENCH_BUSY_BLOCK_MS ?? 1000);
const serverEnv = {
  DATABASE_URL: `sqlite:${join(mkdtempSync(join(tmpdir(), 'bench-api-')), 'trackers.db')}`,
  ...process.env,
};
const hashOf = (n: number) => `0x${n.toString(16).padStart(64, '0')}`;

async function startProcess(script: string): Promise<Server> {
  const child = spawn(process.execPath, ['--import', 'tsx', script], {
    stdio: ['ignore', 'pipe', 'inherit'],
    env: serverEnv,
  });
  const lines = createInterface({ input: child.stdout! });
  return new Promise((resolve, reject) => {
    // Every line is read (a log line left in the pipe could stall the server); the first with a URL starts it.
    lines.on('line', (line) => {
      if (!line.startsWith('{"url"')) return;
      const info = JSON.parse(line) as Record<string, string | null>;
      resolve({ child, url: info.url!, info });
    });
    child.once('exit', () => reject(new Error(`${script} exited before listening`)));
  });
}

interface Run {
  rps: number;
  p50: number;
  p99: number;
  errors: number;
}

const median = (values: number[]): number => {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
};

async function run(
  url: string,
  requests: autocannon.Request[],
  connections = CONNECTIONS,
  duration = DURATION,
): Promise<Run> {
  const result = await autocannon({ url, connections, duration, requests });
  return {
    rps: result.requests.average,
    p50: result.latency.p50,
    p99: result.latency.p99,
    errors: result.errors + result.timeouts + result.non2xx,
  };
}

/** Unique hashes per request, so every POST creates a tracker. */
function uniquePosts(offset: number): autocannon.Request[] {
  let n = offset;
  return [
    {
      method: 'POST',
      path: '/trackers',
      headers: { 'content-type': 'application/json' },
      setupRequest: (req) => ({ ...req, body: JSON.stringify({ txHash: hashOf(n++) }) }),
    },
  ];
}

function uniqueBatches(offset: number): autocannon.Request[] {
  let n = offset;
  return [
    {
      method: 'POST',
      path: '/trackers/batch',
      headers: { 'content-type': 'application/json' },
      setupRequest: (req) => {
        const trackers = Array.from({ length: BATCH }, () => ({ txHash: hashOf(n++) }));
        return { ...req, body: JSON.stringify({ trackers }) };
      },
    },
  ];
}

async function seed(url: string, count: number, offset: number): Promise<string[]> {
  const ids = Array.from({ length: count }, (_, i) => hashOf(offset + i));
  await postBatch(url, ids);
  return ids;
}

function randomGets(ids: string[]): autocannon.Request[] {
  return [
    {
      method: 'GET',
      setupRequest: (req) => ({ ...req, path: `/trackers/${ids[Math.floor(Math.random() * ids.length)]}` }),
    },
  ];
}

const fmt = (n: number, digits = 0) =>
  n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });

type ServerName = 'floor' | 'batch floor' | 'tx-tracker';

interface Scenario {
  name: string;
  perRequest: number;
  /** The server the ratio is taken against. */
  reference: ServerName;
  servers: ServerName[];
  runs: Partial<Record<ServerName, Run[]>>;
  target: { throughput: number; p99?: number; label: string };
}

async function main(): Promise<void> {
  await assertFloorSchema();
  const servers: Record<ServerName, Server> = {
    floor: await startProcess('bench/floor-server.ts'),
    'batch floor': await startProcess('bench/batch-floor-server.ts'),
    'tx-tracker': await startProcess('bench/api-server.ts'),
  };
  // The floor's chain for the busy scenario: an anvil like the service's embedded one.
  const floorAnvil = await startAnvil({ blockTime: 2 });
  const scenarios: Scenario[] = [];
  const busyRuns: Partial<Record<ServerName, Array<{ blocks: number; txs: number }>>> = {};
  const measure = async (
    scenario: Omit<Scenario, 'runs'>,
    load: (server: ServerName, url: string) => Promise<Run>,
  ): Promise<void> => {
    process.stderr.write(`bench:api ${scenario.name} …\n`);
    const runs: Partial<Record<ServerName, Run[]>> = {};
    for (let round = 0; round < ROUNDS; round++) {
      const order = scenario.servers.map((_, i) => scenario.servers[(i + round) % scenario.servers.length]!);
      for (const server of order) (runs[server] ??= []).push(await load(server, servers[server].url));
    }
    scenarios.push({ ...scenario, runs });
  };
  try {
    // Warm up the JIT of each before measuring.
    await run(servers.floor.url, uniquePosts(1e9), 16, 2);
    await run(servers['tx-tracker'].url, uniquePosts(1e9), 16, 2);
    await run(servers['batch floor'].url, uniqueBatches(2e9), 4, 2);
    await run(servers['tx-tracker'].url, uniqueBatches(2e9), 4, 2);
    let offset = 1e10;
    await measure(
      {
        name: 'POST /trackers',
        perRequest: 1,
        reference: 'floor',
        servers: ['floor', 'tx-tracker'],
        target: { throughput: 0.75, p99: 1.5, label: '≥ 75% thr, p99 ≤ ×1.5' },
      },
      (_server, url) => run(url, uniquePosts((offset += 1e8))),
    );
    const ids: Partial<Record<ServerName, string[]>> = {};
    for (const name of ['floor', 'tx-tracker'] as const)
      ids[name] = await seed(servers[name].url, 10_000, (offset += 1e8));
    await measure(
      {
        name: 'GET /trackers/:id',
        perRequest: 0,
        reference: 'floor',
        servers: ['floor', 'tx-tracker'],
        target: { throughput: 0.9, label: '≥ 90% thr' },
      },
      (server, url) => run(url, randomGets(ids[server]!)),
    );
    const busy = { duration: DURATION, txs: BUSY_TXS, blockMs: BUSY_BLOCK_MS };
    const chains: Partial<Record<ServerName, Awaited<ReturnType<typeof busyChain>>>> = {
      'tx-tracker': await busyChain(chainOf(servers['tx-tracker'].info), { ...busy, service: servers['tx-tracker'] }),
      floor: await busyChain(floorAnvil.url, busy),
    };
    await measure(
      {
        name: `GET /trackers/:id, watcher busy (${fmt(BUSY_TXS)} tracked txs a block, a block every ${fmt(BUSY_BLOCK_MS / 1000, 1)} s)`,
        perRequest: 0,
        reference: 'floor',
        servers: ['floor', 'tx-tracker'],
        target: { throughput: 0.9, label: '≥ 90% thr' },
      },
      async (server, url) => {
        const chain = chains[server]!;
        await chain.prepare();
        const { result, blocks, txs } = await chain.mineWhile(run(url, randomGets(ids[server]!)));
        (busyRuns[server] ??= []).push({ blocks, txs });
        await chain.settle();
        return result;
      },
    );
    for (const chain of Object.values(chains)) await chain.stop();
    await measure(
      {
        name: `POST /trackers/batch (${BATCH}/req)`,
        perRequest: BATCH,
        reference: 'batch floor',
        servers: ['batch floor', 'tx-tracker', 'floor'],
        target: { throughput: 0.7, label: '≥ 0.7× the batch floor' },
      },
      (_server, url) => run(url, uniqueBatches((offset += 1e9)), 4),
    );
  } finally {
    for (const server of Object.values(servers)) server.child.kill('SIGTERM');
    await floorAnvil.stop();
  }

  console.log(
    `\nnpm run bench:api — ${DURATION}s per run, ${CONNECTIONS} connections (batch: 4), ${ROUNDS} rounds per scenario taking turns, ` +
      `Node ${process.version}, store: ${servers['tx-tracker'].info.database}\n`,
  );
  console.log(
    '| scenario | server | req/s, median (range) | trackers/s | p50 ms | p99 ms | errors | vs reference: median of the rounds (range) | target |',
  );
  console.log('|---|---|---:|---:|---:|---:|---:|---|---|');
  const range = (values: number[], digits = 0) =>
    values.length > 1 ? ` (${fmt(Math.min(...values), digits)}–${fmt(Math.max(...values), digits)})` : '';
  for (const { name, perRequest, runs, reference, servers: names, target } of scenarios) {
    const ref = runs[reference]!;
    for (const server of names) {
      const mine = runs[server]!;
      const rps = mine.map((r) => r.rps);
      const tps = perRequest > 0 ? fmt(median(rps) * perRequest) : '';
      const throughput = mine.map((r, i) => r.rps / ref[i]!.rps);
      const p99 = mine.map((r, i) => r.p99 / Math.max(ref[i]!.p99, 1));
      const versus =
        server === reference
          ? 'reference'
          : `${fmt(median(throughput) * 100)}% thr${range(throughput.map((t) => t * 100))}, p99 ×${fmt(median(p99), 2)}${range(p99, 2)}`;
      const met = median(throughput) >= target.throughput && (target.p99 === undefined || median(p99) <= target.p99);
      const goal = server === 'tx-tracker' ? `${target.label}: ${met ? 'met' : 'not met'}` : '';
      const errors = mine.reduce((sum, r) => sum + r.errors, 0);
      console.log(
        `| ${name} | ${server} | ${fmt(median(rps))}${range(rps)} | ${tps} | ${median(mine.map((r) => r.p50))} | ` +
          `${median(mine.map((r) => r.p99))} | ${errors} | ${versus} | ${goal} |`,
      );
    }
  }
  console.log('');
  for (const [server, runs] of Object.entries(busyRuns)) {
    const mined = runs.map((b) => `${fmt(b.blocks)} blocks, ${fmt(b.txs)} txs`).join('; ');
    console.log(
      `watcher busy, ${server}'s runs: ${mined} mined${server === 'tx-tracker' ? ' (every tx tracked)' : ' (tracked by nobody)'}`,
    );
  }
}

await main();
