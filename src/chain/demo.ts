import { Wallet, keccak256 } from 'ethers';
import { BaseError } from './errors.js';

/** anvil's first two dev accounts (mnemonic "test test … junk"): funded on every fresh anvil. */
const DEV_KEYS = [
  '0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80',
  '0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d',
] as const;

export interface DemoTransaction {
  label: string;
  hash: string;
}

export interface RunDemoOptions {
  /** A dev node (anvil) whose default accounts are funded. */
  url: string;
  /** Told each hash before it is sent, e.g. to start its tracker. */
  onTransaction?: (tx: DemoTransaction) => void | Promise<void>;
}

async function rpc<T>(url: string, method: string, params: unknown[]): Promise<T> {
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ jsonrpc: '2.0', id: 1, method, params }),
  });
  const body = (await response.json()) as { result?: T; error?: { message: string } };
  if (body.error) throw new BaseError(`${method} failed`, { details: body.error.message });
  return body.result as T;
}

/**
 * Send a few transactions to a dev node so that a newcomer sees trackers move: two transfers
 * (they confirm) and a contract creation that reverts (it fails).
 *
 * @example
 * await runDemo({ url: chain.url, onTransaction: ({ hash }) => system.start(undefined, { txHash: hash, confirmations: 3 }) });
 */
export async function runDemo({ url, onTransaction }: RunDemoOptions): Promise<DemoTransaction[]> {
  const wallet = new Wallet(DEV_KEYS[0]);
  const to = new Wallet(DEV_KEYS[1]).address;
  const chainId = BigInt(await rpc<string>(url, 'eth_chainId', []));
  let nonce = Number(await rpc<string>(url, 'eth_getTransactionCount', [wallet.address, 'pending']));
  const fee = { maxFeePerGas: 50_000_000_000n, maxPriorityFeePerGas: 1_000_000_000n, type: 2, chainId };
  const plan = [
    { label: 'transfer of 0.01 ETH', tx: { to, value: 10n ** 16n, gasLimit: 21_000n } },
    { label: 'transfer of 0.02 ETH', tx: { to, value: 2n * 10n ** 16n, gasLimit: 21_000n } },
    // A contract whose constructor is REVERT(0, 0).
    { label: 'contract creation that reverts', tx: { data: '0x60006000fd', gasLimit: 60_000n } },
  ];
  const sent: DemoTransaction[] = [];
  for (const { label, tx } of plan) {
    const raw = await wallet.signTransaction({ ...fee, ...tx, nonce: nonce++ });
    const item = { label, hash: keccak256(raw) };
    await onTransaction?.(item);
    await rpc<string>(url, 'eth_sendRawTransaction', [raw]);
    sent.push(item);
  }
  return sent;
}
