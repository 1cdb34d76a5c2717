/**
 * bench:rpc, several chains in one service:
 * 1. RPC calls per block, per chain, with trackers on three chains at once (mainnet-like chain 1
 *    with trackers confirmed by `finalized`, 8453 and 10 by 3 confirmations): N txs per chain wait
 *    in the mempool, tracking starts, then a block is mined on every chain each BLOCK_TIME s until
 *    all are final. Each chain's watcher talks through its own counting proxy.
 * 2. Keeping up: a chain with a block every 0.25 s and LAG_TRACKERS (10,000) live trackers, beside
 *    a slow chain (SLOW_BLOCK_TIME, 12 s) with 1,000, both on one SQLite store. The 10,000 txs are
 *    sent, mined (about 1,400 a block) and stay confirming; the block lag (the node's head, read by
 *    the bench, minus the head the tracker system has processed) is sampled every 50 ms for
 *    LAG_SECONDS (30).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Finality } from '../machines/tracker.machine.js';
import { type Anvil, startAnvil } from '../src/chain/anvil.js';
import { type ChainNodes, type ChainSet, startChains } from '../src/chain/chain-set.js';
import type { TrackerSink } from '../src/chain/watcher-state.js';
import { type TrackerSystem, createTrackerSystem } from '../src/runtime/system.js';
import { MemoryStore } from '../src/store/memory.js';
import { SqliteStore } from '../src/store/sqlite.js';
import type { SnapshotStore } from '../src/store/types.js';
import {
  SENDER_ARGS,
  hashesOf,
  progress,
  rpc,
  sendRaw,
  senderWallets,
  signAndSend,
  signTransfers,
  sleep,
  startProxy,
  stats,
  total,
} from './rpc-support.js';

const BLOCK_TIME = Number(process.env.BLOCK_TIME ?? 1);
const POLL_MS = Number(process.env.POLL_INTERVAL_MS ?? 1000);
const CHAIN_SIZES = (process.env.CHAIN_SIZES ?? '100,1000').split(',').map(Number);
const LAG_TRACKERS = Number(process.env.LAG_TRACKERS ?? 10_000);
const SLOW_BLOCK_TIME = Number(process.env.SLOW_BLOCK_TIME ?? 12);
const LAG_SECONDS = Number(process.env.LAG_SECONDS ?? 30);

interface BenchChain {
  name: string;
  id: number;
  confirmations: number | Finality;
  anvil: Anvil;
  proxy: { url: string; child: { kill(): void } };
}

/** A tracker system over `chains` (each watched through its proxy), wired as the service wires it. */
async function follow(
  chains: readonly BenchChain[],
  store: SnapshotStore,
  pollMs: (chain: BenchChain) => number,
): Promise<{ system: TrackerSystem; set: ChainSet }> {
  // The watchers start first; they reach the system once it exists.
  const ref: { system?: TrackerSystem } = {};
  const sink: TrackerSink = {
    deliver: (id, event) => ref.system?.deliver(id, event) ?? false,
    newHead: (blockNumber, chainId) => ref.system?.newHead(blockNumber, chainId),
    newFinality: (chainId, tag, blockNumber) => ref.system?.newFinality(chainId, tag, blockNumber),
    awaitsFinality: (chainId, tag) => ref.system?.awaitsFinality(chainId, tag) ?? false,
  };
  const nodes: ChainNodes[] = chains.map((c) => ({
    name: c.name,
    rpcUrl: c.proxy.url,
    fallbackUrl: undefined,
    chainId: c.id,
    pollIntervalMs: pollMs(c),
    variables: { rpcUrl: `CHAIN_${c.name.toUpperCase()}_RPC_URL`, chainId: undefined },
  }));
  const set = await startChains({ chains: nodes, droppedAfterMs: 600_000, system: sink });
  const system = await createTrackerSystem({
    store,
    hooks: set.hooks,
    chains: chains.map((c) => ({ id: c.id, name: c.name, confirmations: c.confirmations })),
  });
  ref.system = system;
  return { system, set };
}

