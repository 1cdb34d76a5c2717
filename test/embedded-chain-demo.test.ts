import { afterAll, describe, expect, it } from 'vitest';
import { ChainConfigError, parseChainConfig } from '../src/chain/config.js';
import { runDemo } from '../src/chain/demo.js';
import { type Chain, startChain } from '../src/chain/embedded.js';
import type { Tracker } from '../src/runtime/tracker-view.js';
import { type TrackerHooks, createTrackerSystem } from '../src/runtime/system.js';
import { MemoryStore } from '../src/store/memory.js';
import { waitFor } from './support/chain.js';

describe('the embedded default and the demo', () => {
  let chain: Chain | undefined;
  afterAll(async () => {
    await chain?.stop();
  });

  it('parses the chain settings once, failing with one line on a bad value', () => {
    expect(parseChainConfig({})).toEqual({ rpcUrl: undefined, pollIntervalMs: 1000, droppedAfterMs: 600_000 });
    expect(parseChainConfig({ ETH_RPC_URL: 'wss://node.example/key', POLL_INTERVAL_MS: '250' })).toMatchObject({
      rpcUrl: 'wss://node.example/key',
      pollIntervalMs: 250,
    });
    expect(() => parseChainConfig({ DROPPED_AFTER_MS: 'soon' })).toThrow(ChainConfigError);
    expect(() => parseChainConfig({ ETH_RPC_URL: 'localhost:8545' })).toThrow(/ETH_RPC_URL/);
  });

  it('with no ETH_RPC_URL starts a local anvil with a block time; the demo txs confirm and fail', async () => {
    const hooks: TrackerHooks = {};
    const system = await createTrackerSystem({ store: new MemoryStore(), hooks });
    chain = await startChain({ config: { ...parseChainConfig({}), pollIntervalMs: 50 }, system, blockTime: 1 });
    Object.assign(hooks, chain.watcher.hooks);
    expect(chain.anvil?.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    const latest = new Map<string, Tracker>();
    system.subscribe((t) => latest.set(t.id, t));
    const sent = await runDemo({
      url: chain.url,
      onTransaction: async ({ hash }) => void (await system.start(undefined, { txHash: hash, confirmations: 2 })),
    });
    expect(sent).toHaveLength(3);
    await waitFor('every demo tracker to be final', () =>
      sent.every(({ hash }) => ['confirmed', 'failed'].includes(latest.get(hash)?.state ?? '')),
    );
    expect(sent.map(({ hash }) => latest.get(hash)?.state)).toEqual(['confirmed', 'confirmed', 'failed']);
    expect(latest.get(sent[2]!.hash)?.failure?.reason).toBe('reverted');
    await system.shutdown();
  });
});
