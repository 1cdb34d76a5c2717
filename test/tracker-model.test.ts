import type { AnyStateNode, InspectionEvent } from 'xstate';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FINAL_STATE_NAMES, trackerMachine } from '../machines/tracker.machine.js';
import { MemoryStore } from '../src/store/memory.js';
import { type TrackerSystem, createTrackerSystem } from '../src/runtime/system.js';
import { topState } from '../src/runtime/tracker-view.js';
import { expectTrackerInvariants } from './support/invariants.js';
import {
  MODEL_HASH,
  allStateNodeIds,
  allTransitions,
  trackerTestModel,
  transitionKey,
} from './support/tracker-model.js';
import { edgeCoveringPaths } from './support/paths.js';
import { inspectedActorId, waitUntil } from './support/wait.js';

// Generated paths through the tracker machine, walked against trackers running in the real
// runtime (sharded supervisors, persistence, restarts): every step's state and context must match
// the model's, and the paths must cover every state node and transition of the definition.
describe('tracker machine, model-based', () => {
  // A tracker counted by confirmations, and one confirmed by finality: the definition's transitions
  // are covered by the two together.
  const paths = ([null, 'finalized'] as const).flatMap((finality) => {
    const model = trackerTestModel(finality);
    return edgeCoveringPaths(model, model.options.serializeState!).map((path) => ({
      ...path,
      description: `${finality ?? 'counted'}: ${path.description}`,
      finality,
    }));
  });
  const takenTransitions = new Set<string>();
  const visitedNodes = new Set<string>();
  let system: TrackerSystem;

  const observe = (event: InspectionEvent): void => {
    if (!inspectedActorId(event).startsWith('path-')) return;
    if (event.type === '@xstate.microstep') {
      for (const t of event._transitions)
        takenTransitions.add(transitionKey(t as unknown as { source: AnyStateNode; eventType: string }));
    }
    if (event.type === '@xstate.snapshot' && 'value' in event.snapshot) {
      for (const node of (event.snapshot as unknown as { _nodes: AnyStateNode[] })._nodes) visitedNodes.add(node.id);
    }
  };

  beforeAll(async () => {
    system = await createTrackerSystem({
      store: new MemoryStore(),
      faultInjection: true,
      inspect: observe,
      restartPolicy: { maxRestarts: 100, backoffBaseMs: 1, backoffMaxMs: 2 },
    });
  });
  afterAll(() => system.shutdown());

  it('generates paths to every state', () => {
    for (const finality of [null, 'finalized']) {
      const reached = new Set(
        paths.filter((p) => p.finality === finality).map((p) => topState(p.steps[p.steps.length - 1]!.state.value)),
      );
      expect([...reached].sort(), `finality ${finality}`).toEqual([
        'confirmed',
        'confirming',
        'failed',
        'pending',
        'stopped',
      ]);
    }
  });

  it.each(paths.map((p, i) => [i, p.description, p] as const))('path %i: %s', async (i, _description, path) => {
    expect(path.steps[0]!.event.type).toBe('xstate.init');
    const id = `path-${i}`;
    await system.start(id, { txHash: MODEL_HASH, confirmations: path.finality ?? 3 });
    let crashes = 0;
    for (const step of path.steps) {
      if (step.event.type === 'CRASH') {
        const before = system.lookup(id)!;
        expect((await system.send(id, { type: 'CRASH' })).status).toBe('accepted');
        crashes++;
        await waitUntil(() => {
          const now = system.lookup(id);
          return now !== undefined && now !== before;
        }, `${id} to be restarted`);
        // A transition whose action throws emits no microstep; the restart is the proof it ran.
        takenTransitions.add(`tracker.${topState(before.getSnapshot().value)}#CRASH#0`);
      } else if (step !== path.steps[0]) {
        system.deliver(id, step.event);
      }
      const expected = step.state;
      const actual = (await system.get(id))!;
      expect(actual.state).toBe(topState(expected.value));
      expect(actual).toMatchObject({
        confirmations: expected.context.confirmations,
        blockNumber: expected.context.blockNumber,
        blockHash: expected.context.blockHash,
        reorgs: expected.context.reorgs,
        replacedBy: expected.context.replacedBy,
        failure: expected.context.failure,
        requiredConfirmations: path.finality === null ? 3 : null,
        restarts: crashes,
      });
      expect(actual.stuck ?? null).toEqual(expected.context.stuck);
      expectTrackerInvariants(actual);
      const live = system.lookup(id);
      if (FINAL_STATE_NAMES.includes(actual.state)) {
        expect(live, 'a finished tracker is deregistered').toBeUndefined();
      } else {
        expect(live!.getSnapshot().value).toEqual(expected.value);
      }
    }
  });

  it('covers every state node and every transition of the definition', () => {
    const missingTransitions = [...allTransitions(trackerMachine.root)].filter((t) => !takenTransitions.has(t));
    const missingNodes = [...allStateNodeIds(trackerMachine.root)].filter((n) => !visitedNodes.has(n));
    expect(missingTransitions).toEqual([]);
    expect(missingNodes).toEqual([]);
  });

  it('leaves no finished tracker in any shard', async () => {
    await waitUntil(() => system.stats().restarting === 0, 'restarts to settle');
    const stats = system.stats();
    expect(stats.shardChildren).toBe(stats.live);
  });
});
