import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Harness, mine, rpc, startHarness, waitFor } from './support/chain.js';

// Automine off: replacements wait in the mempool and are mined with evm_mine, as on a real chain.
describe('a tracked tx replaced by another with the same sender and nonce', () => {
  let h: Harness;
  beforeAll(async () => {
    // A short history, so that a long absence makes the watcher restart from the head.
    h = await startHarness({ watcher: { historyDepth: 16 } });
    await rpc(h.anvil.url, 'evm_setAutomine', [false]);
  });
  afterAll(async () => {
    await h?.close();
  });

  /** Send `original`, track it until the watcher knows its sender and nonce, then mine `replacement`. */
  async function replaceWith(
    wallet: number,
    original: { to: string; value: bigint; data?: string },
    replacement: { to: string; value: bigint; data?: string },
  ) {
    const nonce = await h.provider.getTransactionCount(h.wallets[wallet]!.address, 'pending');
    const a = await h.sign(wallet, { ...original, nonce, gasLimit: 50_000n });
    await h.send(a.raw);
    await h.system.start(a.hash, { txHash: a.hash, confirmations: 2 });
    await waitFor('the watcher to know the tx', () => h.watcher.rawTransaction(a.hash) !== null);
    const b = await h.sign(wallet, {
      ...replacement,
      nonce,
      gasLimit: 50_000n,
      maxFeePerGas: 20_000_000_000n,
      maxPriorityFeePerGas: 2_000_000_000n,
    });
    await h.send(b.raw);
    await rpc(h.anvil.url, 'evm_mine');
    return { a, b };
  }

  it('the same call at a higher fee is repriced: the tracker follows the new hash to confirmed', async () => {
    const to = h.wallets[3]!.address;
    const { a, b } = await replaceWith(0, { to, value: 5n }, { to, value: 5n });
    await h.waitForState(a.hash, 'confirming');
    await mine(h.anvil.url);
    const confirmed = await h.waitForState(a.hash, 'confirmed');
    expect(confirmed.replacedBy).toBe(b.hash);
    expect(confirmed.txHash).toBe(a.hash);
    expect(confirmed.confirmations).toBe(2);
    expect(h.states(a.hash)).toEqual(['pending', 'confirming', 'confirmed']);
  });

  it('a 0-value transfer to oneself with empty data is cancelled', async () => {
    const self = h.wallets[1]!.address;
    const { a, b } = await replaceWith(1, { to: h.wallets[3]!.address, value: 5n }, { to: self, value: 0n });
    const failed = await h.waitForState(a.hash, 'failed');
    expect(failed.failure?.reason).toBe('cancelled');
    expect(failed.replacedBy).toBe(b.hash);
  });

  it('any other tx with that nonce replaced it', async () => {
    const { a, b } = await replaceWith(
      2,
      { to: h.wallets[3]!.address, value: 5n },
      { to: h.wallets[0]!.address, value: 7n },
    );
    const failed = await h.waitForState(a.hash, 'failed');
    expect(failed.failure).toMatchObject({ reason: 'replaced', detail: `replaced by ${b.hash}` });
  });

  it('a replacement mined while the watcher did not see its block is found through the nonce', async () => {
    const to = h.wallets[3]!.address;
    const nonce = await h.provider.getTransactionCount(h.wallets[2]!.address, 'pending');
    const a = await h.sign(2, { to, value: 9n, nonce });
    await h.send(a.raw);
    await h.system.start(a.hash, { txHash: a.hash, confirmations: 1 });
    await waitFor('the watcher to know the tx', () => h.watcher.rawTransaction(a.hash) !== null);
    // The watcher is away while the replacement is mined and buried under more blocks than it catches up on.
    await h.watcher.stop();
    const b = await h.sign(2, {
      to: h.wallets[2]!.address,
      value: 0n,
      nonce,
      maxFeePerGas: 20_000_000_000n,
      maxPriorityFeePerGas: 2_000_000_000n,
    });
    await h.send(b.raw);
    await rpc(h.anvil.url, 'evm_mine');
    await mine(h.anvil.url, 100);
    h.watcher.start();
    const failed = await h.waitForState(a.hash, 'failed');
    expect(failed.failure).toMatchObject({ reason: 'cancelled', detail: `cancelled by ${b.hash}` });
  });
});
