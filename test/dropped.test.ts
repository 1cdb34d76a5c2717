import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Harness, rpc, startHarness, waitFor } from './support/chain.js';

const DROPPED_AFTER_MS = 400;

describe('a pending tx the node no longer knows', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness({ watcher: { droppedAfterMs: DROPPED_AFTER_MS, dropCheckIntervalMs: 100 } });
    await rpc(h.anvil.url, 'evm_setAutomine', [false]);
  });
  afterAll(async () => {
    await h?.close();
  });

  it('is dropped after the grace period (evm_setAutomine false + anvil_dropTransaction)', async () => {
    const a = await h.sign(0, { to: h.wallets[1]!.address, value: 1n, nonce: 0 });
    await h.send(a.raw);
    const started = Date.now();
    await h.system.start(a.hash, { txHash: a.hash });
    await waitFor('the watcher to know the tx', () => h.watcher.rawTransaction(a.hash) !== null);
    await rpc(h.anvil.url, 'anvil_dropTransaction', [a.hash]);
    const failed = await h.waitForState(a.hash, 'failed');
    expect(Date.now() - started).toBeGreaterThanOrEqual(DROPPED_AFTER_MS);
    expect(failed.failure?.reason).toBe('dropped');
    expect(failed.failure?.detail).toMatch(/left the node's mempool/);
  });

  it('a hash the node never knew is dropped and says so', async () => {
    const hash = `0x${'ab'.repeat(32)}`;
    await h.system.start(hash, { txHash: hash });
    const failed = await h.waitForState(hash, 'failed');
    expect(failed.failure).toMatchObject({ reason: 'dropped' });
    expect(failed.failure?.detail).toMatch(/never knew/);
  });

  it('a tx still in the mempool is not dropped', async () => {
    const a = await h.sign(2, { to: h.wallets[1]!.address, value: 1n, nonce: 0 });
    await h.send(a.raw);
    await h.system.start(a.hash, { txHash: a.hash, confirmations: 1 });
    // Long enough for several dropped checks.
    await new Promise((resolve) => setTimeout(resolve, DROPPED_AFTER_MS * 3));
    expect((await h.system.get(a.hash))?.state).toBe('pending');
    await rpc(h.anvil.url, 'evm_mine');
    await h.waitForState(a.hash, 'confirmed');
  });
});
