import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Harness, blockNumber, mine, rpc, startHarness, waitFor } from './support/chain.js';

describe('anvil_reorg under tracked transactions', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness();
  });
  afterAll(async () => {
    await h?.close();
  });

  it('a reorg that removes the tx block sends it back to pending; re-mined, it confirms on the new block with reorgs = 1', async () => {
    const a = await h.sign(0, { to: h.wallets[1]!.address, value: 1n, nonce: 0 });
    await h.system.start(a.hash, { txHash: a.hash, confirmations: 3 });
    await h.send(a.raw);
    const first = await h.waitForState(a.hash, 'confirming');
    await mine(h.anvil.url);
    await h.watcher.waitForHead(first.blockNumber! + 1);
    expect((await h.system.get(a.hash))?.confirmations).toBe(2);
    // On the old branch one more block would confirm it; the reorg replaces both blocks and puts
    // the tx (dropped by anvil with its block) into the second new block.
    await rpc(h.anvil.url, 'anvil_reorg', [2, [[a.raw, 1]]]);
    const head = await blockNumber(h.anvil.url);
    expect(head).toBe(first.blockNumber! + 1);
    const back = await waitFor('the tracker to follow the reorg', async () => {
      const t = await h.system.get(a.hash);
      return t && t.reorgs === 1 && t.state === 'confirming' ? t : undefined;
    });
    expect(back.blockNumber).toBe(first.blockNumber! + 1);
    expect(back.blockHash).not.toBe(first.blockHash);
    expect(back.confirmations).toBe(1);
    await mine(h.anvil.url, 2);
    const confirmed = await h.waitForState(a.hash, 'confirmed');
    const receipt = await h.provider.getTransactionReceipt(a.hash);
    expect(confirmed).toMatchObject({ reorgs: 1, blockHash: receipt!.blockHash, confirmations: 3 });
    expect(h.states(a.hash)).toEqual(['pending', 'confirming', 'pending', 'confirming', 'confirmed']);
    expect(h.watcher.health().reorgs).toBeGreaterThanOrEqual(1);
  });

  it('a tracker still confirming is never confirmed on a block that left the chain', async () => {
    const a = await h.sign(0, { to: h.wallets[1]!.address, value: 2n, nonce: 1 });
    await h.system.start(a.hash, { txHash: a.hash, confirmations: 2 });
    await h.send(a.raw);
    const first = await h.waitForState(a.hash, 'confirming');
    // Replace its block with one without it, then build on the new branch: the tx is gone.
    await rpc(h.anvil.url, 'anvil_reorg', [1, []]);
    await mine(h.anvil.url, 3);
    await h.watcher.waitForHead(first.blockNumber! + 3);
    const t = await h.system.get(a.hash);
    expect(t).toMatchObject({ state: 'pending', reorgs: 1, blockHash: null });
    expect(h.states(a.hash)).not.toContain('confirmed');
    // The user asks for a re-broadcast (the REBROADCAST event): the watcher sends the signed form
    // it kept, and the tx confirms on the new chain.
    expect(h.watcher.rawTransaction(a.hash)).toBe(a.raw);
    expect((await h.system.send(a.hash, { type: 'REBROADCAST' })).status).toBe('accepted');
    await waitFor(
      'the node to have the tx again',
      async () => (await rpc(h.anvil.url, 'eth_getTransactionByHash', [a.hash])) !== null,
    );
    await mine(h.anvil.url);
    const confirmed = await h.waitForState(a.hash, 'confirmed');
    expect(confirmed.blockHash).not.toBe(first.blockHash);
  });

  it('a reorg deeper than requiredConfirmations after confirmation is detected, logged and counted', async () => {
    const before = h.watcher.health().reorgsAfterConfirmation;
    const a = await h.sign(0, { to: h.wallets[1]!.address, value: 3n, nonce: 2 });
    await h.system.start(a.hash, { txHash: a.hash, confirmations: 1 });
    await h.send(a.raw);
    const confirmed = await h.waitForState(a.hash, 'confirmed');
    await mine(h.anvil.url, 2);
    await h.watcher.waitForHead(confirmed.blockNumber! + 2);
    await rpc(h.anvil.url, 'anvil_reorg', [3, []]);
    await waitFor('the deep reorg to be counted', () => h.watcher.health().reorgsAfterConfirmation === before + 1);
    // confirmed is final: the tracker stays confirmed.
    expect((await h.system.get(a.hash))?.state).toBe('confirmed');
  });
});
