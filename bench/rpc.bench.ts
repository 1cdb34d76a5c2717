/**
 * npm run bench:rpc — JSON-RPC requests per block to follow N txs to 3 confirmations: the chain
 * watcher (one tracker per tx) side by side with ethers' provider.waitForTransaction(hash, 3) for
 * N other txs, in the same run, on the same anvil. All N txs wait in the mempool, tracking starts
 * (start-up calls counted apart), then the benchmark mines a block every BLOCK_TIME s (default 1)
 * until every tx has 3 confirmations. Each side talks through its own counting proxy (a child
 * process, so its CPU is billed to neither). Sizes: BENCH_SIZES (default 100,1000,10000).
 * Then the chain scenarios of bench/rpc-chains.ts (BENCH_SCENARIOS=ethers or =chains for one part).
 */
import { JsonRpcProvider } from 'ethers';
import { startAnvil } from '../src/chain/anvil.js';
import { createChainWatcher } from '../src/chain/watcher.js';
import { type TrackerHooks, createTrackerSystem } from '../src/runtime/system.js';
import { MemoryStore } from '../src/store/memory.js';
import { runChainScenarios } from './rpc-chains.js';
import { SENDER_ARGS, progress, rpc, senderWallets, signAndSend, startProxy, stats, total } from './rpc-support.js';

const SIZES = (process.env.BENCH_SIZES ?? '100,1000,10000').split(',').map(Number);
const BLOCK_TIME = Number(process.env.BLOCK_TIME ?? 1);
const POLL_MS = Number(process.env.POLL_INTERVAL_MS ?? 1000);
/** `ethers` (ours beside waitForTransaction on one chain), `chains` (several chains), or both (default). */
const SCENARIOS = (process.env.BENCH_SCENARIOS ?? 'ethers,chains').split(',');

const cpuMs = (start: NodeJS.CpuUsage): number => {
  const d = process.cpuUsage(start);
  return (d.user + d.system) / 1000;
};

interface Row {
  n: number;
  side: 'ours' | 'ethers';
  startCalls: number;
  blockCalls: number;
  blocks: number;
  cpuMs: number;
}

