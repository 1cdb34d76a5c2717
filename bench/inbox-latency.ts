/**
 * npx tsx bench/inbox-latency.ts — the inbox round trip alone: a throwaway PostgreSQL, a real anvil
 * and 2 instances from source (as the cluster tests start them, with the default lease settings),
 * then BENCH_REQUESTS `POST /trackers` whose trackers the other instance owns, sent to the one that
 * does not, BENCH_CONNECTIONS at a time; then as many sent to their owner (no inbox), for comparison;
 * then as many for any shard sent to the instances in turn, as bench:cluster does.
 *
 * Prints p50/p99 latency and throughput of both, and where the inbox's time goes (first run only), from triggers on
 * `cluster_inbox` (the database's clock): inserted → claimed by the owner → answer written → answer
 * taken (row deleted by the asker). The rest of a request's time is the HTTP and the asker's side.
 *
 * BENCH_REQUESTS (default 2,000), BENCH_CONNECTIONS (default 16), BENCH_WARMUP (default 200),
 * BENCH_INSTANCES (default 2).
 */
import { randomBytes } from 'node:crypto';
import { shardOf } from '../src/runtime/shard.js';
import { startClusterHarness, waitForBalance } from '../test/support/cluster.js';

const REQUESTS = Number(process.env.BENCH_REQUESTS ?? 2000);
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 16);
const WARMUP = Number(process.env.BENCH_WARMUP ?? 200);
const INSTANCES = Number(process.env.BENCH_INSTANCES ?? 2);

const percentile = (sorted: number[], p: number): number =>
  sorted.length === 0 ? NaN : sorted[Math.min(sorted.length - 1, Math.floor((sorted.length * p) / 100))]!;
const ms = (value: number): string => `${value.toFixed(1)} ms`;

/** `n` transaction hashes whose trackers (id: the hash) fall in `shards`. */
function hashesIn(shards: ReadonlySet<number>, n: number): string[] {
  const hashes: string[] = [];
  while (hashes.length < n) {
    const hash = `0x${randomBytes(32).toString('hex')}`;
    if (shards.has(shardOf(hash, 1024))) hashes.push(hash);
  }
  return hashes;
}

/** POST each hash, to `apis` in turn, `connections` at a time: latencies (ms) and throughput (/s). */
async function post(
  apis: string[],
  hashes: string[],
  connections: number,
): Promise<{ latencies: number[]; rate: number }> {
  const latencies: number[] = [];
  let next = 0;
  let failed = 0;
  const startedAt = performance.now();
  await Promise.all(
    Array.from({ length: connections }, async () => {
      for (;;) {
        const hash = hashes[next++];
        if (hash === undefined) return;
        const at = performance.now();
        const response = await fetch(`${apis[next % apis.length]!}/trackers`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ txHash: hash }),
        });
        await response.arrayBuffer();
        if (response.status !== 201) failed++;
        latencies.push(performance.now() - at);
      }
    }),
  );
  const seconds = (performance.now() - startedAt) / 1000;
  if (failed > 0) console.warn(`${failed} requests did not answer 201`);
  return { latencies: latencies.sort((a, b) => a - b), rate: hashes.length / seconds };
}

function line(what: string, { latencies, rate }: { latencies: number[]; rate: number }): string {
  return `${what}: ${rate.toFixed(0)}/s, p50 ${ms(percentile(latencies, 50))}, p99 ${ms(percentile(latencies, 99))}`;
}

