import { createActor } from 'xstate';
import { TestModel } from 'xstate/graph';
import {
  type PersistedTracker,
  type SupervisorContext,
  type SupervisorEvent,
  supervisorMachine,
} from '../../machines/supervisor.machine.js';
import { trackerMachine } from '../../machines/tracker.machine.js';
import { modelInput } from './tracker-model.js';

export const MODEL_ID = 'a';
/** One crash is restarted; the second within the window is a crash loop. */
export const MODEL_POLICY = { maxRestarts: 1, restartWindowMs: 60_000, backoffBaseMs: 1, backoffMaxMs: 1 };

/** A durable snapshot of tracker `a`, as a store would hand it back. */
export const savedSnapshot = (): PersistedTracker =>
  createActor(trackerMachine, { input: modelInput(MODEL_ID) }).getPersistedSnapshot() as PersistedTracker;

const restoreId = `restore/${MODEL_ID}`;
const giveUpId = `giveup/${MODEL_ID}`;

/** The events that can really reach a supervisor, named for what happens in the world. */
export const SUPERVISOR_MODEL_EVENTS = {
  start: { type: 'START', trackers: [{ id: MODEL_ID, input: modelInput(MODEL_ID) }] },
  rehydrate: { type: 'START', trackers: [{ id: MODEL_ID, snapshot: savedSnapshot() }] },
  /** The same id twice in one batch (two requests for it in one round). */
  startTwice: {
    type: 'START',
    trackers: [
      { id: MODEL_ID, input: modelInput(MODEL_ID) },
      { id: MODEL_ID, snapshot: savedSnapshot() },
    ],
  },
  trackerCrashed: { type: 'CHILD_FAILED', actorId: MODEL_ID, error: new Error('crash') },
  /** The same crash, its durable snapshot read at once by the runtime (a store that reads synchronously). */
  trackerCrashedStoredNow: {
    type: 'CHILD_FAILED',
    actorId: MODEL_ID,
    error: new Error('crash'),
    stored: savedSnapshot(),
  },
  /** The same, and the store has nothing that can run for it. */
  trackerCrashedNothingStored: { type: 'CHILD_FAILED', actorId: MODEL_ID, error: new Error('crash'), stored: null },
  trackerFinished: { type: 'TRACKER_ENDED', id: MODEL_ID },
  restoreLoaded: { type: 'CHILD_DONE', actorId: restoreId, output: { id: MODEL_ID, snapshot: savedSnapshot() } },
  restoreFoundNothing: { type: 'CHILD_DONE', actorId: restoreId, output: { id: MODEL_ID, snapshot: null } },
  restoreFailed: { type: 'CHILD_FAILED', actorId: restoreId, error: new Error('store down') },
  gaveUp: { type: 'CHILD_DONE', actorId: giveUpId, output: undefined },
  giveUpFailed: { type: 'CHILD_FAILED', actorId: giveUpId, error: new Error('store down') },
  shutdown: { type: 'SHUTDOWN' },
  /** The shard's lease was handed back or lost (several instances share the shards). */
  release: { type: 'RELEASE' },
} satisfies Record<string, SupervisorEvent>;

type ModelSnapshot = { status: string; value: unknown; context: SupervisorContext; children: Record<string, unknown> };

/** What a supervisor's state is, for tracker `a`. */
export function describeSupervisor(s: ModelSnapshot): string {
  return JSON.stringify([
    s.value,
    s.context.trackers.has(MODEL_ID),
    MODEL_ID in s.context.restarting,
    Math.min(s.context.crashes[MODEL_ID]?.length ?? 0, 3),
    Object.keys(s.children).sort(),
  ]);
}

/** Only events that can happen in that state: a crash needs a live tracker, a restore result a restore task. */
function possibleEvents(s: ModelSnapshot): SupervisorEvent[] {
  if (s.status === 'done') return [];
  const e = SUPERVISOR_MODEL_EVENTS;
  // Starts and rehydration can race a live or restarting tracker, so they are always possible.
  const events: SupervisorEvent[] = [e.start, e.rehydrate, e.startTwice, e.shutdown, e.release];
  const live = s.context.trackers.has(MODEL_ID);
  if (live) events.push(e.trackerCrashed, e.trackerCrashedStoredNow, e.trackerCrashedNothingStored, e.trackerFinished);
  if (restoreId in s.children) events.push(e.restoreLoaded, e.restoreFoundNothing, e.restoreFailed);
  if (giveUpId in s.children) events.push(e.gaveUp, e.giveUpFailed);
  return events;
}

/** The supervisor machine as a test model over one tracker id. */
export function supervisorTestModel() {
  return new TestModel(supervisorMachine, {
    input: { shard: 0, policy: MODEL_POLICY, now: () => 1_000 },
    events: (s) => possibleEvents(s as unknown as ModelSnapshot),
    // A START of a known id changes nothing; marking it keeps that case in the paths.
    serializeState: (s, event, prev) =>
      describeSupervisor(s as unknown as ModelSnapshot) +
      (prev &&
      event?.type === 'START' &&
      describeSupervisor(prev as unknown as ModelSnapshot) === describeSupervisor(s as unknown as ModelSnapshot)
        ? event.type
        : ''),
  });
}
