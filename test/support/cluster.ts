import { keccak256, Wallet } from 'ethers';
import pgLib from 'pg';
import { type Anvil, startAnvil } from '../../src/chain/anvil.js';
import { DEV_KEYS, rpc } from './chain.js';
import { type PostgresServer, startPostgres } from './postgres.js';
import { type ServiceProcess, spawnFromSource } from './service-process.js';
import { waitUntil } from './wait.js';

/** What `GET /cluster` says of an instance. */
export interface ClusterView {
  instanceId: string;
  owned: number;
  instances: number;
  share: number;
  connected: boolean;
  shards: number[];
  liveShards: number[];
  live: number;
}

export interface Instance {
  id: string;
  process: ServiceProcess;
  api: string;
  /** `GET /cluster`, or undefined when it does not answer (paused, dead). */
  view(): Promise<ClusterView | undefined>;
  signal(signal: NodeJS.Signals): void;
}

export interface ClusterHarness {
  pg: PostgresServer;
  anvil: Anvil;
  instances: Instance[];
  /** Start one more instance (resolves once it serves), with `env` over the harness's. */
  add(id: string, env?: Record<string, string>): Promise<Instance>;
  /** The instances that run, by id. */
  running(): Instance[];
  /** Shard → owner, from the database. */
  owners(): Promise<Map<number, string | null>>;
  /** A query on the shared database. */
  query<R extends object>(text: string, values?: unknown[]): Promise<R[]>;
  close(): Promise<void>;
}

const { Client: pgClient } = pgLib;

/** Settings small enough for a test to wait a few leases. */
export const TEST_LEASE_TTL_MS = 3000;
export const TEST_HEARTBEAT_MS = 500;

export interface ClusterHarnessOptions {
  instances: number;
  env?: Record<string, string>;
}

/**
 * A throwaway PostgreSQL, a real anvil, and `instances` services started from source as child
 * processes, all on that database and that chain.
 *
 * @example
 * const cluster = await startClusterHarness({ instances: 3 });
 * await fetch(`${cluster.instances[0]!.api}/cluster`);
 * await cluster.close();
 */
export async function startClusterHarness(options: ClusterHarnessOptions): Promise<ClusterHarness> {
  const pg = await startPostgres();
  const anvil = await startAnvil({ args: [] });
  const instances: Instance[] = [];
  const exited = new Set<string>();
  const query = async <R extends object>(text: string, values: unknown[] = []): Promise<R[]> => {
    const client = new pgClient({ connectionString: pg.url });
    await client.connect();
    try {
      return (await client.query<R>(text, values)).rows;
    } finally {
      await client.end();
    }
  };
  const add = async (id: string, env: Record<string, string> = {}): Promise<Instance> => {
    const child = spawnFromSource({
      PORT: '0',
      DATABASE_URL: pg.url,
      ETH_RPC_URL: anvil.url,
      POLL_INTERVAL_MS: '100',
      REQUIRED_CONFIRMATIONS: '3',
      LEASE_TTL_MS: String(TEST_LEASE_TTL_MS),
      HEARTBEAT_MS: String(TEST_HEARTBEAT_MS),
      INSTANCE_ID: id,
      FAULT_INJECTION: '1',
      ...options.env,
      ...env,
    });
    void child.exited.then(() => exited.add(id));
    const { api } = await child.started(60_000);
    const instance: Instance = {
      id,
      process: child,
      api,
      view: async () => {
        try {
          const response = await fetch(`${api}/cluster`, { signal: AbortSignal.timeout(2000) });
          return response.ok ? ((await response.json()) as ClusterView) : undefined;
        } catch {
          return undefined;
        }
      },
      signal: (signal) => child.child.kill(signal),
    };
    instances.push(instance);
    return instance;
  };
  try {
    // One at a time: the first takes every shard, each next one its share as the others shed theirs.
    for (let i = 0; i < options.instances; i++) await add(`i${i + 1}`);
  } catch (error) {
    for (const instance of instances) instance.signal('SIGKILL');
    await anvil.stop();
    await pg.close();
    throw error;
  }
  return {
    pg,
    anvil,
    instances,
    add,
    running: () => instances.filter((instance) => !exited.has(instance.id)),
    owners: async () => {
      const rows = await query<{ shard: number; owner: string | null }>(
        'SELECT shard, owner FROM shard_leases ORDER BY shard',
      );
      return new Map(rows.map((row) => [row.shard, row.owner]));
    },
    query,
    close: async () => {
      for (const instance of instances) {
        if (exited.has(instance.id)) continue;
        instance.signal('SIGCONT');
        instance.signal('SIGKILL');
        await instance.process.exited;
      }
      await anvil.stop();
      await pg.close();
    },
  };
}

/** Wait until the running instances hold every shard between them, each about its share, none twice. */
export async function waitForBalance(cluster: ClusterHarness, timeoutMs = 60_000): Promise<ClusterView[]> {
  return waitUntil(
    async () => {
      const views = await Promise.all(cluster.running().map((instance) => instance.view()));
      if (views.some((view) => view === undefined)) return undefined;
      const all = views as ClusterView[];
      const share = Math.ceil(1024 / all.length);
      const held = all.reduce((sum, view) => sum + view.shards.length, 0);
      if (held !== 1024 || all.some((view) => view.shards.length > share || view.shards.length < share - all.length))
        return undefined;
      return all;
    },
    'the shards to be shared out evenly',
    timeoutMs,
  );
}

/** `n` signed transfers from anvil's dev accounts (nonces from `firstNonce`), their hashes known up front. */
export async function signTransfers(anvilUrl: string, n: number): Promise<Array<{ raw: string; hash: string }>> {
  const wallets = DEV_KEYS.map((key) => new Wallet(key));
  const nonces = await Promise.all(
    wallets.map(async (wallet) =>
      Number(await rpc<string>(anvilUrl, 'eth_getTransactionCount', [wallet.address, 'pending'])),
    ),
  );
  const signed: Array<{ raw: string; hash: string }> = [];
  for (let i = 0; i < n; i++) {
    const w = i % wallets.length;
    const raw = await wallets[w]!.signTransaction({
      chainId: 31337n,
      type: 2,
      to: '0x000000000000000000000000000000000000dEaD',
      gasLimit: 21_000n,
      maxFeePerGas: 10_000_000_000n,
      maxPriorityFeePerGas: 1_000_000_000n,
      value: 1n,
      nonce: nonces[w]!++,
    });
    signed.push({ raw, hash: keccak256(raw) });
  }
  return signed;
}

/** JSON over HTTP to an instance. */
export async function call(
  base: string,
  method: string,
  path: string,
  body?: unknown,
): Promise<{ status: number; body: Record<string, unknown> }> {
  const response = await fetch(`${base}${path}`, {
    method,
    headers: body === undefined ? {} : { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(30_000),
  });
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
}
