import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Anvil, startAnvil } from '../src/chain/anvil.js';
import { rpc } from './support/chain.js';
import { type RpcProxy, startRpcProxy } from './support/rpcProxy.js';
import { type ServiceUnderTest, signTransfer, startServiceUnderTest } from './support/service.js';
import { waitUntil } from './support/wait.js';

interface ChainJson {
  name: string;
  head: number | null;
  rpc: { status: string; fallback: boolean; lastError: string | null };
}

// Each chain has its own watcher: one chain's dead node stalls only that chain's trackers. fast
// (8453, 0.25 s blocks) is reached through a proxy that can die, with the node itself as fallback;
// slow (10, 0.5 s blocks) keeps its chain in a state file, so that it can be killed and restarted
// on the same URL as the same chain.
describe('a chain whose node is down stalls only its own trackers', () => {
  const dir = mkdtempSync(join(tmpdir(), 'tx-tracker-outage-'));
  const stateFile = join(dir, 'slow-chain.json');
  const slowArgs = ['--chain-id', '10', '--state', stateFile];
  let fast: Anvil;
  let slow: Anvil;
  let proxy: RpcProxy;
  let s: ServiceUnderTest;
  const nonces = { fast: 0, slow: 0 };

  beforeAll(async () => {
    [fast, slow] = await Promise.all([
      startAnvil({ blockTime: 0.25, args: ['--chain-id', '8453'] }),
      startAnvil({ blockTime: 0.5, args: slowArgs }),
    ]);
    proxy = await startRpcProxy(fast.url);
    s = await startServiceUnderTest(
      {
        CHAIN_FAST_RPC_URL: proxy.url,
        CHAIN_FAST_FALLBACK_URL: fast.url,
        CHAIN_FAST_POLL_INTERVAL_MS: '50',
        CHAIN_SLOW_RPC_URL: slow.url,
        CHAIN_SLOW_ID: '10',
        CHAIN_SLOW_POLL_INTERVAL_MS: '50',
        DEFAULT_CHAIN: 'fast',
      },
      dir,
    );
  });
  afterAll(async () => {
    await s?.stop();
    await proxy?.close();
    await Promise.all([fast?.stop(), slow?.stop()]);
    rmSync(dir, { recursive: true, force: true });
  });

  const chainsJson = async (): Promise<Record<string, ChainJson>> =>
    Object.fromEntries(
      ((await s.call('GET', '/chains')).json as { chains: ChainJson[] }).chains.map((c) => [c.name, c]),
    );

  it('the slow node killed: fast trackers confirm, slow ones wait (readyz and /chains say so), and resume when it is back', async () => {
    const onFast = await signTransfer(8453, 0, { nonce: nonces.fast++ });
    const onSlow = await signTransfer(10, 0, { nonce: nonces.slow++ });
    await s.call('POST', '/trackers', { txHash: onFast.hash, id: 'fast-1', confirmations: 12 });
    await s.call('POST', '/trackers', { txHash: onSlow.hash, id: 'slow-1', chain: 'slow', confirmations: 8 });
    await rpc(slow.url, 'eth_sendRawTransaction', [onSlow.raw]);
    const mined = await s.waitForTracker('slow-1', 'to be confirming', (t) => t.state === 'confirming');

    // SIGTERM: anvil writes its chain to the state file on the way out.
    await slow.stop();
    await rpc(fast.url, 'eth_sendRawTransaction', [onFast.raw]);
    const confirmed = await s.waitForTracker(
      'fast-1',
      'to be confirmed while slow is down',
      (t) => t.state === 'confirmed',
    );
    expect(confirmed.chainId).toBe(8453);
    const down = await waitUntil(async () => {
      const chains = await chainsJson();
      return chains.slow!.rpc.status === 'down' ? chains : undefined;
    }, 'the slow chain to be reported down');
    expect(down.slow!.rpc.lastError).toBeTruthy();
    expect(down.fast!.rpc.status).not.toBe('down');
    const ready = await s.call('GET', '/readyz');
    expect(ready).toMatchObject({ status: 200, json: { checks: { chain: true, chains: { slow: 'down' } } } });
    const stalled = await s.tracker('slow-1');
    expect(stalled).toMatchObject({ state: 'confirming', blockHash: mined.blockHash });

    // The same URL again, the same chain (from its state file): the tracker goes on from where it was.
    slow = await startAnvil({ blockTime: 0.5, port: slow.port, args: slowArgs });
    const resumed = await s.waitForTracker(
      'slow-1',
      'to be confirmed after the node is back',
      (t) => t.state === 'confirmed',
      45_000,
    );
    expect(resumed).toMatchObject({ chainId: 10, blockHash: mined.blockHash, reorgs: 0 });
    await waitUntil(async () => (await chainsJson()).slow!.rpc.status === 'ok', 'the slow chain to be ok again');
  });

  it('the fast primary dead: its trackers go on through the fallback URL, and /chains says it is on the fallback', async () => {
    const before = proxy.totalCalls();
    proxy.fault = 'down';
    const tx = await signTransfer(8453, 0, { nonce: nonces.fast++ });
    await s.call('POST', '/trackers', { txHash: tx.hash, id: 'fast-2', confirmations: 8 });
    await rpc(fast.url, 'eth_sendRawTransaction', [tx.raw]);
    const done = await s.waitForTracker(
      'fast-2',
      'to be confirmed through the fallback',
      (t) => t.state === 'confirmed',
    );
    expect(done.chainId).toBe(8453);
    expect(proxy.totalCalls()).toBeGreaterThan(before);
    const chains = await chainsJson();
    expect(chains.fast!.rpc).toMatchObject({ fallback: true, status: 'degraded' });
    proxy.fault = 'pass';
  });
});
