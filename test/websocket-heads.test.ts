import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Harness, mine, rpc, startHarness, waitFor } from './support/chain.js';
import { type WsProxy, startWsProxy } from './support/wsProxy.js';

// ws:// URL: heads come from eth_subscribe("newHeads"), requests go over the same socket.
describe('the watcher on a WebSocket URL', () => {
  let h: Harness;
  let proxy: WsProxy;
  beforeAll(async () => {
    // A poll interval far longer than the test: only pushed heads can move the trackers.
    h = await startHarness({
      watcherUrl: async (anvil) => (proxy = await startWsProxy(anvil.wsUrl)).url,
      watcher: { pollIntervalMs: 60_000, timeoutMs: 1000, backoff: { baseMs: 20, maxMs: 200 } },
    });
  });
  afterAll(async () => {
    await h?.close();
    await proxy?.close();
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
    expect(h.watcher.health().status).toBe('ok');
  });

  it('reconnects and re-subscribes after the socket drops, and catches up on the blocks it missed', async () => {
    const a = await h.sign(0, { to: h.wallets[1]!.address, value: 2n, nonce: 1 });
    await h.system.start(a.hash, { txHash: a.hash, confirmations: 3 });
    proxy.down = true;
    proxy.dropAll();
    await h.send(a.raw);
    await mine(h.anvil.url, 3);
    await waitFor('the watcher to notice the node is gone', () => h.watcher.health().status === 'degraded');
    expect((await h.system.get(a.hash))?.state).toBe('pending');
    proxy.down = false;
    const confirmed = await h.waitForState(a.hash, 'confirmed');
    expect(confirmed.failure).toBeNull();
    expect(proxy.connections()).toBe(1);
    // Still subscribed: a new block alone (no polling within the test) reaches the watcher.
    const head = h.watcher.health().headNumber!;
    await mine(h.anvil.url);
    await h.watcher.waitForHead(head + 1, 10_000);
  });
});
