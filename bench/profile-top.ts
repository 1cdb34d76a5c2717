/**
 * Self time inside the windows of bench/scale/profile-block.ts or bench/api-profile.ts, from the
 * `.cpuprofile` files `node --cpu-prof` wrote (one per thread): per thread, the top functions and
 * the time by concern.
 *
 * npx tsx bench/profile-top.ts <dir> [top]
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
/** Time windows (µs, CLOCK_MONOTONIC) and how many operations (blocks, requests) each one holds. */
const windows = JSON.parse(readFileSync(join(dir, 'windows.json'), 'utf8')) as Array<{
  from: number;
  to: number;
  ops?: number;
}>;
const windowUs = windows.reduce((sum, w) => sum + (w.to - w.from), 0);
const ops = windows.reduce((sum, w) => sum + (w.ops ?? 1), 0);
const windowOf = (t: number) => windows.find((w) => t >= w.from && t < w.to);

const HTTP_DEPS =
  /node_modules\/(express|router|body-parser|raw-body|parseurl|on-finished|content-type|type-is|iconv-lite|mime-types|mime-db|debug|path-to-regexp|finalhandler|send|statuses|http-errors|qs|encodeurl|escape-html|etag|fresh|vary|cookie|depd|media-typer|negotiator|accepts|merge-descriptors|ee-first|unpipe|safer-buffer|setprototypeof|toidentifier|bytes)\//;
const HTTP_NATIVE = new Set([
  'writev',
  'writeUtf8String',
  'writeLatin1String',
  'writeBuffer',
  'encodeUtf8String',
  'utf8Slice',
  'latin1Slice',
]);
const root = `${process.cwd()}/`;

/** What a frame is part of, by where its code lives. */
function concern(url: string, name: string): string {
  if (name === '(garbage collector)') return 'GC';
  if (name === '(idle)') return 'idle';
  if (name === '(program)') return 'V8/native (program)';
  const path = url.replace(/^file:\/\//, '').replace(root, '');
  if (path.includes('node_modules/xstate')) return 'XState';
  if (path.includes('node_modules/better-sqlite3') || path.includes('[worker eval]'))
    return 'SQLite (better-sqlite3, worker)';
  if (HTTP_DEPS.test(path)) return 'HTTP: Express and its deps';
  if (path.includes('node_modules/')) return `deps: ${/node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(path)?.[1]}`;
  if (path.startsWith('src/') || path.startsWith('machines/') || path.startsWith('bench/')) {
    const dir = path
      .split('/')
      .slice(0, path.startsWith('src/') ? 2 : 1)
      .join('/');
    return dir === 'machines' ? 'src/runtime + machines' : dir === 'src/runtime' ? 'src/runtime + machines' : dir;
  }
  // In the service only the chain watcher's JSON-RPC transport is an HTTP client (node:http).
  if (/^node:_http_(client|agent)/.test(path)) return 'HTTP client (node:http): JSON-RPC';
  if (/^node:internal\/(deps\/undici|webstreams|abort_controller)/.test(path)) return 'fetch (undici)';
  if (/^node:(_http|net|_stream|stream|internal\/(streams|http|net|stream_base))/.test(path) || HTTP_NATIVE.has(name))
    return 'HTTP: Node http, net, streams';
  if (/^node:internal\/(worker|per_context\/messageport|event_target)/.test(path) || name === 'postMessage')
    return 'worker messaging';
  if (path.startsWith('node:') || path.startsWith('internal/')) return 'Node internals (events, timers, other)';
  if (url === '') return name.startsWith('RegExp:') ? 'regular expressions' : 'native builtins (other)';
  return 'other';
}

const files = readdirSync(dir).filter((f) => f.endsWith('.cpuprofile'));
const top = Number(topArg);
const ms = (us: number): string => `${(us / 1000).toFixed(1)} ms`;
const us = (v: number): string => (v >= 1000 ? ms(v) : `${v.toFixed(1)} µs`);
console.log(
  `${windows.length} windows, ${ms(windowUs)} of wall time in them, ${ops.toLocaleString('en-US')} operations (${us(windowUs / ops)} each)\n`,
);
for (const file of files) {
  const profile = JSON.parse(readFileSync(join(dir, file), 'utf8')) as Profile;
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const self = new Map<number, number>();
  let t = profile.startTime;
  let total = 0;
  for (let i = 0; i < profile.samples.length; i++) {
    t += profile.timeDeltas[i]!;
    const next = profile.timeDeltas[i + 1] ?? 0;
    const window = windowOf(t);
    if (!window) continue;
    // A sample stands for the time until the next one, cut at the window's end (idle gaps are long).
    const us = Math.min(next, window.to - t);
    self.set(profile.samples[i]!, (self.get(profile.samples[i]!) ?? 0) + us);
    total += us;
  }
  if (total === 0) continue;
  const byFunction = new Map<string, { us: number; concern: string }>();
  const byConcern = new Map<string, number>();
  for (const [id, us] of self) {
    const { functionName, url, lineNumber } = byId.get(id)!.callFrame;
    const where = url
      .replace(/^file:\/\//, '')
      .replace(root, '')
      .replace(/^.*\/node_modules\//, 'node_modules/');
    // Lines of transpiled TypeScript say nothing (tsx): its frames are named by function and file only.
    const line = url && !/\.ts$/.test(where) ? `:${lineNumber + 1}` : '';
    const key = `${functionName || '(anonymous)'} ${where}${line}`;
    const c = concern(url, functionName);
    byFunction.set(key, { us: (byFunction.get(key)?.us ?? 0) + us, concern: c });
    byConcern.set(c, (byConcern.get(c) ?? 0) + us);
  }
  const thread = /\.(\d+)\.\d+\.cpuprofile$/.exec(file)?.[1] ?? '?';
  console.log(
    `## ${file} (thread ${thread}): ${ms(total)} sampled in the windows (${us(total / ops)} per operation)\n`,
  );
  console.log('| concern | self time | share | per operation |');
  console.log('|---|---:|---:|---:|');
  for (const [c, t] of [...byConcern].sort((a, b) => b[1] - a[1])) {
    console.log(`| ${c} | ${ms(t)} | ${((t / total) * 100).toFixed(1)}% | ${us(t / ops)} |`);
  }
  console.log('\n| function | concern | self time | share | per operation |');
  console.log('|---|---|---:|---:|---:|');
  for (const [key, { us: t, concern: c }] of [...byFunction].sort((a, b) => b[1].us - a[1].us).slice(0, top)) {
    console.log(`| \`${key}\` | ${c} | ${ms(t)} | ${((t / total) * 100).toFixed(1)}% | ${us(t / ops)} |`);
  }
  console.log('');
}
