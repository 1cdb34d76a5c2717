import type { TrackerStateName, TrackerStuck } from '../../machines/tracker.machine.js';
import type { WebhookStore } from '../webhooks/types.js';

/** One tracker as a store keeps it: a row. */
export interface TrackerRecord {
  id: string;
  txHash: string;
  /**
   * The chain the tracker is on. Absent on rows stored before trackers had a chain: those are the
   * default chain's (and get it when next written).
   */
  chainId?: number | undefined;
  /** Top state of the snapshot, kept beside it so listing by state needs no JSON parsing. */
  state: TrackerStateName;
  /** `TRACKER_MACHINE_VERSION` of the machine that wrote the snapshot. */
  version: number;
  /**
   * XState's persisted snapshot (`getPersistedSnapshot()`), JSON-serialisable. A store hands out
   * stored text that is not JSON as that string, so that it is quarantined rather than lost.
   */
  snapshot: unknown;
  restarts: number;
  /** Epoch milliseconds. */
  createdAt: number;
  updatedAt: number;
  /** Set when the stored row did not fit the machine: the row as it was found, kept for people. */
  quarantined?: Quarantined | undefined;
  /**
   * What this write changed, set by the runtime: the store appends it to the tracker's history in
   * the same transaction as the row. Absent for a write that is not a change (a migrated row
   * written back); never stored in the row itself, so a read has none.
   */
  change?: TrackerChange | undefined;
}

/**
 * One change of a tracker: a transition (or a self-transition that changed its context), its
 * creation, or its restart after a crash.
 */
export interface TrackerChange {
  /** State path before (`pending.seen`); null when the tracker was created. */
  from: string | null;
  /** State path after. */
  to: string;
  /**
   * What caused it: the tracker event's type (`TX_MINED`, `BLOCK_REORGED`, `GIVE_UP`, …), `START`
   * for its creation, `RESTART` when it came back from its stored snapshot after a crash,
   * `QUARANTINE` when its stored row did not fit the machine.
   */
  event: string;
  /** Epoch milliseconds. */
  at: number;
  blockNumber: number | null;
  blockHash: string | null;
  restarts: number;
  reorgs: number;
  detail: TrackerChangeDetail | null;
}

/** The facts of a change worth keeping beside it; each only when it applies. */
export interface TrackerChangeDetail {
  failure?: { reason: string; detail: string };
  replacedBy?: string;
  confirmations?: number;
  /** While the tracker is stuck: the verdict (why, since which block, a detail). */
  stuck?: TrackerStuck;
}

/** A change as the history keeps it: `seq` grows with every change of every tracker. */
export interface HistoryEntry extends TrackerChange {
  seq: number;
  trackerId: string;
}

export interface HistoryQuery {
  limit: number;
  /** Opaque: the `nextCursor` of the previous page. */
  cursor?: string | null | undefined;
}

export interface HistoryPage {
  items: HistoryEntry[];
  nextCursor: string | null;
}

/** A row that could not be run (`incompatible_snapshot`), exactly as it was stored. */
export interface Quarantined {
  reason: string;
  /** Epoch milliseconds. */
  at: number;
  original: Omit<TrackerRecord, 'quarantined'>;
}

export interface ListQuery {
  state?: TrackerStateName | undefined;
  /** Only the trackers of this chain. */
  chainId?: number | undefined;
  /** The chain that rows stored without a chain id belong to (the default chain), for `chainId`. */
  unsetChainId?: number | undefined;
  limit: number;
  /** Opaque: the `nextCursor` of the previous page. */
  cursor?: string | null | undefined;
}

/** Which live trackers `loadLive` hands out (absent: all of them). */
export interface LoadLiveOptions {
  /** Only the trackers of these shards (as `shardOf(id, shardCount)` numbers them). */
  shards: readonly number[];
  /** The shard count `shards` are of: the runtime's (default `DEFAULT_SHARD_COUNT`). */
  shardCount?: number;
}

/** Trackers per value of the state column (a row in a state this machine does not know counts under that name). */
export type StateCounts = Record<string, number>;

