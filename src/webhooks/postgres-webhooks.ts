import type pg from 'pg';
import { StoreError } from '../errors.js';
import type { HistoryValues } from '../store/row.js';
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
  WebhookEventType,
  WebhookStore,
} from './types.js';

interface EndpointRow {
  id: string;
  url: string;
  events: WebhookEventType[];
  trackers: string[] | null;
  secrets: WebhookEndpoint['secrets'];
  enabled: boolean;
  disabled_reason: string | null;
  failing_since: number | null;
  created_at: number;
  updated_at: number;
}

interface DeliveryRow {
  id: number;
  endpoint_id: string;
  seq: number;
  tracker_id: string;
  type: string;
  status: string;
  tries: number;
  attempts: number;
  next_attempt_at: number;
  created_at: number;
  updated_at: number;
}

/** A delivery and its change; the change's columns are null when history retention removed it. */
interface DueRow extends DeliveryRow {
  at: number | null;
  from_state: string | null;
  to_state: string | null;
  event: string | null;
  block_number: number | null;
  block_hash: string | null;
  restarts: number | null;
  reorgs: number | null;
  detail: string | null;
}

/** The deliveries a group commit inserted, before it is known to have committed. */
export interface OutboxRows {
  deliveries: DueDelivery[];
}

const fromEndpointRow = (row: EndpointRow): WebhookEndpoint => ({
  id: row.id,
  url: row.url,
  events: row.events,
  trackers: row.trackers,
  secrets: row.secrets,
  enabled: row.enabled,
  disabledReason: row.disabled_reason,
  failingSince: row.failing_since,
  createdAt: row.created_at,
  updatedAt: row.updated_at,
});

const fromDeliveryRow = (row: DeliveryRow): WebhookDelivery => ({
  id: row.id,
  endpointId: row.endpoint_id,
  seq: row.seq,
  trackerId: row.tracker_id,
  type: row.type as WebhookEventType,
  status: row.status as DeliveryStatus,
  tries: row.tries,
  attempts: row.attempts,
  nextAttemptAt: row.next_attempt_at,
  createdAt: row.created_at,
  updatedAt: row.updated_at,
});

const changeOfRow = (row: DueRow): ChangeRow | undefined =>
  row.to_state === null
    ? undefined
    : {
        seq: row.seq,
        trackerId: row.tracker_id,
        at: row.at!,
        fromState: row.from_state,
        toState: row.to_state,
        event: row.event!,
        blockNumber: row.block_number,
        blockHash: row.block_hash,
        restarts: row.restarts!,
        reorgs: row.reorgs!,
        detail: row.detail,
      };

const changeOfValues = (values: HistoryValues): ChangeRow => {
  const [seq, trackerId, , at, fromState, toState, event, blockNumber, blockHash, restarts, reorgs, detail] = values;
  return { seq, trackerId, at, fromState, toState, event, blockNumber, blockHash, restarts, reorgs, detail };
};

const endpointValues = (e: WebhookEndpoint): unknown[] => [
  e.id,
  e.url,
  JSON.stringify(e.events),
  e.trackers === null ? null : JSON.stringify(e.trackers),
  JSON.stringify(e.secrets),
  e.enabled,
  e.disabledReason,
  e.failingSince,
  e.createdAt,
  e.updatedAt,
];

const INSERT_ENDPOINT = `INSERT INTO webhook_endpoints (id, url, events, trackers, secrets, enabled, disabled_reason,
  failing_since, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`;
const UPDATE_ENDPOINT = `UPDATE webhook_endpoints SET url = $2, events = $3, trackers = $4, secrets = $5, enabled = $6,
  disabled_reason = $7, failing_since = $8, created_at = $9, updated_at = $10 WHERE id = $1`;
const CHANGE_COLUMNS =
  'h.at, h.from_state, h.to_state, h.event, h.block_number, h.block_hash, h.restarts, h.reorgs, h.detail';

/**
 * The webhook event type of a change-log row `h`, as SQLite's `EVENT_TYPE_SQL` (and `eventTypeOf`):
 * entering the stuck sub-state, a new tracker or another top-level state, anything else.
 */
