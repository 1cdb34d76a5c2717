/**
 * The durable floor's tracker, shared by bench:scale and bench:api: one of the runtime's tracker
 * actors (the stamped logic of machines/restore.ts, created with a parent so that all share one actor
 * system) with one observer that writes each of its snapshots to the store, and nothing else.
 */
import { createActor, createMachine } from 'xstate';
import { persistedSnapshot, stampingLogic } from '../machines/xstate-adaptations.js';
import { TRACKER_MACHINE_VERSION, trackerMachine } from '../machines/tracker.machine.js';
import { topState } from '../src/runtime/tracker-view.js';
import type { SnapshotStore } from '../src/store/types.js';

const logic = stampingLogic(trackerMachine);
export type DurableFloorTracker = ReturnType<typeof createActor<typeof logic>>;

/**
 * A function that starts such trackers; each writes its first snapshot as it starts.
 *
 * @example
 * const spawn = durableFloorTrackers(store, 12);
 * spawn('txn_1', txHash).send({ type: 'TX_SEEN' });
 * await store.flush();
 */
export function durableFloorTrackers(
  store: SnapshotStore,
  requiredConfirmations: number,
): (id: string, txHash: string) => DurableFloorTracker {
  const parent = createActor(createMachine({})).start();
  return (id, txHash) => {
    const actor = createActor(logic, {
      id,
      parent,
      input: { id, txHash, requiredConfirmations, createdAt: Date.now() },
    } as never) as DurableFloorTracker;
    actor.subscribe((snapshot) => {
      const { context } = snapshot;
      store.write({
        id,
        txHash,
        state: topState(snapshot.value),
        version: TRACKER_MACHINE_VERSION,
        snapshot: persistedSnapshot(snapshot),
        restarts: context.restarts,
        createdAt: context.createdAt,
        updatedAt: context.updatedAt,
      });
    });
    return actor.start();
  };
}
