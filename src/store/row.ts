import type { TrackerStateName } from '../../machines/tracker.machine.js';
import type { TrackerRecord } from './types.js';

/** The columns of `trackers`, in the order of `RowValues`. */
export const COLUMNS = 'id, tx_hash, state, version, snapshot, restarts, created_at, updated_at, quarantined';
export const COLUMN_COUNT = 9;

/** A record as the bound values of one row, in `COLUMNS` order: made once, when the record is written. */
export type RowValues = [
  id: string,
  txHash: string,
  state: string,
  version: number,
  snapshot: string,
  restarts: number,
  createdAt: number,
  updatedAt: number,
  quarantined: string | null,
];

/**
 * The record as the values of its row; the snapshot column holds the snapshot's JSON.
 *
 * @example
 * const values = rowValues(record); // bound to the upsert at the next group commit
 */
export function rowValues(record: TrackerRecord): RowValues {
  return [
    record.id,
    record.txHash,
    record.state,
    record.version,
    JSON.stringify(record.snapshot),
    record.restarts,
    record.createdAt,
    record.updatedAt,
    record.quarantined === undefined ? null : JSON.stringify(record.quarantined),
  ];
}

/**
 * The record a row holds (as a `.raw()` statement hands it out). Snapshot text that is not JSON is
 * handed out as that string, so that the runtime quarantines it instead of losing it.
 *
 * @example
 * const record = fromRow(selectOne.raw().get(id));
 */
export function fromRow(row: RowValues): TrackerRecord {
  const [id, txHash, state, version, text, restarts, createdAt, updatedAt, quarantined] = row;
  let snapshot: unknown;
  try {
    snapshot = JSON.parse(text);
  } catch {
    snapshot = text;
  }
  const record: TrackerRecord = {
    id,
    txHash,
    state: state as TrackerStateName,
    version,
    snapshot,
    restarts,
    createdAt,
    updatedAt,
  };
  if (quarantined !== null) record.quarantined = JSON.parse(quarantined) as TrackerRecord['quarantined'];
  return record;
}
