/**
 * npm run bench:api — POST /trackers and GET /trackers/:id throughput and p50/p99 latency, load from
 * this process (autocannon) against the service in another process, side by side in the same run
 * with the floor: a bare Express 5 app with the same routes on a Map. Also POST /trackers/batch.
 *
 * BENCH_DURATION (s, default 10), BENCH_CONNECTIONS (default 64). Server env (DATABASE_URL, …) passes through;
 * without DATABASE_URL the service gets a fresh SQLite file in a temp folder (the durable default).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import autocannon from 'autocannon';

const DURATION = Number(process.env.BENCH_DURATION ?? 10);
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

interface Row {
  scenario: string;
  server: string;
  rps: number;
  p50: number;
  p99: number;
  errors: number;
  trackersPerSecond?: number;
}

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

async function main(): Promise<void> {
  const servers = { floor: await startProcess('bench/floor-server.ts'), 'tx-tracker': await startProcess('bench/api-server.ts') };
  const rows: Row[] = [];
  try {
    for (const server of Object.values(servers)) {
      // Warm up the JIT on both before measuring.
      await run(server.url, uniquePosts(1e9), 16, 2);
    }
    let offset = 1;
    for (const [name, server] of Object.entries(servers)) {
      const r = await run(server.url, uniquePosts((offset += 1e8)));
      rows.push({ scenario: 'POST /trackers', server: name, ...r });
    }
    for (const [name, server] of Object.entries(servers)) {
      const ids = await seed(server.url, 10_000, (offset += 1e8));
      const r = await run(server.url, randomGets(ids));
      rows.push({ scenario: 'GET /trackers/:id', server: name, ...r });
    }
    for (const [name, server] of Object.entries(servers)) {
      const r = await run(server.url, uniqueBatches((offset += 1e9)), 4);
      rows.push({ scenario: `POST /trackers/batch (${BATCH}/req)`, server: name, ...r, trackersPerSecond: r.rps * BATCH });
    }
  } finally {
    for (const server of Object.values(servers)) server.child.kill('SIGTERM');
  }

  const store = servers['tx-tracker'].info.database;
  console.log(`\nnpm run bench:api — ${DURATION}s per run, ${CONNECTIONS} connections (batch: 4), Node ${process.version}, store: ${store}\n`);
  console.log('| scenario | server | req/s | trackers/s | p50 ms | p99 ms | errors | vs floor |');
  console.log('|---|---|---:|---:|---:|---:|---:|---|');
  for (const row of rows) {
    const floor = rows.find((r) => r.scenario === row.scenario && r.server === 'floor')!;
    const versus = row.server === 'floor' ? '—' : `${fmt((row.rps / floor.rps) * 100)}% thr, p99 ×${fmt(row.p99 / Math.max(floor.p99, 1), 2)}`;
    const tps = row.trackersPerSecond ? fmt(row.trackersPerSecond) : row.scenario.startsWith('POST') ? fmt(row.rps) : '';
    console.log(`| ${row.scenario} | ${row.server} | ${fmt(row.rps)} | ${tps} | ${row.p50} | ${row.p99} | ${row.errors} | ${versus} |`);
  }
}

await main();