async function startBenchChain(
  name: string,
  id: number,
  confirmations: number | Finality,
  args: string[],
  blockTime?: number,
): Promise<BenchChain> {
  const anvil = await startAnvil({
    ...(blockTime !== undefined ? { blockTime } : {}),
    args: ['--chain-id', String(id), ...SENDER_ARGS, ...args],
  });
  return { name, id, confirmations, anvil, proxy: await startProxy(anvil.url) };
}

async function stopAll(chains: readonly BenchChain[]): Promise<void> {
  for (const c of chains) c.proxy.child.kill();
  await Promise.all(chains.map((c) => c.anvil.stop()));
}

/** Scenario 1: calls per block per chain, trackers on three chains. */
async function callsPerBlockOnThreeChains(): Promise<string[]> {
  const chains = [
    // Finalized two blocks behind the head (--slots-in-an-epoch 1).
    await startBenchChain('mainnet', 1, 'finalized', ['--no-mining', '--slots-in-an-epoch', '1']),
    await startBenchChain('base', 8453, 3, ['--no-mining']),
    await startBenchChain('optimism', 10, 3, ['--no-mining']),
  ];
  const { system, set } = await follow(chains, new MemoryStore(), () => POLL_MS);
  let final = 0;
  system.subscribe((t) => {
    if (t.state === 'confirmed') final++;
    if (t.state === 'failed') throw new Error(`tracker failed: ${JSON.stringify(t.failure)}`);
  });
  const mineAll = () => Promise.all(chains.map((c) => rpc(c.anvil.url, 'evm_mine')));
  await mineAll();
  const wallets = senderWallets();
  const nonces = new Map(chains.map((c) => [c.id, wallets.map(() => 0)]));
  const rows: string[] = [];
  for (const n of CHAIN_SIZES) {
    progress(`3 chains, n=${n} each: sending and starting trackers`);
    final = 0;
    await Promise.all(chains.map((c) => stats(c.proxy.url, true)));
    for (const c of chains) {
      const hashes = await signAndSend(c.anvil.url, wallets, nonces.get(c.id)!, n, c.id);
      for (let i = 0; i < n; i += 1000)
        await system.startMany(hashes.slice(i, i + 1000).map((txHash) => ({ txHash, chain: c.id })));
    }
    while (set.list.some((c) => c.watcher.health().pendingLookups > 0)) await sleep(50);
    // The lookups' batches still in flight: settle before counting blocks.
    await sleep(2 * POLL_MS);
    const startup = await Promise.all(chains.map((c) => stats(c.proxy.url)));
    await Promise.all(chains.map((c) => stats(c.proxy.url, true)));
    let blocks = 0;
    while (final < 3 * n) {
      await sleep(BLOCK_TIME * 1000);
      if (final >= 3 * n) break;
      await mineAll();
      blocks++;
    }
    const perChain = await Promise.all(chains.map((c) => stats(c.proxy.url)));
    chains.forEach((c, i) => {
      const s = perChain[i]!;
      rows.push(
        `| ${n.toLocaleString('en-US')} | ${c.name} (${c.id}) | ${c.confirmations} | ${blocks} | ${(total(s) / blocks).toFixed(2)} | ${(total(startup[i]!) / n).toFixed(2)} |`,
      );
    });
    progress(`3 chains, n=${n}: ${blocks} blocks`);
  }
  await set.stop();
  await system.shutdown();
  await stopAll(chains);
  return rows;
}

const percentile = (sorted: readonly number[], p: number): number =>
  sorted[Math.min(sorted.length - 1, Math.floor((sorted.length * p) / 100))]!;

