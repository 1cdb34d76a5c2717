import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MemoryStore } from '../src/store/memory.js';
import { PostgresStore } from '../src/store/postgres.js';
import { SqliteStore } from '../src/store/sqlite.js';
import type { SnapshotStore, TrackerRecord } from '../src/store/types.js';
import { OUTBOX_TRIGGER } from '../src/webhooks/schema.js';
import { type WebhookDelivery, type WebhookEndpoint, WEBHOOK_EVENT_TYPES } from '../src/webhooks/types.js';
import { hashOf, seededRandom, tempDir } from './helpers.js';
import { type PostgresServer, postgresUnavailable, startPostgres } from './support/postgres.js';

const STATES = ['pending.unseen', 'pending.seen', 'pending.stuck', 'confirming', 'confirmed', 'failed', 'stopped'];
// A stuck tracker's reason change is a TX_STUCK from stuck to stuck; a restart keeps the state.
const EVENTS = ['TEST', 'TX_STUCK', 'RESTART'];
const IDS = ['order-1', 'order-2', 'order-10', 'other-1', '0xab', 'x'];

function endpoint(n: number, random: () => number): WebhookEndpoint {
  const pick = <T>(list: readonly T[]) => list.filter(() => random() < 0.5);
  const events = pick(WEBHOOK_EVENT_TYPES);
  const trackers =
    random() < 0.3 ? null : [...pick(IDS), ...(random() < 0.5 ? ['order-*'] : []), ...(random() < 0.2 ? ['*'] : [])];
  return {
    id: `ep_${n}`,
    url: 'http://127.0.0.1:1/',
    events: events.length ? events : ['tracker.state_changed'],
    trackers: trackers?.length ? trackers : null,
    secrets: [{ secret: 'whsec_AAAA', expiresAt: null }],
    enabled: random() < 0.8,
    disabledReason: null,
    failingSince: null,
    concurrency: null,
    timeoutMs: null,
    createdAt: n,
    updatedAt: n,
  };
}

/**
 * Every delivery of every endpoint, as `endpoint seq tracker type`, sorted; seqs counted from the
 * store's first one (a PostgreSQL sequence may start elsewhere than SQLite's rowid).
 */
async function outbox(store: SnapshotStore): Promise<string[]> {
  const all: WebhookDelivery[] = [];
  for (const e of await store.webhooks!.listEndpoints()) {
    all.push(...(await store.webhooks!.listDeliveries(e.id, { limit: 100_000 })).items);
  }
  const first = Math.min(...all.map((d) => d.seq));
  return all.map((d) => `${d.endpointId} ${d.seq - first} ${d.trackerId} ${d.type}`).sort();
}

