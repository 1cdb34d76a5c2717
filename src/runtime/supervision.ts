import { type InspectionEvent, type Observer, createActor, fromPromise } from 'xstate';
import { type RootSupervisorRef, rootSupervisorMachine } from '../../machines/root-supervisor.machine.js';
import {
  type GiveUpInput,
  type PersistedTracker,
  type RestartPolicy,
  type RestoreTrackerInput,
  type RestoreTrackerOutput,
  type TrackerRef,
  supervisorMachine,
} from '../../machines/supervisor.machine.js';
import type { TrackerMachine } from '../../machines/tracker.machine.js';
import { stopTrackersOfFailedShard, withFixedChildEvents } from '../../machines/xstate-adaptations.js';
import type { Logger } from './logger.js';

/** The runtime's side of supervision: what the supervisor machines' named effects do. */
export interface SupervisionEffects {
  /** Wait the back-off, then read a crashed tracker's last durable snapshot. */
  loadForRestart(input: RestoreTrackerInput): Promise<RestoreTrackerOutput>;
  /**
   * A crashed tracker's last durable snapshot read at once (null: none that can run), so that an
   * immediate restart happens in the crash's own step. Absent for a store that cannot read at once.
   */
  storedNow?: ((id: string) => PersistedTracker | null) | undefined;
  /** Persist a tracker that crashed too often as failed. */
  giveUp(input: GiveUpInput): Promise<void>;
  /** A tracker was created (new, restarted or rehydrated): attach persistence before it starts. */
  spawned(id: string, ref: TrackerRef): void;
  crashed(id: string): void;
  /** The tracker left the registry for good (ended, given up, or not restorable). */
  gone(id: string): void;
  givenUp(): void;
  /** These trackers left with their shard (handed to another owner): forget them, write nothing. */
  released(ids: readonly string[]): void;
  /** A shard supervisor failed (a bug) and was replaced: bring its trackers back. */
  shardRestarted(shard: number): void;
}

export interface SupervisionOptions {
  shardCount: number;
  policy: RestartPolicy;
  trackerLogic: TrackerMachine;
  now: () => number;
  logger: Logger;
  inspect?: Observer<InspectionEvent> | ((event: InspectionEvent) => void) | undefined;
}

/**
 * The supervision tree: a root supervisor over sharded supervisors, with the runtime's effects
 * provided. Started.
 *
 * @example
 * const root = startSupervision(effects, { shardCount: 1024, policy, trackerLogic, now, logger });
 */
export function startSupervision(effects: SupervisionEffects, options: SupervisionOptions): RootSupervisorRef {
  const { logger } = options;
  const shardLogic = withFixedChildEvents(
    supervisorMachine.provide({
      actors: {
        // Delayed restarts, and immediate ones when the store cannot answer at once (see storedNow).
        restoreTracker: fromPromise<RestoreTrackerOutput, RestoreTrackerInput>(({ input }) =>
          effects.loadForRestart(input),
        ),
        giveUpTracker: fromPromise<void, GiveUpInput>(({ input }) => effects.giveUp(input)),
      },
      actions: {
        trackerSpawned: ({ context }, { id }) => effects.spawned(id, context.trackers.get(id)!),
        trackerCrashed: (_, { id, error, crashes, delayMs }) => {
          logger.warn({ id, err: error, crashes, delayMs }, 'tracker crashed; restarting from its durable snapshot');
          effects.crashed(id);
        },
        trackerFinished: (_, { id }) => effects.gone(id),
        trackerGivenUp: (_, { id }) => {
          logger.error({ id }, 'tracker crashed too often; failed with crash_loop');
          effects.givenUp();
          effects.gone(id);
        },
        trackersReleased: (_, { ids }) => effects.released(ids),
        restoreFailed: (_, { id, error }) => {
          logger.error({ id, err: error }, 'tracker could not be restored');
          effects.gone(id);
        },
      },
    }),
    effects.storedNow ? { storedNow: effects.storedNow } : {},
  );
  const root = createActor(
    rootSupervisorMachine.provide({
      actors: { shard: shardLogic },
      actions: {
        shardRestarted: (_, { shard, error, failed }) => {
          logger.error({ shard, err: error }, 'shard supervisor failed; restarting it and its trackers');
          if (failed) stopTrackersOfFailedShard(failed);
          effects.shardRestarted(shard);
        },
      },
    }),
    {
      input: {
        shardCount: options.shardCount,
        shardInput: { policy: options.policy, trackerLogic: options.trackerLogic, now: options.now },
      },
      ...(options.inspect ? { inspect: options.inspect } : {}),
    },
  );
  return root.start();
}
