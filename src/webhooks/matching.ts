import type { ChangeRow, WebhookEndpoint, WebhookEventType } from './types.js';

const top = (path: string): string => path.split('.')[0]!;

/**
 * The event type of a change, as `EVENT_TYPE_SQL` computes it in the store.
 *
 * @example
 * eventTypeOf({ fromState: 'pending.seen', toState: 'confirming', … }); // 'tracker.state_changed'
 */
export function eventTypeOf(change: Pick<ChangeRow, 'fromState' | 'toState' | 'event'>): WebhookEventType {
  const { fromState, toState } = change;
  if (fromState === null) return 'tracker.state_changed';
  // Every stuck verdict: entering stuck, or its reason changing (a restart while stuck is not one).
  if (toState.includes('stuck') && (!fromState.includes('stuck') || change.event === 'TX_STUCK'))
    return 'tracker.stuck';
  return top(toState) !== top(fromState) ? 'tracker.state_changed' : 'tracker.updated';
}

/**
 * Whether an endpoint's tracker filter takes this tracker: no filter, an equal id, or a prefix
 * ending in `*`.
 *
 * @example
 * trackerMatches(['order-*'], 'order-17'); // true
 */
export function trackerMatches(filter: readonly string[] | null, trackerId: string): boolean {
  if (filter === null) return true;
  return filter.some((entry) => (entry.endsWith('*') ? trackerId.startsWith(entry.slice(0, -1)) : entry === trackerId));
}

/** Whether an enabled endpoint gets a delivery for this change (the outbox trigger's condition). */
export function endpointWants(endpoint: WebhookEndpoint, change: ChangeRow): WebhookEventType | undefined {
  if (!endpoint.enabled) return undefined;
  const type = eventTypeOf(change);
  return endpoint.events.includes(type) && trackerMatches(endpoint.trackers, change.trackerId) ? type : undefined;
}
