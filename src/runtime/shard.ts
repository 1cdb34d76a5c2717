/** Shards of the registry unless told otherwise (the runtime's and a cluster's default). */
export const DEFAULT_SHARD_COUNT = 1024;

/** FNV-1a over the id's UTF-16 code units: cheap, stable across processes, well spread. */
export function shardOf(id: string, shardCount: number): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < id.length; i++) {
    hash ^= id.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193);
  }
  return (hash >>> 0) % shardCount;
}

/**
 * The `shard` column of a tracker's row in the stores: its shard at `DEFAULT_SHARD_COUNT`, the
 * runtime's `shardIndex` at the default count.
 *
 * @example
 * storedShard('txn_1') === shardOf('txn_1', DEFAULT_SHARD_COUNT); // true
 */
export function storedShard(id: string): number {
  return shardOf(id, DEFAULT_SHARD_COUNT);
}

/**
 * The `shard` column values whose rows are the trackers of `shards` at `shardCount`, ascending;
 * undefined when `shardCount` does not divide `DEFAULT_SHARD_COUNT` (the column cannot tell them
 * apart: a hash modulo the default count, modulo `shardCount`, is the hash modulo `shardCount` only
 * then). Shards out of range have no trackers.
 *
 * @example
 * storedShards([1], 512); // [1, 513]
 */
export function storedShards(shards: Iterable<number>, shardCount: number): number[] | undefined {
  if (!Number.isSafeInteger(shardCount) || shardCount < 1 || DEFAULT_SHARD_COUNT % shardCount !== 0) return undefined;
  const stored = new Set<number>();
  for (const shard of shards) {
    if (!Number.isInteger(shard) || shard < 0 || shard >= shardCount) continue;
    for (let value = shard; value < DEFAULT_SHARD_COUNT; value += shardCount) stored.add(value);
  }
  return [...stored].sort((a, b) => a - b);
}
