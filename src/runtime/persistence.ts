import type { TrackerRef } from '../../machines/supervisor.machine.js';
import { TRACKER_MACHINE_VERSION } from '../../machines/tracker.machine.js';
import { persistedSnapshot } from '../../machines/xstate-adaptations.js';
import type { TrackerChange, TrackerRecord } from '../store/types.js';
import { topState } from './tracker-view.js';

export type TrackerSnapshot = ReturnType<TrackerRef['getSnapshot']>;

/**
 * The store row for a tracker snapshot: the persisted snapshot, with the columns a store lists and
 * filters by beside it.
 *
 * @example
 * store.write(trackerRecord(ref.getSnapshot()));
 */
export function trackerRecord(snapshot: TrackerSnapshot, change?: TrackerChange | null): TrackerRecord {
  const context = snapshot.context;
  return {
    id: context.id,
    txHash: context.txHash,
    chainId: context.chainId,
    state: topState(snapshot.value),
    version: TRACKER_MACHINE_VERSION,
    snapshot: persistedSnapshot(snapshot),
    restarts: context.restarts,
    createdAt: context.createdAt,
    updatedAt: context.updatedAt,
    change: change ?? undefined,
  };
}

/** How a tracker's first snapshot came to be: created, restarted after a crash, or brought back at start (null). */
export type FirstCause = 'START' | 'RESTART' | null;

/** What a `TrackerObserver` reports to. */
export interface ObserverHost {
  /**
   * A new snapshot of tracker `id`; `write` is false for one that is the stored row itself.
   * `previous` is the snapshot before it; for the first, `first` says how it came to be.
   */
  changed(
    id: string,
    snapshot: TrackerSnapshot,
    write: boolean,
    previous: TrackerSnapshot | undefined,
    first: FirstCause,
  ): void;
  /** The tracker's subscription ended (it stopped or failed). */
  ended(): void;
}

/**
 * The observer that persists one tracker: one object whose methods all trackers share, not three
 * closures per tracker (they were most of a live tracker's heap, see docs/performance.md). The first
 * snapshot of a tracker restored exactly as stored is not written again (`skipFirst`).
 *
 * @example
 * const observer = new TrackerObserver(host, id, false, 'START');
 * observer.subscription = ref.subscribe(observer);
 */
export class TrackerObserver {
  subscription: { unsubscribe(): void } | undefined;
  private last: TrackerSnapshot | undefined;

  constructor(
    private readonly host: ObserverHost,
    private readonly id: string,
    private skipFirst: boolean,
    private readonly first: FirstCause,
  ) {}

  next(snapshot: TrackerSnapshot): void {
    const previous = this.last;
    if (snapshot === previous) return;
    this.last = snapshot;
    const write = !this.skipFirst;
    this.skipFirst = false;
    this.host.changed(this.id, snapshot, write, previous, this.first);
  }

  // The supervisor is told (CHILD_FAILED); observers must not rethrow.
  error(): void {
    this.host.ended();
    this.subscription?.unsubscribe();
  }

  complete(): void {
    this.host.ended();
  }
}
