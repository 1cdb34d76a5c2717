import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { browserMissing, launchBrowser, watchedPage, type WatchedPage } from './support/browser.js';
import { rpc } from './support/chain.js';
import { type ClusterHarness, call, signTransfers, startClusterHarness, waitForBalance } from './support/cluster.js';
import { describeWithPostgres } from './support/postgres.js';
import { waitUntil } from './support/wait.js';
import { shardOf } from '../src/runtime/shard.js';

const skip = browserMissing();
/** The shards a cluster shares out (as `waitForBalance` counts them). */
const SHARDS = 1024;

describeWithPostgres('the dashboard on every instance of a cluster (headless Chromium)', () => {
  let cluster: ClusterHarness;
  let browser: Browser;

  beforeAll(async () => {
    if (skip) return;
    cluster = await startClusterHarness({ instances: 2 });
    await waitForBalance(cluster);
    browser = await launchBrowser();
  }, 120_000);
  afterAll(async () => {
    await browser?.close();
    await cluster?.close();
  });

  it.skipIf(skip)(
    "shows every instance's trackers and changes: cluster-wide counts and table, live from the other instance",
    async () => {
      const [a, b] = cluster.instances as [ClusterHarness['instances'][0], ClusterHarness['instances'][0]];
      const open = async (api: string): Promise<WatchedPage> => {
        const view = await watchedPage(browser, new URL(api).origin);
        await view.page.goto(`${api}/`);
        await view.page.waitForSelector('.pill[data-health="stream"].ok');
        await view.page.waitForSelector('table[aria-busy="false"]');
        return view;
      };
      const onA = await open(a.api);

      // Created through b, owned by both instances (the shards are shared out); not sent yet: pending.
      const txs = await signTransfers(cluster.anvil.url, 8);
      const created = await call(b.api, 'POST', '/trackers/batch', {
        trackers: txs.map((tx) => ({ txHash: tx.hash })),
      });
      expect(created.status).toBe(200);
      const leases = await cluster.owners();
      const ownerOf = (id: string) => leases.get(shardOf(id, SHARDS));
      expect(new Set(txs.map((tx) => ownerOf(tx.hash)))).toEqual(new Set(['i1', 'i2']));

      for (const tx of txs) await onA.page.waitForSelector(`tr[data-id="${tx.hash}"][data-state="pending"]`);
      await onA.page.locator('[data-count="pending"] .count-value', { hasText: /^8$/ }).waitFor();

      // DELETE clicked on b's page, for a tracker a owns: a's API and a's page say stopped.
      const onB = await open(b.api);
      const id = txs.map((tx) => tx.hash).find((hash) => ownerOf(hash) === 'i1')!;
      await onB.page.goto(`${b.api}/#/trackers/${id}`);
      await onB.page.waitForSelector('svg[data-machine="tracker"] g.state.current');
      onB.page.once('dialog', (dialog) => void dialog.accept());
      await onB.page.getByRole('button', { name: 'DELETE', exact: true }).click();
      await onB.page.locator('[data-field="state"]', { hasText: /^stopped$/ }).waitFor();
      expect((await call(a.api, 'GET', `/trackers/${id}`)).body.state).toBe('stopped');
      await onA.page.waitForSelector(`tr[data-id="${id}"][data-state="stopped"]`);

      // Mined (the harness's anvil mines each tx): every tracker, whichever instance owns it, moves on a's page.
      // The stopped one's tx too (the next nonce of its sender waits for it): it stays stopped.
      for (const tx of txs) await rpc(cluster.anvil.url, 'eth_sendRawTransaction', [tx.raw]);
      const others = txs.filter((tx) => tx.hash !== id);
      for (const tx of others) await onA.page.waitForSelector(`tr[data-id="${tx.hash}"]:not([data-state="pending"])`);

      // b's table: the same trackers in the same states as a's, read from the shared store and kept live.
      await onB.page.goto(`${b.api}/`);
      await onB.page.waitForSelector('table[aria-busy="false"]');
      const states = async (view: WatchedPage) =>
        view.page
          .locator('tr[data-id]')
          .evaluateAll((rows) => rows.map((row) => `${row.getAttribute('data-id')} ${row.getAttribute('data-state')}`));
      await waitUntil(
        async () => {
          const [fromA, fromB] = [await states(onA), await states(onB)];
          return fromA.length === 8 && JSON.stringify(fromA) === JSON.stringify(fromB) ? true : undefined;
        },
        'both pages to show the same eight trackers in the same states',
        20_000,
      );
      const counts = async (view: WatchedPage) =>
        view.page
          .locator('[data-count]')
          .evaluateAll((items) => items.map((item) => `${item.getAttribute('data-count')} ${item.textContent}`));
      await waitUntil(
        async () => {
          const [fromA, fromB] = [await counts(onA), await counts(onB)];
          return JSON.stringify(fromA) === JSON.stringify(fromB) && fromA.some((c) => c.startsWith('stopped 1'))
            ? true
            : undefined;
        },
        'both pages to count the same',
        20_000,
      );
      await onB.screenshot('cluster-instance-b');
      expect(onA.problems).toEqual([]);
      expect(onB.problems).toEqual([]);
    },
  );
});
