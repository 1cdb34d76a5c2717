import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Anvil, startAnvil } from '../src/chain/anvil.js';
import { browserMissing, launchBrowser, watchedPage } from './support/browser.js';
import { type ServiceUnderTest, startServiceUnderTest } from './support/service.js';

const skip = browserMissing();

describe.skipIf(skip)('the dashboard while the node is down (headless Chromium)', () => {
  let anvil: Anvil;
  let service: ServiceUnderTest;
  let browser: Browser;

  beforeAll(async () => {
    anvil = await startAnvil({ args: [] });
    service = await startServiceUnderTest({ ETH_RPC_URL: anvil.url, POLL_INTERVAL_MS: '100' });
    browser = await launchBrowser();
  });
  afterAll(async () => {
    await browser?.close();
    await service?.stop();
    await anvil?.stop();
  });

  it('shows the RPC down and the store ok, with no console error (the page does not poll /readyz, which answers 503 then)', async () => {
    const { page, problems } = await watchedPage(browser, new URL(service.url).origin);
    await page.goto(`${service.url}/`);
    await page.waitForSelector('.pill[data-health="stream"].ok');
    await page.waitForSelector('.pill[data-health="store"].ok');
    await page.waitForSelector('.pill[data-chain].ok');

    await anvil.stop();
    // The page re-reads /chains every 5 s while no tracker changes.
    await page.waitForSelector('.pill[data-chain].down', { timeout: 30_000 });
    expect((await service.call('GET', '/readyz')).status).toBe(503);
    expect(await page.locator('.pill[data-health="store"]').textContent()).toBe('store ok');
    expect(problems).toEqual([]);
  }, 60_000);
});
