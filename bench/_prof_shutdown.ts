import { createTrackerSystem } from '../src/runtime/system.js';
import { MemoryStore } from '../src/store/memory.js';
const hashOf = (i: number) => `0x${i.toString(16).padStart(64, '0')}`;
const N = Number(process.argv[2] ?? 30000);
const system = await createTrackerSystem({ store: new MemoryStore() });
for (let i = 0; i < N; i += 1000) {
  const reqs = [];
  for (let j = i; j < Math.min(N, i + 1000); j++) reqs.push({ id: `txn_${j}`, txHash: hashOf(j) });
  await system.startMany(reqs);
}
const { Session } = await import('node:inspector/promises');
const session = new Session(); session.connect();
await session.post('Profiler.enable'); await session.post('Profiler.start');
const s0 = performance.now(); await system.shutdown(); console.log('shutdown', N, (performance.now() - s0).toFixed(0), 'ms');
const { profile } = await session.post('Profiler.stop');
const { writeFileSync, mkdirSync } = await import('node:fs');
mkdirSync('/tmp/prof/cpu12', { recursive: true });
writeFileSync('/tmp/prof/cpu12/x.cpuprofile', JSON.stringify(profile));
process.exit(0);
