import { existsSync } from 'node:fs';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Router } from 'express';
import { ApiError } from './errors.js';

/** The page's files by URL path (`/`, `/ui/main.js`, …), built in memory. */
export interface DashboardAssets {
  files: Map<string, { type: string; body: Uint8Array }>;
}

/** The UI did not build: the compiler's messages, one per line (file:line:column: text). */
export class DashboardBuildError extends Error {
  override name = 'DashboardBuildError';
}

/** The nearest `ui/` above this file: beside `src/` from source, beside the build's folder when built. */
function uiSource(): string {
  for (const up of ['../../ui/', '../../../ui/', '../../../../ui/']) {
    const dir = fileURLToPath(new URL(up, import.meta.url));
    if (existsSync(join(dir, 'main.tsx'))) return dir;
  }
  throw new DashboardBuildError('the dashboard sources (ui/main.tsx) are not beside src/ or the build folder');
}

/** elkjs's browser build (UMD, sets `window.ELK`), from the installed package. */
function elkBundle(): string {
  return fileURLToPath(import.meta.resolve('elkjs/lib/elk.bundled.js'));
}

const TYPES: Record<string, string> = {
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.html': 'text/html; charset=utf-8',
};
const typeOf = (path: string): string => TYPES[/\.[a-z]+$/.exec(path)?.[0] ?? ''] ?? 'application/octet-stream';

/**
 * Build the dashboard from `ui/` with esbuild (Preact, bundled; elkjs served beside it and loaded
 * when a chart is first drawn). In memory: every process builds its own copy at start,
 * so parallel starts never read each other's half-written files. `outdir` also writes the files.
 *
 * @example
 * const assets = await buildDashboard();
 * assets.files.get('/')?.type; // 'text/html; charset=utf-8'
 */
export async function buildDashboard(options: { outdir?: string; source?: string } = {}): Promise<DashboardAssets> {
  const source = options.source ?? uiSource();
  const esbuild = await import('esbuild');
  let result: Awaited<ReturnType<typeof esbuild.build>>;
  try {
    result = await esbuild.build({
      entryPoints: [join(source, 'main.tsx')],
      bundle: true,
      format: 'esm',
      minify: true,
      target: 'es2020',
      jsx: 'automatic',
      jsxImportSource: 'preact',
      outdir: '/ui',
      entryNames: '[name]',
      write: false,
      logLevel: 'silent',
      legalComments: 'none',
    });
  } catch (error) {
    const errors = (error as { errors?: Parameters<typeof esbuild.formatMessages>[0] }).errors;
    if (!errors) throw new DashboardBuildError(`the dashboard did not build: ${String(error)}`);
    const lines = errors.map((m) =>
      m.location ? `${m.location.file}:${m.location.line}:${m.location.column}: ${m.text}` : m.text,
    );
    throw new DashboardBuildError(`the dashboard did not build:\n${lines.join('\n')}`);
  }
  const files = new Map<string, { type: string; body: Uint8Array }>();
  for (const file of result.outputFiles ?? []) {
    const path = `/ui/${basename(file.path)}`;
    files.set(path, { type: typeOf(path), body: file.contents });
  }
  files.set('/', { type: typeOf('.html'), body: await readFile(join(source, 'index.html')) });
  // Served as it ships (minifying 1.6 MB of generated code again would take most of the build).
  files.set('/ui/elk.js', { type: typeOf('.js'), body: await readFile(elkBundle()) });
  if (options.outdir) {
    // Only this build's files: none left from an earlier one.
    await rm(options.outdir, { recursive: true, force: true });
    await mkdir(options.outdir, { recursive: true });
    for (const [path, file] of files)
      await writeFile(join(options.outdir, path === '/' ? 'index.html' : basename(path)), file.body);
  }
  return { files };
}

/**
 * The policy every page file is sent with: nothing from another host can load (scripts, styles,
 * fonts, images, connections), the page cannot be framed.
 */
const CSP =
  "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
  "worker-src 'self' blob:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/**
 * `GET /` and `GET /ui/<file>`: the dashboard, open without the token (static files; the page asks
 * for the token and sends it itself). Before the build finished, or when it failed, the page answers
 * 503 `dashboard_unavailable` with the reason; the API is not affected.
 *
 * @example
 * app.use(dashboardRoutes(() => assets));
 */
export function dashboardRoutes(
  assets: () => DashboardAssets | Error | undefined,
  options: { auth: boolean } = { auth: false },
): Router {
  const router = Router();
  // The page asks for the token before its first request, rather than after a 401.
  const marked = new WeakMap<Uint8Array, Uint8Array>();
  const page = (body: Uint8Array): Uint8Array => {
    if (!options.auth) return body;
    let html = marked.get(body);
    if (!html) {
      html = Buffer.from(Buffer.from(body).toString('utf8').replace('<html ', '<html data-auth="bearer" '));
      marked.set(body, html);
    }
    return html;
  };
  const serve = (path: string) => (_req: unknown, res: import('express').Response) => {
    const current = assets();
    if (current === undefined) throw new ApiError(503, 'dashboard_unavailable', 'the dashboard is being built');
    if (current instanceof Error) throw new ApiError(503, 'dashboard_unavailable', current.message);
    const file = current.files.get(path);
    if (!file) throw new ApiError(404, 'not_found', `no file ${path}`);
    const body = path === '/' ? page(file.body) : file.body;
    res
      .status(200)
      .set({
        'Content-Type': file.type,
        'Cache-Control': 'no-cache',
        'Content-Security-Policy': CSP,
        'X-Content-Type-Options': 'nosniff',
        'Referrer-Policy': 'no-referrer',
      })
      .end(Buffer.from(body.buffer, body.byteOffset, body.byteLength));
  };
  router.get('/', serve('/'));
  router.get('/ui/:file', (req, res) => serve(`/ui/${req.params.file}`)(req, res));
  return router;
}
