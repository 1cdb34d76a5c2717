import { type ActorRefFrom, assign, enqueueActions, setup, stopChild } from 'xstate';
import { type SupervisorInput, type SupervisorRef, supervisorMachine } from './supervisor.machine.js';

export interface RootSupervisorInput {
  /** How many shards the registry is split into; a tracker lives in shard hash(id) mod shardCount. */
  shardCount: number;
  /** What every shard is started with (its index is added). */
  shardInput: Omit<SupervisorInput, 'shard'>;
}

export interface RootSupervisorContext extends RootSupervisorInput {
  /** Shard index → shard supervisor; shards are created the first time a tracker hashes to them. */
  shards: Record<number, SupervisorRef>;
}

export type RootSupervisorEvent =
  /**
   * Create the shards that do not exist yet. A batch costs one copy of the root's children (XState
   * copies them on every spawn, a cost that grows with the shard count), so callers ask for all the
   * shards they need at once.
   */
  | { type: 'ENSURE_SHARDS'; shards: readonly number[] }
  /**
   * These shards are no longer this process's (their leases were handed back or lost): each one
   * stops its trackers and ends, and leaves the registry at once, so no lookup finds its trackers.
   */
  | { type: 'RELEASE_SHARDS'; shards: readonly number[] }
  | { type: 'SHUTDOWN' }
  | { type: `xstate.error.actor.${string}`; actorId: string; error: unknown }
  | { type: `xstate.done.actor.${string}`; actorId: string; output: unknown };

export const shardActorId = (shard: number): string => `shard-${shard}`;
const shardIndexOf = (actorId: string): number => Number(actorId.slice('shard-'.length));

/**
 * The top of the tree: supervises the shard supervisors. XState copies a parent's `children` on every
 * spawn and stop, so one supervisor of 100,000 trackers costs O(N) per spawn; a root over shards of
 * about a hundred trackers keeps every spawn O(shard size).
 *
 * @example
 * const root = createActor(rootSupervisorMachine, { input: { shardCount: 1024, shardInput: {} } }).start();
 * root.send({ type: 'ENSURE_SHARDS', shards: [7] });
 */
export const rootSupervisorMachine = setup({
  types: {
    context: {} as RootSupervisorContext,
    events: {} as RootSupervisorEvent,
    input: {} as RootSupervisorInput,
  },
  actors: { shard: supervisorMachine },
  actions: {
    // Provided by the runtime: a shard supervisor failed (a bug); its trackers must be stopped (the
    // failed shard's ref is given) and brought back.
    shardRestarted: (_, _params: { shard: number; error: unknown; failed: SupervisorRef | undefined }) => {},
  },
  guards: {
    isAnyMissing: ({ context, event }) =>
      event.type === 'ENSURE_SHARDS' && event.shards.some((shard) => !(shard in context.shards)),
    isAnyPresent: ({ context, event }) =>
      event.type === 'RELEASE_SHARDS' && event.shards.some((shard) => shard in context.shards),
  },
}).createMachine({
  id: 'root',
  context: ({ input }) => ({ ...input, shards: {} }),
  initial: 'running',
  states: {
    running: {
      on: {
        ENSURE_SHARDS: {
          guard: 'isAnyMissing',
          actions: assign({
            shards: ({ context, event, spawn }) => {
              const shards = { ...context.shards };
              for (const shard of event.shards) {
                if (shard in shards) continue;
                shards[shard] = spawn('shard', { id: shardActorId(shard), input: { ...context.shardInput, shard } });
              }
              return shards;
            },
          }),
        },
        RELEASE_SHARDS: {
          guard: 'isAnyPresent',
          actions: enqueueActions(({ context, event, enqueue }) => {
            const shards = { ...context.shards };
            for (const shard of event.shards) {
              const ref = shards[shard];
              if (!ref) continue;
              // Not stopChild: the shard must first take RELEASE (stopping its trackers); it ends itself.
              enqueue.sendTo(ref, { type: 'RELEASE' });
              delete shards[shard];
            }
            enqueue.assign({ shards });
          }),
        },
        'xstate.error.actor.*': {
          actions: enqueueActions(({ context, event, enqueue }) => {
            const shard = shardIndexOf(event.actorId);
            enqueue(stopChild(event.actorId));
            enqueue.assign({
              shards: ({ spawn }) => ({
                ...context.shards,
                [shard]: spawn('shard', { id: event.actorId, input: { ...context.shardInput, shard } }),
              }),
            });
            enqueue({
              type: 'shardRestarted',
              params: { shard, error: 'error' in event ? event.error : undefined, failed: context.shards[shard] },
            });
          }),
        },
        SHUTDOWN: {
          target: 'halted',
          actions: enqueueActions(({ context, enqueue }) => {
            for (const shard of Object.values(context.shards)) enqueue.sendTo(shard, { type: 'SHUTDOWN' });
          }),
        },
      },
    },
    // Every shard has stopped its trackers and ended. Deliberately not a final state: ending the
    // root would make XState stop its ~1,024 children one at a time, copying its children object
    // for each (seconds at 100,000 trackers), for actors that are already done.
    halted: {},
  },
});

export type RootSupervisorMachine = typeof rootSupervisorMachine;
export type RootSupervisorRef = ActorRefFrom<RootSupervisorMachine>;
