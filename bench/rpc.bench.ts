/**
 * npm run bench:rpc — JSON-RPC requests per block to follow N txs to 3 confirmations: the chain
 * watcher (one tracker per tx) side by side with ethers' provider.waitForTransaction(hash, 3) for
 * N other txs, in the same run, on the same anvil (a block every BLOCK_TIME s). Each side talks
 * through its own counting proxy (a child process). Sizes: BENCH_SIZES (default 100,1000,10000).
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

const cpuMs = (start: NodeJS.CpuUsage): number => {
  const d = process.cpuUsage(start);
  return (d.user + d.system) / 1000;
};

interface Row { n: number; side: 'ours' | 'ethers'; startCalls: number; blockCalls: number; blocks: number; cpuMs: number; wallMs: number }

async function main(): Promise<void> {
  const anvil = await startAnvil({ blockTime: BLOCK_TIME, args: ['--accounts', String(SENDERS), '--balance', '1000000', '--mnemonic', MNEMONIC] });
  const ours = await startProxy(anvil.url);
  const theirs = await startProxy(anvil.url);
  const wallets = Array.from({ length: SENDERS }, (_, i) => new Wallet(HDNodeWallet.fromPhrase(MNEMONIC, undefined, `m/44'/60'/0'/0/${i}`).privateKey));
  const nonces = wallets.map(() => 0);
  const rows: Row[] = [];
  const head = async (): Promise<number> => Number(await rpc<string>(anvil.url, 'eth_blockNumber'));

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
  await watcher.waitForHead(await head());
  const provider = new JsonRpcProvider(theirs.url, 31337, { staticNetwork: true, pollingInterval: POLL_MS });

  for (const n of SIZES) {
    // ours
    const mine = await signAndSend(anvil.url, wallets, nonces, n);
    await stats(ours.url, true);
    let cpu = process.cpuUsage();
    let t0 = performance.now();
    confirmed = 0;
    const b0 = await head();
    for (let i = 0; i < n; i += 1000) await system.startMany(mine.slice(i, i + 1000).map((txHash) => ({ txHash })));
    while (confirmed < n) await new Promise((r) => setTimeout(r, 50));
    let s = await stats(ours.url);
    const lookups = (s.calls.eth_getTransactionByHash ?? 0) + (s.calls.eth_getTransactionReceipt ?? 0) + (s.calls.eth_getRawTransactionByHash ?? 0);
    rows.push({ n, side: 'ours', startCalls: lookups, blockCalls: total(s) - lookups, blocks: (await head()) - b0, cpuMs: cpuMs(cpu), wallMs: performance.now() - t0 });
    console.error(`ours n=${n}`, s.calls);

    // ethers
    const theirsTxs = await signAndSend(anvil.url, wallets, nonces, n);
    await stats(theirs.url, true);
    cpu = process.cpuUsage();
    t0 = performance.now();
    const b1 = await head();
    await Promise.all(theirsTxs.map((h) => provider.waitForTransaction(h, 3)));
    s = await stats(theirs.url);
    const first = n; // each waiter's first eth_getTransactionReceipt, before any block
    rows.push({ n, side: 'ethers', startCalls: first, blockCalls: total(s) - first, blocks: (await head()) - b1, cpuMs: cpuMs(cpu), wallMs: performance.now() - t0 });
    console.error(`ethers n=${n}`, s.calls);
  }
  await watcher.stop();
  await system.shutdown();
  provider.destroy();
  ours.child.kill();
  theirs.child.kill();
  await anvil.stop();

  console.log(`bench:rpc — follow N txs to 3 confirmations on anvil (block every ${BLOCK_TIME} s, polling every ${POLL_MS} ms); JSON-RPC calls counted by a proxy (batch items count one by one)`);
  console.log('| N | ours: calls per block | ours: start-up lookup calls per tx | ethers: calls per block (after 1 start-up call per tx) | ratio (per block) | ours: CPU | ethers: CPU | blocks (ours / ethers) |');
  console.log('|---:|---:|---:|---:|---:|---:|---:|---:|');
  for (const n of SIZES) {
    const o = rows.find((r) => r.n === n && r.side === 'ours')!;
    const e = rows.find((r) => r.n === n && r.side === 'ethers')!;
    const op = o.blockCalls / o.blocks;
    const ep = e.blockCalls / e.blocks;
    console.log(
      `| ${n.toLocaleString('en-US')} | ${op.toFixed(2)} | ${(o.startCalls / n).toFixed(2)} | ${ep.toFixed(1)} | ${(ep / op).toFixed(0)}× | ${(o.cpuMs / 1000).toFixed(2)} s | ${(e.cpuMs / 1000).toFixed(2)} s | ${o.blocks} / ${e.blocks} |`,
    );
  }
}

await main();
