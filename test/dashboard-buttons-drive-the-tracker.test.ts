import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Anvil, startAnvil } from '../src/chain/anvil.js';
import type { TrackerHistoryPage } from '../src/runtime/types.js';
import { axeViolations, browserMissing, launchBrowser, watchedPage, type WatchedPage } from './support/browser.js';
import { mine, rpc } from './support/chain.js';
import { type RpcProxy, startRpcProxy } from './support/rpcProxy.js';
import { type ServiceUnderTest, signTransfer, startServiceUnderTest } from './support/service.js';
import { waitUntil } from './support/wait.js';

const CHAIN_ID = 31337;
const skip = browserMissing();

describe.skipIf(skip)('the dashboard drives a tracker by its buttons (headless Chromium)', () => {
  let anvil: Anvil;
  let proxy: RpcProxy;
  let service: ServiceUnderTest;
  let browser: Browser;
  let view: WatchedPage;

  beforeAll(async () => {
    // No mining but when the test mines: with no new head the watcher looks nothing up on its own.
    anvil = await startAnvil({ args: ['--no-mining'] });
    // Through a proxy that tells the test when the node has answered a look-up.
    proxy = await startRpcProxy(anvil.url);
    service = await startServiceUnderTest({ ETH_RPC_URL: proxy.url, POLL_INTERVAL_MS: '100' });
    browser = await launchBrowser();
    view = await watchedPage(browser, new URL(service.url).origin);
  });
  afterAll(async () => {
    await browser?.close();
    await service?.stop();
    await proxy?.close();
    await anvil?.stop();
  });

  const noProblems = () => expect(view.problems).toEqual([]);
  const history = async (id: string) =>
    ((await service.call('GET', `/trackers/${id}/history`)).json as TrackerHistoryPage).items;
  const nodeHas = async (hash: string) => (await rpc(anvil.url, 'eth_getTransactionByHash', [hash])) !== null;

  it('RECHECK looks the tx up at once; REBROADCAST gives the node the dropped tx again, which then confirms', async () => {
    const { page } = view;
    // Tracked before it is sent: pending.unseen, and no head comes to look it up again.
    const tx = await signTransfer(CHAIN_ID, 0, { nonce: 0 });
    let lookups = 0;
    proxy.rewrite = (method, result) => {
      if (method === 'eth_getTransactionByHash') lookups++;
      return result;
    };
    expect((await service.call('POST', '/trackers', { txHash: tx.hash, confirmations: 1 })).status).toBe(201);
    // Its first look-up answered (not found) before the node has it: only RECHECK looks again.
    await waitUntil(() => lookups >= 1 || undefined, 'the first look-up');
    proxy.rewrite = null;
    await rpc(anvil.url, 'eth_sendRawTransaction', [tx.raw]);

    await page.goto(`${service.url}/#/trackers/${tx.hash}`);
    await page.waitForSelector('svg[data-machine="tracker"] g.state.current[data-state="pending.unseen"]');
    await page.getByRole('button', { name: 'RECHECK', exact: true }).click();
    await page.waitForSelector('ol.timeline li[data-event="TX_SEEN"]');
    await page.waitForSelector('svg[data-machine="tracker"] g.state.current[data-state="pending.seen"]');
    expect((await history(tx.hash)).map((row) => row.to)).toEqual(['pending.unseen', 'pending.seen']);

    // The node forgets it (as after a reorg or a mempool eviction): REBROADCAST sends the signed form kept.
    await rpc(anvil.url, 'anvil_dropTransaction', [tx.hash]);
    expect(await nodeHas(tx.hash)).toBe(false);
    await page.getByRole('button', { name: 'REBROADCAST', exact: true }).click();
    await page.locator('[data-message]', { hasText: 'REBROADCAST: done; the tracker is pending.' }).waitFor();
    await waitUntil(async () => (await nodeHas(tx.hash)) || undefined, 'the node to have the tx again');
    await mine(anvil.url);
    const confirmed = await service.waitForTracker(tx.hash, 'confirmed', (t) => t.state === 'confirmed');
    await page.locator('[data-field="state"]', { hasText: /^confirmed$/ }).waitFor();
    await page
      .locator('ol.timeline li[data-event="TX_MINED"]', { hasText: `block ${confirmed.blockNumber}` })
      .waitFor();
    await view.screenshot('tracker-rebroadcast');
    expect(await axeViolations(page)).toEqual([]);
    noProblems();
  });

  it('shows a replacement (same sender and nonce, higher fee) on the timeline and the tracker', async () => {
    const { page } = view;
    const original = await signTransfer(CHAIN_ID, 1, { nonce: 0 });
    await rpc(anvil.url, 'eth_sendRawTransaction', [original.raw]);
    expect((await service.call('POST', '/trackers', { txHash: original.hash, confirmations: 1 })).status).toBe(201);
    // Seen: the watcher knows its sender and nonce.
    await waitUntil(
      async () => (await history(original.hash)).some((row) => row.to === 'pending.seen') || undefined,
      'the watcher to see the tx',
    );
    const replacement = await signTransfer(CHAIN_ID, 1, {
      nonce: 0,
      maxFeePerGas: 20_000_000_000n,
      maxPriorityFeePerGas: 2_000_000_000n,
    });
    await rpc(anvil.url, 'eth_sendRawTransaction', [replacement.raw]);
    await page.goto(`${service.url}/#/trackers/${original.hash}`);
    await page.waitForSelector('svg[data-machine="tracker"] g.state.current[data-state="pending.seen"]');

    await mine(anvil.url);
    // The same transfer at a higher fee: the tracker follows the new hash to confirmed.
    const confirmed = await service.waitForTracker(original.hash, 'confirmed', (t) => t.state === 'confirmed');
    expect([confirmed.txHash, confirmed.replacedBy]).toEqual([original.hash, replacement.hash]);
    const short = `${replacement.hash.slice(0, 10)}…${replacement.hash.slice(-6)}`;
    await page.locator('ol.timeline li .flag', { hasText: `replaced by ${short}` }).waitFor();
    await page.locator('[data-field="state"]', { hasText: /^confirmed$/ }).waitFor();
    expect(await page.locator('dd.mono', { hasText: short }).count()).toBe(1);
    await view.screenshot('tracker-replaced');
    noProblems();
  });

  it("shows the supervisor's chart with its live counts, which follow the trackers", async () => {
    const { page } = view;
    await page.goto(`${service.url}/`);
    const stat = (name: string) => page.locator(`[data-stat="${name}"]`);
    const supervision = async () =>
      (await service.call('GET', '/supervision')).json as { shards: number; live: number; restarts: number };
    const before = await supervision();
    await stat('live')
      .filter({ hasText: new RegExp(`^${before.live}$`) })
      .waitFor();
    await page
      .locator('svg[data-machine="supervisor"] [data-badge="running"]', {
        hasText: `${before.shards} shards, ${before.live} trackers`,
      })
      .waitFor();

    // One more live tracker (its tx never sent: pending for the rest of the test).
    const tx = await signTransfer(CHAIN_ID, 2, { nonce: 5 });
    expect((await service.call('POST', '/trackers', { txHash: tx.hash })).status).toBe(201);
    const after = await supervision();
    expect(after.live).toBe(before.live + 1);
    await stat('live')
      .filter({ hasText: new RegExp(`^${after.live}$`) })
      .waitFor();
    await page
      .locator('svg[data-machine="supervisor"] [data-badge="running"]', {
        hasText: `${after.shards} shards, ${after.live} trackers`,
      })
      .waitFor();
    noProblems();
  });
});
