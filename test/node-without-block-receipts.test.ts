import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RpcRequestError } from '../src/chain/errors.js';
import { type Harness, interceptedTransport, mine, rpc, startHarness, waitFor } from './support/chain.js';

describe('a node without eth_getBlockReceipts', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness({
      watcher: {
        // anvil as a node that answers "method not found" to eth_getBlockReceipts.
        transport: interceptedTransport(() => h.anvil.url, {
          request: (call, next) =>
            call.method === 'eth_getBlockReceipts'
              ? Promise.reject(
                  new RpcRequestError(call.method, {
                    code: -32601,
                    message: 'the method eth_getBlockReceipts does not exist',
                  }),
                )
              : next(call),
        }),
      },
    });
    await rpc(h.anvil.url, 'evm_setAutomine', [false]);
  });
  afterAll(async () => {
    await h?.close();
  });

  it('falls back to the block and a batch of receipts, and still classifies a replacement', async () => {
    const to = h.wallets[3]!.address;
    const ok = await h.sign(0, { to, value: 1n, nonce: 0 });
    const bad = await h.sign(1, { data: '0x60006000fd', gasLimit: 60_000n, nonce: 0 });
    const replaced = await h.sign(2, { to, value: 1n, nonce: 0 });
    for (const tx of [ok, bad, replaced]) await h.send(tx.raw);
    await h.system.startMany([ok, bad, replaced].map((tx) => ({ txHash: tx.hash, confirmations: 2 })));
    // The replacement of the third waits for the watcher to know the original's sender and nonce.
    await waitFor('the watcher to know the txs', () =>
      [ok, bad, replaced].every((tx) => h.watcher.rawTransaction(tx.hash) !== null),
    );
    const cancel = await h.sign(2, {
      to: h.wallets[2]!.address,
      value: 0n,
      nonce: 0,
      maxFeePerGas: 20_000_000_000n,
      maxPriorityFeePerGas: 2_000_000_000n,
    });
    await h.send(cancel.raw);
    await rpc(h.anvil.url, 'evm_mine');
    await mine(h.anvil.url);
    expect((await h.waitForState(ok.hash, 'confirmed')).confirmations).toBe(2);
    expect((await h.waitForState(bad.hash, 'failed')).failure?.reason).toBe('reverted');
    expect((await h.waitForState(replaced.hash, 'failed')).failure?.reason).toBe('cancelled');
    expect(h.watcher.health().blockReceipts).toBe(false);
  });
});