async function main(): Promise<void> {
  // No automatic blocks: the benchmark mines one every BLOCK_TIME s while both sides wait (anvil's
  // default 30M gas limit: up to 1,428 transfers a block, so 10,000 take 8 blocks to be mined).
  // A larger gas limit makes anvil itself crawl on a 10,000-tx block.
  const anvil = await startAnvil({
    args: ['--no-mining', ...SENDER_ARGS],
  });
  const ours = await startProxy(anvil.url);
  const theirs = await startProxy(anvil.url);
  const wallets = senderWallets();
  const nonces = wallets.map(() => 0);
  const rows: Row[] = [];
  const head = async (): Promise<number> => Number(await rpc<string>(anvil.url, 'eth_blockNumber'));
  const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
  /** Mine a block every BLOCK_TIME s until `done`; returns the blocks mined. */
  async function mineUntil(done: () => boolean): Promise<number> {
    let blocks = 0;
    while (!done()) {
      await sleep(BLOCK_TIME * 1000);
      if (done()) break;
      await rpc(anvil.url, 'evm_mine');
      blocks++;
    }
    return blocks;
  }

  const hooks: TrackerHooks = {};
  const system = await createTrackerSystem({ store: new MemoryStore(), hooks, defaultConfirmations: 3 });
  const watcher = createChainWatcher({ url: ours.url, system, pollIntervalMs: POLL_MS });
  Object.assign(hooks, watcher.hooks);
  let confirmed = 0;
  system.subscribe((t) => {
    if (t.state === 'confirmed') confirmed++;
    if (t.state === 'failed') throw new Error(`tracker failed: ${JSON.stringify(t.failure)}`);
  });
  watcher.start();
  await rpc(anvil.url, 'evm_mine');
  await watcher.waitForHead(await head());
  const provider = new JsonRpcProvider(theirs.url, 31337, { staticNetwork: true, pollingInterval: POLL_MS });

  for (const n of SIZES) {
    // ours: start N trackers, let their one lookup each finish, then mine.
    progress(`n=${n}: signing and sending`);
    const mine = await signAndSend(anvil.url, wallets, nonces, n);
    progress(`n=${n}: ours: starting trackers`);
    await stats(ours.url, true);
    let cpu = process.cpuUsage();
    confirmed = 0;
    for (let i = 0; i < n; i += 1000) await system.startMany(mine.slice(i, i + 1000).map((txHash) => ({ txHash })));
    // Each tracker's lookup ends with its transaction's raw form (all N wait in the mempool).
    const rawForms = async () => (await stats(ours.url)).calls.eth_getRawTransactionByHash ?? 0;
    while (watcher.health().pendingLookups > 0 || (await rawForms()) < n) await sleep(50);
    progress(`n=${n}: ours: lookups done; mining`);
    const atStart = await stats(ours.url);
    await stats(ours.url, true);
    let blocks = await mineUntil(() => confirmed >= n);
    let s = await stats(ours.url);
    rows.push({ n, side: 'ours', startCalls: total(atStart), blockCalls: total(s), blocks, cpuMs: cpuMs(cpu) });
    console.error(`ours n=${n} start`, atStart.calls, 'blocks', s.calls);

    // ethers: N waitForTransaction(hash, 3) on N other txs, the same way.
    progress(`n=${n}: signing and sending`);
    const theirsTxs = await signAndSend(anvil.url, wallets, nonces, n);
    progress(`n=${n}: ethers: waiting`);
    await stats(theirs.url, true);
    cpu = process.cpuUsage();
    let resolved = 0;
    const all = Promise.all(theirsTxs.map((h) => provider.waitForTransaction(h, 3).then(() => resolved++)));
    while (((await stats(theirs.url)).calls.eth_getTransactionReceipt ?? 0) < n) await sleep(50);
    progress(`n=${n}: ethers: first receipts done; mining`);
    const theirStart = await stats(theirs.url);
    await stats(theirs.url, true);
    blocks = await mineUntil(() => resolved >= n);
    await all;
    s = await stats(theirs.url);
    rows.push({ n, side: 'ethers', startCalls: total(theirStart), blockCalls: total(s), blocks, cpuMs: cpuMs(cpu) });
    console.error(`ethers n=${n} start`, theirStart.calls, 'blocks', s.calls);
  }
  await watcher.stop();
  await system.shutdown();
  provider.destroy();
  ours.child.kill();
  theirs.child.kill();
  await anvil.stop();

  console.log(
    `bench:rpc — follow N txs to 3 confirmations on anvil (a block every ${BLOCK_TIME} s, both polling every ${POLL_MS} ms); JSON-RPC calls counted by a proxy, batch items one by one`,
  );
  console.log(
    '| N | ours: calls per block | ethers waitForTransaction: calls per block | ratio | ours: start-up calls per tx | ethers: start-up calls per tx | ours: CPU (start + confirm) | ethers: CPU |',
  );
  console.log('|---:|---:|---:|---:|---:|---:|---:|---:|');
  for (const n of SIZES) {
    const o = rows.find((r) => r.n === n && r.side === 'ours')!;
    const e = rows.find((r) => r.n === n && r.side === 'ethers')!;
    const op = o.blockCalls / o.blocks;
    const ep = e.blockCalls / e.blocks;
    console.log(
      `| ${n.toLocaleString('en-US')} | ${op.toFixed(2)} | ${ep.toFixed(1)} | ${(ep / op).toFixed(0)}× | ${(o.startCalls / n).toFixed(2)} | ${(e.startCalls / n).toFixed(2)} | ${(o.cpuMs / 1000).toFixed(2)} s | ${(e.cpuMs / 1000).toFixed(2)} s |`,
    );
  }
}

if (SCENARIOS.includes('ethers')) await main();
if (SCENARIOS.includes('chains')) await runChainScenarios();