async function main(): Promise<void> {
  const cluster = await startClusterHarness({
    instances: INSTANCES,
    env: { LEASE_TTL_MS: '10000', HEARTBEAT_MS: '2000', POLL_INTERVAL_MS: '1000' },
  });
  try {
    await waitForBalance(cluster);
    const [asker, owner] = cluster.instances as [(typeof cluster.instances)[0], (typeof cluster.instances)[0]];
    const owners = await cluster.owners();
    const owned = new Set([...owners].filter(([, id]) => id === owner.id).map(([shard]) => shard));

    // Each stage's time, from the database's clock, per inbox row.
    await cluster.query(`
      CREATE UNLOGGED TABLE inbox_trace (id bigint, stage text, at timestamptz);
      CREATE FUNCTION inbox_trace() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        IF TG_OP = 'INSERT' THEN INSERT INTO inbox_trace VALUES (NEW.id, 'inserted', clock_timestamp());
        ELSIF TG_OP = 'DELETE' THEN INSERT INTO inbox_trace VALUES (OLD.id, 'taken', clock_timestamp()); RETURN OLD;
        ELSIF NEW.answer IS NOT NULL AND OLD.answer IS NULL THEN INSERT INTO inbox_trace VALUES (NEW.id, 'answered', clock_timestamp());
        ELSIF NEW.claimed_epoch IS DISTINCT FROM OLD.claimed_epoch THEN INSERT INTO inbox_trace VALUES (NEW.id, 'claimed', clock_timestamp());
        END IF;
        RETURN NEW;
      END $$;
      CREATE TRIGGER inbox_trace AFTER INSERT OR UPDATE OR DELETE ON cluster_inbox FOR EACH ROW EXECUTE FUNCTION inbox_trace();
    `);

    const stages = async () => {
      const rows = await cluster.query<{ stage: string; p50: number; p99: number }>(`
      WITH t AS (
        SELECT id, max(at) FILTER (WHERE stage = 'inserted') AS inserted, max(at) FILTER (WHERE stage = 'claimed') AS claimed,
               max(at) FILTER (WHERE stage = 'answered') AS answered, max(at) FILTER (WHERE stage = 'taken') AS taken
        FROM inbox_trace GROUP BY id
      ), d AS (
        SELECT 'inserted → claimed' AS stage, 1 AS n, extract(epoch FROM claimed - inserted) * 1000 AS v FROM t
        UNION ALL SELECT 'claimed → answered (run, durable)', 2, extract(epoch FROM answered - claimed) * 1000 FROM t
        UNION ALL SELECT 'answered → taken', 3, extract(epoch FROM taken - answered) * 1000 FROM t
        UNION ALL SELECT 'inserted → taken', 4, extract(epoch FROM taken - inserted) * 1000 FROM t
      )
      SELECT stage, percentile_disc(0.5) WITHIN GROUP (ORDER BY v)::float8 AS p50, percentile_disc(0.99) WITHIN GROUP (ORDER BY v)::float8 AS p99
      FROM d WHERE v IS NOT NULL GROUP BY stage, n ORDER BY n`);
      await cluster.query('TRUNCATE inbox_trace');
      return rows;
    };

    await post([asker.api], hashesIn(owned, WARMUP), CONNECTIONS);
    await cluster.query('TRUNCATE inbox_trace');
    const inbox = await post([asker.api], hashesIn(owned, REQUESTS), CONNECTIONS);
    const inboxStages = await stages();
    const local = await post([owner.api], hashesIn(owned, REQUESTS), CONNECTIONS);
    // As bench:cluster sends them: any tracker, to every instance in turn.
    const everyShard = new Set(owners.keys());
    const spread = await post(
      cluster.instances.map((instance) => instance.api),
      hashesIn(everyShard, REQUESTS),
      CONNECTIONS,
    );
    const spreadStages = await stages();

    console.log(`${REQUESTS} POST /trackers, ${CONNECTIONS} connections, ${INSTANCES} instances`);
    console.log(line('through the inbox (to the non-owner)', inbox));
    console.log(line('to the owner (no inbox)', local));
    console.log(line(`spread over the ${INSTANCES} (${INSTANCES - 1} in ${INSTANCES} through the inbox)`, spread));
    for (const [what, rows] of [
      ['to the non-owner', inboxStages],
      ['spread', spreadStages],
    ] as const) {
      console.log(`inbox stages, ${what} (database clock):`);
      for (const { stage, p50, p99 } of rows) console.log(`  ${stage}: p50 ${ms(p50)}, p99 ${ms(p99)}`);
    }
  } finally {
    await cluster.close();
  }
}

await main();
