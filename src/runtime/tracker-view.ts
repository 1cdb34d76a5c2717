import type {
  TrackerContext,
  TrackerFailure,
  TrackerStateName,
} from '../../machines/tracker.machine.js';

/**
 * What users see of a tracker, in the library and over HTTP alike. Hashes are lower-case hex,
 * times ISO 8601.
 */
export interface Tracker {
  id: string;
  txHash: string;
  state: TrackerStateName;
  confirmations: number;
  requiredConfirmations: number;
  blockNumber: number | null;
  blockHash: string | null;
  reorgs: number;
  restarts: number;
  replacedBy: string | null;
  failure: TrackerFailure | null;
  createdAt: string;
  updatedAt: string;
}

/** The top state of a tracker snapshot's value (`{ pending: 'seen' }` → `pending`). */
export function topState(value: unknown): TrackerStateName {
  return (typeof value === 'string' ? value : Object.keys(value as object)[0]) as TrackerStateName;
}

export function toTracker(context: TrackerContext, state: TrackerStateName): Tracker {
  return {
    id: context.id,
    txHash: context.txHash,
    state,
    confirmations: context.confirmations,
    requiredConfirmations: context.requiredConfirmations,
    blockNumber: context.blockNumber,
    blockHash: context.blockHash,
    reorgs: context.reorgs,
    restarts: context.restarts,
    replacedBy: context.replacedBy,
    failure: context.failure,
    createdAt: new Date(context.createdAt).toISOString(),
    updatedAt: new Date(context.updatedAt).toISOString(),
  };
}