/** Scenario 2: a 0.25 s chain with LAG_TRACKERS live trackers beside a slow one: its block lag. */
async function lagOfAFastChain(): Promise<string[]> {
  const fast = await startBenchChain('base', 8453, 1000, [], 0.25);
  const slow = await startBenchChain('mainnet', 1, 3, [], SLOW_BLOCK_TIME);
  const dir = mkdtempSync(join(tmpdir(), 'bench-chains-'));
  const store = new SqliteStore({ path: join(dir, 'trackers.db') });
  const { system, set } = await follow([fast, slow], store, (c) => (c === fast ? 100 : 1000));
  const wallets = senderWallets();
  progress(`lag: signing ${LAG_TRACKERS} + 1000 txs`);
  const fastRaws = await signTransfers(
    wallets,
    wallets.map(() => 0),
    LAG_TRACKERS,
    fast.id,
  );
  const slowRaws = await signTransfers(
    wallets,
    wallets.map(() => 0),
    1000,
    slow.id,
  );
  progress('lag: starting trackers');
  await Promise.all([stats(fast.proxy.url, true), stats(slow.proxy.url, true)]);
  for (const [c, raws] of [
    [fast, fastRaws],
    [slow, slowRaws],
  ] as const) {
    const hashes = hashesOf(raws);
    for (let i = 0; i < hashes.length; i += 1000)
      await system.startMany(hashes.slice(i, i + 1000).map((txHash) => ({ txHash, chain: c.id })));
  }
  // Each tracker's one start-up lookup (3 calls) done, on both chains, before the window opens.
  while (
    total(await stats(fast.proxy.url)) < 3 * fastRaws.length ||
    total(await stats(slow.proxy.url)) < 3 * slowRaws.length
  )
    await sleep(50);
  await Promise.all([stats(fast.proxy.url, true), stats(slow.proxy.url, true)]);
  const headOf = (id: number) => system.chainViews().find((c) => c.id === id)!.head ?? 0;
  const first = { fast: headOf(fast.id), slow: headOf(slow.id) };

  progress(`lag: sending; sampling for ${LAG_SECONDS} s`);
  // Two phases: while the fast chain's txs are mined (blocks of ~1,400 tracked txs each), then with
  // all of them live and confirming.
  const mined = new Set<string>();
  const unsubscribe = system.subscribe((t) => {
    if (t.chainId === fast.id && t.state === 'confirming') mined.add(t.id);
  });
  const lags = { mining: [] as number[], live: [] as number[] };
  const watcherLags: number[] = [];
  const fullBlocks = new Set<number>();
  let sampling = true;
  const t0 = performance.now();
  const sampler = (async () => {
    while (sampling) {
      const phase = mined.size < fastRaws.length ? 'mining' : 'live';
      const node = Number(await rpc<string>(fast.anvil.url, 'eth_blockNumber'));
      const lag = Math.max(0, node - headOf(fast.id));
      lags[phase].push(lag);
      if (phase === 'mining') fullBlocks.add(node);
      if (process.env.LAG_TRACE)
        process.stderr.write(`${((performance.now() - t0) / 1000).toFixed(2)} ${node} ${lag} ${phase}\n`);
      watcherLags.push(set.get(fast.id)!.watcher.blockLag() ?? 0);
      await sleep(50);
    }
  })();
  await Promise.all([sendRaw(fast.anvil.url, fastRaws), sendRaw(slow.anvil.url, slowRaws)]);
  await sleep(Math.max(0, LAG_SECONDS * 1000 - (performance.now() - t0)));
  sampling = false;
  await sampler;
  unsubscribe();
  const live = system.stats().live;
  const [fastStats, slowStats] = await Promise.all([stats(fast.proxy.url), stats(slow.proxy.url)]);
  progress(`lag: calls by method: base ${JSON.stringify(fastStats.calls)}, mainnet ${JSON.stringify(slowStats.calls)}`);
  const blocks = { fast: headOf(fast.id) - first.fast, slow: headOf(slow.id) - first.slow };
  // What the node itself takes to answer eth_getBlockReceipts for the fullest block, idle.
  const receiptsMs = await fullestBlockReceiptsMs(fast.anvil.url, first.fast, headOf(fast.id));
  await set.stop();
  await system.shutdown({ stopActors: false });
  await store.close();
  rmSync(dir, { recursive: true, force: true });
  await stopAll([fast, slow]);

  const row = (what: string, samples: number[]): string => {
    if (samples.length === 0) return `| ${what} | no samples |`;
    const sorted = [...samples].sort((a, b) => a - b);
    const mean = samples.reduce((a, b) => a + b, 0) / samples.length;
    return `| ${what} | ${samples.length} | ${sorted.at(-1)} | ${percentile(sorted, 99)} | ${percentile(sorted, 50)} | ${mean.toFixed(2)} |`;
  };
  return [
    row(
      `base (0.25 s blocks), while its ${fastRaws.length.toLocaleString('en-US')} txs are mined (${fullBlocks.size} blocks)`,
      lags.mining,
    ),
    row(`base, ${mined.size.toLocaleString('en-US')} trackers live (confirming)`, lags.live),
    '',
    `base: ${blocks.fast} blocks, ${(total(fastStats) / Math.max(1, blocks.fast)).toFixed(2)} calls per block; mainnet (a block every ${SLOW_BLOCK_TIME} s, 1,000 trackers): ${blocks.slow} blocks, ${(total(slowStats) / Math.max(1, blocks.slow)).toFixed(2)} calls per block; watcher-reported lag max ${Math.max(...watcherLags)}; live trackers at the end ${live.toLocaleString('en-US')}`,
    `anvil alone answers eth_getBlockReceipts for the fullest block (${receiptsMs.txs} txs) in ${receiptsMs.ms.toFixed(0)} ms (median of 3, after the run)`,
  ];
}

