/**
 * npm run bench:core — is starting a tracker as cheap at 100,000 live as at 10,000?
 * `system.start` on the service path (bench/service-path.ts) with `DATABASE_URL=memory:`, each N in a
 * fresh process, best of 3; the floor is the same N plain tracker actors made with XState's
 * `createActor` (no supervisor, registry or store), measured in the same process.
 */
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { createActor } from 'xstate';
import { trackerMachine } from '../machines/tracker.machine.js';
import { startServicePath } from './service-path.js';

const hashOf = (i: number): string => `0x${i.toString(16).padStart(64, '0')}`;

async function measure(n: number): Promise<{ systemMs: number; bareMs: number; heapPerTracker: number }> {
  const gc = (globalThis as { gc?: () => void }).gc;
  gc?.();
  const heap0 = process.memoryUsage().heapUsed;
  const service = await startServicePath({ databasePath: 'memory:' });
  const { system } = service;
  const t0 = performance.now();
  const batch = 1000;
  for (let i = 0; i < n; i += batch) {
    const starts: Array<Promise<unknown>> = [];
    for (let j = i; j < Math.min(n, i + batch); j++) starts.push(system.start(`txn_${j}`, { txHash: hashOf(j) }));
    await Promise.all(starts);
  }
  const systemMs = performance.now() - t0;
  gc?.();
  const heapPerTracker = (process.memoryUsage().heapUsed - heap0) / n;
  if (system.stats().live !== n) throw new Error(`expected ${n} live trackers, have ${system.stats().live}`);
  await service.stop();

  gc?.();
  const t1 = performance.now();
  const bare = [];
  for (let j = 0; j < n; j++) {
    bare.push(
      createActor(trackerMachine, {
        input: { id: `bare_${j}`, txHash: hashOf(j), chainId: 31337, requiredConfirmations: 12, createdAt: 0 },
      }).start(),
    );
  }
  const bareMs = performance.now() - t1;
  return { systemMs, bareMs, heapPerTracker };
}

const arg = process.argv[2];
if (arg) {
  process.stdout.write(JSON.stringify(await measure(Number(arg))));
} else {
  const sizes = [10_000, 100_000];
  const runs = Number(process.env.BENCH_RUNS ?? 3);
  const self = fileURLToPath(import.meta.url);
  const rows = sizes.map((n) => {
    let best: { systemMs: number; bareMs: number; heapPerTracker: number } | undefined;
    for (let r = 0; r < runs; r++) {
      const out = execFileSync(process.execPath, ['--expose-gc', '--import', 'tsx', self, String(n)], {
        encoding: 'utf8',
        maxBuffer: 1 << 20,
      });
      const m = JSON.parse(out) as { systemMs: number; bareMs: number; heapPerTracker: number };
      if (!best || m.systemMs < best.systemMs) best = m;
    }
    return { n, ...best! };
  });
  const base = rows[0]!;
  console.log(
    `bench:core — start N trackers through system.start on the service path (DATABASE_URL=memory:), best of ${runs}, fresh process each, Node ${process.version}`,
  );
  console.log(
    '| trackers | total | per tracker | vs 10,000 | heap per tracker | floor: plain createActor per tracker | ours ÷ floor |',
  );
  console.log('|---:|---:|---:|---:|---:|---:|---:|');
  for (const r of rows) {
    const per = (r.systemMs * 1000) / r.n;
    const basePer = (base.systemMs * 1000) / base.n;
    console.log(
      `| ${r.n.toLocaleString('en-US')} | ${(r.systemMs / 1000).toFixed(2)} s | ${per.toFixed(1)} µs | ${(per / basePer).toFixed(2)}× | ${(r.heapPerTracker / 1024).toFixed(2)} KB | ${((r.bareMs * 1000) / r.n).toFixed(1)} µs | ${(r.systemMs / r.bareMs).toFixed(2)}× |`,
    );
  }
}
