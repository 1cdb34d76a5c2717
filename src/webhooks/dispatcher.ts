import { createHmac } from 'node:crypto';
import { type Logger, silentLogger } from '../runtime/logger.js';
import { type SendResult, sendWebhook } from './send.js';
import type { AllowList, DeliveryAgents } from './ssrf.js';
import { deliveryAgents } from './ssrf.js';
import type { AttemptOutcome, DueDelivery, WebhookEndpoint, WebhookStore } from './types.js';

/** Svix's schedule: immediately, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h (delays before each attempt). */
export const DEFAULT_RETRY_SCHEDULE_MS: readonly number[] = [
  0, 5_000, 300_000, 1_800_000, 7_200_000, 18_000_000, 36_000_000, 36_000_000,
];

export interface DispatcherOptions {
  store: WebhookStore;
  allow: AllowList;
  /** Delay before each attempt, the first one's included; its length is the number of attempts. */
  retryScheduleMs?: readonly number[];
  /** One attempt, connection to last byte read (15 s), for endpoints without their own. */
  timeoutMs?: number;
  /** Requests in flight per endpoint (4), for endpoints without their own. */
  concurrency?: number;
  /** An endpoint whose attempts have all failed this long is disabled (5 days). */
  disableAfterMs?: number;
  /** How often the outbox is looked at for retries coming due (a commit or a settled delivery looks at once). */
  pollMs?: number;
  /** After a failed read or write of the store, the outbox is left alone this long, doubling up to `maxBackoffMs` (5 s). */
  maxBackoffMs?: number;
  maxResponseBytes?: number;
  logger?: Logger;
}

/** The outcome of one attempt, for `/metrics`. */
export type AttemptResult = 'succeeded' | 'retrying' | 'failed';

/** How the dispatcher's reads and writes of the store fare, for `/metrics` and logs. */
export interface DispatcherHealth {
  /** Failed reads of the outbox and failed writes of attempts, since start. */
  storeErrors: number;
  /** Epoch ms of the first failure of the current run of them; null when the last one succeeded. */
  failingSince: number | null;
  lastError: string | null;
}

/**
 * The payload of a delivery: Standard Webhooks' `{type, timestamp, data}`, `data` the change-log
 * entry as `GET /trackers/:id/history` shows it, with its tracker's id.
 */
export function payloadOf(delivery: DueDelivery): string {
  const { change } = delivery;
  return JSON.stringify({
    type: delivery.type,
    timestamp: new Date(change.at).toISOString(),
    data: {
      seq: change.seq,
      trackerId: change.trackerId,
      at: new Date(change.at).toISOString(),
      from: change.fromState,
      to: change.toState,
      event: change.event,
      blockNumber: change.blockNumber,
      blockHash: change.blockHash,
      restarts: change.restarts,
      reorgs: change.reorgs,
      detail: change.detail === null ? null : (JSON.parse(change.detail) as unknown),
    },
  });
}

/** The same for every attempt and every endpoint: receivers drop duplicates by it. */
export const messageIdOf = (delivery: Pick<DueDelivery, 'seq'>): string => `msg_${delivery.seq}`;

/** Due deliveries read per query when an endpoint has free slots. */
const READ_AHEAD = 256;

/** A `whsec_` secret's key bytes (Standard Webhooks: the base64 after the prefix). */
const keyOf = (secret: string): Buffer => Buffer.from(secret.startsWith('whsec_') ? secret.slice(6) : secret, 'base64');

/**
 * A Standard Webhooks signature (`v1,` and the base64 HMAC-SHA256 of `id.timestamp.body`), as
 * `standardwebhooks`' `Webhook.sign` makes it, with Node's native HMAC.
 *
 * @example
 * signWith(keyOf('whsec_…'), 'msg_1', 1700000000, '{}'); // 'v1,…'
 */
export function signWith(key: Buffer, id: string, timestampSeconds: number, body: string): string {
  return `v1,${createHmac('sha256', key).update(`${id}.${timestampSeconds}.`).update(body).digest('base64')}`;
}

interface Lane {
  /** Requests in flight (at most `concurrency`), each with what cuts it. */
  inflight: Map<number, { trackerId: string; cut: AbortController }>;
  /** Deliveries sent or being sent whose attempt is not recorded yet: not to be picked again. */
  busy: Set<number>;
  /** Due deliveries read ahead, oldest first (in `busy` too). */
  queue: DueDelivery[];
  failingSince: number | null;
  /** `failingSince` as last written to the store. */
  recordedFailingSince: number | null;
  /** Writes of `failingSince` decided here and not yet settled. */
  endpointWrites: number;
  /** Keys of the endpoint's secrets, decoded once. */
  keys: Map<string, Buffer>;
}

