/**
 * Every place where tx-tracker leans on XState's internals or steps around one of its behaviours,
 * in one module. Each was checked against xstate 5.33 (package.json pins the minor); each has a
 * test that it still behaves like stock XState where it must, so an upgrade that changes the
 * internal fails a test instead of the service.
 *
 * 1. Trackers outside their shard's `children` (`createTracker`, `TrackerRegistry`).
 *    XState copies a parent's `children` object on every spawn and stop, so a shard of N trackers
 *    paid O(N) per start, crash and end. A tracker is created with the shard as `parent` (its
 *    failure still reaches the shard, it shares the system and the inspector) and lives in an
 *    immutable, bucketed registry in the shard's context instead.
 *    Guarded by: test/supervision-properties.test.ts, test/restart-in-one-turn.test.ts.
 * 2. Fixed child events (`withFixedChildEvents`).
 *    XState names a child's events after it (`xstate.error.actor.<id>`, `xstate.done.actor.<id>`)
 *    and caches the transitions it looked up per event type on the state nodes for good: memory
 *    grew with every crashed tracker id. The shard sees `CHILD_FAILED` / `CHILD_DONE` instead; a
 *    synchronous store read rides along so a crashed tracker restarts in the same step.
 *    Guarded by: test/no-growth-after-final.test.ts, test/restart-in-one-turn.test.ts.
 * 3. Terminal tags instead of final states (machines/tracker.machine.ts, the root's `halted`).
 *    A final child makes XState send its parent `xstate.done.actor.<id>`, a new event type per
 *    tracker (see 2); a final root stops its children one at a time, copying them for each.
 *    The runtime reads the `terminal` tag and tells the shard with one fixed event (TRACKER_ENDED).
 *    Guarded by: test/no-growth-after-final.test.ts, test/tracker-model.test.ts.
 * 4. Stamped snapshots (`stampingLogic`, `persistedSnapshot`).
 *    XState resolves a machine's state configuration for every actor it creates or restores, and
 *    walks children, history and context when persisting; for the tracker both depend only on the
 *    state value, so they are resolved once per value and copied.
 *    Guarded by: test/stamped-snapshots.test.ts.
 * 5. Stopping the trackers of a failed shard (`stopTrackersOfFailedShard`).
 *    XState leaves a failed actor's actors running (and trackers are not its children, see 1);
 *    the shard's actor scope, captured in its `transition`, is used to stop them as their parent.
 *    Guarded by: test/restart-in-one-turn.test.ts ("a shard supervisor that fails").
 * 6. Starting trackers without the shard's macrostep (`startInShard`).
 *    XState runs a macrostep for every event (microstep, action resolution, a copied snapshot),
 *    which costs about as much as the tracker's own start; with 1,024 shards a request's `START`
 *    nearly always carries one tracker, so it was paid once per new tracker. The runtime applies
 *    `START` itself, as the transition does it, and gives the shard its new snapshot.
 *    Guarded by: test/start-in-shard.test.ts.
 *
 * @internal
 */
import type { AnyActorRef, AnyActorScope, AnyMachineSnapshot, AnyStateMachine, Snapshot } from 'xstate';
import { createActor } from 'xstate';
import {
  type PersistedTracker,
  type SupervisorContext,
  type SupervisorMachine,
  type SupervisorRef,
  type TrackerRef,
  type TrackerSpawn,
  freshSpawns,
} from './supervisor.machine.js';
import type { TrackerInput, TrackerMachine } from './tracker.machine.js';

// ---- 1. Trackers outside `children` ----------------------------------------------------------

/** At most 32: `with` keeps one bit per bucket. */
export const REGISTRY_BUCKETS = 32;

/**
 * djb2 over the id's UTF-16 code units, then murmur3's finalizer. Without it the low bits follow
 * the shard's FNV-1a (both end in the parity of the code units: a shard's ids used half the
 * buckets), and ids that differ only at the end (sequential ones) differ only in the low bits.
 */
export function bucketOf(id: string): number {
  let hash = 5381;
  for (let i = 0; i < id.length; i++) hash = (Math.imul(hash, 33) + id.charCodeAt(i)) | 0;
  hash ^= hash >>> 16;
  hash = Math.imul(hash, 0x85ebca6b);
  hash ^= hash >>> 13;
  hash = Math.imul(hash, 0xc2b2ae35);
  hash ^= hash >>> 16;
  return (hash >>> 0) & (REGISTRY_BUCKETS - 1);
}

