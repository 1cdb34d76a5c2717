/**
 * npm run bench:cluster — several instances on one PostgreSQL (a throwaway server in a temp dir, as
 * the tests start it), with a real anvil, instances as child processes from source (as `npm start`):
 * - `POST /trackers` throughput of 1 instance, then of 3 (autocannon on each, at the same time; about
 *   two thirds of the requests reach another owner through the inbox);
 * - BENCH_TRACKERS (100,000) trackers over the 3, then SIGKILL of one: per tracker, the time from the
 *   kill until it is live on a survivor (p50, p99, max; polled every 50 ms on `GET /cluster`), and the
 *   survivors' claims and rehydration per second (their own log lines);
 * - persisted transitions per second on PostgreSQL, in process: the store with the cluster's commit
 *   hook (fencing check + change log), the store without it, and plain `pg` statements writing the
 *   same rows (per transaction of the same size: one insert of the change log rows, linked to each
 *   tracker's previous row, then one unnest upsert of the trackers with their newest seq and shard:
 *   the floor).
 *
 * The instances run with the default LEASE_TTL_MS and HEARTBEAT_MS (10 s, 2 s) unless set.
 * BENCH_DURATION (s, default 10), BENCH_CONNECTIONS (default 48), BENCH_TRANSITIONS (default 50,000).
 */
import { randomBytes } from 'node:crypto';
import autocannon from 'autocannon';
import pg from 'pg';
import { startAnvil } from '../src/chain/anvil.js';
import { Cluster } from '../src/cluster/cluster.js';
import { silentLogger } from '../src/runtime/logger.js';
import { shardOf, storedShard } from '../src/runtime/shard.js';
import { createTrackerSystem } from '../src/runtime/system.js';
import { PostgresStore } from '../src/store/postgres.js';
import { rowValues, WRITE_COLUMNS } from '../src/store/row.js';
import type { TrackerRecord } from '../src/store/types.js';
import { startPostgres } from '../test/support/postgres.js';
import { type ServiceProcess, spawnFromSource } from '../test/support/service-process.js';

const TRACKERS = Number(process.env.BENCH_TRACKERS ?? 100_000);
const DURATION = Number(process.env.BENCH_DURATION ?? 10);
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 48);
const TRANSITIONS = Number(process.env.BENCH_TRANSITIONS ?? 50_000);
const BATCH = 1000;

const randomHash = (): string => `0x${randomBytes(32).toString('hex')}`;
const percentile = (sorted: number[], p: number): number =>
  sorted[Math.min(sorted.length - 1, Math.floor((sorted.length * p) / 100))]!;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function until<T>(check: () => Promise<T | undefined>, timeoutMs: number, what: string): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

interface View {
  shards: number[];
  liveShards: number[];
  live: number;
}

async function view(api: string): Promise<View | undefined> {
  try {
    const response = await fetch(`${api}/cluster`, { signal: AbortSignal.timeout(5000) });
    return response.ok ? ((await response.json()) as View) : undefined;
  } catch {
    return undefined;
  }
}

async function postRps(apis: string[], connections: number): Promise<number> {
  const runs = await Promise.all(
    apis.map((url) =>
      autocannon({
        url,
        connections: Math.max(1, Math.round(connections / apis.length)),
        duration: DURATION,
        requests: [
          {
            method: 'POST',
            path: '/trackers',
            headers: { 'content-type': 'application/json' },
            setupRequest: (req) => ({ ...req, body: JSON.stringify({ txHash: randomHash() }) }),
          },
        ],
      }),
    ),
  );
  const errors = runs.reduce((n, r) => n + r.errors + r.timeouts + r.non2xx, 0);
  if (errors > 0) console.warn(`POST /trackers: ${errors} errors`);
  for (const r of runs)
    console.log(
      `POST /trackers on ${r.url}: ${r.requests.average.toFixed(0)}/s, p50 ${r.latency.p50} ms, p99 ${r.latency.p99} ms`,
    );
  return runs.reduce((n, r) => n + r.requests.average, 0);
}

