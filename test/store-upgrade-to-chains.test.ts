import { copyFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RunningServer, startServer } from '../src/api/server.js';
import { type TrackerSystem, createTrackerSystem } from '../src/runtime/system.js';
import type { Tracker } from '../src/runtime/tracker-view.js';
import { SqliteStore } from '../src/store/sqlite.js';
import { tempDir } from './helpers.js';

const FIXTURE = fileURLToPath(new URL('./fixtures/v1-trackers.db', import.meta.url));
const CHAINS = [
  { id: 8453, name: 'base' },
  { id: 10, name: 'optimism' },
];

interface V1Row {
  id: string;
  tx_hash: string;
  state: string;
  version: number;
  snapshot: string;
  restarts: number;
  created_at: number;
  updated_at: number;
}

/** What a version 1 row shows, read from the file by hand (the store's packed form, schema 1). */
function shownBy(row: V1Row, chainId: number): Tracker {
  const { context } = JSON.parse(row.snapshot) as { packed: number; context: Record<string, unknown> };
  return {
    id: row.id,
    txHash: row.tx_hash,
    chainId,
    state: row.state as Tracker['state'],
    confirmations: context.confirmations as number,
    requiredConfirmations: context.requiredConfirmations as number,
    blockNumber: context.blockNumber as number | null,
    blockHash: context.blockHash as string | null,
    reorgs: context.reorgs as number,
    restarts: context.restarts as number,
    replacedBy: context.replacedBy as string | null,
    failure: context.failure as Tracker['failure'],
    createdAt: new Date(row.created_at).toISOString(),
    updatedAt: new Date(row.updated_at).toISOString(),
  };
}

// test/fixtures/v1-trackers.db was written by the code before chains (tracker machine version 1,
// store schema 1). Opened by this build on a service whose default chain is base, every tracker
// is there as it was, as a tracker of base.
describe("a store written before chains upgrades in place: every tracker is the default chain's, unchanged", () => {
  const dir = tempDir();
  const path = join(dir.path, 'trackers.db');
  let v1: V1Row[];
  let store: SqliteStore;
  let system: TrackerSystem;
  let server: RunningServer;

  beforeAll(async () => {
    copyFileSync(FIXTURE, path);
    const raw = new Database(path, { readonly: true });
    v1 = raw.prepare('SELECT * FROM trackers ORDER BY id').all() as V1Row[];
    raw.close();
    store = new SqliteStore({ path });
    system = await createTrackerSystem({ store, chains: CHAINS, defaultChain: 8453 });
    server = await startServer({ system, port: 0 });
  });
  afterAll(async () => {
    await server?.close();
    await system?.shutdown();
    await store?.close();
    dir.remove();
  });

  const get = async (id: string): Promise<{ status: number; json: unknown }> => {
    const res = await fetch(`${server.url}/trackers/${id}`);
    return { status: res.status, json: await res.json() };
  };

  it('the fixture is what it should be: version 1 rows of nine trackers, no chain', () => {
    expect(v1.map((r) => [r.id.length > 20 ? 'hash' : r.id, r.state, r.version])).toEqual([
      ['hash', 'pending', 1],
      ['confirmed-1', 'confirmed', 1],
      ['confirming-1', 'confirming', 1],
      ['dropped-1', 'failed', 1],
      ['repriced-1', 'pending', 1],
      ['restarted-1', 'confirming', 1],
      ['reverted-1', 'failed', 1],
      ['stopped-1', 'stopped', 1],
      ['unseen-1', 'pending', 1],
    ]);
  });

  it('shows every tracker as it was (state, confirmations, block, reorgs, restarts, times), on base, over HTTP by the same ids', async () => {
    for (const row of v1) {
      const { status, json } = await get(row.id);
      expect(status, row.id).toBe(200);
      expect(json, row.id).toEqual(shownBy(row, 8453));
    }
    expect(await get('restarted-1')).toMatchObject({
      json: { state: 'confirming', restarts: 1, reorgs: 1, blockNumber: 97, confirmations: 2 },
    });
    expect(system.stats().live).toBe(5);
  });

  it('lists and counts them all as base trackers; none on optimism', async () => {
    const onBase = await system.list({ chain: 'base', limit: 100 });
    expect(onBase.items.map((t) => t.id)).toEqual(v1.map((r) => r.id));
    expect((await system.list({ chain: 10, limit: 100 })).items).toEqual([]);
    const counts = await system.countTrackers();
    expect(counts.every((c) => c.chainId === 8453)).toBe(true);
    expect(counts.reduce((n, c) => n + c.count, 0)).toBe(9);
  });

  it('the file is store schema 3: live trackers rewritten with their chain and machine version 2; final rows untouched until written', async () => {
    await store.flush();
    const raw = new Database(path, { readonly: true });
    expect(raw.pragma('user_version', { simple: true })).toBe(3);
    const rows = raw.prepare('SELECT id, state, version, chain_id FROM trackers ORDER BY id').all() as Array<{
      id: string;
      state: string;
      version: number;
      chain_id: number | null;
    }>;
    raw.close();
    for (const row of rows) {
      const live = row.state === 'pending' || row.state === 'confirming';
      expect([row.id, row.version, row.chain_id]).toEqual([row.id, live ? 2 : 1, live ? 8453 : null]);
    }
  });

  it('the upgraded trackers go on: a head of base confirms one, and the same hash on optimism is another tracker', async () => {
    system.newHead(104, 8453);
    await expect.poll(async () => (await system.get('confirming-1'))?.state).toBe('confirmed');
    expect(await system.get('confirming-1')).toMatchObject({ chainId: 8453, confirmations: 5, blockNumber: 100 });
    const hashId = v1[0]!.id;
    const elsewhere = await system.start(undefined, { txHash: hashId, chain: 'optimism' });
    expect(elsewhere).toMatchObject({
      status: 'started',
      tracker: { id: `10:${hashId}`, chainId: 10, state: 'pending' },
    });
    expect(await system.get(hashId)).toMatchObject({ chainId: 8453, state: 'pending' });
  });
});
