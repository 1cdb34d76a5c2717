/** What an endpoint can subscribe to. */
export const WEBHOOK_EVENT_TYPES = ['tracker.state_changed', 'tracker.stuck', 'tracker.updated'] as const;
export type WebhookEventType = (typeof WEBHOOK_EVENT_TYPES)[number];
/** Head-only changes (`tracker.updated`) are many: an endpoint gets them only when it asks. */
export const DEFAULT_EVENT_TYPES: readonly WebhookEventType[] = ['tracker.state_changed', 'tracker.stuck'];

export type DeliveryStatus = 'pending' | 'succeeded' | 'failed';
export const DELIVERY_STATUSES: readonly DeliveryStatus[] = ['pending', 'succeeded', 'failed'];

/** A signing secret; the previous ones stay valid (and signed with) until they expire. */
export interface EndpointSecret {
  secret: string;
  /** Epoch ms; null for the current one. */
  expiresAt: number | null;
}

export interface WebhookEndpoint {
  id: string;
  url: string;
  events: WebhookEventType[];
  /** Tracker ids, or prefixes ending in `*`; null: every tracker. */
  trackers: string[] | null;
  /** The current secret first. */
  secrets: EndpointSecret[];
  enabled: boolean;
  disabledReason: string | null;
  /** Epoch ms of the first failed attempt since the last success; null when not failing. */
  failingSince: number | null;
  /** Requests in flight at most; null: the service's (`WEBHOOK_CONCURRENCY`). */
  concurrency: number | null;
  /** One attempt, connection to last byte read; null: the service's (`WEBHOOK_TIMEOUT_MS`). */
  timeoutMs: number | null;
  createdAt: number;
  updatedAt: number;
}

/** One HTTP attempt of a delivery. */
export interface WebhookAttempt {
  attempt: number;
  at: number;
  /** null when no response came (refused, timed out, blocked address). */
  statusCode: number | null;
  latencyMs: number;
  error: string | null;
}

/** The change-log row a delivery announces, as it was appended. */
export interface ChangeRow {
  seq: number;
  trackerId: string;
  at: number;
  fromState: string | null;
  toState: string;
  event: string;
  blockNumber: number | null;
  blockHash: string | null;
  restarts: number;
  reorgs: number;
  /** JSON text or null. */
  detail: string | null;
}

export interface WebhookDelivery {
  id: number;
  endpointId: string;
  seq: number;
  trackerId: string;
  type: WebhookEventType;
  status: DeliveryStatus;
  /** Attempts in the current schedule (a manual retry starts a new one). */
  tries: number;
  /** Attempts in all. */
  attempts: number;
  nextAttemptAt: number;
  createdAt: number;
  updatedAt: number;
}

/** A delivery due to be sent, with the change it announces. */
export interface DueDelivery extends WebhookDelivery {
  change: ChangeRow;
}

export interface DeliveryPage {
  items: Array<WebhookDelivery & { attemptLog: WebhookAttempt[] }>;
  nextCursor: string | null;
}

/** What the worker decided after an attempt: the delivery's new state, and the endpoint's. */
export interface AttemptOutcome {
  deliveryId: number;
  attempt: WebhookAttempt;
  status: DeliveryStatus;
  tries: number;
  nextAttemptAt: number;
  /** The endpoint's new state; absent when this attempt did not change it. */
  endpoint?: { id: string; failingSince: number | null; disabledReason: string | null };
}

export interface OutboxStats {
  pending: number;
  /** Epoch ms of the oldest pending delivery's creation; null when none. */
  oldestPendingAt: number | null;
}

/** A value, or its promise: what a store on another server answers asynchronously. */
export type Awaitable<T> = T | Promise<T>;

/**
 * Where endpoints and the outbox live: in the tracker store, so that a delivery row is written in
 * the same transaction as the change-log row that causes it. Every write resolves once durable.
 * Reads answer at once from a store in this process (memory, SQLite) and asynchronously from one
 * on another server (PostgreSQL); a failed read throws (or rejects with) a `StoreError`.
 */
export interface WebhookStore {
  createEndpoint(endpoint: WebhookEndpoint): Promise<void>;
  updateEndpoint(endpoint: WebhookEndpoint): Promise<void>;
  deleteEndpoint(id: string): Promise<boolean>;
  getEndpoint(id: string): Awaitable<WebhookEndpoint | undefined>;
  listEndpoints(): Awaitable<WebhookEndpoint[]>;
  /**
   * Pending deliveries of an endpoint due by `now`, each the oldest pending one of its tracker for
   * that endpoint (so that a tracker's deliveries go out in order), oldest first, skipping `busy`
   * (the endpoint's deliveries being sent or recorded). A store shared by several instances gives
   * each only the deliveries of the trackers it runs.
   */
  dueDeliveries(endpointId: string, now: number, limit: number, busy: ReadonlySet<number>): Awaitable<DueDelivery[]>;
  /** The earliest `nextAttemptAt` of an endpoint's pending deliveries, or null. */
  nextAttemptAt(endpointId: string): Awaitable<number | null>;
  /** Attempts' outcomes, in one commit; a delivery appears at most once. */
  recordAttempts(outcomes: readonly AttemptOutcome[]): Promise<void>;
  getDelivery(endpointId: string, deliveryId: number): Awaitable<WebhookDelivery | undefined>;
  /** Newest first. */
  listDeliveries(
    endpointId: string,
    query: { status?: DeliveryStatus; limit: number; cursor?: string },
  ): Awaitable<DeliveryPage>;
  /** Back to pending with a new schedule, due now. */
  retryDelivery(deliveryId: number, now: number): Promise<void>;
  outboxStats(): Awaitable<OutboxStats>;
  /** Told after a commit that may have added deliveries. Returns the function that stops it. */
  onCommit(listener: () => void): () => void;
  /**
   * Whether a delivery of this tracker is this process's to send (absent: all are). Asked again
   * before each attempt is recorded: a shard handed to another instance meanwhile is its to send.
   */
  sends?(trackerId: string): boolean;
}