async function postBatches(apis: string[], ids: string[]): Promise<void> {
  let turn = 0;
  const queue: string[][] = [];
  for (let at = 0; at < ids.length; at += BATCH) queue.push(ids.slice(at, at + BATCH));
  // One batch in flight per instance.
  await Promise.all(
    apis.map(async () => {
      for (;;) {
        const chunk = queue.shift();
        if (!chunk) return;
        const api = apis[turn++ % apis.length]!;
        const response = await fetch(`${api}/trackers/batch`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ trackers: chunk.map((txHash) => ({ txHash })) }),
        });
        if (!response.ok) throw new Error(`POST /trackers/batch: ${response.status}`);
      }
    }),
  );
}

function rehydrationLines(process: ServiceProcess, after: number): Array<{ trackers: number; ms: number }> {
  return process
    .stdout()
    .split('\n')
    .filter((line) => line.includes('their trackers rehydrated'))
    .map((line) => JSON.parse(line) as { time: number; trackers: number; ms: number })
    .filter((entry) => entry.time >= after);
}

/** Persisted transitions per second: `write` a round of BATCH changed rows, then `flush`, until TRANSITIONS. */
async function transitionsPerSecond(
  write: (records: TrackerRecord[]) => void | Promise<void>,
  flush: () => Promise<void>,
  template: TrackerRecord,
): Promise<number> {
  const ids = Array.from({ length: BATCH * 10 }, (_, i) => `bench-${i}`);
  const startedAt = performance.now();
  for (let done = 0, round = 0; done < TRANSITIONS; round++) {
    const records = ids.slice((round % 10) * BATCH, ((round % 10) + 1) * BATCH).map((id) => ({
      ...template,
      id,
      updatedAt: template.updatedAt + round,
      // A change of the kind most frequent: one more confirmation, with its change log row.
      change: { ...template.change!, at: template.updatedAt + round, detail: { confirmations: 3 + round } },
    }));
    await write(records);
    await flush();
    done += records.length;
  }
  return TRANSITIONS / ((performance.now() - startedAt) / 1000);
}

