import { describe, expect, it } from 'vitest';
import { REGISTRY_BUCKETS, bucketOf } from '../machines/xstate-adaptations.js';
import { DEFAULT_SHARD_COUNT, shardOf } from '../src/runtime/shard.js';
import { hashOf } from './helpers.js';

// A shard's registry copies one bucket per change: the copy stays small only if a shard's ids
// spread over all the buckets, whichever shard they hashed to and however alike they are.

/** Mean buckets used by a shard's ids, and the largest bucket, over these ids. */
function spread(ids: readonly string[]): { used: number; largest: number } {
  const byShard = new Map<number, number[]>();
  for (const id of ids) {
    const shard = shardOf(id, DEFAULT_SHARD_COUNT);
    const counts = byShard.get(shard) ?? new Array<number>(REGISTRY_BUCKETS).fill(0);
    counts[bucketOf(id)]!++;
    byShard.set(shard, counts);
  }
  let used = 0;
  let largest = 0;
  for (const counts of byShard.values()) {
    used += counts.filter((c) => c > 0).length;
    largest = Math.max(largest, ...counts);
  }
  return { used: used / byShard.size, largest };
}

describe('registry buckets', () => {
  // 100 ids a shard: 32 × (1 − (31/32)^100) ≈ 30.6 buckets used on average when spread evenly.
  const count = 100 * DEFAULT_SHARD_COUNT;

  it('spread sequential ids (hashes that differ only at the end) over every bucket of their shard', () => {
    const { used, largest } = spread(Array.from({ length: count }, (_, i) => hashOf(i)));
    expect(used).toBeGreaterThan(29.5);
    expect(largest).toBeLessThan(16);
  });

  it('spread random transaction hashes over every bucket of their shard', () => {
    let seed = 42;
    const next = () => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0);
    const random = () => `0x${Array.from({ length: 8 }, () => next().toString(16).padStart(8, '0')).join('')}`;
    const { used, largest } = spread(Array.from({ length: count }, random));
    expect(used).toBeGreaterThan(29.5);
    expect(largest).toBeLessThan(16);
  });
});
