/**
 * Does inspection topple the service at 100,000 trackers? Starts N trackers (batches of 1,000) with
 * no inspector, with INSPECT=<prefix matching 1%>, and with INSPECT=* (rate-limited), and prints the
 * time and heap of each. `npx tsx bench/inspect-load.ts [N]`
 */
import { createInspection } from '../src/api/inspector.js';
import { createTrackerSystem } from '../src/runtime/system.js';
import { MemoryStore } from '../src/store/memory.js';

const N = Number(process.argv[2] ?? 100_000);
const hashOf = (n: number) => `0x${n.toString(16).padStart(64, '0')}`;

async function measure(label: string, filter: string | undefined) {
  const inspection = filter === undefined ? undefined : createInspection({ filter });
  const system = await createTrackerSystem({
    store: new MemoryStore(),
    ...(inspection ? { inspect: inspection.observe } : {}),
  });
  const t0 = performance.now();
  for (let i = 0; i < N; i += 1000) {
    // Ids t00000…: the prefix t00 matches 1% of them.
    await system.startMany(
      Array.from({ length: 1000 }, (_, j) => ({ id: `t${String(i + j).padStart(6, '0')}`, txHash: hashOf(i + j) })),
    );
  }
  await new Promise((resolve) => setTimeout(resolve, 100)); // let the inspector's deferred work run
  const ms = performance.now() - t0;
  const heapMb = process.memoryUsage().heapUsed / 2 ** 20;
  console.log(
    `| ${label} | ${N.toLocaleString('en-US')} | ${Math.round(ms)} | ${Math.round((N / ms) * 1000).toLocaleString('en-US')} | ${Math.round(heapMb)} | ${inspection ? JSON.stringify(inspection.view().counts) : ''} |`,
  );
  await system.shutdown();
  inspection?.stop();
}

console.log('| inspection | trackers | ms | trackers/s | heap MB | passed / filtered / dropped |');
console.log('|---|---:|---:|---:|---:|---|');
await measure('off', undefined);
await measure('INSPECT=t00 (1%)', 't00');
await measure('INSPECT=* (rate-limited 2,000/s)', '*');
