import { type ActorRefFrom, type AnyActorRef, enqueueActions, fromPromise, setup, stopChild } from 'xstate';
import {
  type SupervisionFailureReason,
  type TrackerContext,
  type TrackerInput,
  type TrackerMachine,
  trackerMachine,
} from './tracker.machine.js';
import { TrackerRegistry, createTracker } from './xstate-adaptations.js';

export type TrackerRef = ActorRefFrom<TrackerMachine>;

/** A tracker's persisted snapshot, as `getPersistedSnapshot()` returns it and a store keeps it. */
export type PersistedTracker = ReturnType<TrackerMachine['getPersistedSnapshot']> & {
  value: unknown;
  context: TrackerContext;
};

export interface RestartPolicy {
  /** More crashes than this within `restartWindowMs` and the tracker is failed with `crash_loop`. */
  maxRestarts: number;
  restartWindowMs: number;
  /** Delay before the second restart in a window; it doubles with each further one. */
  backoffBaseMs: number;
  backoffMaxMs: number;
}

export const DEFAULT_RESTART_POLICY: RestartPolicy = {
  maxRestarts: 5,
  restartWindowMs: 60_000,
  backoffBaseMs: 100,
  backoffMaxMs: 5_000,
};

export interface SupervisorInput {
  shard: number;
  policy?: Partial<RestartPolicy>;
  /** The tracker logic to spawn and restore, with the runtime's effects provided. */
  trackerLogic?: TrackerMachine;
  /** Injected clock (epoch ms), so that restart intensity is testable. */
  now?: () => number;
}

export interface SupervisorContext {
  shard: number;
  /** The registry: tracker id → the live actor for it (immutable: replaced on change). */
  trackers: TrackerRegistry;
  /** Ids that crashed and wait for their restart (or for being given up). */
  restarting: Record<string, true>;
  /** Recent crash times per id, within the restart window. */
  crashes: Record<string, number[]>;
  policy: RestartPolicy;
  trackerLogic: TrackerMachine;
  now: () => number;
}

export interface RestoreTrackerInput {
  id: string;
  /** Wait this long first (restart back-off). */
  delayMs: number;
}
export interface RestoreTrackerOutput {
  id: string;
  /** The last durable snapshot, or null when the store has none. */
  snapshot: PersistedTracker | null;
}
export interface GiveUpInput {
  id: string;
  reason: SupervisionFailureReason;
  detail: string;
}

/** A tracker to spawn: a new one from its input, or one brought back from a stored snapshot. */
export type TrackerSpawn = { id: string; input: TrackerInput } | { id: string; snapshot: PersistedTracker };

export type SupervisorEvent =
  /**
   * Spawn and register trackers. One event may carry many: XState copies the registry and the
   * children once per transition, so a batch costs one copy instead of one per tracker.
   */
  | { type: 'START'; trackers: readonly TrackerSpawn[] }
  | { type: 'STOP_TRACKER'; id: string }
  /** A tracker reached a terminal state (the runtime saw it persisted): deregister and stop it. */
  | { type: 'TRACKER_ENDED'; id: string }
  | { type: 'SHUTDOWN' }
  /**
   * The shard is no longer this process's to run (its lease was handed back or lost): stop its
   * trackers without writing anything, tell the runtime which ones left, and end.
   */
  | { type: 'RELEASE' }
  /**
   * A child (tracker or restore/give-up task) failed / finished. XState names these events after
   * the child (`xstate.error.actor.<id>`, `xstate.done.actor.<id>`) and caches the transitions
   * it looked up for every event type on the machine's state nodes, for good: memory per crashed
   * tracker id. `withFixedChildEvents` hands the machine these two fixed types instead.
   */
  | {
      type: 'CHILD_FAILED';
      actorId: string;
      error: unknown;
      /**
       * For a failed tracker, when the runtime could read the store at once: its last durable
       * snapshot (null: none that can run). An immediate restart then needs no restore task.
       */
      stored?: PersistedTracker | null;
    }
  | { type: 'CHILD_DONE'; actorId: string; output: unknown };

const RESTORE_PREFIX = 'restore/';
const GIVE_UP_PREFIX = 'giveup/';

