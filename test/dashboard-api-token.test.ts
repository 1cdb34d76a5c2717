import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Anvil, startAnvil } from '../src/chain/anvil.js';
import { axeViolations, browserMissing, launchBrowser, watchedPage } from './support/browser.js';
import { signTransfer, type ServiceUnderTest, startServiceUnderTest } from './support/service.js';

const TOKEN = 'dashboard-token-0123456789abcdef';
const skip = browserMissing();

describe.skipIf(skip)('the dashboard with API_TOKEN (headless Chromium)', () => {
  let anvil: Anvil;
  let service: ServiceUnderTest;
  let browser: Browser;

  beforeAll(async () => {
    anvil = await startAnvil({ args: [] });
    service = await startServiceUnderTest({ ETH_RPC_URL: anvil.url, API_TOKEN: TOKEN, POLL_INTERVAL_MS: '100' });
    browser = await launchBrowser();
  });
  afterAll(async () => {
    await browser?.close();
    await service?.stop();
    await anvil?.stop();
  });

  it('asks for the token once, then works (live stream included) and keeps it for the tab', async () => {
    const { page, problems, screenshot } = await watchedPage(browser, new URL(service.url).origin);
    const sent: string[] = [];
    page.on('request', (request) => {
      const path = new URL(request.url()).pathname;
      if (!path.startsWith('/ui/') && path !== '/') sent.push(`${path} ${request.headers().authorization ?? 'none'}`);
    });
    await page.goto(`${service.url}/`);
    await page.getByLabel('API token').waitFor();
    // Asked before any API request: no 401 on the way.
    expect(sent).toEqual([]);
    await screenshot('token-prompt');
    expect(await axeViolations(page)).toEqual([]);

    await page.getByLabel('API token').fill(TOKEN);
    await page.getByRole('button', { name: 'Open the dashboard' }).click();
    await page.waitForSelector('table[aria-busy="false"]');
    await page.waitForSelector('.pill[data-health="stream"].ok');
    expect(sent.length).toBeGreaterThan(0);
    expect(sent.filter((line) => !line.endsWith(`Bearer ${TOKEN}`))).toEqual([]);

    // The stream carries the token too: a new tracker's row appears without a reload.
    const tx = await signTransfer(31337, 2, { nonce: 0 });
    expect(
      (await service.call('POST', '/trackers', { txHash: tx.hash }, { authorization: `Bearer ${TOKEN}` })).status,
    ).toBe(201);
    await page.waitForSelector(`tr[data-id="${tx.hash}"]`);

    await page.reload();
    await page.waitForSelector(`tr[data-id="${tx.hash}"]`);
    expect(await page.getByLabel('API token').count()).toBe(0);
    expect(problems).toEqual([]);
  });
});
