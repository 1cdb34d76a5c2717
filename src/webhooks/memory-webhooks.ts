import { endpointWants } from './matching.js';
import type {
  AttemptOutcome,
  ChangeRow,
  DeliveryPage,
  DeliveryStatus,
  DueDelivery,
  OutboxStats,
  WebhookAttempt,
  WebhookDelivery,
  WebhookEndpoint,
  WebhookStore,
} from './types.js';

const copy = <T>(value: T): T => structuredClone(value);

/**
 * The webhook tables of a `MemoryStore`: durable for the life of the process only, like its
 * trackers. `append` is the outbox: the store calls it for each change it records, in the same
 * synchronous step, so a change and its deliveries are never seen apart.
 *
 * @example
 * const webhooks = new MemoryWebhookStore();
 * webhooks.append(change); // one pending delivery per matching endpoint
 */
export class MemoryWebhookStore implements WebhookStore {
  private readonly endpoints = new Map<string, WebhookEndpoint>();
  private readonly deliveries = new Map<number, WebhookDelivery & { change: ChangeRow }>();
  private readonly attempts = new Map<number, WebhookAttempt[]>();
  private nextId = 1;
  private readonly listeners = new Set<() => void>();
  private notifying = false;

  /** The outbox: a pending delivery of this change for each enabled endpoint that wants it. */
  append(change: ChangeRow): void {
    if (this.endpoints.size === 0) return;
    for (const endpoint of this.endpoints.values()) {
      const type = endpointWants(endpoint, change);
      if (!type) continue;
      this.notify();
      const id = this.nextId++;
      this.deliveries.set(id, {
        id,
        endpointId: endpoint.id,
        seq: change.seq,
        trackerId: change.trackerId,
        type,
        status: 'pending',
        tries: 0,
        attempts: 0,
        nextAttemptAt: change.at,
        createdAt: change.at,
        updatedAt: change.at,
        change: copy(change),
      });
    }
  }

  async createEndpoint(endpoint: WebhookEndpoint): Promise<void> {
    this.endpoints.set(endpoint.id, copy(endpoint));
  }

  async updateEndpoint(endpoint: WebhookEndpoint): Promise<void> {
    if (this.endpoints.has(endpoint.id)) this.endpoints.set(endpoint.id, copy(endpoint));
  }

  async deleteEndpoint(id: string): Promise<boolean> {
    if (!this.endpoints.delete(id)) return false;
    for (const [deliveryId, delivery] of this.deliveries) {
      if (delivery.endpointId !== id) continue;
      this.deliveries.delete(deliveryId);
      this.attempts.delete(deliveryId);
    }
    return true;
  }

  getEndpoint(id: string): WebhookEndpoint | undefined {
    const endpoint = this.endpoints.get(id);
    return endpoint && copy(endpoint);
  }

  /** In creation order, as the SQL stores list them. */
  listEndpoints(): WebhookEndpoint[] {
    return [...this.endpoints.values()]
      .sort((a, b) => a.createdAt - b.createdAt || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
      .map(copy);
  }

  dueDeliveries(endpointId: string, now: number, limit: number, busy: ReadonlySet<number>): DueDelivery[] {
    const due: DueDelivery[] = [];
    const blocked = new Set<string>();
    for (const delivery of this.deliveries.values()) {
      if (delivery.endpointId !== endpointId || delivery.status !== 'pending') continue;
      // Only the oldest pending delivery of each tracker may go.
      if (blocked.has(delivery.trackerId)) continue;
      blocked.add(delivery.trackerId);
      if (delivery.nextAttemptAt > now || busy.has(delivery.id)) continue;
      due.push(copy(delivery));
      if (due.length === limit) break;
    }
    return due;
  }

  nextAttemptAt(endpointId: string): number | null {
    let next: number | null = null;
    for (const d of this.deliveries.values()) {
      if (d.endpointId === endpointId && d.status === 'pending')
        next = Math.min(next ?? d.nextAttemptAt, d.nextAttemptAt);
    }
    return next;
  }

  async recordAttempts(outcomes: readonly AttemptOutcome[]): Promise<void> {
    for (const outcome of outcomes) this.recordOne(outcome);
  }

  private recordOne(outcome: AttemptOutcome): void {
    const delivery = this.deliveries.get(outcome.deliveryId);
    if (delivery) {
      const list = this.attempts.get(delivery.id) ?? [];
      list.push(copy(outcome.attempt));
      this.attempts.set(delivery.id, list);
      Object.assign(delivery, {
        status: outcome.status,
        tries: outcome.tries,
        attempts: outcome.attempt.attempt,
        nextAttemptAt: outcome.nextAttemptAt,
        updatedAt: outcome.attempt.at,
      });
    }
    const endpoint = outcome.endpoint && this.endpoints.get(outcome.endpoint.id);
    if (outcome.endpoint && endpoint) {
      endpoint.failingSince = outcome.endpoint.failingSince;
      if (outcome.endpoint.disabledReason !== null) {
        endpoint.enabled = false;
        endpoint.disabledReason = outcome.endpoint.disabledReason;
        endpoint.updatedAt = outcome.attempt.at;
      }
    }
  }

  getDelivery(endpointId: string, deliveryId: number): WebhookDelivery | undefined {
    const delivery = this.deliveries.get(deliveryId);
    if (!delivery || delivery.endpointId !== endpointId) return undefined;
    const { change: _change, ...rest } = delivery;
    return copy(rest);
  }

  listDeliveries(endpointId: string, query: { status?: DeliveryStatus; limit: number; cursor?: string }): DeliveryPage {
    const before = query.cursor === undefined ? Number.MAX_SAFE_INTEGER : Number(query.cursor);
    const rows = [...this.deliveries.values()]
      .filter((d) => d.endpointId === endpointId && d.id < before && (!query.status || d.status === query.status))
      .sort((a, b) => b.id - a.id)
      .slice(0, query.limit + 1);
    const more = rows.length > query.limit;
    if (more) rows.pop();
    return {
      items: rows.map(({ change: _change, ...d }) => ({ ...copy(d), attemptLog: copy(this.attempts.get(d.id) ?? []) })),
      nextCursor: more ? String(rows[rows.length - 1]!.id) : null,
    };
  }

  async retryDelivery(deliveryId: number, now: number): Promise<void> {
    const delivery = this.deliveries.get(deliveryId);
    if (delivery) Object.assign(delivery, { status: 'pending', tries: 0, nextAttemptAt: now, updatedAt: now });
  }

  /** Listeners hear once per turn, however many deliveries it added. */
  private notify(): void {
    if (this.notifying) return;
    this.notifying = true;
    setImmediate(() => {
      this.notifying = false;
      for (const listener of this.listeners) listener();
    });
  }

  onCommit(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  outboxStats(): OutboxStats {
    let pending = 0;
    let oldest: number | null = null;
    for (const d of this.deliveries.values()) {
      if (d.status !== 'pending') continue;
      pending++;
      oldest = Math.min(oldest ?? d.createdAt, d.createdAt);
    }
    return { pending, oldestPendingAt: oldest };
  }
}
