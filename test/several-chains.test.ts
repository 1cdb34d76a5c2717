import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Anvil, startAnvil } from '../src/chain/anvil.js';
import { ChainConfigError } from '../src/chain/config.js';
import type { Tracker } from '../src/runtime/tracker-view.js';
import { blockNumber, rpc } from './support/chain.js';
import {
  type ServiceUnderTest,
  signTransfer,
  signUnprotectedTransfer,
  startServiceUnderTest,
} from './support/service.js';
import { waitUntil } from './support/wait.js';

// Two anvils with their own chain ids and block times, followed by one service: base (8453, a block
// every 0.25 s, the default chain) and optimism (10, a block a second, its id read from the node).
describe('several chains in one service', () => {
  let base: Anvil;
  let optimism: Anvil;
  let s: ServiceUnderTest;
  const nonces = { base: 0, optimism: 0 };

  beforeAll(async () => {
    [base, optimism] = await Promise.all([
      startAnvil({ blockTime: 0.25, args: ['--chain-id', '8453'] }),
      startAnvil({ blockTime: 1, args: ['--chain-id', '10'] }),
    ]);
    s = await startServiceUnderTest({
      CHAIN_BASE_RPC_URL: base.url,
      CHAIN_BASE_ID: '8453',
      CHAIN_BASE_POLL_INTERVAL_MS: '50',
      CHAIN_BASE_CONFIRMATIONS: '8',
      CHAIN_OPTIMISM_RPC_URL: optimism.url,
      CHAIN_OPTIMISM_POLL_INTERVAL_MS: '100',
      CHAIN_OPTIMISM_CONFIRMATIONS: '2',
      DEFAULT_CHAIN: 'base',
    });
  });
  afterAll(async () => {
    await s?.stop();
    await Promise.all([base?.stop(), optimism?.stop()]);
  });

  const send = (anvil: Anvil, raw: string) => rpc<string>(anvil.url, 'eth_sendRawTransaction', [raw]);

  it('follows both: ids read from the nodes, GET /chains, /readyz and the start line list each', async () => {
    expect(s.service.chains.list.map((c) => [c.name, c.chainId])).toEqual([
      ['base', 8453],
      ['optimism', 10],
    ]);
    expect(s.service.where.chain).toContain('base (8453, default)');
    const chains = await waitUntil(async () => {
      const res = await s.call('GET', '/chains');
      const list = (res.json as { chains: Array<{ name: string; head: number | null; rpc: { status: string } }> })
        .chains;
      return list.every((c) => c.head !== null && c.rpc.status === 'ok') ? list : undefined;
    }, 'both chains to have a head');
    expect(chains).toMatchObject([
      {
        name: 'base',
        id: 8453,
        default: true,
        confirmations: 8,
        rpc: { status: 'ok', fallback: false, lastError: null },
      },
      { name: 'optimism', id: 10, default: false, confirmations: 2 },
    ]);
    const ready = await s.call('GET', '/readyz');
    expect(ready).toMatchObject({
      status: 200,
      json: { checks: { store: true, chain: true, chains: { base: 'ok', optimism: 'ok' } } },
    });
  });

  it('trackers on both chains reach their final states, each with its chain id and its chain default', async () => {
    const onBase = await signTransfer(8453, 0, { nonce: nonces.base++ });
    const onOptimism = await signTransfer(10, 0, { nonce: nonces.optimism++ });
    const byId = await signTransfer(10, 0, { nonce: nonces.optimism++, value: 2n });
    const created = [
      await s.call('POST', '/trackers', { txHash: onBase.hash }),
      await s.call('POST', '/trackers', { txHash: onOptimism.hash, chain: 'optimism' }),
      await s.call('POST', '/trackers/batch', {
        trackers: [{ txHash: byId.hash, chain: 10, id: 'op-order-1', confirmations: 3 }],
      }),
    ];
    expect(created.map((r) => r.status)).toEqual([201, 201, 200]);
    expect(created[0]!.json).toMatchObject({ id: onBase.hash, chainId: 8453, requiredConfirmations: 8 });
    expect(created[1]!.json).toMatchObject({ id: `10:${onOptimism.hash}`, chainId: 10, requiredConfirmations: 2 });
    expect(created[2]!.json).toMatchObject({
      results: [{ status: 201, tracker: { id: 'op-order-1', chainId: 10, requiredConfirmations: 3 } }],
    });
    await Promise.all([send(base, onBase.raw), send(optimism, onOptimism.raw), send(optimism, byId.raw)]);
    const done = await Promise.all(
      [onBase.hash, `10:${onOptimism.hash}`, 'op-order-1'].map((id) =>
        s.waitForTracker(id, 'to be confirmed', (t) => t.state === 'confirmed'),
      ),
    );
    expect(done.map((t) => [t.chainId, t.confirmations >= t.requiredConfirmations!])).toEqual([
      [8453, true],
      [10, true],
      [10, true],
    ]);
    // Each on its own chain's block.
    const receipt = await rpc<{ blockHash: string }>(optimism.url, 'eth_getTransactionReceipt', [onOptimism.hash]);
    expect(done[1]!.blockHash).toBe(receipt.blockHash);
  });

  it('the same tx hash on both chains is two trackers, each confirmed on its own chain; a chosen id is one across chains', async () => {
    // Signed without a chain id: the same raw tx and hash on every chain.
    const tx = await signUnprotectedTransfer(1, 0);
    const first = await s.call('POST', '/trackers', { txHash: tx.hash });
    const second = await s.call('POST', '/trackers', { txHash: tx.hash, chain: 'optimism' });
    expect([first.status, second.status]).toEqual([201, 201]);
    await Promise.all([send(base, tx.raw), send(optimism, tx.raw)]);
    const [a, b] = await Promise.all([
      s.waitForTracker(tx.hash, 'confirmed on base', (t) => t.state === 'confirmed'),
      s.waitForTracker(`10:${tx.hash}`, 'confirmed on optimism', (t) => t.state === 'confirmed'),
    ]);
    expect([a.chainId, b.chainId]).toEqual([8453, 10]);
    expect(a.txHash).toBe(b.txHash);
    expect(a.blockHash).not.toBe(b.blockHash);
    const listed = (await s.call('GET', '/trackers?chain=optimism&limit=1000')).json as { items: Tracker[] };
    expect(listed.items.map((t) => t.id)).toContain(`10:${tx.hash}`);
    expect(listed.items.map((t) => t.id)).not.toContain(tx.hash);
    expect(listed.items.every((t) => t.chainId === 10)).toBe(true);
    // The id op-order-1 is taken on optimism: the same id on base is a conflict, even for its hash.
    const taken = await s.call('POST', '/trackers', {
      txHash: (await s.tracker('op-order-1')).txHash,
      id: 'op-order-1',
    });
    expect(taken).toMatchObject({ status: 409, json: { error: { code: 'id_conflict' } } });
    expect((await s.call('POST', '/trackers', { txHash: tx.hash, chain: 'zksync' })).json).toMatchObject({
      error: { code: 'unknown_chain' },
    });
  });

  it('a reorg on one chain sends its tracker back and leaves the other chain untouched', async () => {
    const onBase = await signTransfer(8453, 0, { nonce: nonces.base++ });
    const onOptimism = await signTransfer(10, 0, { nonce: nonces.optimism++ });
    await s.call('POST', '/trackers', { txHash: onBase.hash, id: 'base-steady', confirmations: 20 });
    await s.call('POST', '/trackers', {
      txHash: onOptimism.hash,
      id: 'op-reorged',
      chain: 'optimism',
      confirmations: 4,
    });
    await Promise.all([send(base, onBase.raw), send(optimism, onOptimism.raw)]);
    const mined = await s.waitForTracker('op-reorged', 'to be confirming', (t) => t.state === 'confirming');
    // Replace its block (and any after it) by new ones, the tx re-included in the first.
    const depth = (await blockNumber(optimism.url)) - mined.blockNumber! + 1;
    await rpc(optimism.url, 'anvil_reorg', [depth, [[onOptimism.raw, 0]]]);
    const back = await s.waitForTracker(
      'op-reorged',
      'to be confirmed after the reorg',
      (t) => t.state === 'confirmed',
    );
    expect(back.reorgs).toBe(1);
    expect(back.blockHash).not.toBe(mined.blockHash);
    const steady = await s.waitForTracker('base-steady', 'to be confirmed', (t) => t.state === 'confirmed');
    expect(steady.reorgs).toBe(0);
    const health = (name: string) => s.service.chains.list.find((c) => c.name === name)!.watcher.health();
    expect(health('optimism').reorgs).toBeGreaterThanOrEqual(1);
    expect(health('base').reorgs).toBe(0);
  });

  it('SSE head events and /metrics carry the chain', async () => {
    const controller = new AbortController();
    const res = await fetch(`${s.url}/events`, { signal: controller.signal });
    const reader = res.body!.getReader();
    const seen = new Set<string>();
    let text = '';
    await waitUntil(async () => {
      const { value } = await reader.read();
      text += new TextDecoder().decode(value);
      for (const [, data] of text.matchAll(/event: head\ndata: (.*)\n/g)) {
        const head = JSON.parse(data!) as { blockNumber: number; chain: number; name: string };
        seen.add(`${head.chain}:${head.name}`);
      }
      return seen.size === 2;
    }, 'head events of both chains');
    controller.abort();
    expect([...seen].sort()).toEqual(['10:optimism', '8453:base']);
    const metrics = (await s.call('GET', '/metrics')).text;
    for (const chain of ['chain="base",chain_id="8453"', 'chain="optimism",chain_id="10"']) {
      expect(metrics).toMatch(new RegExp(`tx_tracker_rpc_requests_total\\{${chain}\\} [1-9]`));
      expect(metrics).toMatch(new RegExp(`tx_tracker_chain_head\\{${chain}\\} [1-9]`));
      expect(metrics).toContain(`tx_tracker_block_lag{${chain}}`);
      expect(metrics).toContain(`tx_tracker_reorgs_below_finalized_total{${chain}} 0`);
    }
  });

  it('a node on another chain than its CHAIN_<NAME>_ID stops the start with one line naming the variable', async () => {
    const start = startServiceUnderTest({ CHAIN_BASE_RPC_URL: optimism.url, CHAIN_BASE_ID: '8453' });
    await expect(start).rejects.toBeInstanceOf(ChainConfigError);
    await expect(start).rejects.toThrow(
      /^invalid configuration: CHAIN_BASE_RPC_URL is a node of chain 10, but CHAIN_BASE_ID says 8453$/,
    );
    // No id configured and no node answering: the start cannot know the chain.
    await expect(startServiceUnderTest({ ETH_RPC_URL: 'http://127.0.0.1:9' })).rejects.toThrow(
      /^invalid configuration: ETH_RPC_URL: no node answered eth_chainId \(http:\/\/127\.0\.0\.1:9: /,
    );
  });
});