/** Told after each `flush()`: how long it took, in seconds, and whether it made the writes durable. */
export type FlushObserver = (seconds: number, ok: boolean) => void;

export interface ListPage {
  items: TrackerRecord[];
  nextCursor: string | null;
}

/** How many trackers one chain has in one state (`chainId` null: rows stored without a chain). */
export interface TrackerCount {
  chainId: number | null;
  state: string;
  count: number;
}

/** Whether a record belongs on a page of `query` (its state and chain filters; not its cursor). */
export function matchesQuery(record: TrackerRecord, query: ListQuery): boolean {
  if (query.state !== undefined && record.state !== query.state) return false;
  return query.chainId === undefined || (record.chainId ?? query.unsetChainId) === query.chainId;
}

/**
 * Where tracker snapshots become durable. Writes are queued and grouped; `flush()` is the
 * durability barrier. A write is visible to `get` and `list` as soon as `write` returns.
 */
export interface SnapshotStore {
  /** Queue a record for the next group commit. Never throws for I/O: `flush()` reports that. */
  write(record: TrackerRecord): void;
  /** Resolves when every record written before the call is durable; rejects if it cannot be. */
  flush(): Promise<void>;
  get(id: string): Promise<TrackerRecord | undefined>;
  /**
   * `get`, answered synchronously, by stores that can (both stores here; a networked one would
   * leave it out). A crashed tracker is then restarted within the same turn as its crash.
   */
  getNow?(id: string): TrackerRecord | undefined;
  /**
   * `getNow` for many ids at once, in their order (undefined where there is none): one query for
   * all of them instead of one each. A start of many trackers asks it for every new id.
   */
  getManyNow?(ids: readonly string[]): Array<TrackerRecord | undefined>;
  /** Stable paging in id order. */
  list(query: ListQuery): Promise<ListPage>;
  /**
   * Every tracker that is not in a final state, in batches, for rehydration at start; with
   * `shards`, only those of these shards, read by the rows' `shard` column where it can tell them.
   */
  loadLive(batchSize: number, options?: LoadLiveOptions): AsyncIterable<TrackerRecord[]>;
  /**
   * A tracker's changes, oldest first, paged by `seq` (also for trackers that ended). Writes not
   * durable yet are included, as `get` shows them.
   */
  history(id: string, query: HistoryQuery): Promise<HistoryPage>;
  /**
   * Drop the history of trackers that ended before `endedBefore` (epoch ms), looking at no more
   * than `maxRows` history rows per call (it goes on from there at the next). Resolves to the
   * number of rows dropped.
   */
  pruneHistory(endedBefore: number, maxRows: number): Promise<number>;
  /** Trackers per chain and state, over every stored row, writes made so far included. */
  countByChain(): Promise<TrackerCount[]>;
  /**
   * Trackers per state over the whole store, the writes not yet durable included, as `get` sees
   * them (for `/metrics`). It reads every row's state: not for every request.
   */
  countByState(): Promise<StateCounts>;
  /**
   * Webhook endpoints and the outbox, in the same store so that a delivery is written in the commit
   * of the change that causes it (absent: the store has no webhooks).
   */
  readonly webhooks?: WebhookStore;
  /**
   * Whether the database answers now, for `/readyz`, by stores that can lose it (a networked one).
   * Without it, readiness is a `get` that does not fail.
   */
  reachable?(): Promise<boolean>;
  /** Time every `flush()` (for `/metrics`). Returns the function that stops it. */
  observeFlush(observer: FlushObserver): () => void;
  close(): Promise<void>;
}

export const encodeCursor = (id: string): string => Buffer.from(id, 'utf8').toString('base64url');
export const decodeCursor = (cursor: string): string => Buffer.from(cursor, 'base64url').toString('utf8');

export const encodeSeqCursor = (seq: number): string => Buffer.from(String(seq), 'utf8').toString('base64url');
/** The seq a history cursor holds; null when it is not one this store made. */
export function decodeSeqCursor(cursor: string): number | null {
  const text = Buffer.from(cursor, 'base64url').toString('utf8');
  return /^(0|[1-9]\d{0,15})$/.test(text) && Number.isSafeInteger(Number(text)) ? Number(text) : null;
}