/**
 * The delivery worker: sends the outbox's due deliveries, each endpoint in its own lane (at most
 * `concurrency` requests in flight), a tracker's deliveries to an endpoint one after the other, and
 * records every attempt in the store before the delivery may be picked again. A slow or dead
 * endpoint fills only its own lane.
 *
 * @example
 * const dispatcher = new WebhookDispatcher({ store: store.webhooks!, allow: parseAllowList('127.0.0.1') });
 * dispatcher.start();
 */
export class WebhookDispatcher {
  private readonly schedule: readonly number[];
  private readonly timeoutMs: number;
  private readonly concurrency: number;
  private readonly disableAfterMs: number;
  private readonly pollMs: number;
  private readonly maxBackoffMs: number;
  private readonly maxResponseBytes: number;
  private readonly logger: Logger;
  private readonly agents: DeliveryAgents;
  private readonly lanes = new Map<string, Lane>();
  private readonly observers = new Set<(result: AttemptResult, seconds: number) => void>();
  private timer: NodeJS.Timeout | undefined;
  private scheduled = false;
  private ticking = false;
  private again = false;
  /** No look at the outbox before this (epoch ms): the store failed, it is given time. */
  private pausedUntil = 0;
  private backoffMs = 0;
  private health_: DispatcherHealth = { storeErrors: 0, failingSince: null, lastError: null };
  private stopped = false;
  private readonly settling = new Set<Promise<void>>();
  private readonly abort = new AbortController();
  private stopListening = (): void => undefined;
  private endpoints: WebhookEndpoint[] | undefined;
  /** The outcomes of this turn's attempts, written together at its end. */
  private recording: { batch: AttemptOutcome[]; written: Promise<void> } | undefined;

  constructor(private readonly options: DispatcherOptions) {
    this.schedule = options.retryScheduleMs ?? DEFAULT_RETRY_SCHEDULE_MS;
    this.timeoutMs = options.timeoutMs ?? 15_000;
    this.concurrency = options.concurrency ?? 4;
    this.disableAfterMs = options.disableAfterMs ?? 5 * 24 * 3_600_000;
    this.pollMs = options.pollMs ?? 250;
    this.maxBackoffMs = options.maxBackoffMs ?? 5_000;
    this.maxResponseBytes = options.maxResponseBytes ?? 65_536;
    this.logger = options.logger ?? silentLogger;
    this.agents = deliveryAgents(options.allow);
  }

  start(): void {
    // A commit may make deliveries due; the endpoints are read again on the timer and when the
    // routes change one (`wake()`), not at every commit: a busy store commits hundreds of times a second.
    this.stopListening = this.options.store.onCommit(() => this.wake(false));
    this.timer = setInterval(() => this.wake(true), this.pollMs);
    this.timer.unref();
    this.wake();
  }

