import { afterEach, describe, expect, it } from 'vitest';
import { shardOf } from '../src/runtime/shard.js';
import { type TrackerSystem, createTrackerSystem } from '../src/runtime/system.js';
import { MemoryStore } from '../src/store/memory.js';
import type { TrackerRecord } from '../src/store/types.js';
import { hashOf } from './helpers.js';

/** A store that counts writes per tracker. */
class CountingStore extends MemoryStore {
  readonly writes = new Map<string, number>();
  override write(record: TrackerRecord): void {
    this.writes.set(record.id, (this.writes.get(record.id) ?? 0) + 1);
    super.write(record);
  }
}

describe('a shard handed to another owner', () => {
  let system: TrackerSystem | undefined;
  afterEach(async () => {
    await system?.shutdown();
    system = undefined;
  });

  it('stops its trackers at once, writes nothing for them, tells the hooks they are gone; rehydrate brings only that shard back', async () => {
    const store = new CountingStore();
    const gone: string[] = [];
    system = await createTrackerSystem({ store, shardCount: 8, hooks: { trackerGone: (id) => gone.push(id) } });
    const ids = Array.from({ length: 40 }, (_, i) => `t${i}`);
    for (const [i, id] of ids.entries()) await system.start(id, { txHash: hashOf(i + 1), confirmations: 3 });
    const shard = shardOf('t0', 8);
    const inShard = ids.filter((id) => shardOf(id, 8) === shard);
    const others = ids.filter((id) => shardOf(id, 8) !== shard);
    const refs = inShard.map((id) => system!.lookup(id)!);
    const writesBefore = new Map(store.writes);

    system.releaseShards([shard]);
    for (const id of inShard) expect(system.lookup(id)).toBeUndefined();
    for (const ref of refs) expect(ref.getSnapshot().status).toBe('stopped');
    for (const id of others) expect(system.lookup(id)).toBeDefined();
    expect(gone.sort()).toEqual([...inShard].sort());
    await system.flushWrites();
    expect(store.writes).toEqual(writesBefore);
    // The stored rows stay as they were: live, for the next owner.
    for (const id of inShard) expect((await store.get(id))?.state).toBe('pending');

    // A rehydration whose shard changed hands while it read the store starts nothing for it.
    await system.rehydrate([shard], () => false);
    for (const id of inShard) expect(system.lookup(id)).toBeUndefined();
    expect(await system.rehydrate([shard])).toBe(inShard.length);
    for (const id of inShard) expect(system.lookup(id)?.getSnapshot().status).toBe('active');
    expect(system.stats().live).toBe(ids.length);
  });
});
