import { join } from 'node:path';
import Database from 'better-sqlite3';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Anvil, startAnvil } from '../src/chain/anvil.js';
import { eventTypeOf } from '../src/webhooks/matching.js';
import { seededRandom, tempDir } from './helpers.js';
import { httpCaller } from './helpers/api.js';
import { rpc } from './support/chain.js';
import { signTransfer } from './support/service.js';
import { type PostgresServer, describeWithPostgres, startPostgres } from './support/postgres.js';
import { type ServiceProcess, spawnFromSource } from './support/service-process.js';
import { waitUntil } from './support/wait.js';
import { type Receiver, startReceiver } from './support/webhook-receiver.js';

const ROUNDS = 4;
const CHAIN_ID = 31337;

interface HistoryRow {
  seq: number;
  tracker_id: string;
  from_state: string | null;
  to_state: string;
  event: string;
}
interface Payload {
  type: string;
  data: { seq: number; trackerId: string; from: string | null; to: string; event: string };
}

/** Where the service keeps its data, and how the test reads the change log there. */
interface Storage {
  url: string;
  /** Settings the service needs beside `DATABASE_URL`. */
  env?: Record<string, string>;
  history(): Promise<HistoryRow[]>;
  close(): Promise<void>;
}

function killDuringDeliveries(open: () => Promise<Storage>): void {
  let anvil: Anvil;
  let storage: Storage;
  let receiver: Receiver;
  const seed = Number(process.env.KILL9_SEED ?? Date.now() % 1_000_000);
  const random = seededRandom(seed);
  const note = `seed ${seed} (replay with KILL9_SEED=${seed})`;
  let service: ServiceProcess | undefined;

  beforeAll(async () => {
    storage = await open();
    anvil = await startAnvil({ blockTime: 0.5, args: ['--chain-id', String(CHAIN_ID)] });
    // Some requests fail, so that retries are in flight too when the service dies.
    receiver = await startReceiver(() => (random() < 0.15 ? 500 : 204));
  }, 60_000);
  afterAll(async () => {
    service?.child.kill('SIGKILL');
    await service?.exited;
    await receiver?.close();
    await anvil?.stop();
    await storage?.close();
  });

  const start = async () => {
    service = spawnFromSource({
      PORT: '0',
      DATABASE_URL: storage.url,
      ...storage.env,
      CHAIN_LOCAL_RPC_URL: anvil.url,
      CHAIN_LOCAL_ID: String(CHAIN_ID),
      CHAIN_LOCAL_POLL_INTERVAL_MS: '100',
      REQUIRED_CONFIRMATIONS: '2',
      WEBHOOK_ALLOW_HOSTS: '127.0.0.1',
      WEBHOOK_RETRY_SCHEDULE: '0,50,100,200,400,800,1600,3200',
    });
    const { api } = await service.started(60_000);
    return httpCaller(api);
  };

  it('every event of every acknowledged change arrives after restarts; each one arrived is a committed change', async () => {
    const acked = new Set<string>();
    const nonces = new Map<number, number>();
    let call = await start();
    const created = await call('POST', '/webhooks', { url: receiver.url });
    expect(created.status, created.text).toBe(201);

    for (let round = 0; round < ROUNDS; round++) {
      if (round > 0) call = await start();
      // Four posters: a transfer sent to the chain, then its tracker; acknowledged on 201.
      let posting = true;
      const poster = async (account: number) => {
        while (posting) {
          const nonce = nonces.get(account) ?? 0;
          const { raw, hash } = await signTransfer(CHAIN_ID, account, { nonce });
          await rpc(anvil.url, 'eth_sendRawTransaction', [raw]);
          nonces.set(account, nonce + 1);
          const res = await call('POST', '/trackers', { txHash: hash }).catch(() => undefined);
          if (res?.status === 201) acked.add(hash);
          else break;
        }
      };
      const posters = [0, 1, 2, 3].map((account) => poster(account));
      // Killed at a random moment: trackers being started, changes committing, deliveries in flight.
      const killAfter = 300 + Math.floor(random() * 1500);
      await new Promise((resolve) => setTimeout(resolve, killAfter));
      service!.child.kill('SIGKILL');
      await service!.exited;
      posting = false;
      await Promise.allSettled(posters);
    }
    expect(acked.size, note).toBeGreaterThan(ROUNDS * 4);

    // The last start: it finishes every tracker and sends the rest of the outbox.
    call = await start();
    const wanted = async (): Promise<HistoryRow[]> =>
      (await storage.history()).filter(
        (row) =>
          eventTypeOf({ fromState: row.from_state, toState: row.to_state, event: row.event }) !== 'tracker.updated',
      );
    await waitUntil(
      async () => {
        for (const id of acked)
          if (((await call('GET', `/trackers/${id}`)).json as { state: string }).state !== 'confirmed') return false;
        const accepted = receiver.accepted();
        return (await wanted()).every((row) => accepted.has(`msg_${row.seq}`));
      },
      `every acknowledged tracker confirmed and every change delivered; ${note}`,
      90_000,
    );
    const rows = await wanted();

    // Nothing lost: each acknowledged tracker's creation and confirmation were delivered.
    const accepted = receiver.accepted();
    const bySeq = new Map(rows.map((row) => [row.seq, row]));
    for (const id of acked) {
      const mine = rows.filter((row) => row.tracker_id === id);
      expect(mine[0]?.from_state, `${id} has its creation in the log; ${note}`).toBeNull();
      expect(mine.at(-1)?.to_state, `${id}; ${note}`).toBe('confirmed');
      for (const row of mine) expect(accepted.has(`msg_${row.seq}`), `msg_${row.seq} of ${id}; ${note}`).toBe(true);
    }
    // Nothing invented: every request the receiver got (accepted or not) is a committed change, as committed.
    for (const request of receiver.received) {
      const payload = JSON.parse(request.body) as Payload;
      const row = bySeq.get(payload.data.seq);
      expect(row, `${request.id} names no committed change; ${note}`).toBeDefined();
      expect(request.id).toBe(`msg_${row!.seq}`);
      expect(payload.data).toMatchObject({
        trackerId: row!.tracker_id,
        from: row!.from_state,
        to: row!.to_state,
        event: row!.event,
      });
    }
  }, 240_000);
}

const HISTORY = 'SELECT seq::int AS seq, tracker_id, from_state, to_state, event FROM tracker_history ORDER BY seq';

describe('webhooks: kill -9 during deliveries neither loses nor invents a notification (SQLite)', () => {
  killDuringDeliveries(async () => {
    const dir = tempDir('tx-tracker-webhook-kill9-');
    const path = join(dir.path, 'trackers.db');
    return {
      url: `sqlite:${path}`,
      history: async () => {
        const db = new Database(path, { readonly: true });
        try {
          return db.prepare(HISTORY.replace('seq::int', 'seq')).all() as HistoryRow[];
        } finally {
          db.close();
        }
      },
      close: async () => dir.remove(),
    };
  });
});

describeWithPostgres(
  'webhooks: kill -9 during deliveries neither loses nor invents a notification (PostgreSQL)',
  () => {
    killDuringDeliveries(async () => {
      const server: PostgresServer = await startPostgres();
      const url = await server.createDatabase();
      return {
        url,
        // The same instance each start: it takes its own leases back at once instead of after their TTL.
        env: { INSTANCE_ID: 'kill9' },
        history: async () => {
          const client = new pg.Client({ connectionString: url });
          await client.connect();
          try {
            return (await client.query<HistoryRow>(HISTORY)).rows;
          } finally {
            await client.end();
          }
        },
        close: () => server.close(),
      };
    });
  },
);