  /**
   * Look at the outbox at the end of this turn (once, however many wake it); `endpointsChanged`:
   * read the endpoints again first.
   */
  wake(endpointsChanged = true): void {
    if (this.stopped) return;
    if (endpointsChanged) this.endpoints = undefined;
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      void this.run();
    });
  }

  /**
   * One look at the outbox, never two at once (a read in flight must not hand out what another
   * is about to); a wake meanwhile looks again after it. A store that fails is left alone for a
   * backoff, and a failure never ends the process.
   */
  private async run(): Promise<void> {
    if (this.stopped) return;
    if (this.ticking) {
      this.again = true;
      return;
    }
    if (Date.now() < this.pausedUntil) return;
    this.ticking = true;
    try {
      do {
        this.again = false;
        await this.tick();
      } while (this.again && !this.stopped);
      this.storeAnswered();
    } catch (error) {
      this.storeFailed(error, 'webhooks: the outbox could not be read');
    } finally {
      this.ticking = false;
    }
  }

  private storeAnswered(): void {
    if (this.health_.failingSince === null) return;
    this.logger.info({ since: new Date(this.health_.failingSince).toISOString() }, 'webhooks: the store answers again');
    this.health_ = { ...this.health_, failingSince: null, lastError: null };
    this.backoffMs = 0;
    this.pausedUntil = 0;
  }

  private storeFailed(error: unknown, message: string): void {
    const first = this.health_.failingSince === null;
    this.health_ = {
      storeErrors: this.health_.storeErrors + 1,
      failingSince: this.health_.failingSince ?? Date.now(),
      lastError: error instanceof Error ? error.message : String(error),
    };
    this.backoffMs = Math.min(this.maxBackoffMs, Math.max(this.pollMs, this.backoffMs * 2));
    this.pausedUntil = Date.now() + this.backoffMs;
    // Once per run of failures at error level: a database down for minutes would fill the log.
    if (first) this.logger.error({ err: error, retryInMs: this.backoffMs }, message);
    else this.logger.debug({ err: error, retryInMs: this.backoffMs }, message);
  }

  /** The store's failures as the dispatcher met them. */
  health(): DispatcherHealth {
    return { ...this.health_ };
  }

  /** Whether a delivery of this tracker is this process's to send now (see `WebhookStore.sends`). */
  private mine(trackerId: string): boolean {
    return this.options.store.sends?.(trackerId) ?? true;
  }

  /** Told after every attempt: its result and latency. Returns the function that stops it. */
  observeAttempts(observer: (result: AttemptResult, seconds: number) => void): () => void {
    this.observers.add(observer);
    return () => this.observers.delete(observer);
  }

  /** Requests in flight, for tests and metrics. */
  get inflight(): number {
    let n = 0;
    for (const lane of this.lanes.values()) n += lane.inflight.size;
    return n;
  }

  /** Stop sending: requests in flight are cut (their deliveries stay pending and go again after a start). */
  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    this.stopListening();
    this.abort.abort();
    await Promise.allSettled([...this.settling]);
    this.agents.destroy();
  }

  private async tick(): Promise<void> {
    const now = Date.now();
    const endpoints = (this.endpoints ??= await this.options.store.listEndpoints());
    const enabled = new Map(endpoints.filter((e) => e.enabled).map((e) => [e.id, e]));
    for (const [id, lane] of this.lanes) {
      this.dropOthers(lane);
      if (enabled.has(id)) continue;
      // Deleted or disabled: what was read ahead is not sent.
      for (const delivery of lane.queue) lane.busy.delete(delivery.id);
      lane.queue = [];
      if (lane.busy.size === 0) this.lanes.delete(id);
    }
    for (const endpoint of enabled.values()) {
      let lane = this.lanes.get(endpoint.id);
      if (!lane) {
        lane = {
          inflight: new Map(),
          busy: new Set(),
          queue: [],
          failingSince: endpoint.failingSince,
          recordedFailingSince: endpoint.failingSince,
          endpointWrites: 0,
          keys: new Map(),
        };
        this.lanes.set(endpoint.id, lane);
      } else if (lane.endpointWrites === 0 && endpoint.failingSince !== lane.recordedFailingSince) {
        // Written elsewhere (another instance's attempt, a PATCH): every attempt at the endpoint
        // counts, so that one instance's success is not forgotten by another's next failure.
        lane.failingSince = lane.recordedFailingSince = endpoint.failingSince;
      }
      let free = (endpoint.concurrency ?? this.concurrency) - lane.inflight.size;
      if (free <= 0) continue;
      if (lane.queue.length < free) {
        // Read ahead: one query for many sends. Each one read is the oldest pending delivery of its
        // tracker, and stays so until its attempt is recorded.
        const more = await this.options.store.dueDeliveries(endpoint.id, now, Math.max(free, READ_AHEAD), lane.busy);
        if (this.stopped) return;
        for (const delivery of more) {
          if (lane.busy.has(delivery.id)) continue;
          lane.busy.add(delivery.id);
          lane.queue.push(delivery);
        }
      }
      while (free-- > 0 && lane.queue.length > 0) this.send(endpoint, lane, lane.queue.shift()!);
    }
  }

  /**
   * Deliveries of trackers this process no longer runs (their shard went to another instance) are
   * not sent from here: read-ahead ones are forgotten, requests in flight cut, and neither is recorded.
   */
  private dropOthers(lane: Lane): void {
    if (!this.options.store.sends) return;
    if (lane.queue.length > 0) {
      const kept = lane.queue.filter((delivery) => this.mine(delivery.trackerId));
      for (const delivery of lane.queue) if (!kept.includes(delivery)) lane.busy.delete(delivery.id);
      lane.queue = kept;
    }
    for (const { trackerId, cut } of lane.inflight.values()) if (!this.mine(trackerId)) cut.abort();
  }

  private send(endpoint: WebhookEndpoint, lane: Lane, delivery: DueDelivery): void {
    const cut = new AbortController();
    lane.busy.add(delivery.id);
    lane.inflight.set(delivery.id, { trackerId: delivery.trackerId, cut });
    const body = payloadOf(delivery);
    const id = messageIdOf(delivery);
    const now = Date.now();
    const timestamp = Math.floor(now / 1000);
    const signature = endpoint.secrets
      .filter((s) => s.expiresAt === null || s.expiresAt > now)
      .map((s) => {
        let key = lane.keys.get(s.secret);
        if (!key) lane.keys.set(s.secret, (key = keyOf(s.secret)));
        return signWith(key, id, timestamp, body);
      })
      .join(' ');
    const url = new URL(endpoint.url);
    const done = sendWebhook({
      url,
      body,
      headers: {
        'webhook-id': id,
        'webhook-timestamp': String(timestamp),
        'webhook-signature': signature,
      },
      agent: this.agents.agentFor(url),
      timeoutMs: endpoint.timeoutMs ?? this.timeoutMs,
      maxResponseBytes: this.maxResponseBytes,
      signal: AbortSignal.any([this.abort.signal, cut.signal]),
    }).then(async (result) => {
      // The endpoint's slot is free once it answered; the delivery itself stays busy until recorded.
      lane.inflight.delete(delivery.id);
      // Another instance runs its tracker now, and sends it (again) from the store's state.
      if (this.stopped || !this.mine(delivery.trackerId)) return;
      const outcome = this.decide(endpoint, lane, delivery, result);
      const kind: AttemptResult =
        outcome.status === 'succeeded' ? 'succeeded' : outcome.status === 'failed' ? 'failed' : 'retrying';
      for (const observer of this.observers) observer(kind, result.latencyMs / 1000);
      if (outcome.endpoint?.disabledReason) {
        this.logger.warn(
          { endpoint: endpoint.id, reason: outcome.endpoint.disabledReason },
          'webhooks: endpoint disabled',
        );
      }
      // Busy until the attempt is durable: before that the file still shows the delivery as due
      // (and the tracker's next delivery waits behind it).
      const recorded = this.record(outcome);
      this.wake(false);
      await recorded.catch((error: unknown) => {
        this.storeFailed(error, 'webhooks: an attempt could not be recorded; it will be sent again');
      });
      if (outcome.endpoint) lane.endpointWrites--;
    });
    const settled = done.finally(() => {
      lane.inflight.delete(delivery.id);
      lane.busy.delete(delivery.id);
      this.settling.delete(settled);
      this.wake(false);
    });
    this.settling.add(settled);
  }

  /**
   * Record an attempt's outcome with the others of this turn: one write (one commit) for all the
   * answers that came in the same turn.
   */
  private record(outcome: AttemptOutcome): Promise<void> {
    if (!this.recording) {
      const batch: AttemptOutcome[] = [];
      const written = new Promise<void>((resolve, reject) => {
        setImmediate(() => {
          this.recording = undefined;
          this.options.store.recordAttempts(batch).then(resolve, reject);
        });
      });
      this.recording = { batch, written };
    }
    this.recording.batch.push(outcome);
    return this.recording.written;
  }

  private decide(endpoint: WebhookEndpoint, lane: Lane, delivery: DueDelivery, result: SendResult): AttemptOutcome {
    const at = Date.now();
    const attempt = {
      attempt: delivery.attempts + 1,
      at,
      statusCode: result.statusCode,
      latencyMs: result.latencyMs,
      error: result.error,
    };
    const tries = delivery.tries + 1;
    if (result.error === null) {
      lane.failingSince = null;
      return {
        deliveryId: delivery.id,
        attempt,
        status: 'succeeded',
        tries,
        nextAttemptAt: at,
        ...this.endpointChange(endpoint, lane, null),
      };
    }
    lane.failingSince ??= at;
    let disabledReason: string | null = null;
    if (result.statusCode === 410) disabledReason = 'the endpoint answered 410 Gone';
    else if (at - lane.failingSince >= this.disableAfterMs) {
      disabledReason = `every attempt failed since ${new Date(lane.failingSince).toISOString()}; the last: ${result.error}`;
    }
    const last = tries >= this.schedule.length || result.statusCode === 410;
    return {
      deliveryId: delivery.id,
      attempt,
      status: last ? 'failed' : 'pending',
      tries,
      nextAttemptAt: last ? at : at + this.delayBefore(tries, result.retryAfterMs),
      ...this.endpointChange(endpoint, lane, disabledReason),
    };
  }

  /** The endpoint's row is written only when an attempt changes it (most attempts do not). */
  private endpointChange(
    endpoint: WebhookEndpoint,
    lane: Lane,
    disabledReason: string | null,
  ): Pick<AttemptOutcome, 'endpoint'> {
    if (disabledReason === null && lane.failingSince === lane.recordedFailingSince) return {};
    lane.recordedFailingSince = lane.failingSince;
    lane.endpointWrites++;
    return { endpoint: { id: endpoint.id, failingSince: lane.failingSince, disabledReason } };
  }

  /** The schedule's delay before attempt `index`, ±20% jitter; a `Retry-After` takes its place. */
  private delayBefore(index: number, retryAfterMs: number | null): number {
    if (retryAfterMs !== null) return Math.min(retryAfterMs, 86_400_000);
    const delay = this.schedule[index]!;
    return Math.round(delay * (0.8 + Math.random() * 0.4));
  }
}
