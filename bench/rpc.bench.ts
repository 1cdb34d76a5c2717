/**
 * npm run bench:rpc — JSON-RPC requests per block to follow N txs to 3 confirmations: the chain
 * watcher (one tracker per tx) side by side with ethers' provider.waitForTransaction(hash, 3) for
 * N other txs, in the same run, on the same anvil. All N txs wait in the mempool, tracking starts
 * (start-up calls counted apart), then the benchmark mines a block every BLOCK_TIME s (default 1)
 * until every tx has 3 confirmations. Each side talks through its own counting proxy (a child
 * process, so its CPU is billed to neither). Sizes: BENCH_SIZES (default 100,1000,10000).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { HDNodeWallet, JsonRpcProvider, Wallet, keccak256 } from 'ethers';
import { startAnvil } from '../src/chain/anvil.js';
import { createChainWatcher } from '../src/chain/watcher.js';
import { type TrackerHooks, createTrackerSystem } from '../src/runtime/system.js';
import { MemoryStore } from '../src/store/memory.js';

const SIZES = (process.env.BENCH_SIZES ?? '100,1000,10000').split(',').map(Number);
const BLOCK_TIME = Number(process.env.BLOCK_TIME ?? 1);
const POLL_MS = Number(process.env.POLL_INTERVAL_MS ?? 1000);
const SENDERS = 50;

const MNEMONIC = 'test test test test test test test test test test test junk';

interface Stats {
  calls: Record<string, number>;
  httpRequests: number;
}

async function startProxy(target: string): Promise<{ url: string; child: ChildProcess }> {
  const script = fileURLToPath(new URL('./rpc-proxy.ts', import.meta.url));
  const child = spawn(process.execPath, ['--import', 'tsx', script, target], { stdio: ['ignore', 'pipe', 'inherit'] });
  const url = await new Promise<string>((resolve) => child.stdout!.once('data', (d: Buffer) => resolve(d.toString().trim())));
  return { url, child };
}

const stats = async (url: string, reset = false): Promise<Stats> =>
  (await (await fetch(`${url}/${reset ? 'reset' : 'stats'}`)).json()) as Stats;
const total = (s: Stats): number => Object.values(s.calls).reduce((a, b) => a + b, 0);

async function rpc<T>(url: string, method: string, params: unknown[] = []): Promise<T> {
  const body = (await (
    await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ jsonrpc: '2.0', id: 1, method, params }) })
  ).json()) as { result: T; error?: { message: string } };
  if (body.error) throw new Error(body.error.message);
  return body.result;
}

async function signAndSend(url: string, wallets: Wallet[], nonces: number[], n: number): Promise<string[]> {
  const raws: string[] = [];
  for (let i = 0; i < n; i++) {
    const w = i % wallets.length;
    raws.push(
      await wallets[w]!.signTransaction({
        chainId: 31337n, type: 2, to: wallets[(w + 1) % wallets.length]!.address, value: 1n, nonce: nonces[w]!++,
        gasLimit: 21_000n, maxFeePerGas: 100_000_000_000n, maxPriorityFeePerGas: 1_000_000_000n,
      }),
    );
  }
  for (let i = 0; i < raws.length; i += 500) {
    const batch = raws.slice(i, i + 500).map((raw, j) => ({ jsonrpc: '2.0', id: j, method: 'eth_sendRawTransaction', params: [raw] }));
    const res = (await (await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(batch) })).json()) as Array<{ error?: { message: string } }>;
    const bad = res.find((r) => r.error);
    if (bad) throw new Error(`send failed: ${bad.error!.message}`);
  }
  return raws.map((raw) => keccak256(raw));
}

const T0 = performance.now();
const progress = (msg: string): void => void process.stderr.write(`[${((performance.now() - T0) / 1000).toFixed(1)} s] ${msg}\n`);

const cpuMs = (start: NodeJS.CpuUsage): number => {
  const d = process.cpuUsage(start);
  return (d.user + d.system) / 1000;
};

interface Row { n: number; side: 'ours' | 'ethers'; startCalls: number; blockCalls: number; blocks: number; cpuMs: number }

async function main(): Promise<void> {
  // No automatic blocks: the benchmark mines one every BLOCK_TIME s while both sides wait (anvil's
  // default 30M gas limit: up to 1,428 transfers a block, so 10,000 take 8 blocks to be mined).
  // A larger gas limit makes anvil itself crawl on a 10,000-tx block.
  const anvil = await startAnvil({
    args: ['--no-mining', '--accounts', String(SENDERS), '--balance', '1000000', '--mnemonic', MNEMONIC],
  });
  const ours = await startProxy(anvil.url);
  const theirs = await startProxy(anvil.url);
  const wallets = Array.from({ length: SENDERS }, (_, i) => new Wallet(HDNodeWallet.fromPhrase(MNEMONIC, undefined, `m/44'/60'/0'/0/${i}`).privateKey));
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
    while (watcher.health().pendingLookups > 0 || total(await stats(ours.url)) < 3 * n) await sleep(50);
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

  console.log(`bench:rpc — follow N txs to 3 confirmations on anvil (a block every ${BLOCK_TIME} s, both polling every ${POLL_MS} ms); JSON-RPC calls counted by a proxy, batch items one by one`);
  console.log('| N | ours: calls per block | ethers waitForTransaction: calls per block | ratio | ours: start-up calls per tx | ethers: start-up calls per tx | ours: CPU (start + confirm) | ethers: CPU |');
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

await main();
