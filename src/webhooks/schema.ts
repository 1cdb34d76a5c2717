/**
 * The webhook tables (store schema 4). Endpoints, the outbox of deliveries, and each delivery's
 * attempts. A delivery row names the change-log row (`tracker_history.seq`) it announces; the
 * payload is made from that row when it is sent.
 */
export const WEBHOOK_TABLES = `
CREATE TABLE IF NOT EXISTS webhook_endpoints (
  id              TEXT PRIMARY KEY,
  url             TEXT NOT NULL,
  events          TEXT NOT NULL,
  trackers        TEXT,
  secrets         TEXT NOT NULL,
  enabled         INTEGER NOT NULL,
  disabled_reason TEXT,
  failing_since   INTEGER,
  created_at      INTEGER NOT NULL,
  concurrency     INTEGER,
  timeout_ms      INTEGER,
  updated_at      INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS webhook_deliveries (
  id              INTEGER PRIMARY KEY AUTOINCREMENT,
  endpoint_id     TEXT NOT NULL,
  seq             INTEGER NOT NULL,
  tracker_id      TEXT NOT NULL,
  type            TEXT NOT NULL,
  status          TEXT NOT NULL,
  tries           INTEGER NOT NULL DEFAULT 0,
  attempts        INTEGER NOT NULL DEFAULT 0,
  next_attempt_at INTEGER NOT NULL,
  created_at      INTEGER NOT NULL,
  updated_at      INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS webhook_deliveries_queue
  ON webhook_deliveries (endpoint_id, tracker_id, id) WHERE status = 'pending';
CREATE INDEX IF NOT EXISTS webhook_deliveries_pending
  ON webhook_deliveries (endpoint_id, id) WHERE status = 'pending';
CREATE INDEX IF NOT EXISTS webhook_deliveries_listing
  ON webhook_deliveries (endpoint_id, status, id);
CREATE TABLE IF NOT EXISTS webhook_attempts (
  delivery_id INTEGER NOT NULL,
  attempt     INTEGER NOT NULL,
  at          INTEGER NOT NULL,
  status_code INTEGER,
  latency_ms  INTEGER NOT NULL,
  error       TEXT,
  PRIMARY KEY (delivery_id, attempt)
) WITHOUT ROWID;
`;

/**
 * 4 → 5: the shard of each delivery's tracker. Left NULL by the trigger: a SQLite file has one
 * process, which sends every delivery; the PostgreSQL store fills it for its cluster.
 */
export const ADD_DELIVERY_SHARD = 'ALTER TABLE webhook_deliveries ADD COLUMN shard INTEGER';

/**
 * Columns an earlier build of schema 4 made `webhook_endpoints` without: added on open when missing
 * (null: the service's default).
 */
export const ENDPOINT_COLUMNS_ADDED = [
  ['concurrency', 'ALTER TABLE webhook_endpoints ADD COLUMN concurrency INTEGER'],
  ['timeout_ms', 'ALTER TABLE webhook_endpoints ADD COLUMN timeout_ms INTEGER'],
] as const;

/** The top-level state of a state path (`pending.seen` → `pending`), in SQL. */
const top = (path: string) =>
  `(CASE WHEN instr(${path}, '.') > 0 THEN substr(${path}, 1, instr(${path}, '.') - 1) ELSE ${path} END)`;

/**
 * The webhook event type of a change-log row, in SQL (`NEW` is the row): a stuck verdict (entering
 * the stuck sub-state, or a `TX_STUCK` in it: the reason changed) is `tracker.stuck`; a new tracker or another top-level state is `tracker.state_changed`;
 * anything else (a confirmation on a new head, a restart) is `tracker.updated`.
 */
export const EVENT_TYPE_SQL = `(CASE
  WHEN NEW.from_state IS NULL THEN 'tracker.state_changed'
  WHEN instr(NEW.to_state, 'stuck') > 0 AND (instr(NEW.from_state, 'stuck') = 0 OR NEW.event = 'TX_STUCK')
    THEN 'tracker.stuck'
  WHEN ${top('NEW.to_state')} <> ${top('NEW.from_state')} THEN 'tracker.state_changed'
  ELSE 'tracker.updated' END)`;

/**
 * The transactional outbox: each change-log row inserts one delivery per enabled endpoint whose
 * filters match, in the transaction that appends the row (whichever connection commits it). The
 * WHEN clause makes a store without endpoints pay one index probe per row.
 */
export const OUTBOX_TRIGGER = `
CREATE TRIGGER IF NOT EXISTS webhook_outbox AFTER INSERT ON tracker_history
WHEN EXISTS (SELECT 1 FROM webhook_endpoints WHERE enabled = 1)
BEGIN
  INSERT INTO webhook_deliveries (endpoint_id, seq, tracker_id, type, status, next_attempt_at, created_at, updated_at)
  SELECT e.id, NEW.seq, NEW.tracker_id, k.type, 'pending', NEW.at, NEW.at, NEW.at
  FROM webhook_endpoints e, (SELECT ${EVENT_TYPE_SQL} AS type) k
  WHERE e.enabled = 1
    AND k.type IN (SELECT value FROM json_each(e.events))
    AND (e.trackers IS NULL OR EXISTS (
      SELECT 1 FROM json_each(e.trackers) f
      WHERE f.value = NEW.tracker_id
         OR (substr(f.value, -1) = '*'
             AND substr(NEW.tracker_id, 1, length(f.value) - 1) = substr(f.value, 1, length(f.value) - 1))));
END;
`;
