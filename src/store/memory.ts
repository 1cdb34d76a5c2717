import { FINAL_STATE_NAMES } from '../../machines/tracker.machine.js';
import { MemoryWebhookStore } from '../webhooks/memory-webhooks.js';
import { FlushTiming } from './flush-timing.js';
import {
  type FlushObserver,
  type ListPage,
  type ListQuery,
  type SnapshotStore,
  type StateCounts,
  type TrackerCount,
  type TrackerRecord,
  decodeCursor,
  encodeCursor,
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

  write(record: TrackerRecord): void {
    this.rows.set(record.id, JSON.stringify(record));
    this.states.set(record.id, record.state);
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

  async *loadLive(batchSize: number): AsyncIterable<TrackerRecord[]> {
    let batch: TrackerRecord[] = [];
    for (const row of this.rows.values()) {
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
