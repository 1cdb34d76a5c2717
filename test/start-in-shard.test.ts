import { describe, expect, it } from 'vitest';
import { createActor, fromPromise } from 'xstate';
import {
  type RestoreTrackerInput,
  type RestoreTrackerOutput,
  type SupervisorRef,
  type TrackerRef,
  type TrackerSpawn,
  supervisorMachine,
} from '../machines/supervisor.machine.js';
import { startInShard, withFixedChildEvents } from '../machines/xstate-adaptations.js';
import { createTrackerSystem } from '../src/runtime/system.js';
import { MemoryStore } from '../src/store/memory.js';
import { hashOf } from './helpers.js';

// The runtime applies a shard's START itself (`startInShard`) instead of sending the event. The
// shard must end up exactly as XState's START transition leaves it: the same trackers registered,
// the runtime told of each before any starts, each started, old snapshots untouched; and it must
// step aside whenever XState would have to queue the event.

const spawn = (n: number): TrackerSpawn => ({
  id: `t${n}`,
  input: { id: `t${n}`, txHash: hashOf(n), chainId: 1, requiredConfirmations: 2, createdAt: 1_000 },
});

/** A shard whose restore task never ends (a crashed tracker stays `restarting`), and its log. */
function shard(): { ref: SupervisorRef; log: string[]; spawned: (id: string, ref: TrackerRef) => void } {
  const log: string[] = [];
  // The runtime hears of each tracker before it starts (it attaches persistence first).
  const spawned = (id: string, tracker: TrackerRef) => {
    log.push(`spawned ${id}`);
    // An observer without an error handler would make a crash an unhandled error.
    tracker.subscribe({ next: () => log.push(`snapshot ${id}`), error: () => {} });
  };
  const logic = supervisorMachine.provide({
    actors: {
      restoreTracker: fromPromise<RestoreTrackerOutput, RestoreTrackerInput>(() => new Promise(() => {})),
    },
    actions: { trackerSpawned: ({ context }, { id }) => spawned(id, context.trackers.get(id)!) },
  });
  const ref = createActor(withFixedChildEvents(logic), { input: { shard: 0 } }).start();
  return { ref, log, spawned };
}

/** What can be observed of a shard: its registry, restarting ids, and each tracker's snapshot. */
function observed(ref: SupervisorRef) {
  const { context, status } = ref.getSnapshot();
  return {
    status,
    restarting: Object.keys(context.restarting).sort(),
    trackers: [...context.trackers.entries()]
      .map(([id, tracker]) => ({ id, parent: tracker._parent === ref, snapshot: tracker.getPersistedSnapshot() }))
      .sort((a, b) => a.id.localeCompare(b.id)),
  };
}

describe('startInShard applies START as the shard machine does', () => {
  it('registers, announces and starts the same trackers as the event', () => {
    const byEvent = shard();
    const direct = shard();
    const steps: TrackerSpawn[][] = [
      [spawn(1), spawn(2), spawn(1)], // a duplicate inside one START
      [spawn(2), spawn(3)], // an id already registered
      [],
      [spawn(4), spawn(5), spawn(6)],
    ];
    for (const spawns of steps) {
      const before = direct.ref.getSnapshot();
      const registryBefore = [...before.context.trackers.keys()];
      byEvent.ref.send({ type: 'START', trackers: spawns });
      expect(startInShard(direct.ref, spawns, direct.spawned)).toBe(true);
      expect(observed(direct.ref)).toEqual(observed(byEvent.ref));
      expect(direct.log).toEqual(byEvent.log);
      // A snapshot read before keeps its registry, as after an XState assign.
      expect([...before.context.trackers.keys()]).toEqual(registryBefore);
    }
    expect(direct.log.slice(-6)).toEqual([
      'spawned t4',
      'spawned t5',
      'spawned t6',
      'snapshot t4',
      'snapshot t5',
      'snapshot t6',
    ]);
    expect(observed(direct.ref).trackers.map((t) => t.id)).toEqual(['t1', 't2', 't3', 't4', 't5', 't6']);
  });

  it('skips a tracker that crashed and waits for its restart, as the event does', () => {
    const byEvent = shard();
    const direct = shard();
    for (const { ref } of [byEvent, direct]) {
      ref.send({ type: 'START', trackers: [spawn(1)] });
      ref.getSnapshot().context.trackers.get('t1')!.send({ type: 'CRASH' });
      expect(ref.getSnapshot().context.restarting).toEqual({ t1: true });
    }
    byEvent.ref.send({ type: 'START', trackers: [spawn(1), spawn(2)] });
    expect(startInShard(direct.ref, [spawn(1), spawn(2)], direct.spawned)).toBe(true);
    expect(observed(direct.ref)).toEqual(observed(byEvent.ref));
    expect(observed(direct.ref).trackers.map((t) => t.id)).toEqual(['t2']);
  });

  it('a crash of a tracker started this way reaches its shard', () => {
    const direct = shard();
    startInShard(direct.ref, [spawn(1)], direct.spawned);
    direct.ref.getSnapshot().context.trackers.get('t1')!.send({ type: 'CRASH' });
    expect(observed(direct.ref)).toMatchObject({ restarting: ['t1'], trackers: [] });
  });

  it('steps aside for a shard that is stopped or busy with an event', () => {
    const stopped = shard();
    stopped.ref.send({ type: 'SHUTDOWN' });
    expect(startInShard(stopped.ref, [spawn(1)], stopped.spawned)).toBe(false);
    expect(stopped.log).toEqual([]);

    // Inside the shard's own step (one of its actions runs): the event would be queued behind it.
    let answer: boolean | undefined;
    const logic = supervisorMachine.provide({
      actions: {
        trackerSpawned: () => {
          answer ??= startInShard(inner, [spawn(9)], () => {});
        },
      },
    });
    const inner: SupervisorRef = createActor(withFixedChildEvents(logic), { input: { shard: 1 } }).start();
    inner.send({ type: 'START', trackers: [spawn(1)] });
    expect(answer).toBe(false);
    expect([...inner.getSnapshot().context.trackers.keys()]).toEqual(['t1']);
  });
});

describe('the runtime', () => {
  it('starts trackers without a START event unless inspected, and with one when it is', async () => {
    for (const inspected of [false, true]) {
      const events: string[] = [];
      const system = await createTrackerSystem({
        store: new MemoryStore(),
        ...(inspected
          ? {
              inspect: (e) => {
                if (e.type === '@xstate.event' && (e.event as { type: string }).type === 'START') events.push('START');
              },
            }
          : {}),
      });
      try {
        const results = await system.startMany([{ txHash: hashOf(1) }, { txHash: hashOf(2) }]);
        expect(results.map((r) => r.status)).toEqual(['started', 'started']);
        expect(system.lookup(hashOf(1))?.getSnapshot().status).toBe('active');
        expect(events.length > 0).toBe(inspected);
      } finally {
        await system.shutdown();
      }
    }
  });
});
