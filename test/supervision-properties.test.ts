import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { FINAL_STATE_NAMES } from '../machines/tracker.machine.js';
import { MemoryStore } from '../src/store/memory.js';
import { topState } from '../src/runtime/tracker-view.js';
import { createTrackerSystem, type TrackerSystem } from '../src/runtime/system.js';
import { waitUntil } from './support/wait.js';

const IDS = ['t0', 't1', 't2', 't3', 't4'];
const MAX_RESTARTS = 2;
const hashOf = (id: string): string => `0x${Buffer.from(id).toString('hex').padStart(64, '0')}`;

type Op = { kind: 'start' | 'advance' | 'crash' | 'stop'; id: string };
const opArb: fc.Arbitrary<Op> = fc.record({
  kind: fc.constantFrom('start', 'advance', 'crash', 'stop'),
  id: fc.constantFrom(...IDS),
});

const settle = (system: TrackerSystem): Promise<unknown> =>
  waitUntil(() => system.stats().restarting === 0, 'restarts to settle');

/** The registry, seen from outside: every id's live ref, or undefined. */
const registry = (system: TrackerSystem) => new Map(IDS.map((id) => [id, system.lookup(id)]));

async function run(ops: Op[]): Promise<void> {
  const store = new MemoryStore();
  const system = await createTrackerSystem({
    store,
    faultInjection: true,
    restartPolicy: { maxRestarts: MAX_RESTARTS, restartWindowMs: 3_600_000, backoffBaseMs: 1, backoffMaxMs: 2 },
  });
  const crashes = new Map<string, number>();
  try {
    for (const op of ops) {
      const before = registry(system);
      const ref = before.get(op.id);
      const persistedBefore = await store.get(op.id);
      switch (op.kind) {
        case 'start':
          await system.start(op.id, { txHash: hashOf(op.id), confirmations: 3 });
          break;
        case 'advance': {
          const ctx = ref?.getSnapshot().context;
          if (ctx && ctx.blockNumber === null) {
            system.deliver(op.id, {
              type: 'TX_MINED',
              blockNumber: 100,
              blockHash: `0x${'aa'.repeat(32)}`,
              status: 'success',
              head: 100,
            });
          } else if (ctx) {
            system.deliver(op.id, { type: 'NEW_HEAD', blockNumber: 100 + ctx.confirmations });
          }
          break;
        }
        case 'crash':
          if (ref) {
            await system.send(op.id, { type: 'CRASH' });
            crashes.set(op.id, (crashes.get(op.id) ?? 0) + 1);
          }
          break;
        case 'stop':
          await system.stop(op.id);
          break;
      }
      await settle(system);
      const after = registry(system);

      // No operation on one tracker touches another: every other ref is the same actor, running.
      for (const id of IDS) {
        if (id === op.id) continue;
        expect(after.get(id)).toBe(before.get(id));
        if (after.get(id)) expect(after.get(id)!.getSnapshot().status).toBe('active');
      }
      const now = after.get(op.id);
      if (op.kind === 'crash' && ref) {
        if (crashes.get(op.id)! > MAX_RESTARTS) {
          // A crash loop ends the tracker, durably, and deregisters it.
          expect(now).toBeUndefined();
          expect(await store.get(op.id)).toMatchObject({ state: 'failed' });
          expect((await system.get(op.id))?.failure?.reason).toBe('crash_loop');
        } else {
          // Lookup after a crash finds a new actor whose state is the last persisted one.
          expect(now).toBeDefined();
          expect(now).not.toBe(ref);
          const saved = persistedBefore!.snapshot as { value: unknown; context: Record<string, unknown> };
          expect(now!.getSnapshot().value).toEqual(saved.value);
          expect(now!.getSnapshot().context).toEqual({
            ...saved.context,
            restarts: (saved.context.restarts as number) + 1,
            updatedAt: now!.getSnapshot().context.updatedAt,
          });
        }
      }
      // The registry holds exactly the live trackers: a stored tracker is live iff it is not final.
      for (const id of IDS) {
        const record = await store.get(id);
        const live = after.get(id);
        expect(live !== undefined, `${id} live iff not final`).toBe(
          record !== undefined && !FINAL_STATE_NAMES.includes(record.state),
        );
        if (live) expect(record!.state).toBe(topState(live.getSnapshot().value));
      }
      // Finished trackers are gone from every shard's children.
      const stats = system.stats();
      expect(stats.shardChildren).toBe(stats.live);
      expect(stats.live).toBe([...after.values()].filter(Boolean).length);
      expect(stats.subscriptions).toBe(stats.live);
    }
  } finally {
    await system.shutdown();
  }
}

describe('supervision properties under random interleavings', () => {
  it('keep the registry exact, restarts faithful, crashes isolated and crash loops final', async () => {
    await fc.assert(fc.asyncProperty(fc.array(opArb, { minLength: 1, maxLength: 40 }), run), {
      numRuns: 60,
      // Reproducible: a failure prints its seed and shrunk counterexample.
      verbose: 1,
    });
  });
});
