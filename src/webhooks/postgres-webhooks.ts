import type pg from 'pg';
import { StoreError } from '../errors.js';
import { DEFAULT_SHARD_COUNT, shardOf } from '../runtime/shard.js';
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
  concurrency: number | null;
  timeout_ms: number | null;
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

/** Which deliveries this instance sends: those of the trackers in the shards it holds. */
export interface DispatchScope {
  /** The cluster's shard count (the runtime's). */
  shardCount: number;
  owns(shard: number): boolean;
  /** The shards held now. */
  ownedShards(): number[];
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
  concurrency: row.concurrency,
  timeoutMs: row.timeout_ms,
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

const endpointValues = (e: WebhookEndpoint): unknown[] => [
  e.id,
  e.url,
  JSON.stringify(e.events),
  e.trackers === null ? null : JSON.stringify(e.trackers),
  JSON.stringify(e.secrets),
  e.enabled,
  e.disabledReason,
  e.failingSince,
  e.concurrency,
  e.timeoutMs,
  e.createdAt,
  e.updatedAt,
];

const ENDPOINT_COLUMNS = `id, url, events, trackers, secrets, enabled, disabled_reason, failing_since, concurrency,
  timeout_ms, created_at, updated_at`;
const INSERT_ENDPOINT = `INSERT INTO webhook_endpoints (${ENDPOINT_COLUMNS})
  VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)`;
const UPDATE_ENDPOINT = `UPDATE webhook_endpoints SET url = $2, events = $3, trackers = $4, secrets = $5, enabled = $6,
  disabled_reason = $7, failing_since = $8, concurrency = $9, timeout_ms = $10, created_at = $11, updated_at = $12
  WHERE id = $1`;
const DELIVERY_COLUMNS =
  'd.id, d.endpoint_id, d.seq, d.tracker_id, d.type, d.status, d.tries, d.attempts, d.next_attempt_at, d.created_at, d.updated_at';
const CHANGE_COLUMNS =
  'h.at, h.from_state, h.to_state, h.event, h.block_number, h.block_hash, h.restarts, h.reorgs, h.detail';

/**
 * The webhook event type of a change-log row `h`, as SQLite's `EVENT_TYPE_SQL` and `eventTypeOf`:
 * a stuck verdict (entering the stuck sub-state, or a `TX_STUCK` in it), a new tracker or another
 * top-level state, anything else.
 */
const EVENT_TYPE_SQL = `(CASE
  WHEN h.from_state IS NULL THEN 'tracker.state_changed'
  WHEN strpos(h.to_state, 'stuck') > 0 AND (strpos(h.from_state, 'stuck') = 0 OR h.event = 'TX_STUCK')
    THEN 'tracker.stuck'
  WHEN split_part(h.to_state, '.', 1) <> split_part(h.from_state, '.', 1) THEN 'tracker.state_changed'
  ELSE 'tracker.updated' END)`;

/**
 * The outbox, as SQLite's `webhook_outbox` trigger: one pending delivery of each change-log row of
 * the commit per enabled endpoint whose filters match, in seq order (a tracker's deliveries get
 * increasing ids), each with its tracker's shard. `FOR KEY SHARE` holds the endpoints it matched
 * until the commit, so that an endpoint's deletion (on any instance) waits for it and then removes
 * the deliveries it made; an endpoint deleted first is not matched. With no enabled endpoint, the
 * `EXISTS` (a one-time filter) skips the join: it is planned as a scan of the change log while the
 * tables are small.
 */
const OUTBOX_SQL = `
  INSERT INTO webhook_deliveries (endpoint_id, seq, tracker_id, type, status, next_attempt_at, created_at, updated_at, shard)
  SELECT e.id, h.seq, h.tracker_id, k.type, 'pending', h.at, h.at, h.at, s.shard
  FROM unnest($1::int8[], $2::int[]) AS s(seq, shard)
  JOIN tracker_history h ON h.seq = s.seq
  CROSS JOIN LATERAL (SELECT ${EVENT_TYPE_SQL} AS type) k
  JOIN webhook_endpoints e ON e.enabled AND e.events ? k.type
    AND (e.trackers IS NULL OR EXISTS (
      SELECT 1 FROM jsonb_array_elements_text(e.trackers) f(v)
      WHERE f.v = h.tracker_id
         OR (right(f.v, 1) = '*' AND left(h.tracker_id, length(f.v) - 1) = left(f.v, -1))))
  WHERE EXISTS (SELECT 1 FROM webhook_endpoints WHERE enabled)
  ORDER BY h.seq, e.id
  FOR KEY SHARE OF e`;

// In id order along the pending index; a delivery with an older pending one of the same tracker
// waits for it. $5: the shards this instance sends (null: all).
const DUE_SQL = `
  SELECT ${DELIVERY_COLUMNS}, ${CHANGE_COLUMNS}
  FROM webhook_deliveries d LEFT JOIN tracker_history h ON h.seq = d.seq
  WHERE d.endpoint_id = $1 AND d.status = 'pending' AND d.next_attempt_at <= $2
    AND d.id <> ALL($3::int8[])
    AND ($5::int[] IS NULL OR d.shard = ANY($5::int[]))
    AND NOT EXISTS (SELECT 1 FROM webhook_deliveries p
      WHERE p.endpoint_id = d.endpoint_id AND p.tracker_id = d.tracker_id AND p.status = 'pending' AND p.id < d.id)
  ORDER BY d.id LIMIT $4`;

// Every attempt of the batch as one array per column. A delivery's row moves only from the attempt
// before (attempts = attempt - 1): the late record of an instance that lost the tracker's shard,
// for an attempt the new owner recorded first, changes nothing.
const RECORD_SQL = `
  WITH v AS (
    SELECT * FROM unnest($1::int8[], $2::int[], $3::float8[], $4::int[], $5::float8[], $6::text[], $7::text[],
                         $8::int[], $9::float8[])
      AS v(id, attempt, at, status_code, latency_ms, error, status, tries, next)
  ), moved AS (
    UPDATE webhook_deliveries d SET status = v.status, tries = v.tries, attempts = v.attempt,
      next_attempt_at = v.next, updated_at = v.at
    FROM v WHERE d.id = v.id AND d.attempts = v.attempt - 1
    RETURNING d.id
  )
  INSERT INTO webhook_attempts (delivery_id, attempt, at, status_code, latency_ms, error)
  SELECT v.id, v.attempt, v.at, v.status_code, v.latency_ms, v.error FROM v JOIN moved ON moved.id = v.id
  ON CONFLICT (delivery_id, attempt) DO UPDATE SET at = excluded.at, status_code = excluded.status_code,
    latency_ms = excluded.latency_ms, error = excluded.error`;

/**
 * The webhook tables of a `PostgresStore`'s database, shared by every instance on it. The outbox
 * rows are inserted by the store's group commit (`insertOutbox`), in the transaction that appends
 * the change-log rows; the other writes are transactions of their own, each resolved once
 * committed. Every read goes to the database, so that any instance answers for any endpoint and
 * delivery, and sees another instance's endpoint changes at its next read.
 *
 * With a `DispatchScope` (a cluster), `dueDeliveries` gives only the deliveries of trackers in the
 * shards this instance holds, so that each delivery is sent by one instance, its tracker's owner,
 * and a tracker's deliveries follow it in order when its shard changes hands.
 *
 * @example
 * const webhooks = new PostgresWebhookStore(pool);
 * webhooks.dispatchFor({ shardCount: 1024, owns: (s) => leases.owns(s), ownedShards: () => leases.ownedShards() });
 */
export class PostgresWebhookStore implements WebhookStore {
  private readonly listeners = new Set<() => void>();
  private notifying = false;
  private scope: DispatchScope | undefined;
  private shardCount = DEFAULT_SHARD_COUNT;

