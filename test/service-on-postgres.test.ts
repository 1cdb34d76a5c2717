import { afterAll, beforeAll, expect, it } from 'vitest';
import { type Anvil, startAnvil } from '../src/chain/anvil.js';
import type { Tracker } from '../src/runtime/tracker-view.js';
import { httpCaller } from './helpers/api.js';
import { mine, rpc } from './support/chain.js';
import { type PostgresServer, describeWithPostgres, startPostgres } from './support/postgres.js';
import { signTransfer } from './support/service.js';
import { type ServiceProcess, spawnFromSource } from './support/service-process.js';
import { waitUntil } from './support/wait.js';

// `npm start` with DATABASE_URL=postgres://…: the whole service on PostgreSQL, as a child process.
describeWithPostgres('the service runs on PostgreSQL and rehydrates from it after a restart', () => {
  let pg: PostgresServer;
  let anvil: Anvil;
  const children: ServiceProcess[] = [];
  beforeAll(async () => {
    [pg, anvil] = await Promise.all([startPostgres(), startAnvil()]);
  });
  afterAll(async () => {
    for (const child of children) child.child.kill('SIGKILL');
    await Promise.all([pg?.close(), anvil?.stop()]);
  });

  const start = async (databaseUrl: string) => {
    const child = spawnFromSource({
      PORT: '0',
      DATABASE_URL: databaseUrl,
      ETH_RPC_URL: anvil.url,
      POLL_INTERVAL_MS: '50',
    });
    children.push(child);
    const started = await child.started();
    return { child, started, call: httpCaller(started.api) };
  };
  const stop = async (child: ServiceProcess) => {
    child.child.kill('SIGTERM');
    expect(await child.exited, child.stderr()).toBe(0);
  };
  const stateOf = async (call: ReturnType<typeof httpCaller>, id: string) =>
    ((await call('GET', `/trackers/${id}`)).json as Tracker).state;

  it('serves POST and GET on PostgreSQL; a second process finds every tracker and carries the live ones on', async () => {
    const url = (await pg.createDatabase()).replace('postgres://postgres@', 'postgres://postgres:unused@');
    const first = await start(url);
    // The startup line names the database without its password.
    expect(first.started.database).toMatch(/^postgres:\/\/postgres:\*\*\*@127\.0\.0\.1:\d+\//);
    const sent = await signTransfer(31337, 0, { nonce: 0 });
    const later = await signTransfer(31337, 0, { nonce: 1 });
    for (const tx of [sent, later]) {
      const created = await first.call('POST', '/trackers', { txHash: tx.hash, confirmations: 2 });
      expect(created, created.text).toMatchObject({ status: 201, json: { id: tx.hash, state: 'pending' } });
    }
    await rpc(anvil.url, 'eth_sendRawTransaction', [sent.raw]);
    await mine(anvil.url, 2);
    await waitUntil(
      async () => (await stateOf(first.call, sent.hash)) === 'confirmed',
      'the sent tx confirmed',
      20_000,
    );
    expect(await first.call('GET', '/readyz')).toMatchObject({ status: 200, json: { checks: { store: true } } });
    const listed = (await first.call('GET', '/trackers?limit=10')).json as { items: Tracker[] };
    expect(listed.items.map((t) => t.id).sort()).toEqual([sent.hash, later.hash].sort());
    await stop(first.child);

    const second = await start(url);
    expect(await stateOf(second.call, sent.hash)).toBe('confirmed');
    expect(await stateOf(second.call, later.hash)).toBe('pending');
    // The change log came through the restart: GET /trackers/:id/history from PostgreSQL.
    const history = (await second.call('GET', `/trackers/${sent.hash}/history?limit=100`)).json as {
      items: Array<{ event: string; to: string }>;
    };
    expect(history.items[0]).toMatchObject({ event: 'START', to: 'pending.unseen' });
    expect(history.items.at(-1)).toMatchObject({ to: 'confirmed' });
    // Live again, not only stored: the chain moves it on.
    await rpc(anvil.url, 'eth_sendRawTransaction', [later.raw]);
    await mine(anvil.url, 2);
    await waitUntil(
      async () => (await stateOf(second.call, later.hash)) === 'confirmed',
      'the rehydrated tracker confirmed',
      20_000,
    );
    await stop(second.child);
  });
});
