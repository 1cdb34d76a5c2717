/**
 * npm run bench:webhooks — webhook deliveries from the outbox to a receiver on 127.0.0.1, with a
 * dead endpoint (accepts connections, never answers) beside the live one.
 *
 * The service's store (`createStoreFromConfig`, SQLite with its writer thread) and tracker system;
 * each tracker start is a change, and each change a delivery to both endpoints (the outbox trigger).
 * - burst: BENCH_CHANGES (default 100,000) starts in batches of 1,000, as fast as the system takes
 *   them; deliveries/s to the live endpoint from the first start to the last delivery, and the
 *   change → delivery latency (the change's `at` to the receiver's clock; queueing included);
 * - steady: BENCH_RATE changes/s (default 200) for BENCH_SECONDS (default 10): the latency a
 *   delivery adds when the dispatcher keeps up;
 * - floor: the same number of POSTs to the same receiver from a plain loop with the dispatcher's
 *   concurrency and a keep-alive agent (no store, no signing);
 * - starts with no endpoint against starts with two (not sent meanwhile): what the outbox trigger
 *   costs the writes.
 * BENCH_CONCURRENCY: the dispatcher's per-endpoint concurrency (default 4, the default).
 */
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { type IncomingMessage, type ServerResponse, Agent, createServer, request } from 'node:http';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import { createTrackerSystem } from '../src/runtime/system.js';
import { createStoreFromConfig } from '../src/service.js';
import { WebhookDispatcher } from '../src/webhooks/dispatcher.js';
import { parseAllowList } from '../src/webhooks/ssrf.js';

const CHANGES = Number(process.env.BENCH_CHANGES ?? 100_000);
const RATE = Number(process.env.BENCH_RATE ?? 200);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 10);
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 4);
const BATCH = 1000;

const hashOf = (i: number): string => `0x${createHash('sha256').update(`webhooks-${i}`).digest('hex')}`;
const percentile = (sorted: number[], p: number): number =>
  sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))] ?? NaN;

interface Receiver {
  url: string;
  count: number;
  latencies: number[];
  close(): Promise<void>;
}

