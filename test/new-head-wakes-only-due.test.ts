import { describe, expect, it } from 'vitest';
import { createTrackerSystem } from '../src/runtime/system.js';
import { MemoryStore } from '../src/store/memory.js';
import { inspectedActorId } from './support/wait.js';
import { hashOf, waitFor } from './helpers.js';

// A new head must not wake trackers that cannot change on it. Confirming trackers'
// confirmations are derived from the head; only the ones it brings to their threshold get an event.
describe('system.newHead', () => {
  it('wakes only the trackers the head brings to their required confirmations, and derives the rest', async () => {
    const headEvents = new Map<string, number>();
    const store = new MemoryStore();
    const system = await createTrackerSystem({
      store,
      inspect: (event) => {
        if (event.type === '@xstate.event' && event.event.type === 'NEW_HEAD') {
          const id = inspectedActorId(event);
          headEvents.set(id, (headEvents.get(id) ?? 0) + 1);
        }
      },
    });
    // Mined in block 100 at head 100: thresholds 100 + required − 1 = 102, 104, 109.
    const required = { a: 3, b: 5, c: 10 } as const;
    for (const [id, confirmations] of Object.entries(required)) {
      await system.start(id, { txHash: hashOf(confirmations), confirmations });
      system.deliver(id, { type: 'TX_MINED', blockNumber: 100, blockHash: hashOf(100), status: 'success', head: 100 });
    }
    await store.flush();
    const writes = () => store.list({ limit: 10 }).then((page) => page.items.map((r) => r.updatedAt));
    const before = await writes();

    expect(system.newHead(101)).toBe(0);
    expect(headEvents.size).toBe(0);
    expect(await system.get('a')).toMatchObject({ state: 'confirming', confirmations: 2 });
    expect(await system.get('c')).toMatchObject({ state: 'confirming', confirmations: 2 });
    expect(await writes()).toEqual(before); // nothing changed, nothing written

    expect(system.newHead(104)).toBe(2); // a (102) and b (104) are due
    await waitFor(async () => (await system.get('b'))?.state === 'confirmed', 'a and b confirmed');
    expect(await system.get('a')).toMatchObject({ state: 'confirmed', confirmations: 5 });
    expect(await system.get('c')).toMatchObject({ state: 'confirming', confirmations: 5 });
    expect([...headEvents.keys()].sort()).toEqual(['a', 'b']);

    // A tracker mined below a head the system already knows is woken at once.
    await system.start('late', { txHash: hashOf(77), confirmations: 2 });
    system.deliver('late', { type: 'TX_MINED', blockNumber: 90, blockHash: hashOf(90), status: 'success', head: 90 });
    await waitFor(async () => (await system.get('late'))?.state === 'confirmed', 'the late tracker confirmed');

    expect(system.newHead(109)).toBe(1);
    await waitFor(async () => (await system.get('c'))?.state === 'confirmed', 'c confirmed');
    expect(headEvents.get('c')).toBe(1);
    expect(system.stats()).toMatchObject({ live: 0, shardChildren: 0 });
    await system.shutdown();
  });

  it('forgets a tracker that leaves confirming (reorg, stop) so a later head does not wake it', async () => {
    const system = await createTrackerSystem({ store: new MemoryStore() });
    await system.start('r', { txHash: hashOf(1), confirmations: 3 });
    system.deliver('r', { type: 'TX_MINED', blockNumber: 10, blockHash: hashOf(10), status: 'success', head: 10 });
    system.deliver('r', { type: 'BLOCK_REORGED', blockHash: hashOf(10) });
    expect(system.newHead(20)).toBe(0);
    expect(await system.get('r')).toMatchObject({ state: 'pending', confirmations: 0, reorgs: 1 });
    await system.shutdown();
  });
});