/**
 * The registry, id → live tracker: immutable, so that every supervisor snapshot keeps the registry
 * it had. A change copies one of 32 small buckets (a few entries) instead of the whole registry,
 * a copy that would be paid twice per crash and once per tracker that ends (docs/performance.md has
 * the profiles). A change costs O(shard size / 32): sized for shards of about a hundred trackers.
 * Serialised (e.g. for the inspector) as an object.
 *
 * @example
 * const registry = TrackerRegistry.EMPTY.with([['txn_1', ref]]);
 * registry.get('txn_1'); // ref
 * registry.without('txn_1').size; // 0
 */
export class TrackerRegistry {
  static readonly EMPTY = new TrackerRegistry(
    new Array<ReadonlyMap<string, TrackerRef> | undefined>(REGISTRY_BUCKETS).fill(undefined),
    0,
  );

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
    // One bit per bucket copied so far (REGISTRY_BUCKETS must stay at most 32).
    let copied = 0;
    let size = this.size;
    for (const [id, ref] of entries) {
      const index = bucketOf(id);
      let bucket = buckets[index] as Map<string, TrackerRef> | undefined;
      if ((copied & (1 << index)) === 0) {
        buckets[index] = bucket = new Map(bucket);
        copied |= 1 << index;
      }
      if (!bucket!.has(id)) size++;
      bucket!.set(id, ref);
    }
    return copied === 0 ? this : new TrackerRegistry(buckets, size);
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

/**
 * A tracker created by its shard, with the shard as its parent: its failure reaches the shard as
 * `xstate.error.actor.<id>`, it shares the shard's actor system (and inspector), and only the shard
 * can stop it (`stopChild(ref)`). It is deliberately not one of XState's `children` of the shard:
 * XState copies that object on every spawn and stop (slow once deletes have put it in dictionary
 * mode), which made every start, crash and end cost O(shard size). The registry is where a shard's trackers live; a change copies one of its
 * buckets (`TrackerRegistry`). Started by `startTrackers`, after `trackerSpawned` has let the
 * runtime subscribe.
 */
export const createTracker = (logic: TrackerMachine, s: TrackerSpawn, parent: AnyActorRef): TrackerRef =>
  'snapshot' in s
    ? createActor(logic, {
        id: s.id,
        parent,
        snapshot: { ...s.snapshot, status: 'active', error: undefined },
      } as unknown as { input: TrackerInput })
    : createActor(logic, { id: s.id, parent, input: s.input });

// ---- 2. Fixed child events, 5. stopping a failed shard's trackers ---------------------------

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
      const stored =
        options.storedNow && snapshot.context.trackers.has(actorId) ? readNow(options.storedNow, actorId) : undefined;
      event = { type: 'CHILD_FAILED', actorId, error: raw.error, ...(stored !== undefined ? { stored } : {}) };
    } else if (raw.type.startsWith(CHILD_DONE)) {
      event = { type: 'CHILD_DONE', actorId: raw.actorId ?? raw.type.slice(CHILD_DONE.length), output: raw.output };
    }
    return machine.transition(snapshot, event, scope);
  };
  return logic;
}