async function startReceiver(answer: boolean): Promise<Receiver> {
  const state = { count: 0, latencies: [] as number[] };
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      if (!answer) return;
      const now = Date.now();
      const body = Buffer.concat(chunks).toString('utf8');
      const at = /"at":"([^"]+)"/.exec(body)?.[1];
      if (at) state.latencies.push(now - Date.parse(at));
      state.count++;
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/hook`,
    get count() {
      return state.count;
    },
    get latencies() {
      return state.latencies;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

const waitUntil = async (check: () => boolean, timeoutMs: number): Promise<void> => {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error('timed out');
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
};

async function withService<T>(
  endpoints: number,
  deliver: boolean,
  run: (ctx: { start: (from: number, n: number) => Promise<void>; live: Receiver; dead: Receiver }) => Promise<T>,
): Promise<T> {
  const dir = mkdtempSync(join(tmpdir(), 'tx-tracker-bench-webhooks-'));
  const { store } = await createStoreFromConfig({ DATABASE_URL: `sqlite:${join(dir, 'trackers.db')}` });
  const system = await createTrackerSystem({ store });
  const live = await startReceiver(true);
  const dead = await startReceiver(false);
  const allow = parseAllowList('127.0.0.1');
  const dispatcher = new WebhookDispatcher({
    store: store.webhooks!,
    allow,
    concurrency: CONCURRENCY,
    timeoutMs: 600_000,
  });
  const now = Date.now();
  const endpoint = (id: string, url: string) => ({
    id,
    url,
    events: ['tracker.state_changed' as const],
    trackers: null,
    secrets: [{ secret: `whsec_${Buffer.from('bench-secret-24-bytes!!!').toString('base64')}`, expiresAt: null }],
    enabled: true,
    disabledReason: null,
    failingSince: null,
    concurrency: null,
    timeoutMs: null,
    createdAt: now,
    updatedAt: now,
  });
  if (endpoints > 0) {
    await store.webhooks!.createEndpoint(endpoint('ep_live', live.url));
    await store.webhooks!.createEndpoint(endpoint('ep_dead', dead.url));
  }
  if (deliver) dispatcher.start();
  const start = async (from: number, n: number) => {
    await system.startMany(Array.from({ length: n }, (_, i) => ({ txHash: hashOf(from + i) })));
  };
  try {
    return await run({ start, live, dead });
  } finally {
    await dispatcher.stop();
    await system.shutdown({ stopActors: false });
    await store.close();
    await live.close();
    await dead.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

async function burst() {
  return withService(2, true, async ({ start, live }) => {
    const began = performance.now();
    for (let i = 0; i < CHANGES; i += BATCH) await start(i, Math.min(BATCH, CHANGES - i));
    const written = performance.now() - began;
    await waitUntil(() => live.count >= CHANGES, 600_000);
    const seconds = (performance.now() - began) / 1000;
    const sorted = [...live.latencies].sort((a, b) => a - b);
    return {
      perSecond: CHANGES / seconds,
      writtenMs: written,
      p50: percentile(sorted, 0.5),
      p99: percentile(sorted, 0.99),
    };
  });
}

async function steady() {
  return withService(2, true, async ({ start, live }) => {
    const total = RATE * SECONDS;
    const perTick = Math.max(1, Math.round(RATE / 100));
    const began = performance.now();
    for (let sent = 0; sent < total; sent += perTick) {
      await start(10_000_000 + sent, perTick);
      const due = began + ((sent + perTick) / RATE) * 1000;
      const wait = due - performance.now();
      if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
    }
    await waitUntil(() => live.count >= total, 120_000);
    const sorted = [...live.latencies].sort((a, b) => a - b);
    return { p50: percentile(sorted, 0.5), p99: percentile(sorted, 0.99) };
  });
}

async function startsOnly(endpoints: number) {
  // Nothing sent meanwhile: only the trigger's work differs.
  return withService(endpoints, false, async ({ start }) => {
    const began = performance.now();
    for (let i = 0; i < CHANGES; i += BATCH) await start(20_000_000 + i, Math.min(BATCH, CHANGES - i));
    return (CHANGES / (performance.now() - began)) * 1000;
  });
}

async function floor() {
  const live = await startReceiver(true);
  const agent = new Agent({ keepAlive: true });
  const url = new URL(live.url);
  const body = JSON.stringify({ type: 'tracker.state_changed', data: { seq: 1, trackerId: hashOf(1), at: null } });
  const post = () =>
    new Promise<void>((resolve, reject) => {
      const req = request(
        url,
        {
          method: 'POST',
          agent,
          headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
        },
        (res) => {
          res.resume();
          res.on('end', resolve);
        },
      );
      req.on('error', reject);
      req.end(body);
    });
  let next = 0;
  const began = performance.now();
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (next++ < CHANGES) await post();
    }),
  );
  const perSecond = CHANGES / ((performance.now() - began) / 1000);
  agent.destroy();
  await live.close();
  return perSecond;
}

const fmt = (n: number) => Math.round(n).toLocaleString('en-US');
const started = new Date().toISOString();
const floorRate = await floor();
const b = await burst();
const s = await steady();
// Alternated, the better of two each: the first run of a process warms it.
const none = await startsOnly(0);
const two = await startsOnly(2);
const noneAgain = await startsOnly(0);
const twoAgain = await startsOnly(2);

console.log(
  `\nbench:webhooks ${started}, ${cpus().length} cores (${cpus()[0]?.model ?? '?'}), load ${loadavg()[0]!.toFixed(2)}`,
);
console.log(
  `concurrency ${CONCURRENCY} per endpoint; a dead endpoint (never answers) beside the live one throughout\n`,
);
console.log('| measure | value |');
console.log('|---|---|');
console.log(`| deliveries/s, ${fmt(CHANGES)} changes in a burst (start → last delivery) | ${fmt(b.perSecond)} |`);
console.log(`| floor: plain POSTs/s to the same receiver, same concurrency | ${fmt(floorRate)} |`);
console.log(`| burst: change → delivery p50 / p99 (ms, queueing included) | ${fmt(b.p50)} / ${fmt(b.p99)} |`);
console.log(
  `| steady ${RATE} changes/s for ${SECONDS} s: added latency p50 / p99 (ms) | ${fmt(s.p50)} / ${fmt(s.p99)} |`,
);
console.log(
  `| tracker starts/s with no endpoint / with two (outbox trigger) | ${fmt(Math.max(none, noneAgain))} / ${fmt(Math.max(two, twoAgain))} |`,
);
