import type { TrackerStateName } from '../../machines/tracker.machine.js';
import type { HistoryEntry, TrackerChange, TrackerChangeDetail, TrackerRecord } from './types.js';

/** The columns of `trackers`, in the order of `RowValues`. */
export const COLUMNS = 'id, tx_hash, state, version, snapshot, restarts, created_at, updated_at, quarantined, chain_id';
export const COLUMN_COUNT = 10;

/** A record as the bound values of one row, in `COLUMNS` order: made once, when the record is written. */
export type RowValues = [
  id: string,
  txHash: string,
  state: string,
  version: number,
  snapshot: string,
  restarts: number,
  createdAt: number,
  updatedAt: number,
  quarantined: string | null,
  chainId: number | null,
];

/**
 * The keys of a tracker snapshot as `getPersistedSnapshot()` makes it, as JSON shows them: what the
 * store packs. Key order is kept, so a packed snapshot unpacks to the same JSON text.
 */
const PERSISTED_KEYS = ['status', 'value', 'historyValue', 'context', 'children'];
const XSTATE_KEYS = ['status', 'output', 'error', 'value', 'historyValue', 'context', 'children'];

/**
 * The columns a write binds: `COLUMNS`, then `history_seq`, the seq of the tracker's newest
 * history row (null for a write that is not a change: the row keeps the one it has), then `shard`,
 * the id's `storedShard` (what `loadLive` of some shards reads by).
 */
export const WRITE_COLUMNS = `${COLUMNS}, history_seq, shard`;
export const WRITE_COLUMN_COUNT = COLUMN_COUNT + 2;
export type WrittenValues = [...RowValues, historySeq: number | null, shard: number];

/**
 * Rows `loadLive` hands out: not in a final state (`FINAL_STATE_NAMES`), those in a state this
 * machine does not know included. The partial index on (shard, id) has this predicate, and a
 * query names it word for word so that the planner uses that index; a change of the final states
 * needs a migration that builds the index anew.
 */
export const LIVE_ROW = "state NOT IN ('confirmed', 'failed', 'stopped')";

/**
 * The record as the values of its row. The snapshot column holds JSON in one of four forms:
 * - packed, `{"packed":2,"value":…,"context":{…}}`: a persisted tracker snapshot (`status` active, no
 *   history, no children) without the five context fields the row's own columns already hold (`id`,
 *   `txHash`, `chainId`, `createdAt`, `updatedAt`) — about half the bytes;
 * - `{"packed":1,…}`: the same with `chainId` left in the context (or none, as in version 1
 *   snapshots), when it is not the row's;
 * - the snapshot as given, for anything else (and every row written before store schema 1);
 * - `{"packed":0,"snapshot":…}`: a snapshot as given that has a `packed` key of its own.
 *
 * @example
 * const values = rowValues(record); // bound to the upsert at the next group commit
 */
export function rowValues(record: TrackerRecord): RowValues {
  return [
    record.id,
    record.txHash,
    record.state,
    record.version,
    snapshotText(record),
    record.restarts,
    record.createdAt,
    record.updatedAt,
    record.quarantined === undefined ? null : JSON.stringify(record.quarantined),
    record.chainId ?? null,
  ];
}

/**
 * The record a row holds (as a `.raw()` statement hands it out). Snapshot text that is not JSON is
 * handed out as that string, so that the runtime quarantines it instead of losing it.
 *
 * @example
 * const record = fromRow(selectOne.raw().get(id));
 */
export function fromRow(row: RowValues | WrittenValues): TrackerRecord {
  const [id, txHash, state, version, text, restarts, createdAt, updatedAt, quarantined, chainId] = row;
  const snapshot = snapshotFrom(text, row);
  // Key order as the runtime writes records (chainId after txHash): a record reads back as its JSON.
  const record: TrackerRecord =
    chainId === null
      ? { id, txHash, state: state as TrackerStateName, version, snapshot, restarts, createdAt, updatedAt }
      : { id, txHash, chainId, state: state as TrackerStateName, version, snapshot, restarts, createdAt, updatedAt };
  if (quarantined !== null) record.quarantined = JSON.parse(quarantined) as TrackerRecord['quarantined'];
  return record;
}

function snapshotText(record: TrackerRecord): string {
  const snapshot = record.snapshot;
  if (isPersistedTracker(snapshot) && hasColumnFields(snapshot.context, record)) {
    // The context's JSON without the columns' four fields, cut from its text rather than copied
    // without them. Its text is `{"id":"<id>","txHash":"<txHash>",<rest>,"createdAt":<n>,"updatedAt":<n>}`:
    // keys in that order, strings JSON writes as they are, integers written as their digits.
    // Then `"chainId":<n>,` when the chain column holds it too.
    const context = JSON.stringify(snapshot.context);
    const chain = hasChainColumn(snapshot.context, record);
    const start = 21 + record.id.length + record.txHash.length + (chain ? 11 + digits(record.chainId!) : 0);
    const end = context.length - 27 - digits(record.createdAt) - digits(record.updatedAt);
    const form = chain ? 2 : 1;
    return `{"packed":${form},"value":${JSON.stringify(snapshot.value)},"context":{${context.slice(start, Math.max(start, end))}}}`;
  }
  const text = JSON.stringify(snapshot);
  return isObject(snapshot) && Object.hasOwn(snapshot, 'packed') ? `{"packed":0,"snapshot":${text}}` : text;
}

