import { type StoreError, storeReadError } from '../errors.js';
import type { SnapshotStore, TrackerRecord } from '../store/types.js';
import type { StartManyResult, StartRequest } from './types.js';

/** What the store holds for an id: its record, none, or the error that kept it from answering. */
export type StoredRead = TrackerRecord | StoreError | undefined;

/**
 * Coalesces the start calls made in one turn of the event loop (concurrent API requests, single or
 * batch, a loop of `start` calls) into one run: one START per shard, one durability barrier.
 *
 * @example
 * const batcher = new StartBatcher((requests) => startNow(requests));
 * const [a, b] = await Promise.all([batcher.enqueue([r1]), batcher.enqueue([r2])]); // one run
 */
export class StartBatcher {
  private queue: Array<{
    requests: readonly StartRequest[];
    resolve: (results: StartManyResult[]) => void;
    reject: (error: unknown) => void;
  }> = [];

  constructor(private readonly run: (requests: readonly StartRequest[]) => Promise<StartManyResult[]>) {}

  /** Resolves with one result per request, in order, once the turn's run is done. */
  enqueue(requests: readonly StartRequest[]): Promise<StartManyResult[]> {
    return new Promise<StartManyResult[]>((resolve, reject) => {
      this.queue.push({ requests, resolve, reject });
      if (this.queue.length === 1) setImmediate(() => this.drain());
    });
  }

  private drain(): void {
    const queued = this.queue;
    this.queue = [];
    this.run(queued.flatMap((q) => q.requests)).then(
      (results) => {
        let at = 0;
        for (const q of queued) q.resolve(results.slice(at, (at += q.requests.length)));
      },
      (error: unknown) => queued.forEach((q) => q.reject(error)),
    );
  }
}

/**
 * Reads stored records for many ids the fastest way the store allows: synchronously when it can
 * (one query for all ids with `getManyNow`), so nothing else runs before the trackers are spawned;
 * otherwise one asynchronous `get` per id.
 *
 * @example
 * const reader = new StoredReader(store);
 * const records = reader.synchronous ? reader.readNow(ids) : await reader.read(ids);
 */
export class StoredReader {
  readonly synchronous: boolean;
  private readonly getNow: ((id: string) => TrackerRecord | undefined) | undefined;
  private readonly getManyNow: ((ids: readonly string[]) => Array<TrackerRecord | undefined>) | undefined;

  constructor(private readonly store: SnapshotStore) {
    this.getNow = store.getNow?.bind(store);
    this.getManyNow = store.getManyNow?.bind(store);
    this.synchronous = this.getNow !== undefined;
  }

  /** Synchronous read (only when `synchronous`); a failed read is a StoreError for each id. */
  readNow(ids: readonly string[]): StoredRead[] {
    if (this.getManyNow && ids.length > 1) {
      try {
        return this.getManyNow(ids);
      } catch (error) {
        const failure = storeReadError(error);
        return ids.map(() => failure);
      }
    }
    return ids.map((id) => {
      try {
        return this.getNow!(id);
      } catch (error) {
        return storeReadError(error);
      }
    });
  }

  read(ids: readonly string[]): Promise<StoredRead[]> {
    return Promise.all(ids.map((id) => this.store.get(id).catch(storeReadError)));
  }

  /** One id now, for a crashed tracker's restart in the same step; undefined without `getNow`. */
  readOneNow(id: string): TrackerRecord | undefined {
    return this.getNow!(id);
  }
}
