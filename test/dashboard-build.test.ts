import { cpSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { DashboardBuildError, buildDashboard } from '../src/api/dashboard.js';
import { createTrackerSystem } from '../src/runtime/system.js';
import { startServer } from '../src/api/server.js';
import { MemoryStore } from '../src/store/memory.js';
import { ROOT } from './support/service-process.js';

const dirs: string[] = [];
afterAll(() => dirs.forEach((dir) => rmSync(dir, { recursive: true, force: true })));

it('builds the page from ui/: index, script, styles and the layout engine, nothing from another host', async () => {
  const { files } = await buildDashboard();
  expect([...files.keys()].sort()).toEqual(['/', '/ui/elk.js', '/ui/main.css', '/ui/main.js']);
  const html = Buffer.from(files.get('/')!.body).toString('utf8');
  expect(html).toContain('src="/ui/main.js"');
  for (const [path, file] of files) {
    if (path === '/ui/elk.js') continue;
    // No absolute URL to load from: scripts, styles and links all stay on this server.
    expect([
      path,
      /(src|href)=["']https?:|url\(["']?https?:|@import/.test(Buffer.from(file.body).toString('utf8')),
    ]).toEqual([path, false]);
  }
});

it('a UI that does not compile fails the build with file:line:column and the reason; the server says so at / (503), the API still answers', async () => {
  // Inside the repository, so that its node_modules resolve as for ui/.
  mkdirSync(join(ROOT, '.tmp'), { recursive: true });
  const source = mkdtempSync(join(ROOT, '.tmp', 'ui-'));
  dirs.push(source);
  cpSync(join(ROOT, 'ui'), source, { recursive: true });
  writeFileSync(join(source, 'overview.tsx'), 'export const broken = ;\n', { flag: 'a' });
  const failure = await buildDashboard({ source }).catch((error: unknown) => error);
  expect(failure).toBeInstanceOf(DashboardBuildError);
  expect((failure as Error).message).toMatch(
    /^the dashboard did not build:\n\S*overview\.tsx:\d+:\d+: Unexpected ";"$/,
  );

  const store = new MemoryStore();
  const system = await createTrackerSystem({ store });
  const server = await startServer({ system, port: 0, dashboard: () => failure as Error });
  try {
    const page = await fetch(`${server.url}/`);
    expect(page.status).toBe(503);
    expect(((await page.json()) as { error: { code: string; message: string } }).error).toMatchObject({
      code: 'dashboard_unavailable',
      message: expect.stringContaining('overview.tsx'),
    });
    expect((await fetch(`${server.url}/machines`)).status).toBe(200);
  } finally {
    await server.close();
    await system.shutdown();
  }
});