async function storeBench(url: string): Promise<{ hooked: number; bare: number; floor: number }> {
  const admin = new pg.Client({ connectionString: url });
  await admin.connect();
  for (const name of ['bench_hooked', 'bench_bare', 'bench_floor']) await admin.query(`CREATE DATABASE ${name}`);
  await admin.end();
  const at = (database: string) => url.replace(/\/postgres$/, `/${database}`);

  // A tracker row as the runtime writes one.
  const template: TrackerRecord = {
    id: 'x',
    txHash: randomHash(),
    chainId: 31337,
    state: 'confirming',
    version: 2,
    snapshot: {
      status: 'active',
      value: { confirming: 'counting' },
      historyValue: {},
      context: {
        id: 'x',
        txHash: randomHash(),
        chainId: 31337,
        requiredConfirmations: 12,
        finality: null,
        blockNumber: 1234,
        blockHash: randomHash(),
        confirmations: 3,
        reorgs: 0,
        restarts: 0,
        replacedBy: null,
        failure: null,
        createdAt: Date.now(),
        updatedAt: Date.now(),
      },
      children: {},
    },
    restarts: 0,
    createdAt: Date.now(),
    updatedAt: Date.now(),
    change: {
      from: 'confirming.counting',
      to: 'confirming.counting',
      event: 'NEW_HEAD',
      at: Date.now(),
      blockNumber: 1234,
      blockHash: randomHash(),
      restarts: 0,
      reorgs: 0,
      detail: { confirmations: 3 },
    },
  };

  const hookedStore = await PostgresStore.open({ url: at('bench_hooked') });
  const cluster = await Cluster.open({ url: at('bench_hooked'), instanceId: 'bench', logger: silentLogger });
  hookedStore.setCommitHook(cluster.commitHook);
  const system = await createTrackerSystem({ store: hookedStore, placement: cluster.placement, rehydrate: false });
  await cluster.start(system);
  const hooked = await transitionsPerSecond(
    (records) => records.forEach((record) => hookedStore.write(record)),
    () => hookedStore.flush(),
    template,
  );
  await cluster.stop();
  await system.shutdown();
  await hookedStore.close();

  const bareStore = await PostgresStore.open({ url: at('bench_bare') });
  const bare = await transitionsPerSecond(
    (records) => records.forEach((record) => bareStore.write(record)),
    () => bareStore.flush(),
    template,
  );
  await bareStore.close();

  // The floor: the same rows with plain `pg` — each change's log row (linked to the tracker's previous
  // one), then the trackers with their newest seq and their shard — one statement each per transaction.
  const schemaFrom = await PostgresStore.open({ url: at('bench_floor') });
  await schemaFrom.close();
  const floorClient = new pg.Client({ connectionString: at('bench_floor') });
  await floorClient.connect();
  const sql = `INSERT INTO trackers (${WRITE_COLUMNS})
    SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::int[], $5::text[], $6::int[], $7::float8[], $8::float8[], $9::text[], $10::int8[], $11::int8[], $12::int[])
    ON CONFLICT (id) DO UPDATE SET tx_hash = excluded.tx_hash, state = excluded.state, version = excluded.version,
      snapshot = excluded.snapshot, restarts = excluded.restarts, created_at = excluded.created_at,
      updated_at = excluded.updated_at, quarantined = excluded.quarantined, chain_id = excluded.chain_id,
      history_seq = excluded.history_seq, shard = excluded.shard`;
  const historySql = `INSERT INTO tracker_history (tracker_id, prev_seq, at, from_state, to_state, event, block_number, block_hash, restarts, reorgs, detail)
    SELECT u.id, t.history_seq, u.at, u.from_state, u.to_state, u.event, u.block_number, u.block_hash, u.restarts, u.reorgs, u.detail
    FROM unnest($1::text[], $2::float8[], $3::text[], $4::text[], $5::text[], $6::int8[], $7::text[], $8::int[], $9::int[], $10::text[])
      AS u(id, at, from_state, to_state, event, block_number, block_hash, restarts, reorgs, detail)
    LEFT JOIN trackers t ON t.id = u.id
    RETURNING seq, tracker_id`;
  let pending: TrackerRecord[] = [];
  const floor = await transitionsPerSecond(
    (records) => {
      pending = records;
    },
    async () => {
      const changes = pending.map((record) => record.change!);
      await floorClient.query('BEGIN');
      const logged = await floorClient.query<{ seq: string; tracker_id: string }>(historySql, [
        pending.map((record) => record.id),
        changes.map((change) => change.at),
        changes.map((change) => change.from),
        changes.map((change) => change.to),
        changes.map((change) => change.event),
        changes.map((change) => change.blockNumber),
        changes.map((change) => change.blockHash),
        changes.map((change) => change.restarts),
        changes.map((change) => change.reorgs),
        changes.map((change) => JSON.stringify(change.detail)),
      ]);
      const seqOf = new Map(logged.rows.map((row) => [row.tracker_id, row.seq]));
      const rows = pending.map((record) => [
        ...rowValues(record),
        seqOf.get(record.id) ?? null,
        storedShard(record.id),
      ]);
      const columns = Array.from({ length: 12 }, (_, c) => rows.map((row) => row[c]));
      await floorClient.query(sql, columns);
      await floorClient.query('COMMIT');
    },
    template,
  );
  await floorClient.end();
  return { hooked, bare, floor };
}

