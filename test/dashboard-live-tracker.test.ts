import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Anvil, startAnvil } from '../src/chain/anvil.js';
import { axeViolations, browserMissing, launchBrowser, watchedPage, type WatchedPage } from './support/browser.js';
import { mine, rpc } from './support/chain.js';
import { type ServiceUnderTest, signTransfer, startServiceUnderTest } from './support/service.js';

const CHAIN_ID = 31337;
const skip = browserMissing();

describe.skipIf(skip)('the dashboard in a real browser (headless Chromium)', () => {
  let anvil: Anvil;
  let service: ServiceUnderTest;
  let browser: Browser;
  let view: WatchedPage;

  beforeAll(async () => {
    // Mines only when asked (and on each transaction): the test decides when blocks come.
    anvil = await startAnvil({ args: [] });
    service = await startServiceUnderTest({
      ETH_RPC_URL: anvil.url,
      FAULT_INJECTION: '1',
      REQUIRED_CONFIRMATIONS: '3',
      POLL_INTERVAL_MS: '100',
    });
    browser = await launchBrowser();
    view = await watchedPage(browser, new URL(service.url).origin);
  });
  afterAll(async () => {
    await browser?.close();
    await service?.stop();
    await anvil?.stop();
  });

  const noProblems = () => expect(view.problems).toEqual([]);
  const axeClean = async () => expect(await axeViolations(view.page)).toEqual([]);

  it('shows a tracker created over HTTP appear in the table and move to confirmed as the chain mines', async () => {
    const { page } = view;
    await page.goto(`${service.url}/`);
    await page.waitForSelector('table[aria-busy="false"]');
    await page.waitForSelector('.pill[data-health="stream"].ok');

    // Signed, not sent yet: the node does not know it, so it starts pending.
    const tx = await signTransfer(CHAIN_ID, 0, { nonce: 0 });
    expect((await service.call('POST', '/trackers', { txHash: tx.hash })).status).toBe(201);
    await page.waitForSelector(`tr[data-id="${tx.hash}"][data-state="pending"]`);

    await rpc(anvil.url, 'eth_sendRawTransaction', [tx.raw]); // mined in block 1: confirming
    await page.waitForSelector(`tr[data-id="${tx.hash}"][data-state="confirming"]`);
    await mine(anvil.url, 2); // 3 confirmations
    await page.waitForSelector(`tr[data-id="${tx.hash}"][data-state="confirmed"]`);
    await page.locator('[data-count="confirmed"] .count-value', { hasText: /^1$/ }).waitFor();
    await page.waitForSelector('svg[data-machine="supervisor"]');
    await page.locator('.pill[data-chain="default"] [data-head]', { hasText: /^3$/ }).waitFor();
    await view.screenshot('overview');
    await axeClean();
    noProblems();

    // One tracker: its chart with the current state highlighted and its path marked, its timeline.
    await page.click(`tr[data-id="${tx.hash}"] a`);
    await page.waitForSelector('svg[data-machine="tracker"] g.state.current[data-state="confirmed"]');
    await page.waitForSelector('g.transition.taken[data-edge="e:pending>confirming"]');
    await page.waitForSelector('g.transition.taken[data-edge="e:confirming>confirmed"]');
    const events = await page.$$eval('ol.timeline li', (items) => items.map((li) => li.getAttribute('data-event')));
    // Created, mined in block 1, confirmed by the head that gave it 3 confirmations.
    expect(events[0]).toBe('START');
    expect(events).toContain('TX_MINED');
    expect(await page.locator('ol.timeline li').last().locator('.badge').textContent()).toBe('confirmed');
    expect(await page.textContent('ol.timeline li[data-event="TX_MINED"]')).toContain('block 1');
    await view.screenshot('tracker-confirmed');
    await axeClean();
    noProblems();
  });

  it('CRASH from the page restarts the tracker with its state kept (restarts becomes 1); RECHECK, DELETE', async () => {
    const { page } = view;
    // Waits for 100 confirmations: confirming for the whole test.
    const tx = await signTransfer(CHAIN_ID, 1, { nonce: 0 });
    await service.call('POST', '/trackers', { txHash: tx.hash, confirmations: 100 });
    await rpc(anvil.url, 'eth_sendRawTransaction', [tx.raw]);
    await service.waitForTracker(tx.hash, 'confirming', (t) => t.state === 'confirming');

    await page.goto(`${service.url}/#/trackers/${tx.hash}`);
    await page.waitForSelector('svg[data-machine="tracker"] g.state.current[data-state="confirming"]');
    expect(await page.textContent('[data-field="restarts"]')).toBe('0');
    // Its count follows the chain's head events (the stream does not resend confirming trackers per block).
    await page.locator('[data-field="confirmations"]', { hasText: /^1 of 100$/ }).waitFor();
    await mine(anvil.url, 2);
    await page.locator('[data-field="confirmations"]', { hasText: /^3 of 100$/ }).waitFor();
    await page.click('button:has-text("CRASH")');
    await page.locator('[data-field="restarts"]', { hasText: /^1$/ }).waitFor();
    expect(await page.textContent('[data-field="state"]')).toBe('confirming');
    await page.waitForSelector('ol.timeline li[data-event="RESTART"]');
    expect(await page.textContent('ol.timeline li[data-event="RESTART"]')).toContain('restart #1');
    await page.waitForSelector('svg[data-machine="tracker"] g.state.current[data-state="confirming"]');
    const stored = await service.tracker(tx.hash);
    expect([stored.state, stored.restarts]).toEqual(['confirming', 1]);
    await view.screenshot('tracker-after-crash');

    await page.click('button:has-text("RECHECK")');
    await page.locator('[data-message]', { hasText: 'RECHECK: done; the tracker is confirming.' }).waitFor();
    page.once('dialog', (dialog) => void dialog.accept());
    await page.click('button:has-text("DELETE")');
    await page.locator('[data-field="state"]', { hasText: /^stopped$/ }).waitFor();
    expect((await service.tracker(tx.hash)).state).toBe('stopped');
    // A stopped tracker takes none of them: the buttons say so.
    for (const name of ['RECHECK', 'CRASH', 'DELETE'])
      expect(await page.getByRole('button', { name, exact: true }).isDisabled()).toBe(true);
    await axeClean();
    noProblems();
  });

  it('marks a reorg on the timeline and the chart: back to pending.seen, then mined again', async () => {
    const { page } = view;
    const tx = await signTransfer(CHAIN_ID, 3, { nonce: 0 });
    await service.call('POST', '/trackers', { txHash: tx.hash, confirmations: 100 });
    await rpc(anvil.url, 'eth_sendRawTransaction', [tx.raw]);
    await mine(anvil.url);
    const first = await service.waitForTracker(tx.hash, 'two confirmations', (t) => t.confirmations >= 2);
    // Its block and the next are replaced; the tx lands in the second new block.
    await rpc(anvil.url, 'anvil_reorg', [2, [[tx.raw, 1]]]);
    await service.waitForTracker(tx.hash, 'the reorg followed', (t) => t.reorgs === 1 && t.state === 'confirming');

    await page.goto(`${service.url}/#/trackers/${tx.hash}`);
    await page.waitForSelector('ol.timeline li[data-event="BLOCK_REORGED"].reorg');
    expect(await page.textContent('ol.timeline li[data-event="BLOCK_REORGED"]')).toContain('reorg #1');
    const mined = page.locator('ol.timeline li[data-event="TX_MINED"]');
    expect(await mined.count()).toBe(2);
    expect(await mined.first().textContent()).toContain(`block ${first.blockNumber}`);
    await page.waitForSelector('g.transition.taken[data-edge="e:confirming>pending.seen"]');
    await page.waitForSelector('svg[data-machine="tracker"] g.state.current[data-state="confirming"]');
    expect(await page.textContent('[data-field="reorgs"]')).toBe('1');
    // Regression: the previous tracker's CRASH message stayed on this one (same view, another id).
    expect(await page.textContent('[data-message]')).toBe('');
    await view.screenshot('tracker-after-reorg');
    await axeClean();
    noProblems();
  });

  it('pages with the cursor, filters by state and finds a tracker by hash, from the keyboard', async () => {
    const { page } = view;
    const hashes = Array.from({ length: 60 }, (_, i) => `0x${(i + 1).toString(16).padStart(64, 'e')}`);
    const batch = await service.call('POST', '/trackers/batch', { trackers: hashes.map((txHash) => ({ txHash })) });
    expect(batch.status).toBe(200);
    await page.goto(`${service.url}/`);
    await page.waitForSelector('table[aria-busy="false"]');
    // 63 trackers, 50 a page: the second page holds the other 13, read with the cursor.
    expect(await page.locator('tr[data-id]').count()).toBe(50);
    await page.getByRole('button', { name: 'Next page' }).click();
    await page.locator('.pager span', { hasText: 'Page 2' }).waitFor();
    await page.waitForSelector('table[aria-busy="false"]');
    expect(await page.locator('tr[data-id]').count()).toBe(13);
    await page.getByRole('button', { name: 'First page' }).click();
    await page.locator('.pager span', { hasText: 'Page 1' }).waitFor();

    await page.getByLabel('Filter by state').selectOption('confirmed');
    await page.locator('tr[data-id]').first().waitFor();
    await page.waitForSelector('table[aria-busy="false"]');
    expect(
      await page.locator('tr[data-id]').evaluateAll((rows) => rows.map((r) => r.getAttribute('data-state'))),
    ).toEqual(['confirmed']);

    // Keyboard only: the search field by its label, Enter submits, the tracker's heading takes the focus.
    await page.getByLabel('Find by id or tx hash').focus();
    await page.keyboard.type(hashes[7]!.toUpperCase().replace('0X', '0x'));
    await page.keyboard.press('Enter');
    await page.waitForSelector(`h2#tracker-title:focus`);
    expect(await page.textContent('h2#tracker-title')).toContain(hashes[7]);
    await page.keyboard.press('Tab');
    noProblems();
  });

  it('is readable on a phone: nothing wider than the screen but the table and chart, which scroll', async () => {
    const phone = await watchedPage(browser, new URL(service.url).origin, { width: 390, height: 844 });
    await phone.page.goto(`${service.url}/`);
    await phone.page.waitForSelector('table[aria-busy="false"]');
    await phone.page.waitForSelector('svg[data-machine="tracker"]');
    const overflow = await phone.page.evaluate(`document.documentElement.scrollWidth - window.innerWidth`);
    expect(overflow).toBeLessThanOrEqual(0);
    await phone.screenshot('phone');
    expect(await axeViolations(phone.page)).toEqual([]);
    expect(phone.problems).toEqual([]);
  });
});
