import type { PersistedTracker, RestoreTrackerOutput } from '../../machines/supervisor.machine.js';
import { FINAL_STATE_NAMES } from '../../machines/tracker.machine.js';
import type { SnapshotStore, TrackerRecord } from '../store/types.js';
import { trackerChange } from './changes.js';
import type { Logger } from './logger.js';
import { type SnapshotMigrations, checkSnapshot, quarantinedRecord } from './snapshot-compat.js';
import { type Tracker, toTracker } from './tracker-view.js';

export interface QuarantineOptions {
  store: SnapshotStore;
  migrations: SnapshotMigrations;
  logger: Logger;
  now: () => number;
  defaultConfirmations: number;
  /** The chain of rows stored before trackers had one. */
  defaultChainId: number;
}

/**
 * The gate between stored rows and the machine: a row runs only when it fits this machine
 * (migrated to its version, checked field by field); one that does not is quarantined (failed,
 * `incompatible_snapshot`, the stored row kept inside), never run and never shown as it reads.
 *
 * @example
 * const snapshot = quarantine.runnableOrQuarantine(record); // null: written back as failed
 */
export class Quarantine {
  constructor(private readonly options: QuarantineOptions) {}

  /** The record's snapshot, migrated, when it fits this machine; otherwise writes it quarantined. */
  runnableOrQuarantine(record: TrackerRecord): PersistedTracker | null {
    const { migrations, logger, store, now, defaultConfirmations, defaultChainId } = this.options;
    const check = checkSnapshot(record, migrations);
    if (check.ok) return check.snapshot;
    logger.error(
      { id: record.id, version: record.version, state: record.state, reason: check.reason },
      `tracker ${record.id} quarantined: incompatible_snapshot (${check.reason}); the stored row is kept`,
    );
    const failed = quarantinedRecord(record, check.reason, now(), defaultConfirmations, defaultChainId);
    const context = (failed.snapshot as PersistedTracker).context;
    store.write({
      ...failed,
      // What the machine does with a row it cannot run: GIVE_UP, from whatever state the row names.
      change:
        trackerChange(
          { value: String(record.state), context: null },
          { value: failed.state, context },
          'GIVE_UP',
          failed.updatedAt,
        ) ?? undefined,
    });
    return null;
  }

  /** What a crashed tracker restarts from: its stored snapshot when it is live and runnable. */
  restoreOutput(id: string, record: TrackerRecord | undefined): RestoreTrackerOutput {
    if (!record || FINAL_STATE_NAMES.includes(record.state)) return { id, snapshot: null };
    return { id, snapshot: this.runnableOrQuarantine(record) };
  }

  /** What a stored record shows (at its chain's head): a row that does not fit the machine shows as failed. */
  trackerOf(record: TrackerRecord, headOf: (chainId: number) => number | null): Tracker {
    const { migrations, now, defaultConfirmations, defaultChainId } = this.options;
    const check = checkSnapshot(record, migrations);
    if (check.ok) return toTracker(check.snapshot.context, record.state, headOf(check.snapshot.context.chainId));
    const failed = quarantinedRecord(record, check.reason, now(), defaultConfirmations, defaultChainId);
    return toTracker((failed.snapshot as PersistedTracker).context, failed.state);
  }
}