  constructor(private readonly pool: pg.Pool) {}

  /** Send only the deliveries of trackers in the shards this instance holds. */
  dispatchFor(scope: DispatchScope): void {
    this.scope = scope;
    this.shardCount = scope.shardCount;
  }

  sends(trackerId: string): boolean {
    return this.scope ? this.scope.owns(shardOf(trackerId, this.shardCount)) : true;
  }

  /**
   * The outbox step of a group commit, on its transaction, after its change-log rows (`history`,
   * numbered) were inserted. Resolves with the number of deliveries it made.
   */
  async insertOutbox(client: pg.PoolClient, history: readonly HistoryValues[]): Promise<number> {
    if (history.length === 0) return 0;
    const made = await client.query({
      name: 'tx_webhook_outbox',
      text: OUTBOX_SQL,
      values: [history.map((values) => values[0]), history.map((values) => shardOf(values[1], this.shardCount))],
    });
    return made.rowCount ?? 0;
  }

  /** The store committed a transaction whose outbox step made `deliveries`. */
  committed(deliveries: number): void {
    if (deliveries > 0) this.notify();
  }

  async createEndpoint(endpoint: WebhookEndpoint): Promise<void> {
    await this.run((client) => client.query(INSERT_ENDPOINT, endpointValues(endpoint)));
    this.notify();
  }

