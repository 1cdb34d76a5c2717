/**
 * Before and after in one run: the bare Express floor, the service built from another tree (the
 * code before a change) and the service of this tree, loaded in turn with autocannon, a different
 * one first in each round. Prints the median req/s, p99, the median of the per-round ratios to
 * the floor, and each server's CPU time per request (user + system of its process, from /proc:
 * steadier than throughput on a shared box).
 *
 * git archive <commit> | tar -x -C /tmp/before && ln -s "$PWD/node_modules" /tmp/before/node_modules
 * BENCH_LOAD=get|post BENCH_ROUNDS=6 BENCH_DURATION=3 npx tsx bench/api-ab.ts /tmp/before
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import autocannon from 'autocannon';

const [before = ''] = process.argv.slice(2);
if (!before) throw new Error('usage: npx tsx bench/api-ab.ts <directory of the code before>');
const DURATION = Number(process.env.BENCH_DURATION ?? 3);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 6);
const LOAD = process.env.BENCH_LOAD ?? 'get';
/** Node flags for the after server only, to try a runtime setting against the same code. */
const AFTER_FLAGS = (process.env.BENCH_AFTER_FLAGS ?? '').split(' ').filter(Boolean);
const hashOf = (n: number) => `0x${n.toString(16).padStart(64, '0')}`;

/** User + system CPU seconds of a process so far (its threads included). */
function cpuSeconds(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

async function start(cwd: string, script: string, flags: string[] = []): Promise<{ child: ChildProcess; url: string }> {
  const child = spawn(process.execPath, [...flags, '--import', 'tsx', script], {
    cwd,
    stdio: ['ignore', 'pipe', 'inherit'],
    env: { ...process.env, DATABASE_URL: `sqlite:${join(mkdtempSync(join(tmpdir(), 'api-ab-')), 'trackers.db')}` },
  });
  const url = await new Promise<string>((resolve) =>
    createInterface({ input: child.stdout! }).on('line', (line) => {
      if (line.startsWith('{"url"')) resolve((JSON.parse(line) as { url: string }).url);
    }),
  );
  return { child, url };
}

const servers = {
  floor: await start(process.cwd(), 'bench/floor-server.ts'),
  before: await start(before, 'bench/api-server.ts'),
  after: await start(process.cwd(), 'bench/api-server.ts', AFTER_FLAGS),
};
type Name = keyof typeof servers;
const names = Object.keys(servers) as Name[];
let n = 0;
const posts: autocannon.Request[] = [
  {
    method: 'POST',
    path: '/trackers',
    headers: { 'content-type': 'application/json' },
    setupRequest: (req) => ({ ...req, body: JSON.stringify({ txHash: hashOf(n++) }) }),
  },
];
const ids = new Map<Name, string[]>();
try {
  for (const name of names) {
    const { url } = servers[name];
    await autocannon({ url, connections: 16, duration: 2, requests: posts });
    const seeded: string[] = [];
    for (let i = 0; i < 10_000; i += 1000) {
      const trackers = Array.from({ length: 1000 }, (_, j) => ({ txHash: hashOf(1e9 + i + j) }));
      await fetch(`${url}/trackers/batch`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ trackers }),
      });
      seeded.push(...trackers.map((t) => t.txHash));
    }
    ids.set(name, seeded);
  }
  const runs = new Map<Name, Array<{ rps: number; p99: number; cpuUs: number }>>(names.map((name) => [name, []]));
  for (let round = 0; round < ROUNDS; round++) {
    for (let k = 0; k < names.length; k++) {
      const name = names[(k + round) % names.length]!;
      const own = ids.get(name)!;
      const requests: autocannon.Request[] =
        LOAD === 'get'
          ? [
              {
                method: 'GET',
                setupRequest: (req) => ({ ...req, path: `/trackers/${own[Math.floor(Math.random() * own.length)]}` }),
              },
            ]
          : posts;
      const { child, url } = servers[name];
      const cpu0 = cpuSeconds(child.pid!);
      const result = await autocannon({ url, connections: 64, duration: DURATION, requests });
      runs.get(name)!.push({
        rps: result.requests.average,
        p99: result.latency.p99,
        cpuUs: ((cpuSeconds(child.pid!) - cpu0) * 1e6) / result.requests.total,
      });
    }
  }
  const median = (values: number[]) => [...values].sort((a, b) => a - b)[values.length >> 1]!;
  const floor = runs.get('floor')!;
  console.log(`${LOAD}, ${ROUNDS} rounds of ${DURATION} s, 64 connections`);
  console.log('| server | req/s | p99 ms | ÷ floor (median of rounds) | CPU µs per request |');
  console.log('|---|---:|---:|---:|---:|');
  for (const name of names) {
    const mine = runs.get(name)!;
    const ratio = median(mine.map((r, i) => r.rps / floor[i]!.rps));
    console.log(
      `| ${name} | ${Math.round(median(mine.map((r) => r.rps)))} | ${median(mine.map((r) => r.p99))} | ` +
        `${Math.round(ratio * 100)}% | ${median(mine.map((r) => r.cpuUs)).toFixed(1)} |`,
    );
  }
} finally {
  for (const { child } of Object.values(servers)) child.kill('SIGTERM');
}