const EVENT_TYPE_SQL = `(CASE
  WHEN h.from_state IS NULL THEN 'tracker.state_changed'
  WHEN strpos(h.to_state, 'stuck') > 0 AND strpos(h.from_state, 'stuck') = 0 THEN 'tracker.stuck'
  WHEN split_part(h.to_state, '.', 1) <> split_part(h.from_state, '.', 1) THEN 'tracker.state_changed'
  ELSE 'tracker.updated' END)`;

/**
 * The outbox, as SQLite's `webhook_outbox` trigger: one pending delivery of each change-log row of
 * the commit per enabled endpoint whose filters match, in seq order (a tracker's deliveries get
 * increasing ids). `FOR KEY SHARE` holds the endpoints it matched until the commit, so that an
 * endpoint's deletion waits for it and then removes the deliveries it made.
 */
const OUTBOX_SQL = `
  INSERT INTO webhook_deliveries (endpoint_id, seq, tracker_id, type, status, next_attempt_at, created_at, updated_at)
  SELECT e.id, h.seq, h.tracker_id, k.type, 'pending', h.at, h.at, h.at
  FROM tracker_history h
  CROSS JOIN LATERAL (SELECT ${EVENT_TYPE_SQL} AS type) k
  JOIN webhook_endpoints e ON e.enabled AND e.events ? k.type
    AND (e.trackers IS NULL OR EXISTS (
      SELECT 1 FROM jsonb_array_elements_text(e.trackers) f(v)
      WHERE f.v COLLATE "C" = h.tracker_id
         OR (right(f.v, 1) = '*' AND left(h.tracker_id, length(f.v) - 1) = left(f.v, -1) COLLATE "C")))
  WHERE h.seq = ANY($1::int8[])
  ORDER BY h.seq, e.id
  FOR KEY SHARE OF e
  RETURNING id, endpoint_id, seq, tracker_id, type, next_attempt_at`;

/**
 * The webhook tables of a `PostgresStore`'s database. The outbox rows are inserted by the store's
 * group commit (`insertOutbox`), in the transaction that appends the change-log rows; the other
 * writes are transactions of their own, each resolved once committed.
 *
 * The dispatcher reads synchronously: the endpoints and the pending deliveries (with their changes)
 * are mirrored in memory, loaded at `load()` and kept by every write of this store and every commit
 * of its tracker store. The API's reads of finished deliveries and attempts go to the database.
 *
 * @example
 * const webhooks = new PostgresWebhookStore(pool);
 * await webhooks.load();
 */
export class PostgresWebhookStore implements WebhookStore {
  private readonly endpoints = new Map<string, WebhookEndpoint>();
  /** Pending deliveries by endpoint, each in id order. */
  private readonly pending = new Map<string, Map<number, DueDelivery>>();
  /** The highest delivery id ever added to each endpoint's lane. */
  private readonly newest = new Map<string, number>();
  private readonly listeners = new Set<() => void>();

  constructor(private readonly pool: pg.Pool) {}

  /** Read the endpoints and the pending deliveries; fail the ones whose change was pruned. */
  async load(): Promise<void> {
    const endpoints = await this.pool.query<EndpointRow>('SELECT * FROM webhook_endpoints ORDER BY created_at, id');
    this.endpoints.clear();
    this.pending.clear();
    this.newest.clear();
    for (const row of endpoints.rows) this.endpoints.set(row.id, fromEndpointRow(row));
    const due = await this.pool.query<DueRow>(`
      SELECT d.*, ${CHANGE_COLUMNS}
      FROM webhook_deliveries d LEFT JOIN tracker_history h ON h.seq = d.seq
      WHERE d.status = 'pending' ORDER BY d.id`);
    const pruned: number[] = [];
    for (const row of due.rows) {
      const change = changeOfRow(row);
      // Its change left the change log (HISTORY_RETENTION_DAYS) before it could be sent.
      if (!change) pruned.push(row.id);
      else this.addPending({ ...fromDeliveryRow(row), change });
    }
    if (pruned.length > 0) {
      await this.pool.query(
        "UPDATE webhook_deliveries SET status = 'failed', updated_at = $2 WHERE id = ANY($1::int8[]) AND status = 'pending'",
        [pruned, Date.now()],
      );
    }
  }

