/**
 * npm run bench:api — POST /trackers and GET /trackers/:id throughput and p50/p99 latency, load from
 * this process (autocannon) against the service in another process, side by side in the same run
 * with the floor: a bare Express 5 app with the same routes on a Map, and the durable floor: that app
 * with each tracker one of the runtime's tracker actors whose snapshot is durable before a create is
 * answered (bench/durable-floor-server.ts). Also POST /trackers/batch.
 *
 * BENCH_DURATION (s, default 10), BENCH_CONNECTIONS (default 64), BENCH_ROUNDS (default 3). Server env
 * (DATABASE_URL, …) passes through; without DATABASE_URL the service gets a fresh SQLite file in a temp
 * folder (the durable default).
 *
 * Each scenario runs BENCH_ROUNDS times on each server, the servers taking turns (a different one
 * first in each round), so that a quieter or busier stretch of a shared box falls on all: the table
 * shows each server's median run and the median of the per-round ratios to the floor, with ranges.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import autocannon from 'autocannon';

const DURATION = Number(process.env.BENCH_DURATION ?? 10);
const ROUNDS = Math.max(1, Number(process.env.BENCH_ROUNDS ?? 3));
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 64);
const BATCH = 1000;
const serverEnv = {
  DATABASE_URL: `sqlite:${join(mkdtempSync(join(tmpdir(), 'bench-api-')), 'trackers.db')}`,
  ...process.env,
};
const hashOf = (n: number) => `0x${n.toString(16).padStart(64, '0')}`;

async function startProcess(script: string): Promise<{ child: ChildProcess; url: string; info: Record<string, string> }> {
  const child = spawn(process.execPath, ['--import', 'tsx', script], { stdio: ['ignore', 'pipe', 'inherit'], env: serverEnv });
  const lines = createInterface({ input: child.stdout! });
  for await (const line of lines) {
    if (line.startsWith('{"url"')) {
      const info = JSON.parse(line) as Record<string, string>;
      return { child, url: info.url!, info };
    }
  }
  throw new Error(`${script} exited before listening`);
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

async function run(url: string, requests: autocannon.Request[], connections = CONNECTIONS, duration = DURATION) {
  const result = await autocannon({ url, connections, duration, requests });
  return {
    rps: result.requests.average,
    p50: result.latency.p50,
    p99: result.latency.p99,
    errors: result.errors + result.timeouts + result.non2xx,
    total: result.requests.total,
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
  const ids: string[] = [];
  for (let i = 0; i < count; i += BATCH) {
    const trackers = Array.from({ length: Math.min(BATCH, count - i) }, (_, j) => ({ txHash: hashOf(offset + i + j) }));
    const res = await fetch(`${url}/trackers/batch`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ trackers }) });
    if (!res.ok) throw new Error(`seeding failed: ${res.status}`);
    ids.push(...trackers.map((t) => t.txHash));
  }
  return ids;
}

function randomGets(ids: string[]): autocannon.Request[] {
  return [{ method: 'GET', setupRequest: (req) => ({ ...req, path: `/trackers/${ids[Math.floor(Math.random() * ids.length)]}` }) }];
}

const fmt = (n: number, digits = 0) => n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });

type ServerName = 'floor' | 'durable floor' | 'tx-tracker';
const SERVERS: ServerName[] = ['floor', 'durable floor', 'tx-tracker'];

async function main(): Promise<void> {
  const servers: Record<ServerName, Awaited<ReturnType<typeof startProcess>>> = {
    floor: await startProcess('bench/floor-server.ts'),
    'durable floor': await startProcess('bench/durable-floor-server.ts'),
    'tx-tracker': await startProcess('bench/api-server.ts'),
  };
  const scenarios: Array<{ name: string; perRequest: number; runs: Record<ServerName, Run[]> }> = [];
  const measure = async (name: string, perRequest: number, load: (server: ServerName, url: string) => Promise<Run>) => {
    const runs: Record<ServerName, Run[]> = { floor: [], 'durable floor': [], 'tx-tracker': [] };
    for (let round = 0; round < ROUNDS; round++) {
      const order = SERVERS.map((_, i) => SERVERS[(i + round) % SERVERS.length]!);
      for (const server of order) runs[server].push(await load(server, servers[server].url));
    }
    scenarios.push({ name, perRequest, runs });
  };
  try {
    for (const server of Object.values(servers)) {
      // Warm up the JIT on both before measuring.
      await run(server.url, uniquePosts(1e9), 16, 2);
    }
    let offset = 1;
    await measure('POST /trackers', 1, (_server, url) => run(url, uniquePosts((offset += 1e8))));
    const ids: Record<string, string[]> = {};
    for (const [name, server] of Object.entries(servers)) ids[name] = await seed(server.url, 10_000, (offset += 1e8));
    await measure('GET /trackers/:id', 0, (server, url) => run(url, randomGets(ids[server]!)));
    await measure(`POST /trackers/batch (${BATCH}/req)`, BATCH, (_server, url) => run(url, uniqueBatches((offset += 1e9)), 4));
  } finally {
    for (const server of Object.values(servers)) server.child.kill('SIGTERM');
  }

  const store = servers['tx-tracker'].info.database;
  console.log(
    `\nnpm run bench:api — ${DURATION}s per run, ${CONNECTIONS} connections (batch: 4), ${ROUNDS} rounds per scenario taking turns, ` +
      `Node ${process.version}, store: ${store}\n`,
  );
  console.log('| scenario | server | req/s, median (range) | trackers/s | p50 ms | p99 ms | errors | vs floor: median of the rounds (range) |');
  console.log('|---|---|---:|---:|---:|---:|---:|---|');
  const range = (values: number[], digits = 0) =>
    values.length > 1 ? ` (${fmt(Math.min(...values), digits)}–${fmt(Math.max(...values), digits)})` : '';
  for (const { name, perRequest, runs } of scenarios) {
    const floor = runs.floor;
    for (const server of SERVERS) {
      const mine = runs[server];
      const rps = mine.map((r) => r.rps);
      const tps = perRequest > 0 ? fmt(median(rps) * perRequest) : '';
      const throughput = mine.map((r, i) => (r.rps / floor[i]!.rps) * 100);
      const p99 = mine.map((r, i) => r.p99 / Math.max(floor[i]!.p99, 1));
      const versus =
        server === 'floor'
          ? '—'
          : `${fmt(median(throughput))}% thr${range(throughput)}, p99 ×${fmt(median(p99), 2)}${range(p99, 2)}`;
      const errors = mine.reduce((sum, r) => sum + r.errors, 0);
      console.log(
        `| ${name} | ${server} | ${fmt(median(rps))}${range(rps)} | ${tps} | ${median(mine.map((r) => r.p50))} | ` +
          `${median(mine.map((r) => r.p99))} | ${errors} | ${versus} |`,
      );
    }
  }
}

await main();
