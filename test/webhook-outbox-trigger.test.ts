import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { MemoryStore } from '../src/store/memory.js';
import { SqliteStore } from '../src/store/sqlite.js';
import type { SnapshotStore, TrackerRecord } from '../src/store/types.js';
import { type WebhookEndpoint, WEBHOOK_EVENT_TYPES } from '../src/webhooks/types.js';
import { hashOf, seededRandom, tempDir } from './helpers.js';

const STATES = ['pending.unseen', 'pending.seen', 'pending.stuck', 'confirming', 'confirmed', 'failed', 'stopped'];
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
    createdAt: n,
    updatedAt: n,
  };
}

/** Every delivery of every endpoint, as `endpoint seq tracker type`, sorted. */
async function outbox(store: SnapshotStore): Promise<string[]> {
  const lines: string[] = [];
  for (const e of store.webhooks!.listEndpoints()) {
    for (const d of (await store.webhooks!.listDeliveries(e.id, { limit: 100_000 })).items) {
      lines.push(`${d.endpointId} ${d.seq} ${d.trackerId} ${d.type}`);
    }
  }
  return lines.sort();
}

describe('the outbox trigger', () => {
  const dir = tempDir('tx-tracker-outbox-');
  afterAll(() => dir.remove());

  it('writes, in the commit of each change, the deliveries the in-memory outbox makes: same types, filters, enabled', async () => {
    const seed = Number(process.env.OUTBOX_SEED ?? Date.now() % 1_000_000);
    const random = seededRandom(seed);
    const sqlite = new SqliteStore({ path: join(dir.path, 'outbox.db') });
    const memory = new MemoryStore();
    for (let n = 0; n < 12; n++) {
      const e = endpoint(n, random);
      await sqlite.webhooks.createEndpoint(e);
      await memory.webhooks.createEndpoint(e);
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
          event: 'TEST',
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
      if (random() < 0.1) await sqlite.flush();
    }
    await sqlite.flush();
    const fromSqlite = await outbox(sqlite);
    expect(fromSqlite.length, `seed ${seed}`).toBeGreaterThan(50);
    expect(fromSqlite.some((line) => line.endsWith('tracker.stuck'))).toBe(true);
    expect(fromSqlite, `seed ${seed} (replay with OUTBOX_SEED=${seed})`).toEqual(await outbox(memory));
    await sqlite.close();
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