  /**
   * The outbox step of a group commit, on its transaction, after the change-log rows (`history`,
   * numbered) were inserted. Its rows join the mirror through `committed` once the commit is.
   */
  async insertOutbox(client: pg.PoolClient, history: readonly HistoryValues[]): Promise<OutboxRows> {
    const made = await client.query<Pick<DeliveryRow, 'id' | 'endpoint_id' | 'seq' | 'tracker_id' | 'type'>>({
      name: 'tx_webhook_outbox',
      text: OUTBOX_SQL,
      values: [history.map((values) => values[0])],
    });
    if (made.rows.length === 0) return { deliveries: [] };
    const changes = new Map(history.map((values) => [values[0], values]));
    const deliveries = made.rows
      .map((row): DueDelivery => {
        const change = changeOfValues(changes.get(row.seq)!);
        return {
          id: row.id,
          endpointId: row.endpoint_id,
          seq: row.seq,
          trackerId: row.tracker_id,
          type: row.type as WebhookEventType,
          status: 'pending',
          tries: 0,
          attempts: 0,
          nextAttemptAt: change.at,
          createdAt: change.at,
          updatedAt: change.at,
          change,
        };
      })
      .sort((a, b) => a.id - b.id);
    return { deliveries };
  }

  /** The store committed a transaction, with the deliveries its outbox step made. */
  committed(rows: OutboxRows | undefined): void {
    for (const delivery of rows?.deliveries ?? []) {
      // Not for an endpoint deleted since (its deletion waited for this commit, then removed them).
      if (this.endpoints.has(delivery.endpointId)) this.addPending(delivery);
    }
    this.notify();
  }

  async createEndpoint(endpoint: WebhookEndpoint): Promise<void> {
    await this.run(async (client) => {
      await client.query(INSERT_ENDPOINT, endpointValues(endpoint));
    });
    this.endpoints.set(endpoint.id, structuredClone(endpoint));
    this.notify();
  }

  async updateEndpoint(endpoint: WebhookEndpoint): Promise<void> {
    const { rowCount } = await this.run((client) => client.query(UPDATE_ENDPOINT, endpointValues(endpoint)));
    if (rowCount) this.endpoints.set(endpoint.id, structuredClone(endpoint));
    this.notify();
  }

  async deleteEndpoint(id: string): Promise<boolean> {
    const deleted = await this.run(async (client) => {
      // The endpoint first: a commit whose outbox matched it holds it (FOR KEY SHARE) until done, so
      // the deliveries deleted next include that commit's.
      const { rowCount } = await client.query('DELETE FROM webhook_endpoints WHERE id = $1', [id]);
      if (!rowCount) return false;
      await client.query(
        'DELETE FROM webhook_attempts WHERE delivery_id IN (SELECT id FROM webhook_deliveries WHERE endpoint_id = $1)',
        [id],
      );
      await client.query('DELETE FROM webhook_deliveries WHERE endpoint_id = $1', [id]);
      return true;
    });
    this.endpoints.delete(id);
    this.pending.delete(id);
    this.newest.delete(id);
    if (deleted) this.notify();
    return deleted;
  }

  getEndpoint(id: string): WebhookEndpoint | undefined {
    const endpoint = this.endpoints.get(id);
    return endpoint && structuredClone(endpoint);
  }

