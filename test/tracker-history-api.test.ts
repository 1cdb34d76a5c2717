import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TrackerHistoryPage } from '../src/api/schemas.js';
import { type RunningServer, startServer } from '../src/api/server.js';
import type { TrackerHistoryEntry } from '../src/runtime/types.js';
import { SqliteStore } from '../src/store/sqlite.js';
import { type ApiResponse, httpCaller } from './helpers/api.js';
import { tempDir } from './helpers.js';
import { type Harness, mine, rpc, startHarness, waitFor } from './support/chain.js';

// A real anvil, a real SQLite file, the HTTP API: what GET /trackers/:id/history shows of the paths
// a tracker takes on a chain.
describe('GET /trackers/:id/history: every change of a tracker, in order, on a real chain', () => {
  const dir = tempDir();
  let store: SqliteStore;
  let h: Harness;
  let server: RunningServer;
  let call: (method: string, path: string) => Promise<ApiResponse>;
  beforeAll(async () => {
    store = new SqliteStore({ path: join(dir.path, 'trackers.db') });
    h = await startHarness({ system: { store, faultInjection: true } });
    server = await startServer({ system: h.system, port: 0 });
    call = httpCaller(server.url);
  });
  afterAll(async () => {
    await server?.close();
    await h?.close();
    await store?.close();
    dir.remove();
  });

  /** Every page of a tracker's history, `limit` at a time, each page checked against the schema. */
  async function history(id: string, limit = 100): Promise<TrackerHistoryEntry[]> {
    const items: TrackerHistoryEntry[] = [];
    let cursor: string | null = null;
    do {
      const res = await call('GET', `/trackers/${id}/history?limit=${limit}${cursor ? `&cursor=${cursor}` : ''}`);
      expect(res.status).toBe(200);
      const page = TrackerHistoryPage.strict().parse(res.json);
      expect(page.items.length).toBeLessThanOrEqual(limit);
      items.push(...(page.items as TrackerHistoryEntry[]));
      cursor = page.nextCursor;
    } while (cursor);
    return items;
  }
  const steps = (items: TrackerHistoryEntry[]) => items.map((e) => `${e.from ?? '∅'} -${e.event}-> ${e.to}`);

  it('pending -> confirming -> confirmed: START, TX_MINED with its block, NEW_HEAD; kept after it ended; pages of 1 give the same', async () => {
    const a = await h.sign(0, { to: h.wallets[1]!.address, value: 1n, nonce: 0 });
    await h.system.start(a.hash, { txHash: a.hash, confirmations: 2 });
    await h.send(a.raw);
    await h.waitForState(a.hash, 'confirming');
    await mine(h.anvil.url);
    const confirmed = await h.waitForState(a.hash, 'confirmed');
    await waitFor('the tracker to end', () => h.system.lookup(a.hash) === undefined);
    const receipt = await h.provider.getTransactionReceipt(a.hash);
    const items = await history(a.hash);
    // The watcher may see the tx in the mempool first (TX_SEEN) or only mined.
    const seen = items[1]?.event === 'TX_SEEN' ? ['pending.unseen -TX_SEEN-> pending.seen'] : [];
    const pendingPath = seen.length ? 'pending.seen' : 'pending.unseen';
    expect(steps(items)).toEqual([
      '∅ -START-> pending.unseen',
      ...seen,
      `${pendingPath} -TX_MINED-> confirming`,
      'confirming -NEW_HEAD-> confirmed',
    ]);
    const mined = items.at(-2)!;
    expect(mined).toMatchObject({ blockNumber: receipt!.blockNumber, blockHash: receipt!.blockHash, reorgs: 0 });
    expect(mined.detail).toEqual({ confirmations: 1 });
    expect(items.at(-1)).toMatchObject({ blockNumber: confirmed.blockNumber, detail: { confirmations: 2 } });
    expect(items[0]).toMatchObject({ from: null, blockNumber: null, blockHash: null, restarts: 0, detail: null });
    const seqs = items.map((e) => e.seq);
    expect(seqs).toEqual([...seqs].sort((x, y) => x - y));
    for (const e of items) expect(Date.parse(e.at)).toBeGreaterThan(0);
    expect(await history(a.hash, 1)).toEqual(items);
  });

  it('a reorg of its block: BLOCK_REORGED back to pending.seen with reorgs 1, then mined again on the new block', async () => {
    const a = await h.sign(0, { to: h.wallets[1]!.address, value: 2n, nonce: 1 });
    await h.system.start(a.hash, { txHash: a.hash, confirmations: 3 });
    await h.send(a.raw);
    const first = await h.waitForState(a.hash, 'confirming');
    await mine(h.anvil.url);
    await h.watcher.waitForHead(first.blockNumber! + 1);
    // Its block and the next are replaced; the tx lands in the second new block.
    await rpc(h.anvil.url, 'anvil_reorg', [2, [[a.raw, 1]]]);
    await waitFor('the tracker to follow the reorg', async () => {
      const t = await h.system.get(a.hash);
      return t && t.reorgs === 1 && t.state === 'confirming' ? t : undefined;
    });
    await mine(h.anvil.url, 2);
    await h.waitForState(a.hash, 'confirmed');
    const items = await history(a.hash);
    const reorged = items.findIndex((e) => e.event === 'BLOCK_REORGED');
    expect(items[reorged]).toMatchObject({
      from: 'confirming',
      to: 'pending.seen',
      reorgs: 1,
      blockNumber: null,
      blockHash: null,
    });
    expect(items[reorged - 1]).toMatchObject({ event: 'TX_MINED', blockHash: first.blockHash, reorgs: 0 });
    const again = items.slice(reorged + 1);
    expect(again[0]).toMatchObject({ event: 'TX_MINED', from: 'pending.seen', to: 'confirming', reorgs: 1 });
    expect(again[0]!.blockHash).not.toBe(first.blockHash);
    expect(again.at(-1)).toMatchObject({ to: 'confirmed', reorgs: 1 });
  });

  it('a crash (fault injection): RESTART from its stored state with restarts 1, then it goes on', async () => {
    const a = await h.sign(0, { to: h.wallets[1]!.address, value: 3n, nonce: 2 });
    await h.system.start(a.hash, { txHash: a.hash, confirmations: 3 });
    await h.send(a.raw);
    await h.waitForState(a.hash, 'confirming');
    const crash = await httpCaller(server.url)('POST', `/trackers/${a.hash}/events`, { type: 'CRASH' });
    expect(crash.status).toBe(202);
    await waitFor('the restart', async () => (await h.system.get(a.hash))?.restarts === 1 || undefined);
    await mine(h.anvil.url, 2);
    await h.waitForState(a.hash, 'confirmed');
    const items = await history(a.hash);
    const restart = items.findIndex((e) => e.event === 'RESTART');
    expect(items[restart]).toMatchObject({ from: 'confirming', to: 'confirming', restarts: 1 });
    expect(items[restart - 1]).toMatchObject({ event: 'TX_MINED', restarts: 0 });
    expect(items.at(-1)).toMatchObject({ to: 'confirmed', restarts: 1 });
    expect(items.filter((e) => e.event === 'RESTART')).toHaveLength(1);
  });

  it('a replacement that cancels it: TX_REPLACED to failed, with the replacing hash and the failure', async () => {
    await rpc(h.anvil.url, 'evm_setAutomine', [false]);
    try {
      const nonce = await h.provider.getTransactionCount(h.wallets[1]!.address, 'pending');
      const a = await h.sign(1, { to: h.wallets[3]!.address, value: 5n, nonce, gasLimit: 50_000n });
      await h.send(a.raw);
      await h.system.start(a.hash, { txHash: a.hash, confirmations: 2 });
      await waitFor('the watcher to know the tx', () => h.watcher.rawTransaction(a.hash) !== null);
      const b = await h.sign(1, {
        to: h.wallets[1]!.address,
        value: 0n,
        nonce,
        gasLimit: 50_000n,
        maxFeePerGas: 20_000_000_000n,
        maxPriorityFeePerGas: 2_000_000_000n,
      });
      await h.send(b.raw);
      await rpc(h.anvil.url, 'evm_mine');
      await h.waitForState(a.hash, 'failed');
      const items = await history(a.hash);
      expect(items.at(-1)).toMatchObject({
        from: 'pending.seen',
        to: 'failed',
        event: 'TX_REPLACED',
        detail: { replacedBy: b.hash, failure: { reason: 'cancelled' } },
      });
      expect(items[0]!.event).toBe('START');
    } finally {
      await rpc(h.anvil.url, 'evm_setAutomine', [true]);
    }
  });

  it('404 for an unknown tracker; 400 with the error shape for a bad limit, cursor or parameter', async () => {
    const unknown = await call('GET', '/trackers/nobody/history');
    expect(unknown.status).toBe(404);
    expect(unknown.json).toEqual({ error: { code: 'not_found', message: 'no tracker nobody' } });
    const id = (await h.system.list({ limit: 1 })).items[0]!.id;
    for (const [query, code] of [
      ['limit=0', 'invalid_limit'],
      ['limit=1001', 'invalid_limit'],
      ['limit=ten', 'invalid_limit'],
      ['cursor=***', 'invalid_cursor'],
      ['cursor=bm90LWEtc2Vx', 'invalid_cursor'],
      ['state=pending', 'invalid_query'],
    ] as const) {
      const res = await call('GET', `/trackers/${id}/history?${query}`);
      expect([query, res.status, (res.json as { error: { code: string } }).error.code]).toEqual([query, 400, code]);
      expect((res.json as { error: { message: string } }).error.message).toEqual(expect.any(String));
    }
    const bad = await call('GET', '/trackers/not%20an%20id/history');
    expect([bad.status, (bad.json as { error: { code: string } }).error.code]).toEqual([400, 'invalid_id']);
  });

  it('is in the OpenAPI document', async () => {
    const doc = (await call('GET', '/openapi.json')).json as {
      paths: Record<string, { get?: { parameters?: Array<{ name: string }>; responses: Record<string, unknown> } }>;
      components: { schemas: Record<string, unknown> };
    };
    const route = doc.paths['/trackers/{id}/history']!.get!;
    expect(route.parameters!.map((p) => p.name).sort()).toEqual(['cursor', 'id', 'limit']);
    expect(Object.keys(route.responses).sort()).toEqual(['200', '400', '404']);
    expect(doc.components.schemas).toHaveProperty('TrackerHistoryPage');
    expect(doc.components.schemas).toHaveProperty('TrackerHistoryEntry');
  });
});
