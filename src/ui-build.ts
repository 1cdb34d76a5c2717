/**
 * `npm run build`'s last step: the dashboard into `ui/` beside the compiled `src/` (`dist/ui/`; the
 * service builds the same in memory at every start). Exits 1 with the compiler's messages when `ui/`
 * does not build.
 */
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DashboardBuildError, buildDashboard } from './api/dashboard.js';

// Compiled, it writes beside its own output (so `tsc --outDir elsewhere` keeps both together); run from
// source (`npm run build:ui`), into dist/ui.
const outdir = import.meta.url.endsWith('.js')
  ? fileURLToPath(new URL('../ui/', import.meta.url))
  : join(fileURLToPath(new URL('../', import.meta.url)), 'dist', 'ui');
const started = performance.now();
try {
  const { files } = await buildDashboard({ outdir });
  console.log(`dashboard: ${files.size} files in ${outdir} (${Math.round(performance.now() - started)} ms)`);
} catch (error) {
  if (!(error instanceof DashboardBuildError)) throw error;
  process.stderr.write(`${error.message}\n`);
  process.exit(1);
}
