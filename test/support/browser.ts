import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { type Browser, type Page, chromium } from 'playwright-core';
import { ROOT } from './service-process.js';

/** Debian's chromium (`apt-get install chromium`); `.ci/run` installs it when missing. */
export const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

/**
 * Why the browser tests cannot run here, or undefined when they can. CI (`CI` set) never skips: a
 * missing browser fails there.
 */
export function browserMissing(): string | undefined {
  if (existsSync(CHROMIUM) || process.env.CI) return undefined;
  const reason = `SKIPPED: no Chromium at ${CHROMIUM} (apt-get install chromium, or set CHROMIUM_PATH); the dashboard is not tested in a browser on this machine`;
  console.warn(reason);
  return reason;
}

/** Where screenshots go (git-ignored). */
export const ARTEFACTS = join(ROOT, '.tmp', 'dashboard-artefacts');

/** Headless Chromium with nothing talking to the network on its own. */
export async function launchBrowser(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
}

export interface WatchedPage {
  page: Page;
  /** Console errors, uncaught page errors and requests to another origin than `origin`, so far. */
  problems: string[];
  screenshot(name: string): Promise<string>;
}

/**
 * A page that records every console error, uncaught exception and request to any host other than
 * `origin` (the test fails on any), and aborts such requests so none leaves the machine.
 */
export async function watchedPage(
  browser: Browser,
  origin: string,
  viewport = { width: 1280, height: 900 },
): Promise<WatchedPage> {
  const context = await browser.newContext({ viewport });
  const page = await context.newPage();
  const problems: string[] = [];
  page.on('console', (message) => {
    if (message.type() === 'error') problems.push(`console error: ${message.text()}`);
  });
  page.on('pageerror', (error) => problems.push(`page error: ${error.message}`));
  await context.route('**/*', (route) => {
    const url = route.request().url();
    if (new URL(url).origin === origin || url.startsWith('data:')) return route.continue();
    problems.push(`request to another host: ${url}`);
    return route.abort();
  });
  mkdirSync(ARTEFACTS, { recursive: true });
  return {
    page,
    problems,
    async screenshot(name) {
      const path = join(ARTEFACTS, `${name}.png`);
      await page.screenshot({ path, fullPage: true });
      return path;
    },
  };
}

/** axe-core's violations on the page as it is now (WCAG 2 A and AA rules, contrast included). */
export async function axeViolations(page: Page): Promise<Array<{ id: string; help: string; nodes: string[] }>> {
  const require = createRequire(import.meta.url);
  // Evaluated through DevTools, which the page's Content-Security-Policy does not apply to.
  await page.evaluate(readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8'));
  return page.evaluate(`(async () => {
    const result = await axe.run(document, { runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'best-practice'] } });
    return result.violations.map((v) => ({ id: v.id, help: v.help, nodes: v.nodes.map((n) => n.target.join(' ')) }));
  })()`);
}
