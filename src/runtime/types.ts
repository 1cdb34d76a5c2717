import type { InspectionEvent, Observer } from 'xstate';
import type { RestartPolicy, TrackerRef } from '../../machines/supervisor.machine.js';
import type { Finality, TrackerContext, TrackerEvent, TrackerStateName } from '../../machines/tracker.machine.js';
import type { TrackerSystemError } from '../errors.js';
import type { SnapshotStore, TrackerChangeDetail } from '../store/types.js';
import type { ChainInfo } from './chains.js';
import type { Logger } from './logger.js';
import type { SnapshotMigrations } from './snapshot-compat.js';
import type { Tracker } from './tracker-view.js';

/**
 * What the rest of the service (the chain watchers) plugs into the runtime. Looked up at call time.
 * The tracker's context says its chain (`chainId`); `trackerGone` has only the id.
 */
export interface TrackerHooks {
  /** A tracker is live (started, restarted or rehydrated): bring it up to date and follow it. */
  trackerLive?(tracker: TrackerContext, state: TrackerStateName): void;
  /** A tracker left the registry for good (final state, stopped, or given up). */
  trackerGone?(id: string): void;
  /** The tracker asked for its tx to be sent to the node again (the REBROADCAST event). */
  rebroadcast?(tracker: TrackerContext): void;
  /** Whether there is a signed tx to send again for this tracker; false refuses REBROADCAST up front. */
  canRebroadcast?(id: string): boolean;
  /** The tracker asked for a lookup of its tx now (the RECHECK event). */
  recheck?(tracker: TrackerContext): void;
}

export interface TrackerSystemOptions {
  store: SnapshotStore;
  /** Shards of the registry (default 1024: about a hundred trackers each at 100,000). */
  shardCount?: number;
  restartPolicy?: Partial<RestartPolicy>;
  /** `requiredConfirmations` of a tracker started without one, on a chain without its own default (default 12). */
  defaultConfirmations?: number;
  /**
   * The chains trackers can be on (default: one, named `default`, with anvil's id 31337). Trackers
   * on other chains found in the store are left as they are stored, not run.
   */
  chains?: readonly ChainInfo[];
  /** Id of the default chain (default: the first of `chains`): trackers started without a chain, and rows stored before trackers had one. */
  defaultChain?: number;
  /** Let the `CRASH` event through (default false). */
  faultInjection?: boolean;
  hooks?: TrackerHooks;
  logger?: Logger;
  /** Observes the whole actor system (supervisors and trackers), e.g. `@statelyai/inspect`. */
  inspect?: Observer<InspectionEvent> | ((event: InspectionEvent) => void);
  now?: () => number;
  /** Bring back every non-final tracker from the store at start (default true). */
  rehydrate?: boolean;
  /** Per machine version step, how an older stored snapshot is taken up (see `SnapshotMigrations`). */
  migrations?: SnapshotMigrations;
  /**
   * Several instances share the trackers (src/cluster): which shards this one runs, and how a
   * request for a tracker of another shard reaches its owner. Unset: every shard is this process's.
   */
  placement?: Placement;
}

/** Where trackers run when several instances share them: this one runs only the shards it owns. */
export interface Placement {
  owns(shard: number): boolean;
  /** Start trackers (ids resolved) on the owners of their shards; a result per request, in order. */
  start(requests: ReadonlyArray<StartRequest & { id: string }>, shards: readonly number[]): Promise<StartManyResult[]>;
  /** `send` on the tracker's owner. */
  send(id: string, shard: number, event: TrackerEvent): Promise<SendResult>;
  /** `stop` on the tracker's owner. */
  stop(id: string, shard: number): Promise<Tracker | undefined>;
}

export interface StartOptions {
  txHash: string;
  /** A count (1–1000), or `safe` / `finalized`: the chain's block of that tag. Default: the chain's default. */
  confirmations?: number | Finality;
  /** The chain's id or name (default: the default chain). */
  chain?: number | string;
}

export interface StartRequest extends StartOptions {
  id?: string | undefined;
}

export type StartResult =
  /** Spawned and registered; its first snapshot is durable. `ref` is undefined when another instance runs it. */
  | { status: 'started'; tracker: Tracker; ref: TrackerRef | undefined }
  /** That id is running (or restarting): no duplicate, like `{:error, {:already_started, pid}}`. */
  | { status: 'already_started'; tracker: Tracker; ref: TrackerRef | undefined }
  /** That id finished earlier; its final snapshot is returned. */
  | { status: 'exists'; tracker: Tracker; ref: undefined };

export type StartManyResult = StartResult | { status: 'error'; error: TrackerSystemError };

export type SendResult =
  | { status: 'accepted'; tracker: Tracker }
  /** The tracker's current state does not take that event (the machine's own `can`). */
  | { status: 'not_accepted'; tracker: Tracker }
  /** REBROADCAST, but the chain watcher keeps no signed form of the tx: nothing would be sent. */
  | { status: 'nothing_to_rebroadcast'; tracker: Tracker }
  /** The tracker is restarting; the event is held and delivered once it is back. */
  | { status: 'held'; tracker: Tracker }
  | { status: 'not_found' };

export interface TrackerListQuery {
  state?: TrackerStateName | undefined;
  /** Only the trackers of this chain (id or name). */
  chain?: number | string | undefined;
  limit: number;
  cursor?: string | null | undefined;
}

/** A chain as the runtime sees it: its settings and the latest blocks it was told of. */
export interface ChainView {
  id: number;
  name: string;
  isDefault: boolean;
  /** What a tracker started on it without `confirmations` waits for. */
  confirmations: number | Finality;
  head: number | null;
  safe: number | null;
  finalized: number | null;
}

export interface TrackerPage {
  items: Tracker[];
  nextCursor: string | null;
}

export interface TrackerHistoryQuery {
  limit: number;
  /** Opaque: the `nextCursor` of the previous page. */
  cursor?: string | null | undefined;
}

/** One change of a tracker as users see it (times ISO 8601, as on `Tracker`). */
export interface TrackerHistoryEntry {
  /** Grows with every change of every tracker: orders this tracker's changes. */
  seq: number;
  at: string;
  /** State path before (`pending.seen`); null when the tracker was created. */
  from: string | null;
  to: string;
  /** The event that caused it; `START` when created, `RESTART` when it came back after a crash. */
  event: string;
  blockNumber: number | null;
  blockHash: string | null;
  restarts: number;
  reorgs: number;
  detail: TrackerChangeDetail | null;
}

export interface TrackerHistoryPage {
  items: TrackerHistoryEntry[];
  nextCursor: string | null;
}

export interface TrackerSystemStats {
  /** Trackers in the registry (live actors). */
  live: number;
  /** Trackers waiting for their restart. */
  restarting: number;
  /**
   * What the shard supervisors supervise: their trackers (registry entries, created with the shard
   * as parent) plus their XState children (restore and give-up tasks). Equal to live when idle.
   */
  shardChildren: number;
  shards: number;
  crashes: number;
  restarts: number;
  crashLoops: number;
  subscriptions: number;
}

export type TrackerListener = (tracker: Tracker) => void;

/** Told of every new chain head the system hears of (`newHead`), after the due trackers were woken. */
export type HeadListener = (blockNumber: number, chainId: number) => void;
