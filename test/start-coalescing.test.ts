import { describe, expect, it } from 'vitest';
import { createTrackerSystem } from '../src/runtime/system.js';
import { MemoryStore } from '../src/store/memory.js';
import { inspectedActorId } from './support/wait.js';
import { hashOf } from './helpers.js';

describe('starts made in one turn of the event loop', () => {
  it('share one START per shard, whether they came as start or startMany calls, and each gets its own results', async () => {
    let starts = 0;
    const system = await createTrackerSystem({
      store: new MemoryStore(),
      shardCount: 1,
      inspect: (event) => {
        if (event.type === '@xstate.event' && event.event.type === 'START' && inspectedActorId(event) === 'shard-0') starts++;
      },
    });
    const [a, b, c] = await Promise.all([
      system.startMany([{ id: 'a1', txHash: hashOf(1) }, { id: 'a2', txHash: hashOf(2) }]),
      system.start('b1', { txHash: hashOf(3) }),
      system.startMany([{ id: 'a1', txHash: hashOf(9) }, { id: 'c1', txHash: 'not a hash' }, { id: 'c2', txHash: hashOf(4) }]),
    ]);
    expect(starts).toBe(1);
    expect(a.map((r) => r.status)).toEqual(['started', 'started']);
    expect(b.status).toBe('started');
    // a1 again in the same turn with another hash: a conflict, reported to the call that made it.
    expect(c.map((r) => r.status)).toEqual(['error', 'error', 'started']);
    expect(system.stats().live).toBe(4);
    await system.shutdown();
  });
});