  async updateEndpoint(endpoint: WebhookEndpoint): Promise<void> {
    await this.run((client) => client.query(UPDATE_ENDPOINT, endpointValues(endpoint)));
    this.notify();
  }

  async deleteEndpoint(id: string): Promise<boolean> {
    const deleted = await this.run(async (client) => {
      // The endpoint first: a commit whose outbox matched it holds it (FOR KEY SHARE) until done, so
      // the deliveries deleted next include that commit's.
      const { rowCount } = await client.query('DELETE FROM webhook_endpoints WHERE id = $1', [id]);
      if (!rowCount) return false;
      // The deliveries before their attempts: an attempt being recorded holds its delivery's row, so
      // this waits for that record to commit and the attempts' delete then sees its row; a record
      // that comes after finds its delivery gone and writes nothing. The other order left it behind.
      const { rows } = await client.query<{ id: string }>(
        'DELETE FROM webhook_deliveries WHERE endpoint_id = $1 RETURNING id',
        [id],
      );
      await client.query('DELETE FROM webhook_attempts WHERE delivery_id = ANY($1::int8[])', [rows.map((r) => r.id)]);
      return true;
    });
    if (deleted) this.notify();
    return deleted;
  }

  async getEndpoint(id: string): Promise<WebhookEndpoint | undefined> {
    const rows = await this.read<EndpointRow>(`SELECT ${ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE id = $1`, [id]);
    return rows[0] && fromEndpointRow(rows[0]);
  }

  async listEndpoints(): Promise<WebhookEndpoint[]> {
    const rows = await this.read<EndpointRow>(
      `SELECT ${ENDPOINT_COLUMNS} FROM webhook_endpoints ORDER BY created_at, id`,
      [],
    );
    return rows.map(fromEndpointRow);
  }