const without = <T>(record: Record<string, T>, key: string): Record<string, T> => {
  const { [key]: _dropped, ...rest } = record;
  return rest;
};

/** The part of `enqueueActions`' queue that `register` uses. */
interface RegisterQueue {
  assign(assignment: { trackers: (args: { self: AnyActorRef; context: SupervisorContext }) => TrackerRegistry }): void;
  (
    action: { type: 'trackerSpawned'; params: { id: string } } | { type: 'startTrackers'; params: { ids: string[] } },
  ): void;
}

/**
 * The spawns `START` creates trackers for: ids neither registered nor restarting, each once.
 * Shared with `startInShard` (machines/xstate-adaptations.ts), which applies `START` without
 * XState's macrostep.
 */
export function freshSpawns(context: SupervisorContext, spawns: readonly TrackerSpawn[]): Map<string, TrackerSpawn> {
  const fresh = new Map<string, TrackerSpawn>();
  for (const s of spawns) {
    if (!context.trackers.has(s.id) && !(s.id in context.restarting) && !fresh.has(s.id)) fresh.set(s.id, s);
  }
  return fresh;
}

/**
 * Create trackers into the registry in one assignment (ids already registered or restarting are
 * skipped: never a duplicate), let the runtime attach persistence to each, then start them.
 */
function register(enqueue: RegisterQueue, context: SupervisorContext, spawns: readonly TrackerSpawn[]): void {
  const fresh = freshSpawns(context, spawns);
  if (fresh.size === 0) return;
  enqueue.assign({
    trackers: ({ self, context: current }) =>
      current.trackers.with(
        [...fresh.values()].map((s) => [s.id, createTracker(current.trackerLogic, s, self)] as const),
      ),
  });
  for (const id of fresh.keys()) enqueue({ type: 'trackerSpawned', params: { id } });
  enqueue({ type: 'startTrackers', params: { ids: [...fresh.keys()] } });
}

/** A stored snapshot brought back after a crash: one more restart. */
const revive = (snapshot: PersistedTracker, now: number): PersistedTracker => ({
  ...snapshot,
  context: { ...snapshot.context, restarts: snapshot.context.restarts + 1, updatedAt: now },
});

/** Crash times still inside the window, this crash included. */
export function recentCrashes(times: readonly number[] | undefined, now: number, windowMs: number): number[] {
  return [...(times ?? []).filter((t) => now - t < windowMs), now];
}

/** The first restart in a window is immediate; later ones back off exponentially. */
export function restartDelay(crashesInWindow: number, policy: RestartPolicy): number {
  if (crashesInWindow <= 1) return 0;
  return Math.min(policy.backoffMaxMs, policy.backoffBaseMs * 2 ** (crashesInWindow - 2));
}

/**
 * One shard of the registry: like a DynamicSupervisor with its Registry, for about a hundred
 * trackers. It spawns trackers, re-spawns a crashed one from its last durable snapshot (with
 * back-off and a per-tracker restart intensity), gives up on a crash loop and deregisters trackers
 * that finish. The durable-snapshot reads and writes are actors the runtime provides.
 *
 * @example
 * const shard = createActor(supervisorMachine.provide({ actors: { restoreTracker, giveUpTracker } }), {
 *   input: { shard: 0 },
 * }).start();
 * shard.send({ type: 'START', trackers: [{ id: 'txn_1', input: { id: 'txn_1', txHash, requiredConfirmations: 12, createdAt } }] });
 */
