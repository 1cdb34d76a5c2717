import type { TrackerContext, TrackerStateName } from '../../machines/tracker.machine.js';

/**
 * Confirming trackers indexed by the head at which they reach their required confirmations
 * (blockNumber + requiredConfirmations − 1), so that a new head wakes only the ones it makes due
 * instead of sending every confirming tracker an event per block.
 *
 * @example
 * const due = new DueHeads();
 * due.update('txn_1', context, 'confirming', head); // true when already due at `head`
 * due.takeDue(1_234_567); // ids whose threshold is ≤ 1,234,567, removed from the index
 */
export class DueHeads {
  private readonly byThreshold = new Map<number, Set<string>>();
  private readonly thresholdOf = new Map<string, number>();

  /**
   * Keep `id` in step with its latest snapshot. Returns true when it is due already (`head` is at or
   * past its threshold): the caller wakes it; it is not indexed.
   */
  update(id: string, context: TrackerContext, state: TrackerStateName, head: number | null): boolean {
    const threshold =
      state === 'confirming' && context.blockNumber !== null ? context.blockNumber + context.requiredConfirmations - 1 : null;
    const previous = this.thresholdOf.get(id);
    if (previous === threshold) return false;
    if (previous !== undefined) this.remove(id);
    if (threshold === null) return false;
    if (head !== null && threshold <= head) return true;
    this.thresholdOf.set(id, threshold);
    let ids = this.byThreshold.get(threshold);
    if (!ids) this.byThreshold.set(threshold, (ids = new Set()));
    ids.add(id);
    return false;
  }

  /** The ids due at `head`, taken out of the index. */
  takeDue(head: number): string[] {
    const due: string[] = [];
    for (const [threshold, ids] of this.byThreshold) {
      if (threshold > head) continue;
      this.byThreshold.delete(threshold);
      for (const id of ids) {
        this.thresholdOf.delete(id);
        due.push(id);
      }
    }
    return due;
  }

  remove(id: string): void {
    const threshold = this.thresholdOf.get(id);
    if (threshold === undefined) return;
    this.thresholdOf.delete(id);
    const ids = this.byThreshold.get(threshold);
    ids?.delete(id);
    if (ids?.size === 0) this.byThreshold.delete(threshold);
  }
}
