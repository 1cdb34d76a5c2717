import { type ActorRefFrom, type AnyActorRef, createActor, enqueueActions, fromPromise, setup, stopChild } from 'xstate';
import {
  type SupervisionFailureReason,
  type TrackerContext,
  type TrackerInput,
  type TrackerMachine,
  trackerMachine,
} from './tracker.machine.js';

export type TrackerRef = ActorRefFrom<TrackerMachine>;

const REGISTRY_BUCKETS = 32;

/** djb2 over the id's UTF-16 code units (a different hash from the one that picks the shard). */
function bucketOf(id: string): number {
  let hash = 5381;
  for (let i = 0; i < id.length; i++) hash = (Math.imul(hash, 33) + id.charCodeAt(i)) | 0;
  return (hash >>> 0) & (REGISTRY_BUCKETS - 1);
}

/**
 * The registry, id → live tracker: immutable, so that every supervisor snapshot keeps the registry
 * it had. A change copies one of 32 small buckets (a few entries) instead of the whole registry: a
 * whole copy was ~12% of a tracker's start as an object in dictionary mode, and then ~60 µs per
 * change as a Map of ~100 entries in a process holding 100,000 trackers (CPU profiles), paid twice
 * per crash and once per tracker that ends. A change costs O(shard size / 32): sized for shards of
 * about a hundred trackers (1,024 shards at 100,000). Serialised (e.g. for the inspector) as an object.
 *
 * @example
 * const registry = TrackerRegistry.EMPTY.with([['txn_1', ref]]);
 * registry.get('txn_1'); // ref
 * registry.without('txn_1').size; // 0
 */
export class TrackerRegistry {
  static readonly EMPTY = new TrackerRegistry(new Array<ReadonlyMap<string, TrackerRef> | undefined>(REGISTRY_BUCKETS).fill(undefined), 0);

  private constructor(
    private readonly buckets: readonly (ReadonlyMap<string, TrackerRef> | undefined)[],
    readonly size: number,
  ) {}

  get(id: string): TrackerRef | undefined {
    return this.buckets[bucketOf(id)]?.get(id);
  }

  has(id: string): boolean {
    return this.buckets[bucketOf(id)]?.has(id) ?? false;
  }

  /** A registry with these entries added (or replaced); each touched bucket is copied once. */
  with(entries: Iterable<readonly [string, TrackerRef]>): TrackerRegistry {
    const buckets = this.buckets.slice();
    const copied = new Set<number>();
    let size = this.size;
    for (const [id, ref] of entries) {
      const index = bucketOf(id);
      let bucket = buckets[index] as Map<string, TrackerRef> | undefined;
      if (!copied.has(index)) {
        buckets[index] = bucket = new Map(bucket);
        copied.add(index);
      }
      if (!bucket!.has(id)) size++;
      bucket!.set(id, ref);
    }
    return copied.size === 0 ? this : new TrackerRegistry(buckets, size);
  }

  /** A registry without `id` (this one when it has no such entry). */
  without(id: string): TrackerRegistry {
    const index = bucketOf(id);
    const bucket = this.buckets[index];
    if (!bucket?.has(id)) return this;
    const next = new Map(bucket);
    next.delete(id);
    const buckets = this.buckets.slice();
    buckets[index] = next.size > 0 ? next : undefined;
    return new TrackerRegistry(buckets, this.size - 1);
  }

  *entries(): IterableIterator<[string, TrackerRef]> {
    for (const bucket of this.buckets) if (bucket) yield* bucket.entries();
  }

  *keys(): IterableIterator<string> {
    for (const bucket of this.buckets) if (bucket) yield* bucket.keys();
  }

  *values(): IterableIterator<TrackerRef> {
    for (const bucket of this.buckets) if (bucket) yield* bucket.values();
  }

  [Symbol.iterator](): IterableIterator<[string, TrackerRef]> {
    return this.entries();
  }

  toJSON(): Record<string, TrackerRef> {
    return Object.fromEntries(this.entries());
  }
}

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
   * A child (tracker or restore/give-up task) failed / finished. XState names these events after
   * the child (`xstate.error.actor.<id>`, `xstate.done.actor.<id>`) and caches the transitions
   * it looked up for every event type on the machine's state nodes, for good: ~1.3 KB per crashed
   * tracker id, measured. `withFixedChildEvents` hands the machine these two fixed types instead.
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

/**
 * A tracker created by its shard, with the shard as its parent: its failure reaches the shard as
 * `xstate.error.actor.<id>`, it shares the shard's actor system (and inspector), and only the shard
 * can stop it (`stopChild(ref)`). It is deliberately not one of XState's `children` of the shard:
 * XState copies that object on every spawn and stop, ~0.5 µs per entry once deletes have put it in
 * dictionary mode (56 µs a copy at 100 trackers, measured), which made every start, crash and end
 * cost O(shard size). The registry is where a shard's trackers live; a change copies one of its
 * buckets (`TrackerRegistry`). Started by `startTrackers`, after `trackerSpawned` has let the
 * runtime subscribe.
 */
