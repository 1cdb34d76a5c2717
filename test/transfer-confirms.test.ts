import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Harness, blockNumber, mine, startHarness } from './support/chain.js';

describe('a plain transfer on anvil', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness();
  });
  afterAll(async () => {
    await h?.close();
  });

  it('goes pending → confirming → confirmed at exactly requiredConfirmations', async () => {
    const to = h.wallets[1]!.address;
    const { raw, hash } = await h.sign(0, { to, value: 1000n, nonce: 0 });
    await h.system.start(hash, { txHash: hash, confirmations: 3 });
    await h.send(raw);
    const confirming = await h.waitForState(hash, 'confirming');
    expect(confirming.confirmations).toBe(1);
    const receipt = await h.provider.getTransactionReceipt(hash);
    expect(confirming.blockNumber).toBe(receipt!.blockNumber);
    expect(confirming.blockHash).toBe(receipt!.blockHash);

    await mine(h.anvil.url);
    await h.watcher.waitForHead(receipt!.blockNumber + 1);
    const two = await h.system.get(hash);
    expect(two).toMatchObject({ state: 'confirming', confirmations: 2 });

    await mine(h.anvil.url);
    const confirmed = await h.waitForState(hash, 'confirmed');
    expect(confirmed.confirmations).toBe(3);
    expect(confirmed.blockHash).toBe(receipt!.blockHash);
    expect(h.states(hash)).toEqual(['pending', 'confirming', 'confirmed']);
    expect(h.watcher.health()).toMatchObject({ status: 'ok', tracked: 0 });
  });

  it('a reverted contract creation fails with reverted', async () => {
    const { raw, hash } = await h.sign(0, { data: '0x60006000fd', gasLimit: 60_000n, nonce: 1 });
    await h.system.start(hash, { txHash: hash, confirmations: 2 });
    await h.send(raw);
    const failed = await h.waitForState(hash, 'failed');
    expect(failed.failure?.reason).toBe('reverted');
    expect(h.states(hash)).toEqual(['pending', 'failed']);
  });

  it('a tx mined before tracking started goes straight to the right state', async () => {
    const to = h.wallets[2]!.address;
    const a = await h.sign(0, { to, value: 1n, nonce: 2 });
    await h.send(a.raw);
    await mine(h.anvil.url, 4);
    const b = await h.sign(0, { to, value: 1n, nonce: 3 });
    await h.send(b.raw);
    // The watcher has replayed the head: the lookup at start sees every confirmation there is.
    await h.watcher.waitForHead(await blockNumber(h.anvil.url));
    await h.system.startMany([
      { txHash: a.hash, confirmations: 3 },
      { txHash: b.hash, confirmations: 3 },
    ]);
    const confirmed = await h.waitForState(a.hash, 'confirmed');
    expect(confirmed.confirmations).toBeGreaterThanOrEqual(3);
    const confirming = await h.waitForState(b.hash, 'confirming');
    expect(confirming.confirmations).toBe(1);
    expect(h.states(a.hash)).toEqual(['pending', 'confirmed']);
  });
});
