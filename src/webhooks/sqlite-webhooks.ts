import type Database from 'better-sqlite3';
import { StoreError } from '../errors.js';
import type { Statement } from '../store/writer.js';
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
  events: string;
  trackers: string | null;
  secrets: string;
  enabled: number;
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
  at: number;
  from_state: string | null;
  to_state: string | null;
  event: string;
  block_number: number | null;
  block_hash: string | null;
  restarts: number;
  reorgs: number;
  detail: string | null;
}

const fromEndpointRow = (row: EndpointRow): WebhookEndpoint => ({
  id: row.id,
  url: row.url,
  events: JSON.parse(row.events) as WebhookEventType[],
  trackers: row.trackers === null ? null : (JSON.parse(row.trackers) as string[]),
  secrets: JSON.parse(row.secrets) as WebhookEndpoint['secrets'],
  enabled: row.enabled === 1,
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
  e.url,
  JSON.stringify(e.events),
  e.trackers === null ? null : JSON.stringify(e.trackers),
  JSON.stringify(e.secrets),
  e.enabled ? 1 : 0,
  e.disabledReason,
  e.failingSince,
  e.concurrency,
  e.timeoutMs,
  e.createdAt,
  e.updatedAt,
  e.id,
];

const UPDATE_ENDPOINT = `UPDATE webhook_endpoints SET url = ?, events = ?, trackers = ?, secrets = ?, enabled = ?,
  disabled_reason = ?, failing_since = ?, concurrency = ?, timeout_ms = ?, created_at = ?, updated_at = ? WHERE id = ?`;
const INSERT_ENDPOINT = `INSERT INTO webhook_endpoints (url, events, trackers, secrets, enabled, disabled_reason,
  failing_since, concurrency, timeout_ms, created_at, updated_at, id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`;

/** A failed read (a damaged file, a failing disk) is the store's failure: 503 at the API, not a 500. */
function read<T>(query: () => T): T {
  try {
    return query();
  } catch (error) {
    throw new StoreError('the webhook tables could not be read', error);
  }
}

/**
 * The webhook tables of a `SqliteStore`'s file. Reads run on the store's reading connection; every
 * write goes into the store's next group commit (`writeInCommit`), so that it is as durable as a
 * tracker change and never races the writer thread for the file. The outbox rows themselves are
 * written by the `webhook_outbox` trigger, in the commit that appends the change-log rows.
 *
 * @example
 * const webhooks = new SqliteWebhookStore(store.db, (statements) => store.writeInCommit(statements));
 */
export class SqliteWebhookStore implements WebhookStore {
  private readonly selectEndpoint: Database.Statement<[string], EndpointRow>;
  private readonly selectEndpoints: Database.Statement<[], EndpointRow>;
  // Prepared when first used: it reads the change log.
  private selectDue: Database.Statement<[string, number, string, number], DueRow> | undefined;
  private readonly prepareDue: () => Database.Statement<[string, number, string, number], DueRow>;
  private readonly selectNext: Database.Statement<[string], number | null>;
  private readonly selectDelivery: Database.Statement<[number, string], DeliveryRow>;
  private readonly selectAttempts: Database.Statement<[string], WebhookAttempt & { deliveryId: number }>;
  private readonly selectStats: Database.Statement<[], { pending: number; oldest: number | null }>;
  private readonly listeners = new Set<() => void>();

  constructor(
    private readonly db: Database.Database,
    private readonly write: (statements: readonly Statement[]) => Promise<void>,
  ) {
    this.selectEndpoint = db.prepare('SELECT * FROM webhook_endpoints WHERE id = ?');
    this.selectEndpoints = db.prepare('SELECT * FROM webhook_endpoints ORDER BY created_at, id');
    // In id order along the pending index; a delivery with an older pending one of the same tracker
    // waits for it (the NOT EXISTS probes the queue index).
    this.prepareDue = () =>
      db.prepare(`
      SELECT d.*, h.at, h.from_state, h.to_state, h.event, h.block_number, h.block_hash, h.restarts, h.reorgs, h.detail
      FROM webhook_deliveries d LEFT JOIN tracker_history h ON h.seq = d.seq
      WHERE d.endpoint_id = ? AND d.status = 'pending' AND d.next_attempt_at <= ?
        AND d.id NOT IN (SELECT value FROM json_each(?))
        AND NOT EXISTS (SELECT 1 FROM webhook_deliveries p
          WHERE p.endpoint_id = d.endpoint_id AND p.tracker_id = d.tracker_id AND p.status = 'pending' AND p.id < d.id)
      ORDER BY d.id LIMIT ?`);
    this.selectNext = db
      .prepare<[string], number | null>(
        "SELECT min(next_attempt_at) FROM webhook_deliveries WHERE endpoint_id = ? AND status = 'pending'",
      )
      .pluck();
    this.selectDelivery = db.prepare('SELECT * FROM webhook_deliveries WHERE id = ? AND endpoint_id = ?');
    this.selectAttempts = db.prepare(`
      SELECT delivery_id AS deliveryId, attempt, at, status_code AS statusCode, latency_ms AS latencyMs, error
      FROM webhook_attempts WHERE delivery_id IN (SELECT value FROM json_each(?)) ORDER BY delivery_id, attempt`);
    this.selectStats = db.prepare(
      "SELECT count(*) AS pending, min(created_at) AS oldest FROM webhook_deliveries WHERE status = 'pending'",
    );
  }

  createEndpoint(endpoint: WebhookEndpoint): Promise<void> {
    return this.write([[INSERT_ENDPOINT, endpointValues(endpoint)]]);
  }

  updateEndpoint(endpoint: WebhookEndpoint): Promise<void> {
    return this.write([[UPDATE_ENDPOINT, endpointValues(endpoint)]]);
  }

  async deleteEndpoint(id: string): Promise<boolean> {
    if (!this.getEndpoint(id)) return false;
    await this.write([
      [
        'DELETE FROM webhook_attempts WHERE delivery_id IN (SELECT id FROM webhook_deliveries WHERE endpoint_id = ?)',
        [id],
      ],
      ['DELETE FROM webhook_deliveries WHERE endpoint_id = ?', [id]],
      ['DELETE FROM webhook_endpoints WHERE id = ?', [id]],
    ]);
    return true;
  }

  getEndpoint(id: string): WebhookEndpoint | undefined {
    const row = read(() => this.selectEndpoint.get(id));
    return row ? fromEndpointRow(row) : undefined;
  }

  listEndpoints(): WebhookEndpoint[] {
    return read(() => this.selectEndpoints.all()).map(fromEndpointRow);
  }

  dueDeliveries(endpointId: string, now: number, limit: number, busy: ReadonlySet<number>): DueDelivery[] {
    const rows = read(() => {
      this.selectDue ??= this.prepareDue();
      return this.selectDue.all(endpointId, now, JSON.stringify([...busy]), limit);
    });
    const due: DueDelivery[] = [];
    const pruned: Statement[] = [];
    for (const row of rows) {
      if (row.to_state === null) {
        // Its change left the change log (HISTORY_RETENTION_DAYS) before it could be sent.
        pruned.push([
          "UPDATE webhook_deliveries SET status = 'failed', updated_at = ? WHERE id = ? AND status = 'pending'",
          [now, row.id],
        ]);
        continue;
      }
      const change: ChangeRow = {
        seq: row.seq,
        trackerId: row.tracker_id,
        at: row.at,
        fromState: row.from_state,
        toState: row.to_state,
        event: row.event,
        blockNumber: row.block_number,
        blockHash: row.block_hash,
        restarts: row.restarts,
        reorgs: row.reorgs,
        detail: row.detail,
      };
      const delivery = fromDeliveryRow(row) as DueDelivery;
      delivery.change = change;
      due.push(delivery);
    }
    if (pruned.length > 0) void this.write(pruned).catch(() => undefined);
    return due;
  }

  nextAttemptAt(endpointId: string): number | null {
    return read(() => this.selectNext.get(endpointId)) ?? null;
  }

  recordAttempts(outcomes: readonly AttemptOutcome[]): Promise<void> {
    // One statement for the attempts and one for the deliveries, however many: the rows travel as
    // one JSON array (`[deliveryId, attempt, at, statusCode, latencyMs, error, status, tries, next]`).
    const rows = JSON.stringify(
      outcomes.map(({ deliveryId, attempt: a, status, tries, nextAttemptAt }) => [
        deliveryId,
        a.attempt,
        a.at,
        a.statusCode,
        a.latencyMs,
        a.error,
        status,
        tries,
        nextAttemptAt,
      ]),
    );
    const statements: Statement[] = [
      [
        // Not for a delivery deleted meanwhile (with its endpoint).
        `INSERT OR REPLACE INTO webhook_attempts (delivery_id, attempt, at, status_code, latency_ms, error)
         SELECT value ->> 0, value ->> 1, value ->> 2, value ->> 3, value ->> 4, value ->> 5 FROM json_each(?)
         WHERE EXISTS (SELECT 1 FROM webhook_deliveries WHERE id = value ->> 0)`,
        [rows],
      ],
      [
        `UPDATE webhook_deliveries SET status = v.status, tries = v.tries, attempts = v.attempt,
           next_attempt_at = v.next, updated_at = v.at
         FROM (SELECT value ->> 0 AS id, value ->> 1 AS attempt, value ->> 2 AS at, value ->> 6 AS status,
                 value ->> 7 AS tries, value ->> 8 AS next FROM json_each(?)) AS v
         WHERE webhook_deliveries.id = v.id`,
        [rows],
      ],
    ];
    for (const { endpoint, attempt } of outcomes) {
      if (!endpoint) continue;
      statements.push([
        // Disabled stays disabled (a 410 or days of failures); only a PATCH enables it again.
        `UPDATE webhook_endpoints SET failing_since = ?,
           enabled = CASE WHEN ? IS NULL THEN enabled ELSE 0 END,
           disabled_reason = COALESCE(?, disabled_reason),
           updated_at = CASE WHEN ? IS NULL THEN updated_at ELSE ? END
         WHERE id = ?`,
        [
          endpoint.failingSince,
          endpoint.disabledReason,
          endpoint.disabledReason,
          endpoint.disabledReason,
          attempt.at,
          endpoint.id,
        ],
      ]);
    }
    return this.write(statements);
  }

  getDelivery(endpointId: string, deliveryId: number): WebhookDelivery | undefined {
    const row = read(() => this.selectDelivery.get(deliveryId, endpointId));
    return row ? fromDeliveryRow(row) : undefined;
  }

  listDeliveries(endpointId: string, query: { status?: DeliveryStatus; limit: number; cursor?: string }): DeliveryPage {
    const before = query.cursor === undefined ? Number.MAX_SAFE_INTEGER : Number(query.cursor);
    const rows = read(() =>
      query.status
        ? this.db
            .prepare<[string, string, number, number], DeliveryRow>(
              'SELECT * FROM webhook_deliveries WHERE endpoint_id = ? AND status = ? AND id < ? ORDER BY id DESC LIMIT ?',
            )
            .all(endpointId, query.status, before, query.limit + 1)
        : this.db
            .prepare<[string, number, number], DeliveryRow>(
              'SELECT * FROM webhook_deliveries WHERE endpoint_id = ? AND id < ? ORDER BY id DESC LIMIT ?',
            )
            .all(endpointId, before, query.limit + 1),
    ).map(fromDeliveryRow);
    const more = rows.length > query.limit;
    if (more) rows.pop();
    const attempts = new Map<number, WebhookAttempt[]>();
    if (rows.length > 0) {
      const ids = JSON.stringify(rows.map((r) => r.id));
      for (const { deliveryId, ...attempt } of read(() => this.selectAttempts.all(ids))) {
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

  retryDelivery(deliveryId: number, now: number): Promise<void> {
    return this.write([
      [
        "UPDATE webhook_deliveries SET status = 'pending', tries = 0, next_attempt_at = ?, updated_at = ? WHERE id = ?",
        [now, now, deliveryId],
      ],
    ]);
  }

  onCommit(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** The store committed a transaction. */
  committed(): void {
    for (const listener of this.listeners) listener();
  }

  outboxStats(): OutboxStats {
    const { pending, oldest } = read(() => this.selectStats.get())!;
    return { pending, oldestPendingAt: oldest };
  }
}
