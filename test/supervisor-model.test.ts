import { type AnyStateNode, createActor, fromPromise } from 'xstate';
import { describe, expect, it } from 'vitest';
import {
  type GiveUpInput,
  type PersistedTracker,
  type RestoreTrackerInput,
  type RestoreTrackerOutput,
  type SupervisorEvent,
  supervisorMachine,
} from '../machines/supervisor.machine.js';
import { withFixedChildEvents } from '../machines/xstate-adaptations.js';
import { edgeCoveringPaths } from './support/paths.js';
import {
  MODEL_ID,
  MODEL_POLICY,
  SUPERVISOR_MODEL_EVENTS as E,
  describeSupervisor,
  supervisorTestModel,
} from './support/supervisor-model.js';
import { allStateNodeIds, allTransitions, transitionKey } from './support/tracker-model.js';
import { inspectedActorId, waitUntil } from './support/wait.js';

interface Deferred {
  resolve: (value: never) => void;
  reject: (error: unknown) => void;
}

/**
 * A real supervisor actor with real tracker children; only the store-facing tasks (restore,
 * give up) are deferreds the test settles, so every path's events can be made to happen in order.
 */
function realSupervisor(taken: Set<string>, visited: Set<string>) {
  const pending = new Map<string, Deferred>();
  // What the runtime's synchronous store read hands the shard with the next tracker failure.
  let storedNow: PersistedTracker | null | undefined;
  const task = <O, I>() =>
    fromPromise<O, I>(
      ({ self }) => new Promise<O>((resolve, reject) => pending.set(self.id, { resolve: resolve as never, reject })),
    );
  const actor = createActor(
    withFixedChildEvents(
      supervisorMachine.provide({
        actors: {
          restoreTracker: task<RestoreTrackerOutput, RestoreTrackerInput>(),
          giveUpTracker: task<void, GiveUpInput>(),
        },
        actions: {
          // What the runtime does: a tracker seen in a terminal state is reported with TRACKER_ENDED.
          trackerSpawned: ({ context, self }, { id }) => {
            context.trackers.get(id)!.subscribe({
              next: (snapshot) => {
                if (snapshot.hasTag('terminal')) self.send({ type: 'TRACKER_ENDED', id });
              },
              error: () => {},
            });
          },
        },
      }),
      { storedNow: () => storedNow },
    ),
    {
      id: 'supervisor-under-test',
      input: { shard: 0, policy: MODEL_POLICY, now: () => 1_000 },
      inspect: (event) => {
        if (inspectedActorId(event) !== 'supervisor-under-test') return;
        if (event.type === '@xstate.microstep') {
          for (const t of event._transitions)
            taken.add(transitionKey(t as unknown as { source: AnyStateNode; eventType: string }));
        }
        if (event.type === '@xstate.snapshot') {
          for (const node of (event.snapshot as unknown as { _nodes: AnyStateNode[] })._nodes) visited.add(node.id);
        }
      },
    },
  ).start();

  const settle = (id: string, how: 'resolve' | 'reject', value?: unknown): void => {
    const deferred = pending.get(id);
    if (!deferred) throw new Error(`no ${id} task is running`);
    pending.delete(id);
    if (how === 'resolve') deferred.resolve(value as never);
    else deferred.reject(value);
  };

  /** Make the model's event happen for real. */
  const realise = (event: SupervisorEvent): void => {
    switch (event) {
      case E.trackerCrashed:
      case E.trackerCrashedStoredNow:
      case E.trackerCrashedNothingStored:
        // A real tracker fails: its action throws, XState reports it to the supervisor, with the
        // snapshot the runtime read at once when the model's event carries one.
        storedNow = 'stored' in event ? event.stored : undefined;
        actor.getSnapshot().context.trackers.get(MODEL_ID)!.send({ type: 'CRASH' });
        return;
      case E.trackerFinished:
        // A real tracker ends (stopped on purpose, a terminal state), reported as the runtime does.
        actor.send({ type: 'STOP_TRACKER', id: MODEL_ID });
        return;
      case E.restoreLoaded:
      case E.restoreFoundNothing:
        return settle(`restore/${MODEL_ID}`, 'resolve', 'output' in event ? event.output : undefined);
      case E.restoreFailed:
        return settle(`restore/${MODEL_ID}`, 'reject', new Error('store down'));
      case E.gaveUp:
        return settle(`giveup/${MODEL_ID}`, 'resolve');
      case E.giveUpFailed:
        return settle(`giveup/${MODEL_ID}`, 'reject', new Error('store down'));
      default:
        actor.send(event);
    }
  };
  return { actor, realise };
}

describe('supervisor machine, model-based', () => {
  const model = supervisorTestModel();
  const serialize = model.options.serializeState!;
  const paths = edgeCoveringPaths(model, serialize, (e) => e.type.replace('xstate.', ''));
  const taken = new Set<string>();
  const visited = new Set<string>();

  it.each(paths.map((p, i) => [i, p.description, p] as const))('path %i: %s', async (_i, _d, path) => {
    const { actor, realise } = realSupervisor(taken, visited);
    for (const step of path.steps.slice(1)) {
      realise(step.event);
      const expected = describeSupervisor(step.state as never);
      await waitUntil(
        () => describeSupervisor(actor.getSnapshot() as never) === expected,
        `supervisor to reach ${expected}`,
        5_000,
      );
      // A registered tracker is running while its supervisor is, and stopped with it.
      const ref = actor.getSnapshot().context.trackers.get(MODEL_ID);
      if (ref) expect(ref.getSnapshot().status).toBe(actor.getSnapshot().status === 'done' ? 'stopped' : 'active');
    }
    actor.stop();
  });

  it('covers every state node and every transition of the definition', () => {
    expect([...allTransitions(supervisorMachine.root)].filter((t) => !taken.has(t))).toEqual([]);
    expect([...allStateNodeIds(supervisorMachine.root)].filter((n) => !visited.has(n))).toEqual([]);
  });

  it('gives up on the second crash within the window under this policy', () => {
    const gaveUp = paths.some((p) => p.steps.some((s) => s.event === E.gaveUp));
    expect(gaveUp).toBe(true);
  });
});
