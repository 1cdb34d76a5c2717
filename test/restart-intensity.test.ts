import { describe, expect, it } from 'vitest';
import { recentCrashes, restartDelay, DEFAULT_RESTART_POLICY } from '../machines/supervisor.machine.js';
import { MemoryStore } from '../src/store/memory.js';
import { createTrackerSystem, type TrackerSystem } from '../src/runtime/system.js';
import type { TrackerRef } from '../machines/supervisor.machine.js';
import { waitUntil } from './support/wait.js';

const hashOf = (i: number): string => `0x${i.toString(16).padStart(64, '0')}`;

async function crashAndWaitForRestart(
  system: TrackerSystem,
  id: string,
): Promise<{ ref: TrackerRef | undefined; ms: number }> {
  const before = system.lookup(id);
  const t0 = performance.now();
  await system.send(id, { type: 'CRASH' });
  await waitUntil(() => system.stats().restarting === 0, `${id} to be restarted or given up`);
  const ref = system.lookup(id);
  if (ref) expect(ref).not.toBe(before);
  return { ref, ms: performance.now() - t0 };
}

describe('restart intensity is per tracker', () => {
  it('a crash-looping tracker ends in failed/crash_loop and none of its 1,000 siblings notice (the BEAM default takes them all down)', async () => {
    const store = new MemoryStore();
    const system = await createTrackerSystem({
      store,
      faultInjection: true,
      restartPolicy: { maxRestarts: 3, restartWindowMs: 60_000, backoffBaseMs: 5, backoffMaxMs: 50 },
    });
    const siblings = [];
    for (let i = 0; i < 1000; i++) siblings.push({ id: `sibling-${i}`, txHash: hashOf(i) });
    await system.startMany(siblings);
    await system.start('bad', { txHash: hashOf(99_999) });
    const refs = siblings.map((s) => system.lookup(s.id));

    for (let crash = 1; crash <= 3; crash++) {
      const { ref } = await crashAndWaitForRestart(system, 'bad');
      expect(ref?.getSnapshot().context.restarts).toBe(crash);
    }
    const { ref } = await crashAndWaitForRestart(system, 'bad');
    expect(ref).toBeUndefined();
    await waitUntil(async () => (await store.get('bad'))?.state === 'failed', 'the crash loop to be persisted');
    expect(await system.get('bad')).toMatchObject({
      state: 'failed',
      restarts: 3,
      failure: { reason: 'crash_loop', detail: 'crashed 4 times within 60000 ms' },
    });
    expect(system.stats()).toMatchObject({ live: 1000, restarting: 0, shardChildren: 1000, crashLoops: 1 });
    siblings.forEach((s, i) => {
      expect(system.lookup(s.id)).toBe(refs[i]);
      expect(refs[i]!.getSnapshot().status).toBe('active');
    });
    await system.shutdown();
  });

  it('backs off between restarts: the first is immediate, later ones wait longer and longer', async () => {
    const system = await createTrackerSystem({
      store: new MemoryStore(),
      faultInjection: true,
      restartPolicy: { maxRestarts: 5, backoffBaseMs: 60, backoffMaxMs: 1_000 },
    });
    await system.start('flaky', { txHash: hashOf(1) });
    await crashAndWaitForRestart(system, 'flaky');
    const second = await crashAndWaitForRestart(system, 'flaky');
    const third = await crashAndWaitForRestart(system, 'flaky');
    // Timers never fire early, so these lower bounds hold however loaded the machine is.
    expect(second.ms).toBeGreaterThanOrEqual(60);
    expect(third.ms).toBeGreaterThanOrEqual(120);
    await system.shutdown();
  });

  it('forgets crashes older than the window', async () => {
    let now = 1_000_000;
    const system = await createTrackerSystem({
      store: new MemoryStore(),
      faultInjection: true,
      now: () => now,
      restartPolicy: { maxRestarts: 2, restartWindowMs: 10_000, backoffBaseMs: 1, backoffMaxMs: 1 },
    });
    await system.start('steady', { txHash: hashOf(2) });
    for (let crash = 1; crash <= 8; crash++) {
      const { ref } = await crashAndWaitForRestart(system, 'steady');
      expect(ref?.getSnapshot().context.restarts).toBe(crash);
      now += 5_001; // two crashes per window at most
    }
    await system.shutdown();
  });

  it('computes delays and windows as documented', () => {
    const policy = { ...DEFAULT_RESTART_POLICY, backoffBaseMs: 100, backoffMaxMs: 1_000 };
    expect([1, 2, 3, 4, 5, 6].map((n) => restartDelay(n, policy))).toEqual([0, 100, 200, 400, 800, 1_000]);
    expect(recentCrashes([1, 50, 90], 100, 60)).toEqual([50, 90, 100]);
    expect(recentCrashes(undefined, 5, 60)).toEqual([5]);
  });
});
