import { FINAL_STATE_NAMES } from '../../machines/tracker.machine.js';
import { DEFAULT_SHARD_COUNT, shardOf } from '../runtime/shard.js';
import { MemoryWebhookStore } from '../webhooks/memory-webhooks.js';
import { FlushTiming } from './flush-timing.js';
import {
  type FlushObserver,
  type HistoryEntry,
  type HistoryPage,
  type HistoryQuery,
  type ListPage,
  type ListQuery,
  type LoadLiveOptions,
  type SnapshotStore,
  type StateCounts,
  type TrackerCount,
  type TrackerRecord,
  decodeCursor,
  decodeSeqCursor,
  encodeCursor,
  encodeSeqCursor,
  matchesQuery,
} from './types.js';

/**
 * A `SnapshotStore` in a `Map`: durable for the life of the process only. For tests, and for the
 * library used without persistence. Records are copied in and out, as a real store would.
 *
 * @example
 * const system = await createTrackerSystem({ store: new MemoryStore() });
 */
export class MemoryStore implements SnapshotStore {
  private readonly rows = new Map<string, string>();
  /** Each row's state beside its text, so that counting does not parse every row. */
  private readonly states = new Map<string, string>();
  private readonly flushes = new FlushTiming();
  readonly webhooks = new MemoryWebhookStore();
  /** Each tracker's changes, as JSON, in seq order. */
  private readonly changes = new Map<string, Array<{ seq: number; at: number; to: string; json: string }>>();
  private nextSeq = 1;

  write(record: TrackerRecord): void {
    const { change, ...row } = record;
    this.rows.set(record.id, JSON.stringify(row));
    this.states.set(record.id, record.state);
    if (change) {
      const seq = this.nextSeq++;
      const entry: HistoryEntry = { seq, trackerId: record.id, ...change };
      const log = this.changes.get(record.id) ?? [];
      log.push({ seq, at: change.at, to: change.to, json: JSON.stringify(entry) });
      this.changes.set(record.id, log);
      // The outbox, in the same step as the change it announces.
      this.webhooks.append({
        seq,
        trackerId: record.id,
        at: change.at,
        fromState: change.from,
        toState: change.to,
        event: change.event,
        blockNumber: change.blockNumber,
        blockHash: change.blockHash,
        restarts: change.restarts,
        reorgs: change.reorgs,
        detail: change.detail === null ? null : JSON.stringify(change.detail),
      });
    }
  }

  async history(id: string, query: HistoryQuery): Promise<HistoryPage> {
    const after = query.cursor ? (decodeSeqCursor(query.cursor) ?? Number.MAX_SAFE_INTEGER) : 0;
    const rows = (this.changes.get(id) ?? []).filter((row) => row.seq > after).slice(0, query.limit + 1);
    const more = rows.length > query.limit;
    if (more) rows.pop();
    return {
      items: rows.map((row) => JSON.parse(row.json) as HistoryEntry),
      nextCursor: more ? encodeSeqCursor(rows[rows.length - 1]!.seq) : null,
    };
  }

  async pruneHistory(endedBefore: number, maxRows: number): Promise<number> {
    // Trackers looked at and kept go to the end of the map: the next call looks at others first.
    const looked: string[] = [];
    let seen = 0;
    for (const [id, log] of this.changes) {
      if (seen >= maxRows) break;
      seen += log.length;
      looked.push(id);
    }
    let dropped = 0;
    for (const id of looked) {
      const log = this.changes.get(id)!;
      const last = log[log.length - 1]!;
      const record = this.getNow(id);
      const ended =
        record === undefined || (FINAL_STATE_NAMES.includes(record.state) && record.updatedAt < endedBefore);
      this.changes.delete(id);
      if (last.at < endedBefore && FINAL_STATE_NAMES.some((state) => state === last.to) && ended) {
        dropped += log.length;
      } else {
        this.changes.set(id, log);
      }
    }
    return dropped;
  }

  flush(): Promise<void> {
    return this.flushes.time(() => Promise.resolve());
  }

  observeFlush(observer: FlushObserver): () => void {
    return this.flushes.observe(observer);
  }

  async countByState(): Promise<StateCounts> {
    const counts: StateCounts = {};
    for (const state of this.states.values()) counts[state] = (counts[state] ?? 0) + 1;
    return counts;
  }

  async get(id: string): Promise<TrackerRecord | undefined> {
    return this.getNow(id);
  }

  getNow(id: string): TrackerRecord | undefined {
    const row = this.rows.get(id);
    return row === undefined ? undefined : (JSON.parse(row) as TrackerRecord);
  }

  async list(query: ListQuery): Promise<ListPage> {
    const after = query.cursor ? decodeCursor(query.cursor) : '';
    const items: TrackerRecord[] = [];
    for (const id of [...this.rows.keys()].sort()) {
      if (id <= after) continue;
      const record = JSON.parse(this.rows.get(id)!) as TrackerRecord;
      if (!matchesQuery(record, query)) continue;
      items.push(record);
      if (items.length > query.limit) break;
    }
    const more = items.length > query.limit;
    if (more) items.pop();
    return { items, nextCursor: more ? encodeCursor(items[items.length - 1]!.id) : null };
  }

  async *loadLive(batchSize: number, options?: LoadLiveOptions): AsyncIterable<TrackerRecord[]> {
    const shards = options && new Set(options.shards);
    const shardCount = options?.shardCount ?? DEFAULT_SHARD_COUNT;
    let batch: TrackerRecord[] = [];
    for (const [id, row] of this.rows) {
      if (shards && !shards.has(shardOf(id, shardCount))) continue;
      const record = JSON.parse(row) as TrackerRecord;
      if (FINAL_STATE_NAMES.includes(record.state)) continue;
      batch.push(record);
      if (batch.length >= batchSize) {
        yield batch;
        batch = [];
      }
    }
    if (batch.length) yield batch;
  }

  async countByChain(): Promise<TrackerCount[]> {
    const counts = new Map<string, TrackerCount>();
    for (const row of this.rows.values()) {
      const { chainId, state } = JSON.parse(row) as TrackerRecord;
      const key = `${chainId ?? ''}/${state}`;
      const count = counts.get(key) ?? { chainId: chainId ?? null, state, count: 0 };
      count.count++;
      counts.set(key, count);
    }
    return [...counts.values()];
  }

  async close(): Promise<void> {}

  /** Test hook: how many rows are stored. */
  get size(): number {
    return this.rows.size;
  }
}
