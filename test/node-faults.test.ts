import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ProxyFault } from './support/rpcProxy.js';
import { type RpcProxy, startRpcProxy } from './support/rpcProxy.js';
import { type Harness, mine, rpc, startHarness, waitFor } from './support/chain.js';

describe('the node fails under the watcher', () => {
  let h: Harness;
  let proxy: RpcProxy;
  beforeAll(async () => {
    h = await startHarness({
      watcherUrl: async (anvil) => (proxy = await startRpcProxy(anvil.url)).url,
      watcher: { timeoutMs: 300, backoff: { baseMs: 20, maxMs: 200 }, droppedAfterMs: 1000, dropCheckIntervalMs: 100 },
    });
    await rpc(h.anvil.url, 'evm_setAutomine', [false]);
  });
  afterAll(async () => {
    await h?.close();
    await proxy?.close();
  });

  async function sendMany(wallet: number, count: number): Promise<string[]> {
    const nonce = await h.provider.getTransactionCount(h.wallets[wallet]!.address, 'pending');
    const hashes: string[] = [];
    for (let i = 0; i < count; i++) {
      const tx = await h.sign(wallet, { to: h.wallets[3]!.address, value: 1n, nonce: nonce + i });
      await h.send(tx.raw);
      hashes.push(tx.hash);
    }
    return hashes;
  }

  it('a node down for longer than the dropped grace period fails no tracker; all confirm once it is back', async () => {
    const hashes = await sendMany(0, 5);
    await h.system.startMany(hashes.map((txHash) => ({ txHash, confirmations: 3 })));
    await waitFor('the watcher to know the txs', () => hashes.every((x) => h.watcher.rawTransaction(x) !== null));
    proxy.fault = 'down';
    await waitFor('the watcher to notice', () => h.watcher.health().status === 'degraded');
    await rpc(h.anvil.url, 'evm_mine');
    await mine(h.anvil.url, 5);
    // Down for more than droppedAfterMs.
    await waitFor(
      'the outage to outlast the grace period',
      () => h.watcher.health().consecutiveFailures >= 10 && Date.now(),
      10_000,
    );
    await new Promise((resolve) => setTimeout(resolve, 1200));
    for (const x of hashes) expect((await h.system.get(x))?.state).toBe('pending');
    proxy.fault = 'pass';
    for (const x of hashes) await h.waitForState(x, 'confirmed');
    await waitFor('the watcher to report health ok', () => h.watcher.health().status === 'ok');
    // Catching up block by block: each tracker is mined once and confirmed on the block it is in.
    for (const x of hashes) {
      expect(h.states(x)).toEqual(['pending', 'confirming', 'confirmed']);
      expect((await h.system.get(x))?.blockHash).toBe((await h.provider.getTransactionReceipt(x))!.blockHash);
    }
  });

  it('errors, timeouts and truncated answers: no tracker fails, every one reaches its final state', async () => {
    const ok = await sendMany(1, 6);
    const bad = await h.sign(2, { data: '0x60006000fd', gasLimit: 60_000n, nonce: 0 });
    await h.send(bad.raw);
    const faults: ProxyFault[] = ['pass', 'pass', 'http-error', 'rpc-error', 'delay', 'truncate', 'down'];
    proxy.delayMs = 500; // > the watcher's 300 ms timeout
    // A fixed pseudo-random schedule (mulberry32): about half the requests fail, the same way every run.
    let seed = 42;
    const random = (): number => {
      seed = (seed + 0x6d2b79f5) | 0;
      let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
      t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
      return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    };
    proxy.fault = () => faults[Math.floor(random() * faults.length)]!;
    await h.system.startMany([...ok, bad.hash].map((txHash) => ({ txHash, confirmations: 2 })));
    await rpc(h.anvil.url, 'evm_mine');
    for (let i = 0; i < 4; i++) {
      await mine(h.anvil.url);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    for (const x of ok) await h.waitForState(x, 'confirmed', 30_000);
    const failed = await h.waitForState(bad.hash, 'failed', 30_000);
    expect(failed.failure?.reason).toBe('reverted');
    proxy.fault = 'pass';
    for (const x of ok) expect(h.states(x)).not.toContain('failed');
  });
});
