import type { TrackerEvent } from '../../machines/tracker.machine.js';

/** Events held for one restarting tracker at most (the oldest go first). */
const MAX_HELD_EVENTS = 100;

/**
 * What waits for a tracker that is restarting: the events sent to it meanwhile, delivered in order
 * to its next incarnation, and the callers waiting for it to be back (or given up).
 *
 * @example
 * held.hold('txn_1', { type: 'RECHECK' });
 * await held.restarted('txn_1'); // resolved by held.wake('txn_1')
 */
export class HeldEvents {
  private readonly events = new Map<string, TrackerEvent[]>();
  private readonly waiters = new Map<string, Array<() => void>>();

  hold(id: string, event: TrackerEvent): void {
    const events = this.events.get(id) ?? [];
    if (events.length >= MAX_HELD_EVENTS) events.shift();
    events.push(event);
    this.events.set(id, events);
  }

  /** The events held for `id`, in the order they were sent, no longer held. */
  take(id: string): TrackerEvent[] | undefined {
    const events = this.events.get(id);
    this.events.delete(id);
    return events;
  }

  /** Resolves when `wake(id)` is called: the tracker is back, or was given up. */
  restarted(id: string): Promise<void> {
    return new Promise((resolve) => {
      const waiters = this.waiters.get(id) ?? [];
      waiters.push(resolve);
      this.waiters.set(id, waiters);
    });
  }

  /** The callers waiting for `id`, no longer waiting; the caller wakes them when it is ready. */
  takeWaiters(id: string): Array<() => void> | undefined {
    const waiters = this.waiters.get(id);
    this.waiters.delete(id);
    return waiters;
  }

  /** The tracker is gone for good: its held events are dropped and its waiters woken. */
  drop(id: string): void {
    this.events.delete(id);
    for (const wake of this.takeWaiters(id) ?? []) wake();
  }
}
