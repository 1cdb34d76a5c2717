/**
 * A CPU profile of one server of bench:api under one load: the server runs under `node --cpu-prof`
 * (a profile per thread, written when it exits), autocannon loads it from this process, and the time
 * window of the load and its request count go to <dir>/windows.json for bench/profile-top.ts.
 * `busy` is bench:api's GET while the chain watcher is busy (tx-tracker only: blocks of 1,000
 * tracked transfers a second on its embedded anvil during the load).
 *
 * npx tsx bench/api-profile.ts <bench/api-server.ts|bench/floor-server.ts> <post|get|busy> <dir> [seconds]
 */
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import autocannon from 'autocannon';
import { busyChain, chainOf } from './busy-chain.js';

const [script = 'bench/api-server.ts', load = 'post', dir = '.tmp/prof-api', seconds = '10'] = process.argv.slice(2);
const hashOf = (n: number) => `0x${n.toString(16).padStart(64, '0')}`;
/** The profiler's clock: CLOCK_MONOTONIC in µs, the same in every process of the box. */
const nowUs = (): number => Number(process.hrtime.bigint() / 1000n);
mkdirSync(dir, { recursive: true });

const child = spawn(
  process.execPath,
  ['--cpu-prof', `--cpu-prof-dir=${dir}`, '--cpu-prof-interval', '500', '--import', 'tsx', script],
  {
    stdio: ['ignore', 'pipe', 'inherit'],
    env: {
      DATABASE_URL: `sqlite:${join(mkdtempSync(join(tmpdir(), 'bench-api-profile-')), 'trackers.db')}`,
      ...process.env,
    },
  },
);
const info = await new Promise<Record<string, string | null>>((resolve, reject) => {
  createInterface({ input: child.stdout! }).on('line', (line) => {
    if (line.startsWith('{"url"')) resolve(JSON.parse(line) as Record<string, string | null>);
  });
  child.once('exit', () => reject(new Error(`${script} exited before listening`)));
});
const url = info.url!;

let n = 0;
const posts: autocannon.Request[] = [
  {
    method: 'POST',
    path: '/trackers',
    headers: { 'content-type': 'application/json' },
    setupRequest: (req) => ({ ...req, body: JSON.stringify({ txHash: hashOf(n++) }) }),
  },
];
// Warm-up (and, for GET, 10,000 trackers to read).
await autocannon({ url, connections: 16, duration: 2, requests: posts });
const ids: string[] = [];
for (let i = 0; i < 10_000; i += 1000) {
  const trackers = Array.from({ length: 1000 }, (_, j) => ({ txHash: hashOf(1e9 + i + j) }));
  await fetch(`${url}/trackers/batch`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ trackers }),
  });
  ids.push(...trackers.map((t) => t.txHash));
}
const gets: autocannon.Request[] = [
  {
    method: 'GET',
    setupRequest: (req) => ({ ...req, path: `/trackers/${ids[Math.floor(Math.random() * ids.length)]}` }),
  },
];

const chain =
  load === 'busy'
    ? await busyChain(chainOf(info), {
        duration: Number(seconds),
        txs: 1000,
        blockMs: 1000,
        service: { child, url, info },
      })
    : undefined;
await chain?.prepare();
const from = nowUs();
const loading = Promise.resolve(
  autocannon({ url, connections: 64, duration: Number(seconds), requests: load === 'post' ? posts : gets }),
);
const result = chain ? (await chain.mineWhile(loading)).result : await loading;
const to = nowUs();
await chain?.settle();
await chain?.stop();
writeFileSync(join(dir, 'windows.json'), JSON.stringify([{ from, to, ops: result.requests.total }]));
console.log(
  `${script} ${load}: ${Math.round(result.requests.average)} req/s, p99 ${result.latency.p99} ms, ${result.non2xx} non-2xx`,
);
child.kill('SIGTERM');
await new Promise((resolve) => child.once('exit', resolve));
