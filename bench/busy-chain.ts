/**
 * The chain watcher's busy work for bench:api and bench/api-profile.ts: blocks of real transfers,
 * every one tracked, mined on the service's embedded anvil while the API is loaded; and the same
 * blocks, tracked by nobody, on an anvil of their own while the floor is loaded.
 */
import type { ChildProcess } from 'node:child_process';

const BATCH = 1000;

/** A server of bench:api: its URL, and what it printed when it started (`chain`: the anvil's URL). */
export interface Server {
  child: ChildProcess;
  url: string;
  info: Record<string, string | null>;
}

export interface BusyOptions {
  /** Seconds of load the blocks are prepared for. */
  duration: number;
  /** Tracked transactions per block. */
  txs: number;
  /** Milliseconds between blocks. */
  blockMs: number;
  /** The service whose trackers follow every transfer; omitted: nobody tracks them. */
  service?: Server;
}

/** `POST /trackers/batch` of these hashes, 1,000 a request; throws unless each was created. */
export async function postBatch(url: string, hashes: readonly string[]): Promise<void> {
  for (let i = 0; i < hashes.length; i += BATCH) {
    const trackers = hashes.slice(i, i + BATCH).map((txHash) => ({ txHash }));
    const res = await fetch(`${url}/trackers/batch`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ trackers }),
    });
    if (!res.ok) throw new Error(`POST /trackers/batch: ${res.status}`);
    const { results } = (await res.json()) as { results: Array<{ status: number }> };
    if (results.some((r) => r.status !== 201)) throw new Error('POST /trackers/batch: not every tracker was created');
  }
}

/** The service's embedded anvil, which the busy scenario mines on. */
export function chainOf(info: Server['info']): string {
  if (!info.chain) throw new Error('the busy scenario needs the embedded anvil (unset ETH_RPC_URL)');
  return info.chain;
}

export async function until(condition: () => Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** JSON-RPC to the service's anvil (dev accounts are unlocked: `eth_sendTransaction` signs). */
export function chainClient(url: string) {
  let id = 0;
  const call = async <T>(method: string, params: unknown[] = []): Promise<T> => {
    const res = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ jsonrpc: '2.0', id: ++id, method, params }),
    });
    const body = (await res.json()) as { result?: T; error?: { message: string } };
    if (body.error) throw new Error(`${method}: ${body.error.message}`);
    return body.result as T;
  };
  const batch = async <T>(method: string, params: unknown[][]): Promise<T[]> => {
    const res = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(params.map((p) => ({ jsonrpc: '2.0', id: ++id, method, params: p }))),
    });
    const body = (await res.json()) as Array<{ result?: T; error?: { message: string } }>;
    const failed = body.find((r) => r.error);
    if (failed) throw new Error(`${method}: ${failed.error!.message}`);
    return body.map((r) => r.result as T);
  };
  return { call, batch };
}

/**
 * The chain watcher's work for one busy run: `txs` × blocks transfers in the node's pool (mining
 * paused), a tracker for each (created, and looked up by the watcher, before the run) when a
 * `service` is given, then, during the run, a block of `txs` of them every `blockMs`. After it the
 * rest are mined (and, tracked, all of them confirmed) before the node goes back to a block every
 * 2 s, so that no run inherits another's work.
 */
export async function busyChain(chainUrl: string, { duration, txs, blockMs, service }: BusyOptions) {
  const chain = chainClient(chainUrl);
  const accounts = await chain.call<string[]>('eth_accounts');
  await chain.call('evm_setIntervalMining', [0]);
  // A block holds `txs` plain transfers (21,000 gas each) and no more.
  await chain.call('evm_setBlockGasLimit', [`0x${(21_000 * txs).toString(16)}`]);
  // Nonces counted here: the node's own count of pending ones is not what a batch of sends needs.
  const counts = await chain.batch<string>(
    'eth_getTransactionCount',
    accounts.map((a) => [a, 'pending']),
  );
  const nonces = counts.map((c) => Number.parseInt(c, 16));
  let sent = 0;
  const pending = async () => Number.parseInt((await chain.call<{ pending: string }>('txpool_status')).pending, 16);
  const head = async () => Number.parseInt(await chain.call<string>('eth_blockNumber'), 16);
  return {
    async prepare(): Promise<void> {
      const blocks = Math.ceil((duration * 1000) / blockMs) + 1;
      const hashes: string[] = [];
      for (let i = 0; i < blocks * txs; i += 500) {
        const params = Array.from({ length: 500 }, () => {
          const k = sent++ % accounts.length;
          const to = accounts[(k + 1) % accounts.length];
          // Legacy, at 1,000 gwei: still above the base fee after the run's full blocks have raised it.
          return [
            {
              from: accounts[k],
              to,
              value: '0x1',
              gas: '0x5208',
              gasPrice: '0xe8d4a51000',
              nonce: `0x${(nonces[k]!++).toString(16)}`,
            },
          ];
        });
        hashes.push(...(await chain.batch<string>('eth_sendTransaction', params)));
      }
      if (!service) return;
      await postBatch(service.url, hashes);
      // Created trackers are looked up by the watcher in creation order: once the last one has moved
      // (TX_SEEN: the node has it in its pool), the lookups are done.
      const last = hashes[hashes.length - 1]!;
      await until(
        async () => {
          const tracker = (await (await fetch(`${service.url}/trackers/${last}`)).json()) as {
            createdAt: string;
            updatedAt: string;
          };
          return tracker.updatedAt !== tracker.createdAt;
        },
        120_000,
        'the watcher to look the busy trackers up',
      );
    },
    /** Mine during `work`; also how many blocks and tracked transactions that made. */
    async mineWhile<T>(work: Promise<T>): Promise<{ result: T; blocks: number; txs: number }> {
      const [pool0, head0] = await Promise.all([pending(), head()]);
      const timer = setInterval(() => void chain.call('evm_mine').catch(() => undefined), blockMs);
      const result = await work.finally(() => clearInterval(timer));
      const [pool1, head1] = await Promise.all([pending(), head()]);
      return { result, blocks: head1 - head0, txs: pool0 - pool1 };
    },
    async settle(): Promise<void> {
      // The rest of the pool, then enough blocks to confirm everything.
      while ((await pending()) > 0) await chain.call('evm_mine');
      await chain.call('anvil_mine', ['0xd']);
      if (!service) return;
      await until(
        async () =>
          ((await (await fetch(`${service.url}/trackers?state=confirming&limit=1`)).json()) as { items: unknown[] })
            .items.length === 0,
        120_000,
        'the busy trackers to be confirmed',
      );
    },
    async stop(): Promise<void> {
      await chain.call('evm_setIntervalMining', [2]);
    },
  };
}
