import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Harness, mine, rpc, startHarness } from './support/chain.js';

// ws:// URL: heads come from eth_subscribe("newHeads"), requests go over the same socket.
describe('the watcher on a WebSocket URL', () => {
  let h: Harness;
  beforeAll(async () => {
    // A poll interval far longer than the test: only pushed heads can move the trackers.
    h = await startHarness({ watcherUrl: (anvil) => anvil.wsUrl, watcher: { pollIntervalMs: 60_000 } });
  });
  afterAll(async () => {
    await h?.close();
  });

  it('confirms on pushed heads, and follows a reorg whose new heads go backwards in number', async () => {
    const a = await h.sign(0, { to: h.wallets[1]!.address, value: 1n, nonce: 0 });
    await h.system.start(a.hash, { txHash: a.hash, confirmations: 4 });
    await h.send(a.raw);
    const first = await h.waitForState(a.hash, 'confirming');
    await mine(h.anvil.url, 2);
    await h.watcher.waitForHead(first.blockNumber! + 2);
    // Replaces the last 3 blocks; newHeads re-emits the new ones, from a lower number up.
    await rpc(h.anvil.url, 'anvil_reorg', [3, [[a.raw, 0]]]);
    await mine(h.anvil.url, 3);
    const confirmed = await h.waitForState(a.hash, 'confirmed');
    const receipt = await h.provider.getTransactionReceipt(a.hash);
    expect(confirmed).toMatchObject({ reorgs: 1, blockHash: receipt!.blockHash });
    expect(confirmed.blockHash).not.toBe(first.blockHash);
    expect(h.watcher.health()).toMatchObject({ status: 'ok', url: h.anvil.wsUrl.replace(/\/$/, '') });
  });
});