/** A read that fails leaves the restart to the restore task, which retries with back-off. */
function readNow(
  read: (id: string) => PersistedTracker | null | undefined,
  id: string,
): PersistedTracker | null | undefined {
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

// ---- 4. Stamped snapshots --------------------------------------------------------------------

/**
 * Snapshots made by stamping. XState resolves a machine's state configuration (state nodes, tags,
 * entry order) for every actor it creates or restores, a large part of a tracker's start; the result
 * depends only on the state value. So the configuration is resolved once per machine and value,
 * and each actor gets a copy of it with its own context: the same snapshot XState would make
 * (`test/stamped-snapshots.test.ts` checks it), for machines whose initial state takes no entry
 * actions and no eventless transition, whose context factory reads only `input`, and which have
 * no children or history in their snapshots — as the tracker machine.
 */
const templates = new WeakMap<AnyStateMachine, Map<string, AnyMachineSnapshot>>();

function templateFor(machine: AnyStateMachine, key: string, make: () => AnyMachineSnapshot): AnyMachineSnapshot {
  let byValue = templates.get(machine);
  if (!byValue) templates.set(machine, (byValue = new Map()));
  let template = byValue.get(key);
  if (!template) byValue.set(key, (template = make()));
  return template;
}

const INITIAL = '\0initial';

/**
 * Logic that behaves like `machine`, with new and restored snapshots stamped from one resolved
 * template per state value: a new one gets a context from the machine's own context factory, a
 * restored one (`createActor(logic, { snapshot })`) its persisted context. A snapshot saved from a
 * failed actor has status `error`: it is revived as `active`.
 *
 * @example
 * createActor(stampingLogic(trackerMachine), { input });
 * createActor(stampingLogic(trackerMachine), { snapshot: saved });
 */
export function stampingLogic<TLogic extends AnyStateMachine>(machine: TLogic): TLogic {
  const contextOf = machine.config.context as (args: { input: unknown }) => unknown;
  const logic = Object.create(machine) as TLogic;
  logic.getInitialSnapshot = (scope: AnyActorScope, input: unknown) => {
    const template = templateFor(
      machine,
      INITIAL,
      () => machine.getInitialSnapshot(scope, input) as AnyMachineSnapshot,
    );
    return { ...template, context: contextOf({ input }) };
  };
  logic.restoreSnapshot = (persisted: Snapshot<unknown>, scope: AnyActorScope) => {
    const { value, context } = persisted as unknown as { value: unknown; context: unknown };
    const template = templateFor(
      machine,
      JSON.stringify(value),
      () =>
        machine.restoreSnapshot(
          { ...persisted, status: 'active', error: undefined } as Snapshot<unknown>,
          scope,
        ) as AnyMachineSnapshot,
    );
    return { ...template, context };
  };
  return logic;
}

/**
 * What `machine.getPersistedSnapshot(snapshot)` returns, without its generic walk over children,
 * history and context (looking for actor refs to serialise): for machines that have none of them,
 * as the tracker machine (`test/stamped-snapshots.test.ts` checks both agree).
 *
 * @example
 * store.write({ ...row, snapshot: persistedSnapshot(actor.getSnapshot()) });
 */
export function persistedSnapshot(snapshot: AnyMachineSnapshot): Snapshot<unknown> {
  const { status, value, context } = snapshot;
  return { status, value, historyValue: {}, context, children: {} } as unknown as Snapshot<unknown>;
}

// ---- 6. Starting trackers without the shard's macrostep -------------------------------------

/** XState's actor fields `startInShard` reads and sets (xstate 5.33's `Actor`). */
interface ActorInternals {
  _snapshot: ReturnType<SupervisorRef['getSnapshot']>;
  /** 1: running (XState's `ProcessingStatus.Running`). */
  _processingStatus: number;
  mailbox: { _current: unknown };
}

/**
 * What the shard's `START` transition does, done here: the same trackers created
 * (`freshSpawns`, `createTracker` with the shard as parent), the registry with them in a new
 * snapshot of the shard (an `assign` would give one: a snapshot read before keeps its registry),
 * `spawned` called for each (the runtime's `trackerSpawned`) before any starts, then each started
 * (`startTrackers`). Only for a running shard with nothing in its mailbox, so that no event of
 * its own is overtaken; false otherwise, and the caller sends `START`. The inspector would not see
 * the event: a runtime that is inspected sends `START`.
 *
 * @example
 * if (!startInShard(shard, spawns, attach)) shard.send({ type: 'START', trackers: spawns });
 */
export function startInShard(
  shard: SupervisorRef,
  spawns: readonly TrackerSpawn[],
  spawned: (id: string, ref: TrackerRef) => void,
): boolean {
  const actor = shard as unknown as ActorInternals;
  const snapshot = actor._snapshot;
  if (actor._processingStatus !== 1 || actor.mailbox._current !== null || snapshot?.status !== 'active') return false;
  const { context } = snapshot;
  const fresh = freshSpawns(context, spawns);
  if (fresh.size === 0) return true;
  const created = [...fresh.values()].map((s) => [s.id, createTracker(context.trackerLogic, s, shard)] as const);
  actor._snapshot = { ...snapshot, context: { ...context, trackers: context.trackers.with(created) } };
  for (const [id, ref] of created) spawned(id, ref);
  for (const [, ref] of created) ref.start();
  return true;
}
