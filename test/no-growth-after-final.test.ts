import { describe, expect, it } from 'vitest';
import { createActor, fromPromise } from 'xstate';
import {
  type PersistedTracker,
  type RestoreTrackerInput,
  type RestoreTrackerOutput,
  supervisorMachine,
} from '../machines/supervisor.machine.js';
import { withFixedChildEvents } from '../machines/xstate-adaptations.js';
import { trackerMachine } from '../machines/tracker.machine.js';
import { MemoryStore } from '../src/store/memory.js';
import { createTrackerSystem } from '../src/runtime/system.js';
import { waitFor } from './helpers.js';
import { inspectedActorId } from './support/wait.js';

const hashOf = (i: number): string => `0x${i.toString(16).padStart(64, '0')}`;

// Regression: XState caches transitions per event type on a machine's state nodes, for good. When a
// tracker was an XState `final` child, every one that finished sent its shard a new event type
// (`xstate.done.actor.<id>`): ~280 bytes stayed behind per finished tracker (heap snapshot diff;
// `bench:scale` measures the memory). The shards must only ever see a fixed set of event types.
describe('finished trackers leave nothing behind', () => {
  it('shards see a fixed set of event types however many trackers finish', async () => {
    const shardEventTypes = new Set<string>();
    const system = await createTrackerSystem({
      store: new MemoryStore(),
      shardCount: 4,
      inspect: (event) => {
        if (event.type === '@xstate.event' && inspectedActorId(event).startsWith('shard-'))
          shardEventTypes.add(event.event.type);
      },
    });
    const n = 500;
    await system.startMany(Array.from({ length: n }, (_, i) => ({ id: `t${i}`, txHash: hashOf(i), confirmations: 1 })));
    for (let i = 0; i < n; i++) {
      // Half confirm, half are stopped on purpose: both are terminal.
      if (i % 2)
        system.deliver(`t${i}`, { type: 'TX_MINED', blockNumber: 1, blockHash: '0x01', status: 'success', head: 1 });
      else await system.stop(`t${i}`);
    }
    expect(system.stats()).toMatchObject({ live: 0, shardChildren: 0, subscriptions: 0 });
    expect((await system.get('t1'))?.state).toBe('confirmed');
    expect((await system.get('t0'))?.state).toBe('stopped');
    expect([...shardEventTypes].filter((type) => type.startsWith('xstate.done.actor.'))).toEqual([]);
    expect(shardEventTypes.size).toBeLessThanOrEqual(5);
    await system.shutdown();
  });

  // The same cache, through crashes: XState names a child's failure and a task's result after the
  // child (`xstate.error.actor.<id>`, `xstate.done.actor.restore/<id>`); ~600 bytes stayed behind per
  // crashed tracker id. The machine must only ever be asked to transition on a fixed set of types.
  it('a shard transitions on a fixed set of event types however many trackers crash', async () => {
    const types = new Set<string>();
    const provided = supervisorMachine.provide({
      actors: {
        restoreTracker: fromPromise<RestoreTrackerOutput, RestoreTrackerInput>(async ({ input }) => ({
          id: input.id,
          snapshot: createActor(trackerMachine, {
            input: { id: input.id, txHash: hashOf(1), chainId: 31337, requiredConfirmations: 2, createdAt: 1 },
          }).getPersistedSnapshot() as PersistedTracker,
        })),
      },
    });
    const spy = Object.create(provided) as typeof provided;
    spy.transition = (snapshot, event, scope) => {
      types.add(event.type);
      return provided.transition(snapshot, event, scope);
    };
    const shard = createActor(withFixedChildEvents(spy), { input: { shard: 0 } }).start();
    const ids = Array.from({ length: 50 }, (_, i) => `c${i}`);
    shard.send({
      type: 'START',
      trackers: ids.map((id) => ({
        id,
        input: { id, txHash: hashOf(1), chainId: 31337, requiredConfirmations: 2, createdAt: 1 },
      })),
    });
    const before = new Map(ids.map((id) => [id, shard.getSnapshot().context.trackers.get(id)]));
    for (const id of ids) before.get(id)!.send({ type: 'CRASH' });
    await waitFor(
      () =>
        ids.every((id) => {
          const ref = shard.getSnapshot().context.trackers.get(id);
          return ref !== undefined && ref !== before.get(id);
        }),
      'every crashed tracker restarted',
    );
    expect([...types].sort()).toEqual(['CHILD_DONE', 'CHILD_FAILED', 'START']);
    shard.stop();
  });
});