function snapshotFrom(text: string, row: RowValues | WrittenValues): unknown {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return text;
  }
  if (!isObject(parsed) || !Object.hasOwn(parsed, 'packed')) return parsed;
  if (parsed.packed === 0) return parsed.snapshot;
  if (parsed.packed !== 1 && parsed.packed !== 2) return parsed;
  const context = parsed.context as Record<string, unknown>;
  return {
    status: 'active',
    value: parsed.value,
    historyValue: {},
    context:
      parsed.packed === 2
        ? { id: row[0], txHash: row[1], chainId: row[9], ...context, createdAt: row[6], updatedAt: row[7] }
        : { id: row[0], txHash: row[1], ...context, createdAt: row[6], updatedAt: row[7] },
    children: {},
  };
}

/** Characters in a safe integer's JSON. */
function digits(n: number): number {
  let count = n < 0 ? 2 : 1;
  for (let rest = Math.abs(n); rest >= 10; rest = Math.floor(rest / 10)) count++;
  return count;
}

/** JSON writes this string as it is, between quotes: no quote, backslash, control or lone surrogate. */
function isPlainJsonString(value: unknown): value is string {
  if (typeof value !== 'string') return false;
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    if (c < 0x20 || c === 0x22 || c === 0x5c || (c >= 0xd800 && c <= 0xdfff)) return false;
  }
  return true;
}

/** A snapshot whose JSON is `{"status":"active","value":…,"historyValue":{},"context":{…},"children":{}}`. */
function isPersistedTracker(snapshot: unknown): snapshot is { value: unknown; context: Record<string, unknown> } {
  if (!isPlainObject(snapshot)) return false;
  // Keys in this order; XState also sets `output` and `error`, undefined, which JSON leaves out.
  const keys = Object.keys(snapshot);
  const expected = keys.length === XSTATE_KEYS.length ? XSTATE_KEYS : PERSISTED_KEYS;
  for (let i = 0; i < keys.length; i++) if (keys[i] !== expected[i]) return false;
  return (
    keys.length === expected.length &&
    snapshot.status === 'active' &&
    snapshot.output === undefined &&
    snapshot.error === undefined &&
    isEmptyObject(snapshot.historyValue) &&
    isEmptyObject(snapshot.children) &&
    isPlainObject(snapshot.context)
  );
}

/**
 * The context starts with `id` and `txHash` and ends with `createdAt` and `updatedAt`, all equal to
 * the row's columns: strings JSON writes as they are and integer times (what INTEGER columns give
 * back exactly), so where they sit in the context's JSON follows from their lengths.
 */
function hasColumnFields(context: Record<string, unknown>, record: TrackerRecord): boolean {
  const keys = Object.keys(context);
  const n = keys.length;
  return (
    n >= 4 &&
    keys[0] === 'id' &&
    keys[1] === 'txHash' &&
    keys[n - 2] === 'createdAt' &&
    keys[n - 1] === 'updatedAt' &&
    context.toJSON === undefined &&
    context.id === record.id &&
    context.txHash === record.txHash &&
    isPlainJsonString(record.id) &&
    isPlainJsonString(record.txHash) &&
    context.createdAt === record.createdAt &&
    context.updatedAt === record.updatedAt &&
    Number.isSafeInteger(record.createdAt) &&
    Number.isSafeInteger(record.updatedAt)
  );
}

/** The context's third key is `chainId`, the row's chain column, written as its digits. */
function hasChainColumn(context: Record<string, unknown>, record: TrackerRecord): boolean {
  const keys = Object.keys(context);
  return (
    keys.length >= 5 &&
    keys[2] === 'chainId' &&
    Number.isSafeInteger(record.chainId) &&
    context.chainId === record.chainId
  );
}

function isEmptyObject(value: unknown): boolean {
  return isPlainObject(value) && Object.keys(value).length === 0;
}

/** No prototype of its own, so no inherited `toJSON` to make its JSON differ from its keys. */
function isPlainObject(value: unknown): value is Record<string, unknown> {
  return isObject(value) && Object.getPrototypeOf(value) === Object.prototype;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null;
}

/** The columns of `tracker_history`, in the order of `HistoryValues`. */
export const HISTORY_COLUMNS =
  'seq, tracker_id, prev_seq, at, from_state, to_state, event, block_number, block_hash, restarts, reorgs, detail';
export const HISTORY_COLUMN_COUNT = 12;

/**
 * A change as the bound values of its history row, in `HISTORY_COLUMNS` order. `prev` is the seq of
 * the tracker's change before it; null when it is not known in the process (the insert then takes
 * the tracker row's `history_seq`, before the same commit's upsert changes it).
 */
export type HistoryValues = [
  seq: number,
  trackerId: string,
  prev: number | null,
  at: number,
  from: string | null,
  to: string,
  event: string,
  blockNumber: number | null,
  blockHash: string | null,
  restarts: number,
  reorgs: number,
  detail: string | null,
];

/**
 * The history row of a record's change, numbered `seq`.
 *
 * @example
 * if (record.change) history.push(historyValues(nextSeq++, record.id, null, record.change));
 */
export function historyValues(
  seq: number,
  trackerId: string,
  prev: number | null,
  change: TrackerChange,
): HistoryValues {
  return [
    seq,
    trackerId,
    prev,
    change.at,
    change.from,
    change.to,
    change.event,
    change.blockNumber,
    change.blockHash,
    change.restarts,
    change.reorgs,
    change.detail === null ? null : JSON.stringify(change.detail),
  ];
}

/**
 * The entry a history row holds.
 *
 * @example
 * const entries = rows.map(fromHistoryRow);
 */
export function fromHistoryRow(row: HistoryValues): HistoryEntry {
  const [seq, trackerId, , at, from, to, event, blockNumber, blockHash, restarts, reorgs, detail] = row;
  return {
    seq,
    trackerId,
    at,
    from,
    to,
    event,
    blockNumber,
    blockHash,
    restarts,
    reorgs,
    detail: detail === null ? null : (JSON.parse(detail) as TrackerChangeDetail),
  };
}
