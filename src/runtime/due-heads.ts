import type { Finality, TrackerContext, TrackerEvent, TrackerStateName } from '../../machines/tracker.machine.js';

/**
 * Confirming trackers indexed by the block number at which they are due, so that a new block
 * number wakes only the ones it makes due instead of sending every confirming tracker an event per
 * block. For a tracker counted by confirmations that number is the head at which it has them
 * (blockNumber + requiredConfirmations − 1); for one confirmed by finality, its own block number,
 * compared with the chain's safe or finalized block.
 *
 * @example
 * const due = new DueHeads();
 * due.update('txn_1', 107, head); // true when already due at `head`
 * due.takeDue(1_234_567); // ids whose threshold is ≤ 1,234,567, removed from the index
 */
export class DueHeads {
  private readonly byThreshold = new Map<number, Set<string>>();
  private readonly thresholdOf = new Map<string, number>();

  /**
   * Keep `id` at `threshold` (null: not waiting). Returns true when it is due already (`current` is
   * at or past its threshold): the caller wakes it; it is not indexed.
   */
  update(id: string, threshold: number | null, current: number | null): boolean {
    const previous = this.thresholdOf.get(id);
    if (previous === threshold) return false;
    if (previous !== undefined) this.remove(id);
    if (threshold === null) return false;
    if (current !== null && threshold <= current) return true;
    this.thresholdOf.set(id, threshold);
    let ids = this.byThreshold.get(threshold);
    if (!ids) this.byThreshold.set(threshold, (ids = new Set()));
    ids.add(id);
    return false;
  }

  /** The ids due at `current`, taken out of the index. */
  takeDue(current: number): string[] {
    const due: string[] = [];
    for (const [threshold, ids] of this.byThreshold) {
      if (threshold > current) continue;
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

  get size(): number {
    return this.thresholdOf.size;
  }
}

/**
 * One chain's due trackers: those counted by confirmations by the head that confirms them, those
 * confirmed by finality by their block, per tag; and the chain's latest head, safe and finalized
 * block numbers they are compared with.
 *
 * @example
 * const due = new ChainDue();
 * due.update('txn_1', context, 'confirming'); // the event to wake it with now, if already due
 */
export class ChainDue {
  head: number | null = null;
  readonly final: Record<Finality, number | null> = { safe: null, finalized: null };
  private readonly byHead = new DueHeads();
  private readonly byFinal: Record<Finality, DueHeads> = { safe: new DueHeads(), finalized: new DueHeads() };

  /** Keep tracker `id` in step with its latest snapshot; the event that wakes it when it is due already. */
  update(id: string, context: TrackerContext, state: TrackerStateName): TrackerEvent | undefined {
    const confirming = state === 'confirming' && context.blockNumber !== null;
    if (context.finality === null) {
      const threshold = confirming ? context.blockNumber! + context.requiredConfirmations - 1 : null;
      return this.byHead.update(id, threshold, this.head) ? { type: 'NEW_HEAD', blockNumber: this.head! } : undefined;
    }
    const at = this.final[context.finality];
    if (!this.byFinal[context.finality].update(id, confirming ? context.blockNumber : null, at)) return undefined;
    return { type: 'FINALITY', blockNumber: at!, head: Math.max(this.head ?? at!, at!) };
  }

  /** A new head: the ids it brings to their required confirmations. */
  newHead(blockNumber: number): string[] {
    this.head = blockNumber;
    return this.byHead.takeDue(blockNumber);
  }

  /** A new safe or finalized block: the ids whose block it reaches. */
  newFinal(tag: Finality, blockNumber: number): string[] {
    this.final[tag] = blockNumber;
    return this.byFinal[tag].takeDue(blockNumber);
  }

  remove(id: string): void {
    this.byHead.remove(id);
    this.byFinal.safe.remove(id);
    this.byFinal.finalized.remove(id);
  }

  /** Trackers waiting for a safe or finalized block (the watcher reads those tags only for them). */
  waitingFor(tag: Finality): number {
    return this.byFinal[tag].size;
  }
}
