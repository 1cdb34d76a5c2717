import { DEFAULT_SHARD_COUNT, shardOf, storedShards } from '../runtime/shard.js';
import type { LoadLiveOptions, TrackerRecord } from './types.js';

/**
 * `loadLive` of some shards, the part every store with a `shard` column shares: asking for every
 * shard reads as without shards (`all`); a shard count the column cannot tell apart reads every live
 * row and keeps the wanted ones; otherwise `byColumn` reads the column values that hold the wanted
 * shards (and the rows without a value), keeping the rows `ours` says.
 *
 * @example
 * yield* liveOfShards(batchSize, options, (n) => this.loadLive(n), (stored, ours) => this.pagesOf(stored, ours));
 */
export async function* liveOfShards(
  batchSize: number,
  options: LoadLiveOptions,
  all: (batchSize: number) => AsyncIterable<TrackerRecord[]>,
  byColumn: (stored: number[], ours: (id: string) => boolean) => AsyncIterable<TrackerRecord[]>,
): AsyncIterable<TrackerRecord[]> {
  const shardCount = options.shardCount ?? DEFAULT_SHARD_COUNT;
  const wanted = new Set(options.shards);
  const ours = (id: string) => wanted.has(shardOf(id, shardCount));
  const stored = storedShards(wanted, shardCount);
  // Every shard (the first instance of a cluster): read as without shards.
  if (stored?.length === DEFAULT_SHARD_COUNT) {
    yield* all(batchSize);
    return;
  }
  if (stored === undefined) {
    for await (const batch of all(batchSize)) {
      const records = batch.filter((record) => ours(record.id));
      if (records.length > 0) yield records;
    }
    return;
  }
  yield* byColumn(stored, ours);
}
