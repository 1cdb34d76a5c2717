import { JsonRpcProvider, Wallet, keccak256, type TransactionRequest } from 'ethers';
import { type Anvil, startAnvil } from '../../src/chain/anvil.js';
import { type RpcCall, type RpcOutcome, type Transport, createHttpTransport } from '../../src/chain/transport.js';
import { type ChainWatcher, type ChainWatcherOptions, createChainWatcher } from '../../src/chain/watcher.js';
import type { Tracker } from '../../src/runtime/tracker-view.js';
import {
  type TrackerHooks,
  type TrackerSystem,
  type TrackerSystemOptions,
  createTrackerSystem,
} from '../../src/runtime/system.js';
import { MemoryStore } from '../../src/store/memory.js';
import { waitUntil } from './wait.js';

/** anvil's well-known dev keys (mnemonic "test test … junk"), accounts 0–3. */
export const DEV_KEYS = [
  '0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80',
  '0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d',
  '0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a',
  '0x7c852118294e51e653712a81e05800f419141751be58f605c371e15141b007a6',
] as const;

export async function rpc<T = unknown>(url: string, method: string, params: unknown[] = []): Promise<T> {
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ jsonrpc: '2.0', id: 1, method, params }),
  });
  const body = (await response.json()) as { result?: T; error?: { message: string } };
  if (body.error) throw new Error(`${method}: ${body.error.message}`);
  return body.result as T;
}

export const mine = (url: string, blocks = 1): Promise<unknown> => rpc(url, 'anvil_mine', [`0x${blocks.toString(16)}`]);
export const blockNumber = async (url: string): Promise<number> => Number(await rpc<string>(url, 'eth_blockNumber'));

/** Poll `check` until it returns a value (not undefined/false) or the deadline passes. */
export const waitFor = <T>(
  what: string,
  check: () => T | undefined | false | Promise<T | undefined | false>,
  timeoutMs = 20_000,
): Promise<T> => waitUntil(check, what, timeoutMs);

export interface Intercept {
  request?: (call: RpcCall, next: (call: RpcCall) => Promise<unknown>) => Promise<unknown>;
  batch?: (
    calls: readonly RpcCall[],
    next: (calls: readonly RpcCall[]) => Promise<RpcOutcome[]>,
  ) => Promise<RpcOutcome[]>;
}

/**
 * An HTTP transport to `url()` (read at the first call: the harness's anvil starts later) whose
 * requests and batches pass through `intercept`, to make a node misbehave in one precise way.
 */
export function interceptedTransport(url: () => string, intercept: Intercept): Transport {
  let inner: Transport | undefined;
  const get = (): Transport => (inner ??= createHttpTransport(url(), { timeoutMs: 2000 }));
  return {
    get url() {
      return get().url;
    },
    request: <T>(call: RpcCall) =>
      (intercept.request ? intercept.request(call, (c) => get().request(c)) : get().request(call)) as Promise<T>,
    batch: (calls) => (intercept.batch ? intercept.batch(calls, (c) => get().batch(c)) : get().batch(calls)),
    close: () => inner?.close(),
  };
}

export interface Harness {
  anvil: Anvil;
  provider: JsonRpcProvider;
  wallets: Wallet[];
  system: TrackerSystem;
  watcher: ChainWatcher;
  /** Every state each tracker went through, in order (consecutive repeats collapsed). */
  history: Map<string, Tracker[]>;
  states(id: string): string[];
  /** Sign without sending: the hash is known before the node sees the tx. */
  sign(wallet: number, tx: TransactionRequest & { nonce: number }): Promise<{ raw: string; hash: string }>;
  send(raw: string): Promise<string>;
  waitForState(id: string, state: string, timeoutMs?: number): Promise<Tracker>;
  close(): Promise<void>;
}

export interface HarnessOptions {
  anvilArgs?: string[];
  blockTime?: number;
  watcher?: Partial<Omit<ChainWatcherOptions, 'system'>>;
  /** Route the watcher through another URL (a proxy) than anvil's. */
  watcherUrl?: (anvil: Anvil) => string | Promise<string>;
  /** Options of the tracker system (default: a `MemoryStore`, fast restarts). */
  system?: Partial<Omit<TrackerSystemOptions, 'hooks'>>;
}

export async function startHarness(options: HarnessOptions = {}): Promise<Harness> {
  const anvil = await startAnvil({
    ...(options.blockTime !== undefined ? { blockTime: options.blockTime } : {}),
    args: options.anvilArgs ?? [],
  });
  // No request cache: identical requests within 250 ms must reach the node.
  const provider = new JsonRpcProvider(anvil.url, undefined, {
    cacheTimeout: -1,
    staticNetwork: true,
    batchMaxCount: 1,
  });
  const wallets = DEV_KEYS.map((key) => new Wallet(key, provider));
  const hooks: TrackerHooks = {};
  const system = await createTrackerSystem({
    store: new MemoryStore(),
    restartPolicy: { backoffBaseMs: 10 },
    ...options.system,
    hooks,
  });
  const watcherUrl = options.watcherUrl ? await options.watcherUrl(anvil) : anvil.url;
  const watcher = createChainWatcher({
    url: watcherUrl,
    system,
    pollIntervalMs: 50,
    timeoutMs: 2000,
    ...options.watcher,
  });
  Object.assign(hooks, watcher.hooks);
  const history = new Map<string, Tracker[]>();
  system.subscribe((tracker) => {
    const list = history.get(tracker.id) ?? [];
    if (list.at(-1)?.state !== tracker.state) list.push(tracker);
    else list[list.length - 1] = tracker;
    history.set(tracker.id, list);
  });
  watcher.start();
  const latest = new Map<string, Tracker>();
  system.subscribe((tracker) => latest.set(tracker.id, tracker));
  return {
    anvil,
    provider,
    wallets,
    system,
    watcher,
    history,
    states: (id) => (history.get(id) ?? []).map((t) => t.state),
    async sign(index, tx) {
      const wallet = wallets[index]!;
      const request: TransactionRequest = {
        chainId: 31337n,
        type: 2,
        gasLimit: 21_000n,
        maxFeePerGas: 10_000_000_000n,
        maxPriorityFeePerGas: 1_000_000_000n,
        value: 0n,
        ...tx,
      };
      const raw = await wallet.signTransaction(request);
      return { raw, hash: keccak256(raw) };
    },
    send: (raw) => rpc<string>(anvil.url, 'eth_sendRawTransaction', [raw]),
    waitForState: (id, state, timeoutMs) =>
      waitFor(
        `${id} to be ${state}`,
        () => {
          const t = latest.get(id);
          return t && t.state === state ? t : undefined;
        },
        timeoutMs,
      ),
    async close() {
      await watcher.stop();
      await system.shutdown();
      provider.destroy();
      await anvil.stop();
    },
  };
}
