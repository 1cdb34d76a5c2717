/**
 * The 1% block of bench:scale, repeated, for a CPU profile: N trackers on the service path (or the
 * plain floor), 99% mined, then BLOCKS blocks that each move the same 1% (TX_MINED, then
 * BLOCK_REORGED back, so that every block is 1,000 real transitions made durable). Writes the time
 * windows of the TX_MINED blocks (µs, the profiler's clock) to <dir>/windows.json for
 * bench/profile-top.ts.
 *
 * node --cpu-prof --cpu-prof-dir=<dir> --cpu-prof-interval 200 --expose-gc --import tsx \
 *   bench/scale/profile-block.ts <service|floor> <N> <BLOCKS> <dir>
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TrackerEvent } from '../../machines/tracker.machine.js';
import { type PlainActor, type PlainRow, openPlainFloor, plainActor, plainRow, plainSend } from '../plain-floor.js';
import { startServicePath } from '../service-path.js';

const [kind = 'service', size = '100000', count = '20', out = '.tmp/prof'] = process.argv.slice(2);
/** Every block is block 102: a higher head would bring the 99% mined at 100 to their confirmations. */
const BLOCK = 102;
const n = Number(size);
const blocks = Number(count);
const hashOf = (i: number): string => `0x${i.toString(16).padStart(64, '0')}`;
const idOf = (i: number): string => `txn_${i}`;
const mined = (block: number): TrackerEvent => ({
  type: 'TX_MINED',
  blockNumber: block,
  blockHash: hashOf(block),
  status: 'success',
  head: block,
});
const reorged = (block: number): TrackerEvent => ({ type: 'BLOCK_REORGED', blockHash: hashOf(block) });
/** The profiler's clock: CLOCK_MONOTONIC in µs, as `process.hrtime`. */
const nowUs = (): number => Number(process.hrtime.bigint() / 1000n);

const dir = mkdtempSync(join(tmpdir(), 'bench-profile-'));
const windows: Array<{ from: number; to: number; deliverMs: number; durableMs: number }> = [];

if (kind === 'service') {
  const service = await startServicePath({ databasePath: join(dir, 'trackers.db') });
  const { system, store } = service;
  for (let i = 0; i < n; i += 10_000) {
    const requests = [];
    for (let j = i; j < Math.min(n, i + 10_000); j++) requests.push({ id: idOf(j), txHash: hashOf(j) });
    await system.startMany(requests);
  }
  for (let i = 0; i < n; i++) if (i % 100 !== 0) system.deliver(idOf(i), mined(100));
  await store.flush();
  system.newHead(101);
  for (let b = 0; b < blocks; b++) {
    const block = BLOCK;
    const from = nowUs();
    for (let i = 0; i < n; i += 100) system.deliver(idOf(i), mined(block));
    system.newHead(block);
    const deliverMs = (nowUs() - from) / 1000;
    await store.flush();
    const to = nowUs();
    windows.push({ from, to, deliverMs, durableMs: (to - from) / 1000 });
    for (let i = 0; i < n; i += 100) system.deliver(idOf(i), reorged(block));
    await store.flush();
  }
  await service.stop();
} else {
  const floor = openPlainFloor(join(dir, 'floor.db'));
  const actors: PlainActor[] = [];
  for (let i = 0; i < n; i += 10_000) {
    const rows: PlainRow[] = [];
    for (let j = i; j < Math.min(n, i + 10_000); j++) rows.push(plainRow((actors[j] = plainActor(idOf(j), hashOf(j)))));
    floor.commit(rows);
  }
  for (let i = 0; i < n; i += 10_000) {
    const rows: PlainRow[] = [];
    for (let j = i; j < Math.min(n, i + 10_000); j++) {
      if (j % 100 !== 0) plainSend(actors[j]!, mined(100));
      rows.push(plainRow(actors[j]!));
    }
    floor.commit(rows);
  }
  for (let b = 0; b < blocks; b++) {
    const block = BLOCK;
    const from = nowUs();
    const rows: PlainRow[] = [];
    for (let i = 0; i < n; i += 100) plainSend(actors[i]!, mined(block));
    const deliverMs = (nowUs() - from) / 1000;
    for (let i = 0; i < n; i += 100) rows.push(plainRow(actors[i]!));
    floor.commit(rows);
    const to = nowUs();
    windows.push({ from, to, deliverMs, durableMs: (to - from) / 1000 });
    const back: PlainRow[] = [];
    for (let i = 0; i < n; i += 100) {
      plainSend(actors[i]!, reorged(block));
      back.push(plainRow(actors[i]!));
    }
    floor.commit(back);
    await new Promise((resolve) => setImmediate(resolve));
  }
  floor.close();
}
rmSync(dir, { recursive: true, force: true });
mkdirSync(out, { recursive: true });
writeFileSync(join(out, 'windows.json'), JSON.stringify(windows));
const median = (values: number[]) => [...values].sort((a, b) => a - b)[values.length >> 1]!;
process.stdout.write(
  `${kind} ${n}: ${blocks} blocks, delivered median ${median(windows.map((w) => w.deliverMs)).toFixed(1)} ms, ` +
    `durable median ${median(windows.map((w) => w.durableMs)).toFixed(1)} ms\n`,
);
process.exit(0);