async function main(): Promise<void> {
  const postgres = await startPostgres();
  const anvil = await startAnvil({ args: [] });
  const instances: ServiceProcess[] = [];
  const spawn = async (id: string): Promise<{ process: ServiceProcess; api: string }> => {
    const child = spawnFromSource({
      PORT: '0',
      DATABASE_URL: postgres.url,
      ETH_RPC_URL: anvil.url,
      INSTANCE_ID: id,
      LOG_LEVEL: 'info',
    });
    instances.push(child);
    const { api } = await child.started(120_000);
    return { process: child, api };
  };
  const rows: string[][] = [];
  try {
    const first = await spawn('i1');
    const one = await postRps([first.api], CONNECTIONS);
    const second = await spawn('i2');
    const third = await spawn('i3');
    const all = [first, second, third];
    await until(
      async () => {
        const views = await Promise.all(all.map((i) => view(i.api)));
        const shares = views.map((v) => v?.shards.length ?? 0);
        return shares.every((n) => n >= 340) ? true : undefined;
      },
      120_000,
      'the three instances to share the shards',
    );
    const three = await postRps(
      all.map((i) => i.api),
      CONNECTIONS,
    );
    rows.push(['`POST /trackers` (durable), 1 instance', `${one.toFixed(0)}/s`, '—']);
    rows.push([
      '`POST /trackers` (durable), 3 instances, spread',
      `${three.toFixed(0)}/s`,
      `${(three / one).toFixed(2)}× of 1`,
    ]);

    // Seed up to TRACKERS live trackers.
    const live = async () => (await Promise.all(all.map((i) => view(i.api)))).reduce((n, v) => n + (v?.live ?? 0), 0);
    const missing = Math.max(0, TRACKERS - (await live()));
    await postBatches(
      all.map((i) => i.api),
      Array.from({ length: missing }, randomHash),
    );
    const total = await until(
      async () => {
        const n = await live();
        return n >= TRACKERS ? n : undefined;
      },
      300_000,
      'every tracker to be live',
    );

    // Which trackers the victim runs: every id, by shard, from the store.
    const client = new pg.Client({ connectionString: postgres.url });
    await client.connect();
    const victimView = (await view(second.api))!;
    const victimShards = new Set(victimView.shards);
    const { rows: ids } = await client.query<{ id: string }>(
      "SELECT id FROM trackers WHERE state NOT IN ('confirmed', 'failed', 'stopped')",
    );
    await client.end();
    const perShard = new Map<number, number>();
    for (const { id } of ids) {
      const shard = shardOf(id, 1024);
      if (victimShards.has(shard)) perShard.set(shard, (perShard.get(shard) ?? 0) + 1);
    }
    const killedAt = Date.now();
    second.process.child.kill('SIGKILL');
    const liveAt = new Map<number, number>();
    await until(
      async () => {
        const views = await Promise.all([first, third].map((i) => view(i.api)));
        const now = Date.now();
        for (const v of views)
          for (const shard of v?.liveShards ?? [])
            if (perShard.has(shard) && !liveAt.has(shard)) liveAt.set(shard, now);
        return liveAt.size === perShard.size ? true : undefined;
      },
      300_000,
      'the killed instance’s trackers to be live elsewhere',
    );
    const times: number[] = [];
    for (const [shard, count] of perShard) for (let i = 0; i < count; i++) times.push(liveAt.get(shard)! - killedAt);
    times.sort((a, b) => a - b);
    const rehydrated = [first, third].flatMap((i) => rehydrationLines(i.process, killedAt));
    const trackersRehydrated = rehydrated.reduce((n, e) => n + (e.trackers ?? 0), 0);
    const rehydrationMs = rehydrated.reduce((n, e) => n + e.ms, 0);
    rows.push([
      `failover after SIGKILL, ${times.length} of ${total} trackers (TTL + heartbeat ${(Number(process.env.LEASE_TTL_MS ?? 10_000) + Number(process.env.HEARTBEAT_MS ?? 2_000)) / 1000} s)`,
      `p50 ${(percentile(times, 50) / 1000).toFixed(1)} s, p99 ${(percentile(times, 99) / 1000).toFixed(1)} s, max ${(times.at(-1)! / 1000).toFixed(1)} s`,
      '—',
    ]);
    rows.push([
      'claims and rehydration on the survivors',
      `${((trackersRehydrated / Math.max(1, rehydrationMs)) * 1000).toFixed(0)} trackers/s`,
      '—',
    ]);
  } finally {
    for (const child of instances) {
      child.child.kill('SIGKILL');
      await child.exited;
    }
    await anvil.stop();
  }

  try {
    const { hooked, bare, floor } = await storeBench(postgres.url);
    rows.push([
      'persisted transitions on PostgreSQL, in a cluster (fencing check, change log in commit order)',
      `${hooked.toFixed(0)}/s`,
      `${(hooked / floor).toFixed(2)}× of plain pg writing the same rows, ${floor.toFixed(0)}/s`,
    ]);
    rows.push([
      'persisted transitions on PostgreSQL, the store alone',
      `${bare.toFixed(0)}/s`,
      `${(bare / floor).toFixed(2)}× of plain pg writing the same rows, ${floor.toFixed(0)}/s`,
    ]);
  } finally {
    await postgres.close();
  }

  console.log('\n| measurement | ours | against |\n|---|---:|---|');
  for (const row of rows) console.log(`| ${row.join(' | ')} |`);
}

await main();
