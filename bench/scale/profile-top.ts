/**
 * Self time inside the windows of bench/scale/profile-block.ts, from the `.cpuprofile` files
 * `node --cpu-prof` wrote (one per thread): per thread, the top functions and the time by concern.
 *
 * npx tsx bench/scale/profile-top.ts <dir> [top]
 */
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
interface Profile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

const [dir = '.tmp/prof', topArg = '25'] = process.argv.slice(2);
const windows = JSON.parse(readFileSync(join(dir, 'windows.json'), 'utf8')) as Array<{ from: number; to: number }>;
const windowUs = windows.reduce((sum, w) => sum + (w.to - w.from), 0);
const inWindow = (t: number): boolean => windows.some((w) => t >= w.from && t < w.to);

/** What a frame is part of, by where its code lives. */
function concern(url: string, name: string): string {
  if (name === '(garbage collector)') return 'GC';
  if (name === '(idle)') return 'idle';
  if (name === '(program)') return 'V8/native (program)';
  if (url.includes('node_modules/xstate')) return 'XState';
  if (url.includes('node_modules/better-sqlite3')) return 'better-sqlite3 (JS side)';
  if (url.includes('node_modules/')) return `deps: ${/node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url)?.[1]}`;
  const ours = /\/(src\/[^/]+|machines|bench)\//.exec(url);
  if (ours) return ours[1]!;
  if (url.startsWith('node:') || url.startsWith('internal/')) return 'Node internals';
  if (url === '') return name === '' ? 'native' : `native: ${name}`;
  return 'other';
}

const files = readdirSync(dir).filter((f) => f.endsWith('.cpuprofile'));
const top = Number(topArg);
const ms = (us: number): string => `${(us / 1000).toFixed(1)} ms`;
console.log(`${windows.length} windows, ${ms(windowUs)} of wall time in them (${ms(windowUs / windows.length)} each)\n`);
for (const file of files) {
  const profile = JSON.parse(readFileSync(join(dir, file), 'utf8')) as Profile;
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const self = new Map<number, number>();
  let t = profile.startTime;
  let total = 0;
  for (let i = 0; i < profile.samples.length; i++) {
    t += profile.timeDeltas[i]!;
    const next = profile.timeDeltas[i + 1] ?? 0;
    if (!inWindow(t)) continue;
    self.set(profile.samples[i]!, (self.get(profile.samples[i]!) ?? 0) + next);
    total += next;
  }
  if (total === 0) continue;
  const byFunction = new Map<string, { us: number; concern: string }>();
  const byConcern = new Map<string, number>();
  for (const [id, us] of self) {
    const { functionName, url, lineNumber } = byId.get(id)!.callFrame;
    const where = url.replace(/^.*\/(node_modules\/|src\/|machines\/|bench\/)/, '$1');
    const key = `${functionName || '(anonymous)'} ${where}${url ? `:${lineNumber + 1}` : ''}`;
    const c = concern(url, functionName);
    byFunction.set(key, { us: (byFunction.get(key)?.us ?? 0) + us, concern: c });
    byConcern.set(c, (byConcern.get(c) ?? 0) + us);
  }
  const thread = /\.(\d+)\.\d+\.cpuprofile$/.exec(file)?.[1] ?? '?';
  console.log(`## ${file} (thread ${thread}): ${ms(total)} sampled in the windows (${ms(total / windows.length)} a block)\n`);
  console.log('| concern | self time | share | a block |');
  console.log('|---|---:|---:|---:|');
  for (const [c, us] of [...byConcern].sort((a, b) => b[1] - a[1])) {
    console.log(`| ${c} | ${ms(us)} | ${((us / total) * 100).toFixed(1)}% | ${ms(us / windows.length)} |`);
  }
  console.log('\n| function | concern | self time | share |');
  console.log('|---|---|---:|---:|');
  for (const [key, { us, concern: c }] of [...byFunction].sort((a, b) => b[1].us - a[1].us).slice(0, top)) {
    console.log(`| \`${key}\` | ${c} | ${ms(us)} | ${((us / total) * 100).toFixed(1)}% |`);
  }
  console.log('');
}
