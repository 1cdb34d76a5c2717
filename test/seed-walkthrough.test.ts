import { describe, expect, it } from 'vitest';
import { MemoryStore } from '../src/store/memory.js';
import { createTrackerSystem } from '../src/runtime/system.js';
import { waitUntil } from './support/wait.js';

// The seed article's iex session, step by step, on the TypeScript runtime — with the difference
// the article glosses over: the restarted tracker keeps its state.
describe('the seed walkthrough: start, lookup, crash, lookup, stop', () => {
  it('finds the restarted tracker by id with the same state, and deregisters it on stop', async () => {
    const store = new MemoryStore();
    const system = await createTrackerSystem({ store, faultInjection: true });
    const id = 'txn_01dp371w0fnjhf9z2tjebx4vr4';
    const txHash = `0x${'5a'.repeat(32)}`;

    const started = await system.start(id, { txHash, confirmations: 3 });
    expect(started.status).toBe('started');
    const pid = system.lookup(id)!;
    expect(pid).toBe(started.ref);

    // Starting it again gives the running one, never a duplicate ({:error, {:already_started, pid}}).
    const again = await system.start(id, { txHash });
    expect(again.status).toBe('already_started');
    expect(again.ref).toBe(pid);
    expect(system.stats().live).toBe(1);

    system.deliver(id, {
      type: 'TX_MINED',
      blockNumber: 7,
      blockHash: `0x${'07'.repeat(32)}`,
      status: 'success',
      head: 8,
    });
    const before = pid.getSnapshot();
    expect(before.value).toBe('confirming');

    // GenServer.stop(pid, :its_a_crash)
    expect((await system.send(id, { type: 'CRASH' })).status).toBe('accepted');
    const restartedPid = await waitUntil(() => {
      const ref = system.lookup(id);
      return ref !== undefined && ref !== pid && ref;
    }, 'the tracker to be restarted');
    const after = restartedPid.getSnapshot();
    expect(restartedPid).not.toBe(pid);
    expect(after.value).toEqual(before.value);
    expect(after.context).toEqual({ ...before.context, restarts: 1, updatedAt: after.context.updatedAt });

    const stopped = await system.stop(id);
    expect(stopped?.state).toBe('stopped');
    expect(system.lookup(id)).toBeUndefined();
    expect((await store.get(id))?.state).toBe('stopped');
    expect(await system.get(id)).toMatchObject({ state: 'stopped', restarts: 1, confirmations: 2 });
    expect(system.stats()).toMatchObject({ live: 0, shardChildren: 0 });
    await system.shutdown();
  });
});
