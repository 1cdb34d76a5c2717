import type { Browser, Route } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Anvil, startAnvil } from '../src/chain/anvil.js';
import { browserMissing, launchBrowser, watchedPage, type WatchedPage } from './support/browser.js';
import { rpc } from './support/chain.js';
import { type ServiceUnderTest, signTransfer, startServiceUnderTest } from './support/service.js';

const CHAIN_ID = 31337;
const skip = browserMissing();

/** A promise with its resolve function, to hold a request until the test lets it go. */
function gate(): { promise: Promise<void>; open: () => void } {
  let open!: () => void;
  const promise = new Promise<void>((resolve) => (open = resolve));
  return { promise, open };
}

describe.skipIf(skip)('the live tracker table misses no change (headless Chromium)', () => {
  let anvil: Anvil;
  let service: ServiceUnderTest;
  let browser: Browser;
  let view: WatchedPage;

  beforeAll(async () => {
    anvil = await startAnvil({ args: [] });
    service = await startServiceUnderTest({ ETH_RPC_URL: anvil.url, POLL_INTERVAL_MS: '100' });
    browser = await launchBrowser();
    view = await watchedPage(browser, new URL(service.url).origin);
  });
  afterAll(async () => {
    await browser?.close();
    await service?.stop();
    await anvil?.stop();
  });

  it('regression: a tracker created after the table was listed but before the stream opened never appeared', async () => {
    const { page } = view;
    // The stream's request is held until the list has answered and the tracker exists.
    const held = gate();
    const release = gate();
    await page.route(
      (url) => url.pathname === '/events',
      async (route: Route) => {
        held.open();
        await release.promise;
        await route.continue();
      },
    );
    await page.goto(`${service.url}/`);
    await held.promise;
    await page.waitForSelector('table[aria-busy="false"]');
    expect(await page.locator('.pill[data-health="stream"]').textContent()).toBe('reconnecting');

    const tx = await signTransfer(CHAIN_ID, 0, { nonce: 0 });
    expect((await service.call('POST', '/trackers', { txHash: tx.hash })).status).toBe(201);
    expect(await page.locator(`tr[data-id="${tx.hash}"]`).count()).toBe(0);

    release.open();
    await page.waitForSelector('.pill[data-health="stream"].ok');
    await page.waitForSelector(`tr[data-id="${tx.hash}"][data-state="pending"]`, { timeout: 10_000 });
    await page.unroute((url) => url.pathname === '/events');
    expect(view.problems).toEqual([]);
  });

  it('regression: a change streamed in while a re-list was in flight was hidden by its older answer', async () => {
    const { page } = view;
    // Signed, not sent: pending until the test sends it.
    const tx = await signTransfer(CHAIN_ID, 1, { nonce: 0 });
    expect((await service.call('POST', '/trackers', { txHash: tx.hash, confirmations: 100 })).status).toBe(201);
    await page.goto(`${service.url}/`);
    await page.waitForSelector('.pill[data-health="stream"].ok');
    await page.waitForSelector(`tr[data-id="${tx.hash}"][data-state="pending"]`);

    // The pending trackers' list is read from the server at once, then held: its answer is older
    // than the change the stream brings meanwhile.
    const fetched = gate();
    const release = gate();
    const pendingList = (url: URL) => url.pathname === '/trackers' && url.searchParams.get('state') === 'pending';
    await page.route(pendingList, async (route: Route) => {
      const response = await route.fetch();
      fetched.open();
      await release.promise;
      await route.fulfill({ response });
    });
    await page.getByLabel('Filter by state').selectOption('pending');
    await fetched.promise;

    await rpc(anvil.url, 'eth_sendRawTransaction', [tx.raw]); // mined: confirming
    // The stream's change reached the table (still showing the previous list) before the answer.
    await page.waitForSelector(`tr[data-id="${tx.hash}"][data-state="confirming"]`);
    expect(await page.getAttribute('table', 'aria-busy')).toBe('true');

    release.open();
    await page.waitForSelector('table[aria-busy="false"]');
    expect(await page.getAttribute(`tr[data-id="${tx.hash}"]`, 'data-state')).toBe('confirming');
    await page.unroute(pendingList);
    expect(view.problems).toEqual([]);
  });
});