describe('the outbox trigger', () => {
  const dir = tempDir('tx-tracker-outbox-');
  let server: PostgresServer | undefined;
  beforeAll(async () => {
    // The PostgreSQL store's outbox joins the comparison; CI never leaves it out.
    if (postgresUnavailable === undefined) server = await startPostgres();
    else if (process.env.CI) throw new Error(`PostgreSQL tests cannot run in CI: ${postgresUnavailable}`);
    else console.warn(`SKIPPED the PostgreSQL outbox in "the outbox trigger": ${postgresUnavailable}`);
  }, 60_000);
  afterAll(async () => {
    await server?.close();
    dir.remove();
  });

  it('writes, in the commit of each change, the deliveries the in-memory outbox makes (SQLite trigger, PostgreSQL commit): same types, filters, enabled', async () => {
    const seed = Number(process.env.OUTBOX_SEED ?? Date.now() % 1_000_000);
    const random = seededRandom(seed);
    const sqlite = new SqliteStore({ path: join(dir.path, 'outbox.db') });
    const memory = new MemoryStore();
    const postgres = server ? await PostgresStore.open({ url: await server.createDatabase() }) : undefined;
    for (let n = 0; n < 12; n++) {
      const e = endpoint(n, random);
      await sqlite.webhooks.createEndpoint(e);
      await memory.webhooks.createEndpoint(e);
      await postgres?.webhooks.createEndpoint(e);
    }
    const last = new Map<string, string>();
    for (let i = 0; i < 400; i++) {
      const id = IDS[Math.floor(random() * IDS.length)]!;
      const to = STATES[Math.floor(random() * STATES.length)]!;
      const from = last.get(id) ?? null;
      last.set(id, to);
      const record: TrackerRecord = {
        id,
        txHash: hashOf(i),
        state: to.split('.')[0] as TrackerRecord['state'],
        version: 3,
        snapshot: { n: i },
        restarts: 0,
        createdAt: 1,
        updatedAt: 1 + i,
        change: {
          from,
          to,
          event: EVENTS[Math.floor(random() * EVENTS.length)]!,
          at: 1 + i,
          blockNumber: null,
          blockHash: null,
          restarts: 0,
          reorgs: 0,
          detail: null,
        },
      };
      sqlite.write(record);
      memory.write(record);
      postgres?.write(record);
      if (random() < 0.1) await Promise.all([sqlite.flush(), postgres?.flush()]);
    }
    await Promise.all([sqlite.flush(), postgres?.flush()]);
    const fromSqlite = await outbox(sqlite);
    expect(fromSqlite.length, `seed ${seed}`).toBeGreaterThan(50);
    expect(fromSqlite.some((line) => line.endsWith('tracker.stuck'))).toBe(true);
    expect(fromSqlite, `seed ${seed} (replay with OUTBOX_SEED=${seed})`).toEqual(await outbox(memory));
    if (postgres) {
      expect(await outbox(postgres), `seed ${seed} (replay with OUTBOX_SEED=${seed})`).toEqual(fromSqlite);
      await postgres.close();
    }
    await sqlite.close();
  });

  it('regression: a change of stuck reason was sent as tracker.updated; every stuck verdict is tracker.stuck', async () => {
    const sqlite = new SqliteStore({ path: join(dir.path, 'stuck.db') });
    const memory = new MemoryStore();
    const all: WebhookEndpoint = {
      ...endpoint(1, () => 0.9),
      enabled: true,
      events: [...WEBHOOK_EVENT_TYPES],
      trackers: null,
    };
    await sqlite.webhooks.createEndpoint(all);
    await memory.webhooks.createEndpoint(all);
    const steps: Array<[string | null, string, string]> = [
      [null, 'pending.unseen', 'START'],
      ['pending.unseen', 'pending.seen', 'TX_SEEN'],
      ['pending.seen', 'pending.stuck', 'TX_STUCK'], // not_included
      ['pending.stuck', 'pending.stuck', 'TX_STUCK'], // fee_below_base_fee: the reason changed
      ['pending.stuck', 'pending.stuck', 'RESTART'], // the same verdict, after a crash
      ['pending.stuck', 'pending.seen', 'TX_UNSTUCK'],
    ];
    steps.forEach(([from, to, event], i) => {
      const record: TrackerRecord = {
        id: 't1',
        txHash: hashOf(1),
        state: 'pending',
        version: 3,
        snapshot: { i },
        restarts: 0,
        createdAt: 1,
        updatedAt: 1 + i,
        change: {
          from,
          to,
          event,
          at: 1 + i,
          blockNumber: null,
          blockHash: null,
          restarts: 0,
          reorgs: 0,
          detail: null,
        },
      };
      sqlite.write(record);
      memory.write(record);
    });
    await sqlite.flush();
    const types = async (store: SnapshotStore) =>
      (await store.webhooks!.listDeliveries('ep_1', { limit: 10 })).items.reverse().map((d) => d.type);
    expect(await types(sqlite)).toEqual([
      'tracker.state_changed',
      'tracker.updated',
      'tracker.stuck',
      'tracker.stuck',
      'tracker.updated',
      'tracker.updated',
    ]);
    expect(await types(memory)).toEqual(await types(sqlite));
    await sqlite.close();
  });

  it('replaces, on open, what an earlier build of schema 4 wrote: its trigger (stuck reason changes as tracker.updated), endpoints without limits', async () => {
    const path = join(dir.path, 'earlier-trigger.db');
    const first = new SqliteStore({ path });
    await first.close();
    const earlier = OUTBOX_TRIGGER.replace(
      /\(instr\(NEW\.from_state, 'stuck'\) = 0 OR NEW\.event = 'TX_STUCK'\)/,
      "instr(NEW.from_state, 'stuck') = 0",
    );
    expect(earlier).not.toContain('TX_STUCK');
    const db = new Database(path);
    db.exec(`DROP TRIGGER webhook_outbox; ${earlier}`);
    db.exec(
      'ALTER TABLE webhook_endpoints DROP COLUMN concurrency; ALTER TABLE webhook_endpoints DROP COLUMN timeout_ms',
    );
    db.close();
    const store = new SqliteStore({ path });
    const sql = store.db.prepare("SELECT sql FROM sqlite_master WHERE name = 'webhook_outbox'").pluck().get();
    expect(sql).toContain("NEW.event = 'TX_STUCK'");
    const columns = store.db.prepare("SELECT name FROM pragma_table_info('webhook_endpoints')").pluck().all();
    expect(columns).toEqual(expect.arrayContaining(['concurrency', 'timeout_ms']));
    await store.close();
  });

  it('fails a pending delivery whose change history retention removed, instead of leaving it pending for ever', async () => {
    const store = new SqliteStore({ path: join(dir.path, 'pruned.db') });
    await store.webhooks.createEndpoint({
      ...endpoint(1, () => 0.9),
      enabled: true,
      events: ['tracker.state_changed'],
      trackers: null,
    });
    store.write({
      id: 't1',
      txHash: hashOf(1),
      state: 'pending',
      version: 3,
      snapshot: {},
      restarts: 0,
      createdAt: 1,
      updatedAt: 1,
      change: {
        from: null,
        to: 'pending.unseen',
        event: 'START',
        at: 1,
        blockNumber: null,
        blockHash: null,
        restarts: 0,
        reorgs: 0,
        detail: null,
      },
    });
    await store.flush();
    expect(store.webhooks.outboxStats().pending).toBe(1);
    // As the retention's prune does, on another connection.
    store.db.prepare('DELETE FROM tracker_history').run();
    expect(store.webhooks.dueDeliveries('ep_1', Date.now(), 10, new Set())).toEqual([]);
    await store.flush();
    expect(store.webhooks.outboxStats().pending).toBe(0);
    expect(store.webhooks.listDeliveries('ep_1', { limit: 10 }).items.map((d) => d.status)).toEqual(['failed']);
    await store.close();
  });

  it('writes no delivery when there is no enabled endpoint', async () => {
    const store = new SqliteStore({ path: join(dir.path, 'none.db') });
    await store.webhooks.createEndpoint({ ...endpoint(1, () => 0.9), enabled: false });
    for (let i = 0; i < 50; i++) {
      store.write({
        id: `t${i}`,
        txHash: hashOf(i),
        state: 'pending',
        version: 3,
        snapshot: {},
        restarts: 0,
        createdAt: 1,
        updatedAt: 1,
        change: {
          from: null,
          to: 'pending.unseen',
          event: 'START',
          at: 1,
          blockNumber: null,
          blockHash: null,
          restarts: 0,
          reorgs: 0,
          detail: null,
        },
      });
    }
    await store.flush();
    expect(store.db.prepare('SELECT count(*) FROM tracker_history').pluck().get()).toBe(50);
    expect(store.db.prepare('SELECT count(*) FROM webhook_deliveries').pluck().get()).toBe(0);
    await store.close();
  });
});