/** The node's own time for eth_getBlockReceipts of the block with most txs in (from, to]. */
async function fullestBlockReceiptsMs(url: string, from: number, to: number): Promise<{ txs: number; ms: number }> {
  let fullest = { hash: '', txs: 0 };
  for (let n = from + 1; n <= to; n++) {
    const block = await rpc<{ hash: string; transactions: string[] }>(url, 'eth_getBlockByNumber', [
      `0x${n.toString(16)}`,
      false,
    ]);
    if (block.transactions.length > fullest.txs) fullest = { hash: block.hash, txs: block.transactions.length };
  }
  const times: number[] = [];
  for (let i = 0; i < 3; i++) {
    const t0 = performance.now();
    await rpc(url, 'eth_getBlockReceipts', [fullest.hash]);
    times.push(performance.now() - t0);
  }
  return { txs: fullest.txs, ms: times.sort((a, b) => a - b)[1]! };
}

/**
 * Run both scenarios and print their tables.
 *
 * @example
 * await runChainScenarios();
 */
export async function runChainScenarios(): Promise<void> {
  const perBlock = await callsPerBlockOnThreeChains();
  const lag = await lagOfAFastChain();
  console.log(
    `\nbench:rpc, three chains at once (N txs each, a block on every chain each ${BLOCK_TIME} s, polling every ${POLL_MS} ms); JSON-RPC calls counted per chain by a proxy, batch items one by one`,
  );
  console.log('| N per chain | chain | confirmed by | blocks | calls per block | start-up calls per tx |');
  console.log('|---:|---|---|---:|---:|---:|');
  for (const row of perBlock) console.log(row);
  console.log(
    `\nbench:rpc, keeping up: block lag (node head − processed head) sampled every 50 ms for ${LAG_SECONDS} s while the txs are sent and mined; SQLite store`,
  );
  console.log('| phase | samples | lag max | lag p99 | lag median | lag mean |');
  console.log('|---|---:|---:|---:|---:|---:|');
  for (const row of lag) console.log(row);
}
