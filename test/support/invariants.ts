import { expect } from 'vitest';
import type { Tracker } from '../../src/runtime/tracker-view.js';

/** What must hold of a tracker in each state, whatever path led there. */
export function expectTrackerInvariants(t: Tracker): void {
  switch (t.state) {
    case 'pending':
      expect(t.blockNumber).toBeNull();
      expect(t.blockHash).toBeNull();
      expect(t.confirmations).toBe(0);
      expect(t.failure).toBeNull();
      break;
    case 'confirming':
      expect(t.blockNumber).not.toBeNull();
      expect(t.blockHash).not.toBeNull();
      expect(t.confirmations).toBeGreaterThanOrEqual(1);
      // Counted: not there yet. By finality: there is no count to reach.
      if (t.finality === undefined) expect(t.confirmations).toBeLessThan(t.requiredConfirmations!);
      else expect(t.requiredConfirmations).toBeNull();
      expect(t.failure).toBeNull();
      break;
    case 'confirmed':
      expect(t.blockHash).not.toBeNull();
      expect(t.confirmations).toBeGreaterThanOrEqual(t.requiredConfirmations ?? 1);
      expect(t.failure).toBeNull();
      break;
    case 'failed':
      expect(t.failure).not.toBeNull();
      if (t.failure!.reason === 'cancelled' || t.failure!.reason === 'replaced') expect(t.replacedBy).not.toBeNull();
      if (t.failure!.reason === 'reverted') expect(t.blockHash).not.toBeNull();
      break;
    case 'stopped':
      expect(t.failure).toBeNull();
      break;
  }
  // Stuck is a kind of pending, never shown in another state.
  if (t.state !== 'pending') expect(t.stuck).toBeUndefined();
  expect(t.reorgs).toBeGreaterThanOrEqual(0);
  expect(t.restarts).toBeGreaterThanOrEqual(0);
}
