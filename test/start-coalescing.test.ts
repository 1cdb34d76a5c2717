import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { StoreError } from '../src/errors.js';
import { createTrackerSystem } from '../src/runtime/system.js';
import { MemoryStore } from '../src/store/memory.js';
import { SqliteStore } from '../src/store/sqlite.js';
import { inspectedActorId } from './support/wait.js';
import { hashOf, tempDir } from './helpers.js';

describe('starts made in one turn of the event loop', () => {
  it('share one START per shard, whether they came as start or startMany calls, and each gets its own results', async () => {
    let starts = 0;
    const system = await createTrackerSystem({
      store: new MemoryStore(),
      shardCount: 1,
      inspect: (event) => {
        if (event.type === '@xstate.event' && event.event.type === 'START' && inspectedActorId(event) === 'shard-0')
          starts++;
      },
    });
    const [a, b, c] = await Promise.all([
      system.startMany([
        { id: 'a1', txHash: hashOf(1) },
        { id: 'a2', txHash: hashOf(2) },
      ]),
      system.start('b1', { txHash: hashOf(3) }),
      system.startMany([
        { id: 'a1', txHash: hashOf(9) },
        { id: 'c1', txHash: 'not a hash' },
        { id: 'c2', txHash: hashOf(4) },
      ]),
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

describe('a start of many trackers on SQLite', () => {
  it('asks the store once for all the ids that are not live, and a failed read fails only those', async () => {
    const dir = tempDir();
    const store = new SqliteStore({ path: join(dir.path, 'trackers.db') });
    const asked: string[][] = [];
    let failNext = false;
    const getManyNow = store.getManyNow.bind(store);
    store.getManyNow = (ids) => {
      asked.push([...ids]);
      if (failNext) {
        failNext = false;
        throw new StoreError('the store could not be read', new Error('SQLITE_IOERR'));
      }
      return getManyNow(ids);
    };
    const system = await createTrackerSystem({ store });
    await system.startMany([
      { id: 'live', txHash: hashOf(1) },
      { id: 'ended', txHash: hashOf(2) },
    ]);
    await system.stop('ended');
    asked.length = 0;

    const results = await system.startMany([
      { id: 'live', txHash: hashOf(1) },
      { id: 'ended', txHash: hashOf(2) },
      { id: 'new1', txHash: hashOf(3) },
      { id: 'new2', txHash: hashOf(4) },
      { id: 'new1', txHash: hashOf(3) },
    ]);
    // The live one is answered from the registry; the others in one read, in request order.
    expect(asked).toEqual([['ended', 'new1', 'new2', 'new1']]);
    expect(results.map((r) => r.status)).toEqual([
      'already_started',
      'exists',
      'started',
      'started',
      'already_started',
    ]);

    failNext = true;
    const failed = await system.startMany([
      { id: 'live', txHash: hashOf(1) },
      { id: 'new3', txHash: hashOf(5) },
      { id: 'new4', txHash: hashOf(6) },
    ]);
    expect(failed.map((r) => r.status)).toEqual(['already_started', 'error', 'error']);
    expect(failed[1]!.status === 'error' && failed[1]!.error).toBeInstanceOf(StoreError);
    expect(system.lookup('new3')).toBeUndefined();
    // Nothing was spawned for them: a retry starts them.
    const retried = await system.startMany([
      { id: 'new3', txHash: hashOf(5) },
      { id: 'new4', txHash: hashOf(6) },
    ]);
    expect(retried.map((r) => r.status)).toEqual(['started', 'started']);
    expect((await store.get('new4'))?.state).toBe('pending');
    await system.shutdown();
    await store.close();
    dir.remove();
  });
});