  async dueDeliveries(
    endpointId: string,
    now: number,
    limit: number,
    busy: ReadonlySet<number>,
  ): Promise<DueDelivery[]> {
    const shards = this.scope ? this.scope.ownedShards() : null;
    if (shards?.length === 0) return [];
    const rows = await this.read<DueRow>(DUE_SQL, [endpointId, now, [...busy], limit, shards]);
    const due: DueDelivery[] = [];
    const pruned: number[] = [];
    for (const row of rows) {
      if (row.to_state === null) {
        // Its change left the change log (HISTORY_RETENTION_DAYS) before it could be sent.
        pruned.push(row.id);
        continue;
      }
      const change: ChangeRow = {
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
      due.push({ ...fromDeliveryRow(row), change });
    }
    if (pruned.length > 0) {
      await this.run((client) =>
        client.query(
          "UPDATE webhook_deliveries SET status = 'failed', updated_at = $2 WHERE id = ANY($1::int8[]) AND status = 'pending'",
          [pruned, now],
        ),
      ).catch(() => undefined);
    }
    return due;
  }

  async nextAttemptAt(endpointId: string): Promise<number | null> {
    const rows = await this.read<{ next: number | null }>(
      "SELECT min(next_attempt_at) AS next FROM webhook_deliveries WHERE endpoint_id = $1 AND status = 'pending'",
      [endpointId],
    );
    return rows[0]?.next ?? null;
  }

  async recordAttempts(outcomes: readonly AttemptOutcome[]): Promise<void> {
    if (outcomes.length === 0) return;
    const column = <T>(of: (outcome: AttemptOutcome) => T): T[] => outcomes.map(of);
    await this.run(async (client) => {
      await client.query({
        name: 'tx_webhook_record',
        text: RECORD_SQL,
        values: [
          column((o) => o.deliveryId),
          column((o) => o.attempt.attempt),
          column((o) => o.attempt.at),
          column((o) => o.attempt.statusCode),
          column((o) => o.attempt.latencyMs),
          column((o) => o.attempt.error),
          column((o) => o.status),
          column((o) => o.tries),
          column((o) => o.nextAttemptAt),
        ],
      });
      for (const { endpoint, attempt } of outcomes) {
        if (!endpoint) continue;
        // Disabled stays disabled (a 410 or days of failures); only a PATCH enables it again.
        await client.query(
          `UPDATE webhook_endpoints SET failing_since = $2,
             enabled = CASE WHEN $3::text IS NULL THEN enabled ELSE false END,
             disabled_reason = COALESCE($3::text, disabled_reason),
             updated_at = CASE WHEN $3::text IS NULL THEN updated_at ELSE $4 END
           WHERE id = $1`,
          [endpoint.id, endpoint.failingSince, endpoint.disabledReason, attempt.at],
        );
      }
    });
  }

  async getDelivery(endpointId: string, deliveryId: number): Promise<WebhookDelivery | undefined> {
    const rows = await this.read<DeliveryRow>(
      `SELECT ${DELIVERY_COLUMNS} FROM webhook_deliveries d WHERE d.id = $1 AND d.endpoint_id = $2`,
      [deliveryId, endpointId],
    );
    return rows[0] && fromDeliveryRow(rows[0]);
  }

  async listDeliveries(
    endpointId: string,
    query: { status?: DeliveryStatus; limit: number; cursor?: string },
  ): Promise<DeliveryPage> {
    const before = query.cursor === undefined ? Number.MAX_SAFE_INTEGER : Number(query.cursor);
    const found = await this.read<DeliveryRow>(
      `SELECT ${DELIVERY_COLUMNS} FROM webhook_deliveries d
       WHERE d.endpoint_id = $1 AND ($2::text IS NULL OR d.status = $2) AND d.id < $3
       ORDER BY d.id DESC LIMIT $4`,
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
      for (const { deliveryId, ...attempt } of log) {
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
    await this.run((client) =>
      client.query(
        "UPDATE webhook_deliveries SET status = 'pending', tries = 0, next_attempt_at = $2, updated_at = $2 WHERE id = $1",
        [deliveryId, now],
      ),
    );
    this.notify();
  }

  async outboxStats(): Promise<OutboxStats> {
    const rows = await this.read<{ pending: number; oldest: number | null }>(
      "SELECT count(*)::int AS pending, min(created_at) AS oldest FROM webhook_deliveries WHERE status = 'pending'",
      [],
    );
    return { pending: rows[0]?.pending ?? 0, oldestPendingAt: rows[0]?.oldest ?? null };
  }

  onCommit(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Listeners hear once per turn, however many commits and writes it saw. */
  private notify(): void {
    if (this.notifying) return;
    this.notifying = true;
    setImmediate(() => {
      this.notifying = false;
      for (const listener of this.listeners) listener();
    });
  }

  /** A transaction of its own; a failure is a `StoreError` (503). */
  private async run<T>(body: (client: pg.PoolClient) => Promise<T>): Promise<T> {
    let client: pg.PoolClient | undefined;
    // A checked-out client's errors are ours (the pool listens only to idle ones): the server going
    // away mid-transaction fails this call, not the process.
    let lost = false;
    const onError = () => (lost = true);
    try {
      client = await this.pool.connect();
      client.on('error', onError);
      await client.query('BEGIN');
      const result = await body(client);
      await client.query('COMMIT');
      return result;
    } catch (error) {
      await client?.query('ROLLBACK').catch(() => (lost = true));
      throw new StoreError('the store could not make the change durable', error);
    } finally {
      client?.off('error', onError);
      client?.release(lost);
    }
  }

  private async read<R extends pg.QueryResultRow>(text: string, values: unknown[]): Promise<R[]> {
    try {
      return (await this.pool.query<R>(text, values)).rows;
    } catch (error) {
      throw new StoreError('the webhook tables could not be read', error);
    }
  }
}
