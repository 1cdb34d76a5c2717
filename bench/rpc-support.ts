/** What bench:rpc's scenarios share: counting proxies, raw JSON-RPC, funded senders, progress lines. */
import { type ChildProcess, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { HDNodeWallet, Wallet, keccak256 } from 'ethers';

export const SENDERS = 50;
export const MNEMONIC = 'test test test test test test test test test test test junk';
/** anvil's flags for SENDERS funded dev accounts of MNEMONIC. */
export const SENDER_ARGS = ['--accounts', String(SENDERS), '--balance', '1000000', '--mnemonic', MNEMONIC];

export interface Stats {
  calls: Record<string, number>;
  httpRequests: number;
}

/** The counting proxy in its own process (its CPU is billed to nobody measured). */
export async function startProxy(target: string): Promise<{ url: string; child: ChildProcess }> {
  const script = fileURLToPath(new URL('./rpc-proxy.ts', import.meta.url));
  const child = spawn(process.execPath, ['--import', 'tsx', script, target], { stdio: ['ignore', 'pipe', 'inherit'] });
  const url = await new Promise<string>((resolve) =>
    child.stdout!.once('data', (d: Buffer) => resolve(d.toString().trim())),
  );
  return { url, child };
}

export const stats = async (url: string, reset = false): Promise<Stats> =>
  (await (await fetch(`${url}/${reset ? 'reset' : 'stats'}`)).json()) as Stats;
export const total = (s: Stats): number => Object.values(s.calls).reduce((a, b) => a + b, 0);

export async function rpc<T>(url: string, method: string, params: unknown[] = []): Promise<T> {
  const body = (await (
    await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method, params }),
    })
  ).json()) as { result: T; error?: { message: string } };
  if (body.error) throw new Error(body.error.message);
  return body.result;
}

export const senderWallets = (): Wallet[] =>
  Array.from(
    { length: SENDERS },
    (_, i) => new Wallet(HDNodeWallet.fromPhrase(MNEMONIC, undefined, `m/44'/60'/0'/0/${i}`).privateKey),
  );

/** Sign n transfers round-robin over `wallets` on `chainId` (not sent). */
export async function signTransfers(
  wallets: Wallet[],
  nonces: number[],
  n: number,
  chainId = 31337,
): Promise<string[]> {
  const raws: string[] = [];
  for (let i = 0; i < n; i++) {
    const w = i % wallets.length;
    raws.push(
      await wallets[w]!.signTransaction({
        chainId: BigInt(chainId),
        type: 2,
        to: wallets[(w + 1) % wallets.length]!.address,
        value: 1n,
        nonce: nonces[w]!++,
        gasLimit: 21_000n,
        maxFeePerGas: 100_000_000_000n,
        maxPriorityFeePerGas: 1_000_000_000n,
      }),
    );
  }
  return raws;
}

/** Send signed txs in batches of 500. */
export async function sendRaw(url: string, raws: readonly string[]): Promise<void> {
  for (let i = 0; i < raws.length; i += 500) {
    const batch = raws
      .slice(i, i + 500)
      .map((raw, j) => ({ jsonrpc: '2.0', id: j, method: 'eth_sendRawTransaction', params: [raw] }));
    const res = (await (
      await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(batch) })
    ).json()) as Array<{ error?: { message: string } }>;
    const bad = res.find((r) => r.error);
    if (bad) throw new Error(`send failed: ${bad.error!.message}`);
  }
}

export const hashesOf = (raws: readonly string[]): string[] => raws.map((raw) => keccak256(raw));

/** Sign n transfers round-robin over `wallets` on `chainId`, send them; their hashes. */
export async function signAndSend(
  url: string,
  wallets: Wallet[],
  nonces: number[],
  n: number,
  chainId = 31337,
): Promise<string[]> {
  const raws = await signTransfers(wallets, nonces, n, chainId);
  await sendRaw(url, raws);
  return hashesOf(raws);
}

const T0 = performance.now();
export const progress = (msg: string): void =>
  void process.stderr.write(`[${((performance.now() - T0) / 1000).toFixed(1)} s] ${msg}\n`);

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
