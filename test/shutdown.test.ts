import { describe, expect, it } from 'vitest';
import { ShuttingDownError } from '../src/errors.js';
import { createTrackerSystem } from '../src/runtime/system.js';
import { MemoryStore } from '../src/store/memory.js';
import { hashOf } from './helpers.js';

describe('shutdown', () => {
  it('refuses every kind of work after it, with the actors stopped or left inert', async () => {
    for (const stopActors of [true, false]) {
      const store = new MemoryStore();
      const system = await createTrackerSystem({ store });
      await system.start('a', { txHash: hashOf(1), confirmations: 2 });
      system.deliver('a', { type: 'TX_MINED', blockNumber: 10, blockHash: hashOf(10), status: 'success', head: 10 });
      await system.shutdown({ stopActors });
      const stored = await store.get('a');
      expect(stored?.state).toBe('confirming');

      expect(system.deliver('a', { type: 'BLOCK_REORGED', blockHash: hashOf(10) })).toBe(false);
      expect(system.newHead(20)).toBe(0);
      await expect(system.start('b', { txHash: hashOf(2) })).rejects.toBeInstanceOf(ShuttingDownError);
      await expect(system.send('a', { type: 'RECHECK' })).rejects.toBeInstanceOf(ShuttingDownError);
      expect(await store.get('a')).toEqual(stored);
      const ref = system.lookup('a');
      expect(ref?.getSnapshot().status).toBe(stopActors ? 'stopped' : 'active');
      expect(ref?.getSnapshot().value).toBe('confirming');
    }
  });
});
