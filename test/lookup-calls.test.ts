import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { lookupTransactions } from '../src/chain/lookupTransactions.js';
import { type Transport, createHttpTransport } from '../src/chain/transport.js';
import { type Harness, rpc, startHarness } from './support/chain.js';
import { type RpcProxy, startRpcProxy } from './support/rpcProxy.js';

// A tracker's lookup asks for a receipt only of a mined transaction: a hash the node does not know
// and a pending transaction cost their transaction and raw form, a mined one its receipt too
// (against a real anvil, counted by a proxy in front of it).
describe('lookupTransactions', () => {
  let h: Harness;
  let proxy: RpcProxy;
  let transport: Transport;
  beforeAll(async () => {
    h = await startHarness();
    await rpc(h.anvil.url, 'evm_setAutomine', [false]);
    proxy = await startRpcProxy(h.anvil.url);
    transport = createHttpTransport(proxy.url);
  });
  afterAll(async () => {
    await transport?.close();
    await proxy?.close();
    await h?.close();
  });

  it('asks for a receipt only of a mined transaction', async () => {
    const mined = await h.sign(0, { to: h.wallets[1]!.address, value: 1n, nonce: 0 });
    await h.send(mined.raw);
    await rpc(h.anvil.url, 'evm_mine');
    const pending = await h.sign(1, { to: h.wallets[2]!.address, value: 1n, nonce: 0 });
    await h.send(pending.raw);
    const unknown = `0x${'cd'.repeat(32)}`;

    proxy.reset();
    const hashes = [unknown, pending.hash, mined.hash];
    const results = await lookupTransactions(transport, { hashes, withRaw: new Set(hashes), batchSize: 2 });

    expect(results.map((r) => r.hash)).toEqual(hashes);
    const [a, b, c] = results;
    expect(a).toEqual({ hash: unknown, ok: true, transaction: null, receipt: null, raw: null });
    expect(b).toMatchObject({ ok: true, transaction: { hash: pending.hash, blockNumber: null }, receipt: null });
    expect(b!.ok && b!.raw).toBe(pending.raw);
    expect(c).toMatchObject({
      ok: true,
      transaction: { hash: mined.hash, blockNumber: 1n },
      receipt: { transactionHash: mined.hash, blockNumber: 1n, status: 'success' },
    });
    expect(c!.ok && c!.raw).toBe(mined.raw);
    expect(Object.fromEntries(proxy.calls)).toEqual({
      eth_getTransactionByHash: 3,
      eth_getRawTransactionByHash: 3,
      eth_getTransactionReceipt: 1,
    });
    // batchSize 2: the transactions and raw forms in three requests, then the one receipt.
    expect(proxy.httpRequests).toBe(4);
  });

  it('a malformed receipt fails its own hash only (one the node does not know asks for none)', async () => {
    const mined = await h.sign(2, { to: h.wallets[1]!.address, value: 1n, nonce: 0 });
    await h.send(mined.raw);
    await rpc(h.anvil.url, 'evm_mine');
    proxy.rewrite = (method, result) => (method === 'eth_getTransactionReceipt' ? { broken: true } : result);
    try {
      const unknown = `0x${'ef'.repeat(32)}`;
      const [a, b] = await lookupTransactions(transport, { hashes: [unknown, mined.hash] });
      expect(a).toMatchObject({ hash: unknown, ok: true, transaction: null });
      expect(b).toMatchObject({ hash: mined.hash, ok: false });
    } finally {
      proxy.rewrite = null;
    }
  });
});
