import { afterAll, beforeAll, expect, it } from 'vitest';
import { rpc } from './support/chain.js';
import {
  type ClusterHarness,
  type Instance,
  call,
  signTransfers,
  startClusterHarness,
  waitForBalance,
} from './support/cluster.js';
import { describeWithPostgres } from './support/postgres.js';
import { type RpcProxy, startRpcProxy } from './support/rpcProxy.js';
import { waitUntil } from './support/wait.js';

/** Trackers started in each phase, and the blocks their transactions are mined in. */
const TRACKERS = 48;
const BLOCKS = 6;
const CONFIRMATIONS = 3;

/** One counting proxy per instance, in front of the same anvil. */
interface Counted {
  instance: Instance;
  proxy: RpcProxy;
  /** Calls since the last reset, head polls (`eth_getBlockByNumber("latest")`) left out: they are per interval, not per block. */
  calls: Map<string, number>;
}

/** A tracker's lookups (at its start): per tracker, not per block. */
const LOOKUPS = new Set(['eth_getTransactionByHash', 'eth_getTransactionReceipt', 'eth_getRawTransactionByHash']);

/** What an instance spent in a phase: calls per block besides its trackers' lookups, and the lookups. */
interface Spent {
  perBlock: number;
  lookups: number;
}

function spent(counted: Counted, blocks: number): Spent {
  let perBlock = 0;
  let lookups = 0;
  for (const [method, n] of counted.calls) {
    if (method === 'eth_getTransactionByHash') lookups += n;
    if (!LOOKUPS.has(method)) perBlock += n;
  }
  return { perBlock: perBlock / blocks, lookups };
}

describeWithPostgres('chain watching in a cluster: RPC calls per block per instance', () => {
  let cluster: ClusterHarness;
  const members: Counted[] = [];

  beforeAll(async () => {
    cluster = await startClusterHarness({ instances: 0, env: { REQUIRED_CONFIRMATIONS: String(CONFIRMATIONS) } });
    // Blocks are mined by the test, one at a time, so each instance sees each one as its head.
    await rpc(cluster.anvil.url, 'evm_setAutomine', [false]);
  }, 180_000);
  afterAll(async () => {
    await cluster?.close();
    for (const { proxy } of members) await proxy.close();
  });

  const join = async (id: string): Promise<Counted> => {
    const proxy = await startRpcProxy(cluster.anvil.url);
    const calls = new Map<string, number>();
    proxy.observe = (method, params) => {
      if (method === 'eth_getBlockByNumber' && Array.isArray(params) && params[0] === 'latest') return;
      calls.set(method, (calls.get(method) ?? 0) + 1);
    };
    const instance = await cluster.add(id, { ETH_RPC_URL: proxy.url });
    const counted = { instance, proxy, calls };
    members.push(counted);
    return counted;
  };

  /** Mine one block; resolves once every instance has replayed it (its head, no lag). */
  const mineAndWait = async (): Promise<void> => {
    await rpc(cluster.anvil.url, 'anvil_mine', ['0x1']);
    const head = Number(await rpc<string>(cluster.anvil.url, 'eth_blockNumber'));
    await waitUntil(
      async () => {
        for (const { instance } of members) {
          const { status, body } = await call(instance.api, 'GET', '/chains');
          const chain = (body.chains as Array<{ head: number | null; lag: number | null }>)[0]!;
          if (status !== 200 || chain.head !== head || chain.lag !== 0) return false;
        }
        return true;
      },
      `every instance to replay block ${head}`,
      30_000,
    );
  };

  /**
   * Per block: send a sixth of the transactions to the node, start their trackers (through the
   * first instance: most reach their owners through the inbox), wait until each is seen in the
   * mempool, mine them. Then the blocks that confirm them. The calls each instance made per block.
   */
  const phase = async (confirmedAfter: number): Promise<Spent[]> => {
    const txs = await signTransfers(cluster.anvil.url, TRACKERS);
    for (const member of members) member.calls.clear();
    let blocks = 0;
    const chunk = TRACKERS / BLOCKS;
    for (let b = 0; b < BLOCKS; b++, blocks++) {
      const mined = txs.slice(b * chunk, (b + 1) * chunk);
      for (const { raw } of mined) await rpc(cluster.anvil.url, 'eth_sendRawTransaction', [raw]);
      const { status, body } = await call(members[0]!.instance.api, 'POST', '/trackers/batch', {
        trackers: mined.map(({ hash }) => ({ txHash: hash })),
      });
      expect(status).toBe(200);
      for (const result of body.results as Array<{ status: number }>) expect(result.status).toBe(201);
      await waitUntil(
        async () => {
          const rows = await cluster.query<{ n: string }>(
            "SELECT count(*) AS n FROM tracker_history WHERE event = 'TX_SEEN' AND tracker_id = ANY($1)",
            [mined.map(({ hash }) => hash)],
          );
          return Number(rows[0]!.n) === mined.length;
        },
        'the new trackers to see their transactions in the mempool',
        30_000,
      );
      await mineAndWait();
    }
    for (let b = 0; b < CONFIRMATIONS; b++, blocks++) await mineAndWait();
    await waitUntil(
      async () => {
        const { body: page } = await call(members[0]!.instance.api, 'GET', '/trackers?state=confirmed&limit=500');
        return (page.items as unknown[]).length === confirmedAfter;
      },
      'the trackers to be confirmed',
      30_000,
    );
    const perInstance = members.map((member) => spent(member, blocks));
    console.log(
      `${members.length} instance(s), ${blocks} blocks: ` +
        members.map((m) => `${m.instance.id} ${JSON.stringify(Object.fromEntries(m.calls))}`).join('; '),
    );
    return perInstance;
  };

  it('stay constant from 1 to 3 instances with the same trackers, and do not grow with trackers owned elsewhere', async () => {
    await join('i1');
    await waitForBalance(cluster);
    const one = await phase(TRACKERS);

    await join('i2');
    await join('i3');
    const views = await waitForBalance(cluster);
    expect(views.every((view) => view.shards.length >= 340)).toBe(true);
    const three = await phase(2 * TRACKERS);

    // Each instance replays each block once and reads receipts only for blocks with its own
    // trackers' transactions: per block, no more than one instance following all of them. The
    // other transactions of a sender it follows (other instances' trackers) cost it no block read.
    const [alone] = one;
    expect(alone!.lookups).toBe(TRACKERS);
    for (const [i, { perBlock }] of three.entries()) {
      expect(perBlock, `${members[i]!.instance.id}: calls per block`).toBeLessThanOrEqual(alone!.perBlock);
    }
    // And each looks up only the trackers it runs: together, each tracker once.
    expect(three.reduce((sum, { lookups }) => sum + lookups, 0)).toBe(TRACKERS);
  }, 300_000);
});
