/**
 * npm run bench:dashboard — the dashboard in headless Chromium over the service path
 * (bench/service-path.ts) with 100,000 live trackers while the change feed carries 1,000 tracker
 * changes a second: time to first render (table rows, counts, the first statechart), frame times
 * and long tasks during the stream, and the page's JS heap (it must not grow with the trackers:
 * it holds a page of rows, never the whole set). The bench is the chain: it delivers TX_SEEN, then
 * TX_MINED, to trackers in turn, as the watcher would.
 *
 * BENCH_TRACKERS (default 100,000), BENCH_RATE (changes per second, default 1,000),
 * BENCH_SECONDS (stream measured this long, default 20).
 */
import { createHash } from 'node:crypto';
import { loadavg, cpus } from 'node:os';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { browserMissing, launchBrowser, watchedPage } from '../test/support/browser.js';
import { startServicePath } from './service-path.js';

const trackers = Number(process.env.BENCH_TRACKERS ?? 100_000);
const rate = Number(process.env.BENCH_RATE ?? 1_000);
const seconds = Number(process.env.BENCH_SECONDS ?? 20);
const missing = browserMissing();
if (missing) {
  console.error(missing);
  process.exit(1);
}

const hash = (i: number): string => `0x${createHash('sha256').update(`dashboard-${i}`).digest('hex')}`;
const dir = mkdtempSync(join(tmpdir(), 'bench-dashboard-'));
const service = await startServicePath({ databasePath: join(dir, 'trackers.db') });
const { system } = service;
const log = (line: string) => process.stderr.write(`bench:dashboard ${line}\n`);

let t = performance.now();
const ids = Array.from({ length: trackers }, (_, i) => hash(i));
for (let i = 0; i < trackers; i += 1000)
  await system.startMany(ids.slice(i, i + 1000).map((txHash) => ({ txHash, confirmations: 3 })));
await service.store.flush();
log(`${trackers.toLocaleString('en-US')} trackers started in ${((performance.now() - t) / 1000).toFixed(1)} s`);
system.newHead(100);

// Counts the changes the server streams, from outside the browser.
let streamed = 0;
const feed = new AbortController();
void (async () => {
  try {
    const res = await fetch(`${service.server.url}/events`, { signal: feed.signal });
    const decoder = new TextDecoder();
    for await (const chunk of res.body!) streamed += decoder.decode(chunk).split('\nevent: tracker\n').length - 1;
  } catch {
    // Aborted at the end.
  }
})();

// What the page's first requests cost the server on their own (the first render waits on them).
const apiMs: Record<string, number> = {};
for (const path of ['/machines', '/trackers?limit=50', '/chains', '/supervision']) {
  const at = performance.now();
  await (await fetch(`${service.server.url}${path}`)).text();
  apiMs[path] = performance.now() - at;
}

const browser = await launchBrowser();
const view = await watchedPage(browser, new URL(service.server.url).origin);
const { page } = view;
const cdp = await page.context().newCDPSession(page);
const heapMiB = async (): Promise<number> => {
  await cdp.send('HeapProfiler.collectGarbage');
  const { usedSize } = (await cdp.send('Runtime.getHeapUsage')) as { usedSize: number };
  return usedSize / 2 ** 20;
};

t = performance.now();
await page.goto(`${service.server.url}/`);
await page.waitForSelector('tr[data-id]');
const rowsMs = performance.now() - t;
await page.waitForSelector('[data-count="pending"]');
const countsMs = performance.now() - t;
await page.waitForSelector('svg[data-machine="tracker"]');
const chartMs = performance.now() - t;
await page.waitForSelector('.pill[data-health="stream"].ok');
const heapIdle = await heapMiB();

// Frame times and long tasks, collected in the page (evaluated through DevTools: not subject to its CSP).
await page.evaluate(`(() => {
  window.__frames = []; window.__long = [];
  let last = performance.now();
  const tick = (now) => { window.__frames.push(now - last); last = now; if (!window.__stop) requestAnimationFrame(tick); };
  requestAnimationFrame(tick);
  new PerformanceObserver((list) => { for (const e of list.getEntries()) window.__long.push(e.duration); }).observe({ type: 'longtask' });
})()`);

// The chain: `rate` changes a second, spread over 10 ms ticks.
let next = 0;
let delivered = 0;
const streamedBefore = streamed;
const started = performance.now();
let owed = 0;
await new Promise<void>((resolve) => {
  const timer = setInterval(() => {
    const elapsed = performance.now() - started;
    if (elapsed >= seconds * 1000) {
      clearInterval(timer);
      resolve();
      return;
    }
    owed = Math.floor((elapsed / 1000) * rate) - delivered;
    for (let k = 0; k < Math.max(owed, 0); k++) {
      const i = next++ % (2 * trackers);
      const id = ids[i % trackers]!;
      if (i < trackers) system.deliver(id, { type: 'TX_SEEN' });
      else
        system.deliver(id, { type: 'TX_MINED', blockNumber: 100, blockHash: hash(-1), status: 'success', head: 100 });
      delivered++;
    }
  }, 10);
});
const streamSeconds = (performance.now() - started) / 1000;
const frames = (await page.evaluate(`(() => { window.__stop = true; return window.__frames; })()`)) as number[];
const long = (await page.evaluate('window.__long')) as number[];
const heapAfter = await heapMiB();
const rowsShown = await page.locator('tr[data-id]').count();
const live = await page.locator('.pill[data-health="stream"].ok').count();
await view.screenshot('bench');
const version = browser.version();
feed.abort();
await browser.close();
await service.stop();
rmSync(dir, { recursive: true, force: true });

const sorted = [...frames].sort((a, b) => a - b);
const pct = (p: number) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;
const f = (v: number) => v.toFixed(1);
const out = [
  `| measure | value |`,
  `|---|---:|`,
  `| trackers live | ${trackers.toLocaleString('en-US')} |`,
  `| server alone: ${Object.entries(apiMs)
    .map(([path, ms]) => `${path} ${f(ms)} ms`)
    .join(', ')} | |`,
  `| first render: table rows | ${f(rowsMs)} ms |`,
  `| first render: counts by state | ${f(countsMs)} ms |`,
  `| first statechart drawn (elkjs) | ${f(chartMs)} ms |`,
  `| changes delivered / streamed per s | ${f(delivered / streamSeconds)} / ${f((streamed - streamedBefore) / streamSeconds)} |`,
  `| frames in ${f(streamSeconds)} s | ${frames.length} (${f(frames.length / streamSeconds)} fps) |`,
  `| frame time p50 / p95 / p99 / max | ${f(pct(50))} / ${f(pct(95))} / ${f(pct(99))} / ${f(sorted.at(-1) ?? NaN)} ms |`,
  `| long tasks (> 50 ms) | ${long.length}${long.length ? `, longest ${f(Math.max(...long))} ms` : ''} |`,
  `| JS heap after first render / after the stream | ${f(heapIdle)} / ${f(heapAfter)} MiB |`,
  `| rows held by the page | ${rowsShown} |`,
  `| stream connected at the end | ${live ? 'yes' : 'NO'} |`,
  `| page problems (console errors, other hosts) | ${view.problems.length} |`,
];
console.log(out.join('\n'));
console.log(
  `\n${new Date().toISOString()}, ${cpus().length} cores (${cpus()[0]?.model ?? '?'}), load ${loadavg()
    .map((l) => l.toFixed(2))
    .join(' ')}; headless Chromium (${version}), one process serves and drives the chain.`,
);
if (view.problems.length) console.log(view.problems.slice(0, 5).join('\n'));