  listEndpoints(): WebhookEndpoint[] {
    return [...this.endpoints.values()]
      .sort((a, b) => a.createdAt - b.createdAt || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
      .map((e) => structuredClone(e));
  }

  dueDeliveries(endpointId: string, now: number, limit: number, busy: ReadonlySet<number>): DueDelivery[] {
    const due: DueDelivery[] = [];
    const blocked = new Set<string>();
    for (const delivery of this.pending.get(endpointId)?.values() ?? []) {
      // Only the oldest pending delivery of each tracker may go.
      if (blocked.has(delivery.trackerId)) continue;
      blocked.add(delivery.trackerId);
      if (delivery.nextAttemptAt > now || busy.has(delivery.id)) continue;
      due.push(structuredClone(delivery));
      if (due.length === limit) break;
    }
    return due;
  }

  nextAttemptAt(endpointId: string): number | null {
    let next: number | null = null;
    for (const d of this.pending.get(endpointId)?.values() ?? [])
      next = Math.min(next ?? d.nextAttemptAt, d.nextAttemptAt);
    return next;
  }

  async recordAttempt(outcome: AttemptOutcome): Promise<void> {
    const { attempt, endpoint } = outcome;
    await this.run(async (client) => {
      // Not for a delivery deleted meanwhile (with its endpoint).
      await client.query(
        `INSERT INTO webhook_attempts (delivery_id, attempt, at, status_code, latency_ms, error)
         SELECT $1, $2, $3, $4, $5, $6 WHERE EXISTS (SELECT 1 FROM webhook_deliveries WHERE id = $1)
         ON CONFLICT (delivery_id, attempt) DO UPDATE SET at = excluded.at, status_code = excluded.status_code,
           latency_ms = excluded.latency_ms, error = excluded.error`,
        [outcome.deliveryId, attempt.attempt, attempt.at, attempt.statusCode, attempt.latencyMs, attempt.error],
      );
      await client.query(
        'UPDATE webhook_deliveries SET status = $2, tries = $3, attempts = $4, next_attempt_at = $5, updated_at = $6 WHERE id = $1',
        [outcome.deliveryId, outcome.status, outcome.tries, attempt.attempt, outcome.nextAttemptAt, attempt.at],
      );
      // Disabled stays disabled (a 410 or days of failures); only a PATCH enables it again.
      await client.query(
        `UPDATE webhook_endpoints SET failing_since = $2,
           enabled = CASE WHEN $3::text IS NULL THEN enabled ELSE false END,
           disabled_reason = COALESCE($3::text, disabled_reason),
           updated_at = CASE WHEN $3::text IS NULL THEN updated_at ELSE $4 END
         WHERE id = $1`,
        [endpoint.id, endpoint.failingSince, endpoint.disabledReason, attempt.at],
      );
    });
    const lane = this.pending.get(endpoint.id);
    const delivery = lane?.get(outcome.deliveryId);
    if (delivery) {
      if (outcome.status === 'pending') {
        Object.assign(delivery, {
          tries: outcome.tries,
          attempts: attempt.attempt,
          nextAttemptAt: outcome.nextAttemptAt,
          updatedAt: attempt.at,
        });
      } else lane!.delete(outcome.deliveryId);
    }
    const mirrored = this.endpoints.get(endpoint.id);
    if (mirrored) {
      mirrored.failingSince = endpoint.failingSince;
      if (endpoint.disabledReason !== null) {
        mirrored.enabled = false;
        mirrored.disabledReason = endpoint.disabledReason;
        mirrored.updatedAt = attempt.at;
      }
    }
  }

  async getDelivery(endpointId: string, deliveryId: number): Promise<WebhookDelivery | undefined> {
    const { rows } = await this.read<DeliveryRow>(
      'SELECT * FROM webhook_deliveries WHERE id = $1 AND endpoint_id = $2',
      [deliveryId, endpointId],
    );
    return rows[0] ? fromDeliveryRow(rows[0]) : undefined;
  }

  async listDeliveries(
    endpointId: string,
    query: { status?: DeliveryStatus; limit: number; cursor?: string },
  ): Promise<DeliveryPage> {
    const before = query.cursor === undefined ? Number.MAX_SAFE_INTEGER : Number(query.cursor);
    const { rows: found } = await this.read<DeliveryRow>(
      `SELECT * FROM webhook_deliveries WHERE endpoint_id = $1 AND ($2::text IS NULL OR status = $2) AND id < $3
       ORDER BY id DESC LIMIT $4`,
      [endpointId, query.status ?? null, before, query.limit + 1],
    );
    const rows = found.map(fromDeliveryRow);
    const more = rows.length > query.limit;
    if (more) rows.pop();
    const attempts = new Map<number, WebhookAttempt[]>();
    if (rows.length > 0) {
      const log = await this.read<WebhookAttempt & { deliveryId: number }>(
        `SELECT delivery_id AS "deliveryId", attempt, at, status_code AS "statusCode", latency_ms AS "latencyMs", error
         FROM webhook_attempts WHERE delivery_id = ANY($1::int8[]) ORDER BY delivery_id, attempt`,
        [rows.map((r) => r.id)],
      );
      for (const { deliveryId, ...attempt } of log.rows) {
        const list = attempts.get(deliveryId) ?? [];
        list.push(attempt);
        attempts.set(deliveryId, list);
      }
    }
    return {
      items: rows.map((row) => ({ ...row, attemptLog: attempts.get(row.id) ?? [] })),
      nextCursor: more ? String(rows[rows.length - 1]!.id) : null,
    };
  }

  async retryDelivery(deliveryId: number, now: number): Promise<void> {
    const { rows } = await this.run((client) =>
      client.query<DueRow>(
        `WITH d AS (UPDATE webhook_deliveries SET status = 'pending', tries = 0, next_attempt_at = $2, updated_at = $2
                    WHERE id = $1 RETURNING *)
         SELECT d.*, ${CHANGE_COLUMNS} FROM d LEFT JOIN tracker_history h ON h.seq = d.seq`,
        [deliveryId, now],
      ),
    );
    const row = rows[0];
    if (!row) return;
    const change = changeOfRow(row);
    if (!change) {
      // Its change was pruned: there is nothing left to send.
      await this.run((client) =>
        client.query("UPDATE webhook_deliveries SET status = 'failed' WHERE id = $1 AND status = 'pending'", [row.id]),
      );
      return;
    }
    if (this.endpoints.has(row.endpoint_id)) this.addPending({ ...fromDeliveryRow(row), change });
    this.notify();
  }

  outboxStats(): OutboxStats {
    let pending = 0;
    let oldest: number | null = null;
    for (const lane of this.pending.values()) {
      for (const d of lane.values()) {
        pending++;
        oldest = Math.min(oldest ?? d.createdAt, d.createdAt);
      }
    }
    return { pending, oldestPendingAt: oldest };
  }

  onCommit(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private notify(): void {
    for (const listener of this.listeners) listener();
  }

  private addPending(delivery: DueDelivery): void {
    let lane = this.pending.get(delivery.endpointId);
    if (!lane) {
      lane = new Map();
      this.pending.set(delivery.endpointId, lane);
    }
    const last = this.newest.get(delivery.endpointId) ?? 0;
    lane.set(delivery.id, delivery);
    if (delivery.id > last) this.newest.set(delivery.endpointId, delivery.id);
    else {
      // A retried delivery comes back among newer ones: the lane is put in id order again.
      const sorted = [...lane.values()].sort((a, b) => a.id - b.id);
      lane.clear();
      for (const d of sorted) lane.set(d.id, d);
    }
  }

  /** A transaction of its own; a failure is a `StoreError` (503). */
  private async run<T>(body: (client: pg.PoolClient) => Promise<T>): Promise<T> {
    let client: pg.PoolClient | undefined;
    try {
      client = await this.pool.connect();
      await client.query('BEGIN');
      const result = await body(client);
      await client.query('COMMIT');
      return result;
    } catch (error) {
      await client?.query('ROLLBACK').catch(() => undefined);
      throw new StoreError('the store could not make the change durable', error);
    } finally {
      client?.release();
    }
  }

  private async read<R extends pg.QueryResultRow>(text: string, values: unknown[]): Promise<pg.QueryResult<R>> {
    try {
      return await this.pool.query<R>(text, values);
    } catch (error) {
      throw new StoreError('the store could not be read', error);
    }
  }
}