const createTracker = (logic: TrackerMachine, s: TrackerSpawn, parent: AnyActorRef): TrackerRef =>
  'snapshot' in s
    ? createActor(logic, { id: s.id, parent, snapshot: { ...s.snapshot, status: 'active', error: undefined } } as unknown as { input: TrackerInput })
    : createActor(logic, { id: s.id, parent, input: s.input });

const RESTORE_PREFIX = 'restore/';
const GIVE_UP_PREFIX = 'giveup/';

const without = <T>(record: Record<string, T>, key: string): Record<string, T> => {
  const { [key]: _dropped, ...rest } = record;
  return rest;
};

/** The part of `enqueueActions`' queue that `register` uses. */
interface RegisterQueue {
  assign(assignment: {
    trackers: (args: { self: AnyActorRef; context: SupervisorContext }) => TrackerRegistry;
  }): void;
  (action: { type: 'trackerSpawned'; params: { id: string } } | { type: 'startTrackers'; params: { ids: string[] } }): void;
}

/**
 * Create trackers into the registry in one assignment (ids already registered or restarting are
 * skipped: never a duplicate), let the runtime attach persistence to each, then start them.
 */
function register(enqueue: RegisterQueue, context: SupervisorContext, spawns: readonly TrackerSpawn[]): void {
  const fresh = new Map<string, TrackerSpawn>();
  for (const s of spawns) {
    if (!context.trackers.has(s.id) && !(s.id in context.restarting) && !fresh.has(s.id)) fresh.set(s.id, s);
  }
  if (fresh.size === 0) return;
  enqueue.assign({
    trackers: ({ self, context: current }) =>
      current.trackers.with([...fresh.values()].map((s) => [s.id, createTracker(current.trackerLogic, s, self)] as const)),
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
            enqueue.assign({ trackers: context.trackers.without(event.id), crashes: without(context.crashes, event.id) });
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
                input: { id, delayMs: Math.max(context.policy.backoffBaseMs, restartDelay(crashes.length, context.policy)) },
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
      },
    },
    // Ending the supervisor stops its remaining tasks (XState children).
    stopped: { type: 'final' },
  },
});

export type SupervisorMachine = typeof supervisorMachine;

const CHILD_ERROR = 'xstate.error.actor.';
const CHILD_DONE = 'xstate.done.actor.';

/**
 * The supervisor as XState runs it: its children's `xstate.error.actor.<id>` and
 * `xstate.done.actor.<id>` events reach the machine as `CHILD_FAILED` and `CHILD_DONE`, so the set
 * of event types it ever sees is fixed however many trackers crash (see `SupervisorEvent`).
 *
 * @example
 * const shard = createActor(withFixedChildEvents(supervisorMachine), { input: { shard: 0 } }).start();
 */
export function withFixedChildEvents<TLogic extends SupervisorMachine>(
  machine: TLogic,
  options: {
    /**
     * Provided by the runtime when its store reads synchronously: a failed tracker's last durable
     * snapshot (null: none that can run; undefined: not available now, a restore task will read it).
     */
    storedNow?: (id: string) => PersistedTracker | null | undefined;
  } = {},
): TLogic {
  const logic = Object.create(machine) as TLogic;
  logic.transition = (snapshot, event, scope) => {
    scopes.set(scope.self, scope);
    const raw = event as { type: string; actorId?: string; error?: unknown; output?: unknown };
    if (raw.type.startsWith(CHILD_ERROR)) {
      const actorId = raw.actorId ?? raw.type.slice(CHILD_ERROR.length);
      const stored = options.storedNow && snapshot.context.trackers.has(actorId) ? readNow(options.storedNow, actorId) : undefined;
      event = { type: 'CHILD_FAILED', actorId, error: raw.error, ...(stored !== undefined ? { stored } : {}) };
    } else if (raw.type.startsWith(CHILD_DONE)) {
      event = { type: 'CHILD_DONE', actorId: raw.actorId ?? raw.type.slice(CHILD_DONE.length), output: raw.output };
    }
    return machine.transition(snapshot, event, scope);
  };
  return logic;
}

/** A read that fails leaves the restart to the restore task, which retries with back-off. */
function readNow(read: (id: string) => PersistedTracker | null | undefined, id: string): PersistedTracker | null | undefined {
  try {
    return read(id);
  } catch {
    return undefined;
  }
}

const scopes = new WeakMap<AnyActorRef, { stopChild(child: AnyActorRef): void }>();

/**
 * Stop the trackers of a shard that failed (a bug in it or in a runtime action it ran). XState
 * leaves a failed actor's actors running, and trackers are not XState children anyway (see
 * `createTracker`); stopping them as their parent did is what lets the shard's replacement bring
 * them back from the store without a second live actor per id.
 */
export function stopTrackersOfFailedShard(shard: AnyActorRef): void {
  const scope = scopes.get(shard);
  const trackers = (shard.getSnapshot() as { context?: SupervisorContext }).context?.trackers;
  if (!scope || !trackers) return;
  for (const ref of trackers.values()) scope.stopChild(ref);
}
export type SupervisorRef = ActorRefFrom<SupervisorMachine>;