export const supervisorMachine = setup({
  types: {
    context: {} as SupervisorContext,
    events: {} as SupervisorEvent,
    input: {} as SupervisorInput,
  },
  actors: {
    // Provided by the runtime: wait `delayMs`, then read the tracker's last durable snapshot.
    restoreTracker: fromPromise<RestoreTrackerOutput, RestoreTrackerInput>(async ({ input }) => ({
      id: input.id,
      snapshot: null,
    })),
    // Provided by the runtime: persist the tracker as failed (crash loop) and report it.
    giveUpTracker: fromPromise<void, GiveUpInput>(async () => {}),
  },
  actions: {
    // Provided by the runtime: attach persistence to a new or restored tracker (it is in
    // `context.trackers.get(id)` by then).
    trackerSpawned: (_, _params: { id: string }) => {},
    // Not provided by the runtime: start trackers `register` created (and the runtime attached to).
    startTrackers: ({ context }, { ids }: { ids: string[] }) => {
      for (const id of ids) context.trackers.get(id)?.start();
    },
    // Provided by the runtime: logs and metrics.
    trackerCrashed: (_, _params: { id: string; error: unknown; crashes: number; delayMs: number }) => {},
    trackerFinished: (_, _params: { id: string }) => {},
    trackerGivenUp: (_, _params: { id: string }) => {},
    // Provided by the runtime: these trackers left with their shard (now run elsewhere).
    trackersReleased: (_, _params: { ids: string[] }) => {},
    restoreFailed: (_, _params: { id: string; error: unknown }) => {},
  },
  guards: {
    isRegistered: ({ context, event }) => event.type === 'TRACKER_ENDED' && context.trackers.has(event.id),
    isLiveTracker: ({ context, event }) => event.type === 'CHILD_FAILED' && context.trackers.has(event.actorId),
    isRestore: ({ event }) => 'actorId' in event && event.actorId.startsWith(RESTORE_PREFIX),
    isGiveUp: ({ event }) => 'actorId' in event && event.actorId.startsWith(GIVE_UP_PREFIX),
  },
}).createMachine({
  id: 'supervisor',
  context: ({ input }) => ({
    shard: input.shard,
    trackers: TrackerRegistry.EMPTY,
    restarting: {},
    crashes: {},
    policy: { ...DEFAULT_RESTART_POLICY, ...input.policy },
    trackerLogic: input.trackerLogic ?? trackerMachine,
    now: input.now ?? Date.now,
  }),
  initial: 'running',
  states: {
    running: {
      on: {
        // Already running (or coming back) ids are skipped: never a duplicate, like
        // {:error, {:already_started, pid}}.
        START: {
          actions: enqueueActions(({ context, event, enqueue }) => register(enqueue, context, event.trackers)),
        },
        // Reached a terminal state (or stopped on purpose): deregister and free it at once.
        TRACKER_ENDED: {
          guard: 'isRegistered',
          actions: enqueueActions(({ context, event, enqueue }) => {
            enqueue(stopChild(context.trackers.get(event.id)!));
            enqueue.assign({
              trackers: context.trackers.without(event.id),
              crashes: without(context.crashes, event.id),
            });
            enqueue({ type: 'trackerFinished', params: { id: event.id } });
          }),
        },
        STOP_TRACKER: {
          actions: enqueueActions(({ context, event, enqueue }) => {
            const ref = context.trackers.get(event.id);
            if (ref) enqueue.sendTo(ref, { type: 'STOP', at: context.now() });
          }),
        },
        CHILD_FAILED: [
          {
            guard: 'isLiveTracker',
            actions: enqueueActions(({ context, event, enqueue }) => {
              const id = event.actorId;
              const now = context.now();
              const crashes = recentCrashes(context.crashes[id], now, context.policy.restartWindowMs);
              const givingUp = crashes.length > context.policy.maxRestarts;
              const delayMs = givingUp ? 0 : restartDelay(crashes.length, context.policy);
              // The durable snapshot came with the failure (a store that reads at once): an
              // immediate restart happens in this same step, with no restore task.
              const stored = !givingUp && delayMs === 0 ? event.stored : undefined;
              // XState has stopped the failed actor already; stopping it as its parent is a no-op
              // that keeps the rule simple: every tracker leaves through stopChild.
              enqueue(stopChild(context.trackers.get(id)!));
              const trackers = context.trackers.without(id);
              enqueue.assign({
                trackers,
                restarting: stored === undefined ? { ...context.restarting, [id]: true } : context.restarting,
                crashes: stored === null ? without(context.crashes, id) : { ...context.crashes, [id]: crashes },
              });
              enqueue({
                type: 'trackerCrashed',
                params: { id, error: event.error, crashes: crashes.length, delayMs },
              });
              if (stored === null) {
                enqueue({ type: 'restoreFailed', params: { id, error: new Error(`no stored snapshot for ${id}`) } });
              } else if (stored !== undefined) {
                register(enqueue, { ...context, trackers }, [{ id, snapshot: revive(stored, now) }]);
              } else if (givingUp) {
                enqueue.spawnChild('giveUpTracker', {
                  id: GIVE_UP_PREFIX + id,
                  input: {
                    id,
                    reason: 'crash_loop',
                    detail: `crashed ${crashes.length} times within ${context.policy.restartWindowMs} ms`,
                  },
                });
              } else {
                enqueue.spawnChild('restoreTracker', { id: RESTORE_PREFIX + id, input: { id, delayMs } });
              }
            }),
          },
          {
            // The store could not be read: count it as one more crash of that tracker.
            guard: 'isRestore',
            actions: enqueueActions(({ context, event, enqueue }) => {
              const id = event.actorId.slice(RESTORE_PREFIX.length);
              const now = context.now();
              const crashes = recentCrashes(context.crashes[id], now, context.policy.restartWindowMs);
              enqueue(stopChild(event.actorId));
              enqueue.assign({ crashes: { ...context.crashes, [id]: crashes } });
              enqueue({ type: 'restoreFailed', params: { id, error: event.error } });
              enqueue.spawnChild('restoreTracker', {
                id: RESTORE_PREFIX + id,
                input: {
                  id,
                  delayMs: Math.max(context.policy.backoffBaseMs, restartDelay(crashes.length, context.policy)),
                },
              });
            }),
          },
          {
            guard: 'isGiveUp',
            actions: enqueueActions(({ context, event, enqueue }) => {
              const id = event.actorId.slice(GIVE_UP_PREFIX.length);
              enqueue(stopChild(event.actorId));
              enqueue.assign({ restarting: without(context.restarting, id), crashes: without(context.crashes, id) });
              enqueue({ type: 'restoreFailed', params: { id, error: event.error } });
            }),
          },
        ],
        CHILD_DONE: [
          {
            guard: 'isRestore',
            actions: enqueueActions(({ context, event, enqueue }) => {
              const { id, snapshot } = event.output as RestoreTrackerOutput;
              enqueue(stopChild(event.actorId));
              if (snapshot === null) {
                enqueue.assign({ restarting: without(context.restarting, id), crashes: without(context.crashes, id) });
                enqueue({ type: 'restoreFailed', params: { id, error: new Error(`no stored snapshot for ${id}`) } });
                return;
              }
              const rest = without(context.restarting, id);
              enqueue.assign({ restarting: rest });
              register(enqueue, { ...context, restarting: rest }, [{ id, snapshot: revive(snapshot, context.now()) }]);
            }),
          },
          {
            guard: 'isGiveUp',
            actions: enqueueActions(({ context, event, enqueue }) => {
              const id = event.actorId.slice(GIVE_UP_PREFIX.length);
              enqueue(stopChild(event.actorId));
              enqueue.assign({ restarting: without(context.restarting, id), crashes: without(context.crashes, id) });
              enqueue({ type: 'trackerGivenUp', params: { id } });
            }),
          },
        ],
        SHUTDOWN: {
          target: 'stopped',
          // Trackers are not XState children of the shard (see createTracker): stopped here.
          actions: enqueueActions(({ context, enqueue }) => {
            for (const ref of context.trackers.values()) enqueue(stopChild(ref));
          }),
        },
        // Like SHUTDOWN, and the runtime forgets the trackers (restarting ones too: their restore
        // tasks end with the shard), so another owner can run them.
        RELEASE: {
          target: 'stopped',
          actions: enqueueActions(({ context, enqueue }) => {
            for (const ref of context.trackers.values()) enqueue(stopChild(ref));
            const ids = [...context.trackers.keys(), ...Object.keys(context.restarting)];
            enqueue({ type: 'trackersReleased', params: { ids } });
          }),
        },
      },
    },
    // Ending the supervisor stops its remaining tasks (XState children).
    stopped: { type: 'final' },
  },
});

export type SupervisorMachine = typeof supervisorMachine;

export type SupervisorRef = ActorRefFrom<SupervisorMachine>;
