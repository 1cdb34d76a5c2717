import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Tracker } from '../src/runtime/tracker-view.js';
import { type Harness, blockNumber, rpc, startHarness, waitFor } from './support/chain.js';
import { type RpcProxy, startRpcProxy } from './support/rpcProxy.js';

const STUCK_AFTER_BLOCKS = 3;
const BLOCK_GAS_LIMIT = '0x1c9c380'; // anvil's default, 30,000,000
const BELOW_TX_GAS = '0x7530'; // 30,000: a block a 50,000-gas tx does not fit in
const REPORTED_BASE_FEE = 100_000_000_000n; // 100 gwei, ten times the test txs' max fee

/** What a tracker went through: its state, and its stuck reason while it had one. */
type Step = string;
const stepOf = (t: Tracker): Step => (t.stuck ? `${t.state}/${t.stuck.reason}` : t.state);

// The watcher goes through a proxy, so that one test can make the node report a higher base fee.
describe('a pending tx the node holds but no block includes is stuck, and says why', () => {
  let h: Harness;
  let proxy: RpcProxy;
  const steps = new Map<string, Step[]>();

  beforeAll(async () => {
    h = await startHarness({
      watcher: { stuckAfterBlocks: STUCK_AFTER_BLOCKS, dropCheckIntervalMs: 100 },
      watcherUrl: async (anvil) => (proxy = await startRpcProxy(anvil.url)).url,
    });
    h.system.subscribe((t) => {
      const list = steps.get(t.id) ?? [];
      if (list.at(-1) !== stepOf(t)) list.push(stepOf(t));
      steps.set(t.id, list);
    });
  });
  afterEach(async () => {
    proxy.rewrite = null;
    await rpc(h.anvil.url, 'evm_setBlockGasLimit', [BLOCK_GAS_LIMIT]);
    await rpc(h.anvil.url, 'evm_setAutomine', [true]);
  });
  afterAll(async () => {
    await h?.close();
    await proxy?.close();
  });

  /** The node's head, once the watcher has replayed it too: lookups made now count from it. */
  async function settledHead(): Promise<number> {
    const head = await blockNumber(h.anvil.url);
    await h.watcher.waitForHead(head);
    return head;
  }

  /**
   * Mine up to block `to`, one block at a time, each replayed by the watcher before the next (so it
   * judges every head), then wait for `check`.
   */
  async function mineTo<T>(to: number, what: string, check: () => T | undefined): Promise<T> {
    for (let head = await blockNumber(h.anvil.url); head < to; head++) {
      await rpc(h.anvil.url, 'evm_mine');
      await h.watcher.waitForHead(head + 1);
    }
    return waitFor(what, check);
  }

  const stuckAs = (id: string, reason: string) => () => {
    const t = h.system.peek(id);
    return t?.stuck?.reason === reason ? t : undefined;
  };

  /** Send a 50,000-gas transfer from `wallet` with automine off, then make blocks too small for it. */
  async function pendingTooBig(wallet: number, id: string): Promise<{ hash: string; nonce: number }> {
    await rpc(h.anvil.url, 'evm_setAutomine', [false]);
    const nonce = await h.provider.getTransactionCount(h.wallets[wallet]!.address, 'pending');
    const tx = await h.sign(wallet, { to: h.wallets[3]!.address, value: 1n, nonce, gasLimit: 50_000n });
    await h.send(tx.raw);
    await rpc(h.anvil.url, 'evm_setBlockGasLimit', [BELOW_TX_GAS]);
    await h.system.start(id, { txHash: tx.hash, confirmations: 1 });
    await waitFor('the watcher to know the tx', () => h.watcher.rawTransaction(id) !== null);
    return { hash: tx.hash, nonce };
  }

  it('nonce gap: stuck/nonce_gap after STUCK_AFTER_BLOCKS blocks, still pending; the earlier nonce sent, both confirmed', async () => {
    const sender = h.wallets[0]!.address;
    const nonce = await h.provider.getTransactionCount(sender, 'latest');
    const first = await h.sign(0, { to: h.wallets[3]!.address, value: 1n, nonce });
    const second = await h.sign(0, { to: h.wallets[3]!.address, value: 2n, nonce: nonce + 1 });
    await h.send(second.raw);
    const from = await settledHead();
    await h.system.start('gap', { txHash: second.hash, confirmations: 1 });
    await waitFor('the watcher to know the tx', () => h.watcher.rawTransaction('gap') !== null);

    const stuck = await mineTo(from + STUCK_AFTER_BLOCKS, 'gap to be stuck', stuckAs('gap', 'nonce_gap'));
    expect(stuck.state).toBe('pending');
    expect(stuck.stuck).toEqual({
      reason: 'nonce_gap',
      // Judged once the head is STUCK_AFTER_BLOCKS past the block the node was first seen holding it at.
      since: from + STUCK_AFTER_BLOCKS,
      detail: `nonce ${nonce + 1} waits for nonce ${nonce} of ${sender.toLowerCase()}, which no block has included`,
    });
    expect(await h.system.get('gap')).toEqual(stuck);
    expect(h.system.lookup('gap')!.getSnapshot().value).toEqual({ pending: 'stuck' });

    await h.send(first.raw);
    await h.system.start('gap-first', { txHash: first.hash, confirmations: 1 });
    const confirmed = await h.waitForState('gap', 'confirmed');
    await h.waitForState('gap-first', 'confirmed');
    expect(confirmed).not.toHaveProperty('stuck');
    expect(steps.get('gap')).toEqual(['pending', 'pending/nonce_gap', 'confirmed']);
  });

  it('block gas limit below its gas: stuck/not_included (one nonce read, none per block before); the limit raised, confirmed', async () => {
    const from = await settledHead();
    const { hash } = await pendingTooBig(1, 'too-big');
    expect(await blockNumber(h.anvil.url)).toBe(from);
    // Pending trackers cost no call per block until their threshold; then one nonce read.
    proxy.reset();
    await mineTo(from + STUCK_AFTER_BLOCKS - 1, 'the blocks before the threshold', () => true);
    expect(proxy.calls.get('eth_getTransactionCount')).toBeUndefined();

    const stuck = await mineTo(from + STUCK_AFTER_BLOCKS, 'too-big to be stuck', stuckAs('too-big', 'not_included'));
    expect(proxy.calls.get('eth_getTransactionCount')).toBe(1);
    expect(stuck).toMatchObject({
      state: 'pending',
      txHash: hash,
      stuck: {
        reason: 'not_included',
        since: from + STUCK_AFTER_BLOCKS,
        detail: `the node has held it since block ${from} and no block included it`,
      },
    });

    await rpc(h.anvil.url, 'evm_setBlockGasLimit', [BLOCK_GAS_LIMIT]);
    await rpc(h.anvil.url, 'evm_mine');
    const confirmed = await h.waitForState('too-big', 'confirmed');
    expect(confirmed.blockNumber).toBe(from + STUCK_AFTER_BLOCKS + 1);
    expect(confirmed).not.toHaveProperty('stuck');
    expect(steps.get('too-big')).toEqual(['pending', 'pending/not_included', 'confirmed']);
  });

  it('max fee below the base fee the node reports: stuck/fee_below_base_fee; the base fee back down, unstuck, then not_included', async () => {
    proxy.rewrite = (method, result) =>
      method.startsWith('eth_getBlockBy') && typeof result === 'object' && result !== null
        ? { ...result, baseFeePerGas: `0x${REPORTED_BASE_FEE.toString(16)}` }
        : result;
    const from = await settledHead();
    await pendingTooBig(2, 'low-fee');

    const at = from + STUCK_AFTER_BLOCKS;
    const stuck = await mineTo(at, 'low-fee to be stuck', stuckAs('low-fee', 'fee_below_base_fee'));
    expect(stuck).toMatchObject({
      state: 'pending',
      stuck: {
        reason: 'fee_below_base_fee',
        since: at,
        detail: `its max fee of 10000000000 wei per gas is below the base fee of ${REPORTED_BASE_FEE} wei of block ${at}`,
      },
    });

    // The node's own base fee again: at the next judgement (STUCK_AFTER_BLOCKS later) it is no longer stuck.
    proxy.rewrite = null;
    await mineTo(at + STUCK_AFTER_BLOCKS, 'low-fee to be unstuck', () => {
      const t = h.system.peek('low-fee');
      return t && !t.stuck ? t : undefined;
    });
    expect(h.system.lookup('low-fee')!.getSnapshot().value).toEqual({ pending: 'seen' });
    // Still left out of the blocks: stuck again, for no reason the watcher can name, counted afresh.
    const again = await mineTo(
      at + 2 * STUCK_AFTER_BLOCKS,
      'low-fee to be stuck again',
      stuckAs('low-fee', 'not_included'),
    );
    expect(again.stuck).toEqual({
      reason: 'not_included',
      since: at + 2 * STUCK_AFTER_BLOCKS,
      detail: `the node has held it since block ${at + STUCK_AFTER_BLOCKS} and no block included it`,
    });

    await rpc(h.anvil.url, 'evm_setBlockGasLimit', [BLOCK_GAS_LIMIT]);
    await rpc(h.anvil.url, 'evm_mine');
    await h.waitForState('low-fee', 'confirmed');
    expect(steps.get('low-fee')).toEqual([
      'pending',
      'pending/fee_below_base_fee',
      'pending',
      'pending/not_included',
      'confirmed',
    ]);
  });

  it('speed-up: the same call at the same nonce with a higher fee is followed as repriced, no longer stuck', async () => {
    const from = await settledHead();
    const { hash, nonce } = await pendingTooBig(1, 'sped-up');
    await mineTo(from + STUCK_AFTER_BLOCKS, 'sped-up to be stuck', stuckAs('sped-up', 'not_included'));
    expect(from).toBeLessThan(await blockNumber(h.anvil.url));

    // 21,000 gas fits in the small blocks; the fees are 10% or more above the stuck tx's, as nodes require.
    const faster = await h.sign(1, {
      to: h.wallets[3]!.address,
      value: 1n,
      nonce,
      gasLimit: 21_000n,
      maxFeePerGas: 20_000_000_000n,
      maxPriorityFeePerGas: 2_000_000_000n,
    });
    await h.send(faster.raw);
    await rpc(h.anvil.url, 'evm_mine');
    const confirmed = await h.waitForState('sped-up', 'confirmed');
    expect(confirmed).toMatchObject({ txHash: hash, replacedBy: faster.hash, failure: null });
    expect(confirmed).not.toHaveProperty('stuck');
    expect(steps.get('sped-up')).toEqual(['pending', 'pending/not_included', 'pending', 'confirmed']);
  });

  it('a stuck tracker restarted from its snapshot is still stuck, and not announced again', async () => {
    const from = await settledHead();
    await pendingTooBig(1, 'restarted');
    const at = from + STUCK_AFTER_BLOCKS;
    const stuck = await mineTo(at, 'restarted to be stuck', stuckAs('restarted', 'not_included'));
    const before = h.system.lookup('restarted')!;
    h.system.deliver('restarted', { type: 'CRASH' });
    await waitFor('the tracker to be restarted', () => {
      const now = h.system.lookup('restarted');
      return now !== undefined && now !== before;
    });
    expect(h.system.peek('restarted')).toMatchObject({ restarts: 1, stuck: stuck.stuck });
    // Judged again (one nonce read), with the same reason: no change, so nothing announced.
    let changes = 0;
    const unsubscribe = h.system.subscribe((t) => void (t.id === 'restarted' && changes++));
    proxy.reset();
    await mineTo(at + STUCK_AFTER_BLOCKS, 'the next judgement', () => proxy.calls.get('eth_getTransactionCount') === 1);
    // The tick that judged it is over once the watcher replays the next head.
    await mineTo(at + STUCK_AFTER_BLOCKS + 1, 'the next head', () => true);
    unsubscribe();
    expect(changes).toBe(0);
    await rpc(h.anvil.url, 'evm_setBlockGasLimit', [BLOCK_GAS_LIMIT]);
    await rpc(h.anvil.url, 'evm_mine');
    await h.waitForState('restarted', 'confirmed');
    expect(steps.get('restarted')).toEqual(['pending', 'pending/not_included', 'confirmed']);
  });
});
