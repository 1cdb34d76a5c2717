import type { TrackerEvent } from '../../machines/tracker.machine.js';

/** Events held for one restarting tracker at most; more are not accepted. */
const MAX_HELD_EVENTS = 100;

/**
 * What waits for a tracker that is restarting: the events sent to it meanwhile, in the order they
 * came, handed to its next incarnation before any later event; and the callers waiting for it to be
 * back (or given up).
 *
 * @example
 * held.hold('txn_1', { type: 'RECHECK' });
 * await held.restarted('txn_1'); // resolved by held.wake('txn_1')
 */
export class HeldEvents {
  private readonly events = new Map<string, TrackerEvent[]>();
  private readonly waiters = new Map<string, Array<() => void>>();

  /** Whether events wait for `id`'s next incarnation (not all handed over yet). */
  has(id: string): boolean {
    return this.events.has(id);
  }

  /** Hold an event for the tracker's next incarnation; false (not held) when too many wait already. */
  hold(id: string, event: TrackerEvent): boolean {
    const events = this.events.get(id) ?? [];
    if (events.length >= MAX_HELD_EVENTS) return false;
    events.push(event);
    this.events.set(id, events);
    return true;
  }

  /**
   * Hand `id`'s held events, in order, to `send` while `isLive()`: an event that crashes the tracker
   * leaves the rest held for its next incarnation. True when all were handed over and it is still live.
   */
  handOver(id: string, send: (event: TrackerEvent) => void, isLive: () => boolean): boolean {
    const events = this.events.get(id);
    if (!events) return true;
    while (events.length > 0 && isLive()) send(events.shift()!);
    if (events.length > 0) return false;
    if (this.events.get(id) === events) this.events.delete(id);
    return isLive();
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

  /** The tracker is gone for good: its waiters are woken; returns the held events it drops. */
  drop(id: string): TrackerEvent[] {
    const events = this.events.get(id) ?? [];
    this.events.delete(id);
    for (const wake of this.takeWaiters(id) ?? []) wake();
    return events;
  }
}
