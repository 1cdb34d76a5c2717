import type {
  Finality,
  TrackerContext,
  TrackerFailure,
  TrackerStateName,
  TrackerStuck,
} from '../../machines/tracker.machine.js';

/**
 * What users see of a tracker, in the library and over HTTP alike. Hashes are lower-case hex,
 * times ISO 8601.
 */
export interface Tracker {
  id: string;
  txHash: string;
  /** The EIP-155 id of the chain the transaction is on. */
  chainId: number;
  state: TrackerStateName;
  confirmations: number;
  /** null when the tracker is confirmed by finality (see `finality`). */
  requiredConfirmations: number | null;
  /** Only on a tracker confirmed by the chain's safe or finalized block. */
  finality?: Finality;
  blockNumber: number | null;
  blockHash: string | null;
  reorgs: number;
  restarts: number;
  replacedBy: string | null;
  failure: TrackerFailure | null;
  /** Only while the tracker is stuck (its state stays `pending`): why, since which block, and a detail. */
  stuck?: TrackerStuck;
  createdAt: string;
  updatedAt: string;
}

/** The top state of a tracker snapshot's value (`{ pending: 'seen' }` → `pending`). */
export function topState(value: unknown): TrackerStateName {
  return (typeof value === 'string' ? value : Object.keys(value as object)[0]) as TrackerStateName;
}

/**
 * A confirming tracker is not woken on every head (only when its threshold is reached), so its
 * confirmations are derived from its chain's head the system last heard of: `head - blockNumber + 1`.
 */
export function confirmationsAt(context: TrackerContext, state: TrackerStateName, head: number | null): number {
  if (state !== 'confirming' || head === null || context.blockNumber === null) return context.confirmations;
  return Math.max(context.confirmations, head - context.blockNumber + 1);
}

export function toTracker(context: TrackerContext, state: TrackerStateName, head: number | null = null): Tracker {
  const tracker: Tracker = {
    id: context.id,
    txHash: context.txHash,
    chainId: context.chainId,
    state,
    confirmations: confirmationsAt(context, state, head),
    requiredConfirmations: context.finality === null ? context.requiredConfirmations : null,
    blockNumber: context.blockNumber,
    blockHash: context.blockHash,
    reorgs: context.reorgs,
    restarts: context.restarts,
    replacedBy: context.replacedBy,
    failure: context.failure,
    createdAt: new Date(context.createdAt).toISOString(),
    updatedAt: new Date(context.updatedAt).toISOString(),
  };
  if (context.finality !== null) tracker.finality = context.finality;
  if (context.stuck) tracker.stuck = context.stuck;
  return tracker;
}

/**
 * Live trackers' views as JSON text, each reused while the tracker's snapshot is the same object
 * and, for a confirming tracker, its chain's head is the same: a tracker read again and again is
 * not rebuilt and serialized on every read. Bounded: when full, the oldest entry goes.
 *
 * @example
 * const texts = new ViewTexts(10_000);
 * texts.text(id, snapshot, head, () => toTracker(snapshot.context, state, head));
 */
export class ViewTexts {
  private readonly entries = new Map<string, { snapshot: object; head: number | null; text: string }>();

  constructor(private readonly capacity: number) {}

  /** The text of `id` at this snapshot and head, made with `view` when it is not kept. */
  text(id: string, snapshot: object, head: number | null, view: () => Tracker): string {
    const kept = this.entries.get(id);
    if (kept !== undefined && kept.snapshot === snapshot && kept.head === head) return kept.text;
    const text = JSON.stringify(view());
    if (kept !== undefined) {
      kept.snapshot = snapshot;
      kept.head = head;
      kept.text = text;
    } else {
      if (this.entries.size >= this.capacity) this.entries.delete(this.entries.keys().next().value!);
      this.entries.set(id, { snapshot, head, text });
    }
    return text;
  }
}
