import pg from 'pg';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { DEFAULT_SHARD_COUNT, shardOf } from '../src/runtime/shard.js';
import { PostgresStore } from '../src/store/postgres.js';
import type { LoadLiveOptions, TrackerRecord } from '../src/store/types.js';
import { hashOf } from './helpers.js';
import { type Member, joinInProcess, leaveAll } from './support/cluster-in-process.js';
import { type PostgresServer, describeWithPostgres, startPostgres } from './support/postgres.js';
import { waitUntil } from './support/wait.js';

/** What an instance's store read of the trackers table. */
interface Reads {
  /** Rows the database sent back for queries of the trackers table. */
  rows: number;
  /** Each loadLive: its options and the ids it handed out. */
  loads: Array<{ options: LoadLiveOptions | undefined; ids: string[] }>;
}

/** Count, from now on, the rows `store` gets from the trackers table, and what its loadLive hands out. */
function countReads(store: PostgresStore): Reads {
  const reads: Reads = { rows: 0, loads: [] };
  const pool = store.pool as unknown as { query: (...args: unknown[]) => Promise<pg.QueryResult> };
  const query = pool.query.bind(pool);
  pool.query = async (...args: unknown[]) => {
    const result = await query(...args);
    const text = typeof args[0] === 'string' ? args[0] : (args[0] as { text: string }).text;
    if (/\bFROM trackers\b/.test(text)) reads.rows += result.rows.length;
    return result;
  };
  const loadLive = store.loadLive.bind(store);
  store.loadLive = async function* (batchSize: number, options?: LoadLiveOptions): AsyncIterable<TrackerRecord[]> {
    const load = { options, ids: [] as string[] };
    reads.loads.push(load);
    for await (const batch of loadLive(batchSize, options)) {
      load.ids.push(...batch.map((record) => record.id));
      yield batch;
    }
  };
  return reads;
}

describeWithPostgres('a claim of a few shards reads only their rows', () => {
  let server: PostgresServer;
  let url: string;
  const members: Member[] = [];

  beforeAll(async () => {
    server = await startPostgres();
    url = await server.createDatabase();
  }, 60_000);
  afterAll(async () => {
    await leaveAll(members);
    await server?.close();
  });

  const join = async (instanceId: string, watch?: (store: PostgresStore) => void): Promise<Member> => {
    const member = await joinInProcess(url, instanceId, watch ? { watch } : {});
    members.push(member);
    return member;
  };

  it('the instance taking over three expired shards reads their live rows from PostgreSQL, not every tracker’s (regression: rehydration read the whole table)', async () => {
    const a = await join('holder');
    expect(a.cluster.leases.ownedShards()).toHaveLength(DEFAULT_SHARD_COUNT);
    const ids = Array.from({ length: 600 }, (_, i) => `t_${String(i).padStart(3, '0')}`);
    await a.system.startMany(ids.map((id, i) => ({ id, txHash: hashOf(i + 1), confirmations: 3 })));
    // Some end: their rows stay, final, and are not brought back.
    const ended = ids.filter((_, i) => i % 4 === 0);
    for (const id of ended) await a.system.stop(id);
    await a.system.flushWrites();

    // Three shards' leases run out in the database; another instance joins and takes just those.
    const shards = [...new Set(['t_001', 't_002', 't_003'].map((id) => shardOf(id, DEFAULT_SHARD_COUNT)))].sort(
      (x, y) => x - y,
    );
    const admin = new pg.Client({ connectionString: url });
    await admin.connect();
    await admin.query("UPDATE shard_leases SET expires_at = now() - interval '1 second' WHERE shard = ANY($1)", [
      shards,
    ]);
    await admin.end();
    let reads: Reads | undefined;
    const b = await join('taker', (store) => (reads = countReads(store)));
    expect(b.cluster.leases.ownedShards()).toEqual(shards);
    const expected = ids
      .filter((id) => shards.includes(shardOf(id, DEFAULT_SHARD_COUNT)) && !ended.includes(id))
      .sort();
    expect(expected.length).toBeGreaterThan(0);
    await waitUntil(() => expected.every((id) => b.system.lookup(id) !== undefined), 'the taker to run their trackers');

    // The database sent their live rows and no other tracker row (none filtered out after the read)...
    expect(reads!.rows).toBe(expected.length);
    // ...in one read, of those shards, that handed out exactly their live trackers.
    expect(reads!.loads.map((load) => load.options?.shards.slice().sort((x, y) => x - y))).toEqual([shards]);
    expect(reads!.loads[0]!.ids.sort()).toEqual(expected);
    expect(reads!.rows).toBeLessThan((ids.length - ended.length) / 10);
  });
});
